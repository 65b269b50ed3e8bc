/* Private to the Hub's file endpoints (api-commit.c, api-tree.c, api-lfs.c): a Space's
 * git repository as huggingface_hub reaches it — where it lives, which Space a request
 * names, which commit a revision means, and signed LFS transfer URLs (the client sends
 * no Authorization header with a basic-transfer PUT, so the URL itself must carry it). */
#ifndef SP_RUNTIMED_API_REPO_H
#define SP_RUNTIMED_API_REPO_H

#include <stdbool.h>
#include <stdint.h>

#include "api-internal.h"
#include "gitcommit.h"
#include "store.h"

#define RT_REPO_DIR_MAX 1024
/* How long a signed LFS transfer URL stays valid. */
#define RT_LFS_URL_TTL_S 3600

/* DATA/repos/OWNER/NAME.git, where git push and the commit API both write. */
void rt__repo_dir(const struct rt_api *api, const struct rt_space *s, char *buf, size_t len);

/* Creates the Space's bare repository when it has none yet.  Returns 0 or -errno. */
int rt__repo_ensure(const struct rt_api *api, const struct rt_space *s, struct rt_err *err);

/* Loads Space OWNER/NAME for the caller (locking the store itself): 404 RepoNotFound
 * when missing or unreadable, 401/403 when @write and the caller may not write.  Returns
 * 0, or -1 after replying. */
int rt__repo_load(struct rt_req *r, const char *owner, const char *name, bool write,
                  struct rt_space *s);

/* Resolves revision @rev ("main", another branch, or a full commit id) of @dir into
 * @sha.  Returns 0; 1 when the repository has no commit yet and @rev is "main" (@sha is
 * then ""); or -1 after replying 404 RevisionNotFound. */
int rt__repo_rev(struct rt_req *r, const char *dir, const char *rev, char sha[RT_GIT_SHA_LEN + 1]);

/* Replies with the Hub's error code header (RepoNotFound, RevisionNotFound,
 * EntryNotFound...), which the client turns into its typed errors.  Returns the status. */
int rt__reply_coded(struct rt_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Signed transfer URL path for @method ("PUT" upload, "GET" download) of object @oid of
 * @size bytes in Space OWNER/NAME: "/api/spaces/OWNER/NAME/lfs-object/OID?size=..&exp=..&sig=..". */
void rt__lfs_signed_path(const char *method, const struct rt_space *s, const char *oid,
                         uint64_t size, char *buf, size_t len);
/* Checks such a URL's query (@size from it).  Returns true when signed by this runtimed,
 * unexpired and for this method, Space and oid. */
bool rt__lfs_signature_ok(struct rt_req *r, const char *method, const struct rt_space *s,
                          const char *oid, uint64_t *ret_size);

/* Adds "sha" (the head of main, or of the revision a …/revision/REV request names) and
 * "siblings" (its files) to a Space's info.  Returns 0, or -ENOENT when the request names
 * a revision the repository lacks (the caller answers 404 RevisionNotFound). */
int rt__repo_add_siblings(struct rt_req *r, const struct rt_space *s, json_t *info);

/* Routing, from api.c: whether /api/spaces/OWNER/NAME/SUB/... is a file endpoint, and
 * its handler; POST /api/validate-yaml; and the civetweb handler of the paths outside
 * /api (/spaces/OWNER/NAME/resolve/REV/PATH and /spaces/OWNER/NAME.git/info/lfs/...). */
bool rt__api_repo_owns(const struct rt_req *r);
int rt__api_repo(struct rt_req *r);
int rt__api_validate_yaml(struct rt_req *r);
bool rt__repo_web_owns(const char *uri);
int rt__repo_web_handler(struct mg_connection *conn, void *cbdata);

/* duplicate_space, called with the store locked once the copy exists: its main gets the
 * original's commits, recorded and built as a push would be. */
void rt__repo_duplicate(struct rt_req *r, const struct rt_space *from, const struct rt_space *to);

/* A deleted Space's LFS scope goes (lfs.h); the objects other Spaces use stay. */
void rt__repo_lfs_forget(const struct rt_api *api, const struct rt_space *s);

/* Handlers. */
int rt__api_commit(struct rt_req *r, const struct rt_space *s, const char *rev);
int rt__api_preupload(struct rt_req *r, const struct rt_space *s, const char *rev);
int rt__api_tree(struct rt_req *r, const struct rt_space *s, const char *rev, bool paths_info);
int rt__api_lfs_object(struct rt_req *r, const struct rt_space *s, const char *oid);
int rt__api_lfs_verify(struct rt_req *r, const struct rt_space *s);

#endif
