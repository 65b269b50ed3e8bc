/* What the Hub's file endpoints share: where a Space's repository lives, loading the
 * Space a request names, revisions, coded errors, signed LFS URLs, and the routing of
 * /api/spaces/OWNER/NAME/{preupload,commit,tree,paths-info,lfs-object,lfs-verify}. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api-repo.h"
#include "builder-job.h"
#include "builder.h"
#include "cleanup.h"
#include "lfs.h"
#include "log.h"
#include "names.h"
#include "sha256.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

void rt__repo_dir(const struct rt_api *api, const struct rt_space *s, char *buf, size_t len)
{
    rt__builder_repo_dir(api->cfg->data_dir, s->owner, s->name, buf, len); /* as git push */
}

int rt__repo_ensure(const struct rt_api *api, const struct rt_space *s, struct rt_err *err)
{
    char dir[RT_REPO_DIR_MAX];
    struct stat st;

    rt__repo_dir(api, s, dir, sizeof(dir));
    if (stat(dir, &st) == 0)
        return 0;
    (void) snprintf(dir, sizeof(dir), "%s/repos", api->cfg->data_dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "create '%s'", dir);
    (void) snprintf(dir, sizeof(dir), "%s/repos/%s", api->cfg->data_dir, s->owner);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "create '%s'", dir);
    rt__repo_dir(api, s, dir, sizeof(dir));
    return rt_git_init_bare(dir, 0, err);
}

int rt__reply_coded(struct rt_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return rt__reply_json_h(r, status, json_pack("{s:s}", "error", msg), "X-Error-Code", code);
}

int rt__repo_load(struct rt_req *r, const char *owner, const char *name, bool write,
                  struct rt_space *s)
{
    struct rt_err err = { 0 };
    int rc = -ENOENT;

    rt_store_lock(r->st);
    if (rt_name_check(owner, "owner", &err) >= 0 && rt_name_check(name, "name", &err) >= 0)
        rc = rt_store_space_get(r->st, owner, name, s, &err);
    rt_store_unlock(r->st);
    if (rc == -ENOENT || (rc >= 0 && !rt_auth_can_read(&r->who, s))) {
        rt__reply_coded(r, r->who.anonymous ? 401 : 404, "RepoNotFound",
                        "Repository not found: Space '%.96s/%.96s'", owner, name);
        return -1;
    }
    if (rc < 0)
        return rt__reply_err(r, rc, &err), -1;
    if (write && !rt_auth_can_write(&r->who, s))
        return rt__reply_denied(r, "write to this Space"), -1;
    return 0;
}

static bool is_hex40(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == RT_GIT_SHA_LEN && !s[n];
}

int rt__repo_rev(struct rt_req *r, const char *dir, const char *rev, char sha[RT_GIT_SHA_LEN + 1])
{
    struct rt_err err = { 0 };
    char ref[300];
    int rc;

    sha[0] = '\0';
    if (is_hex40(rev)) {
        struct rt_git_file_list l = { 0 };
        /* Whether the commit exists: listing it is what the callers do next anyway. */
        rc = rt_git_list_files(dir, rev, 1, &l, &err);
        rt_git_file_list_done(&l);
        if (rc == 0 || rc == -EFBIG) {
            memcpy(sha, rev, RT_GIT_SHA_LEN + 1);
            return 0;
        }
    } else if (strlen(rev) < 200 &&
               strspn(rev, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           "0123456789._-") == strlen(rev)) {
        (void) snprintf(ref, sizeof(ref), "refs/heads/%s", rev);
        rc = rt_git_resolve(dir, ref, sha, &err);
        if (rc == 0)
            return 0;
        if (strcmp(rev, "main") == 0 && (rc == -ENOENT || access(dir, F_OK) < 0))
            return 1;
    }
    rt__reply_coded(r, 404, "RevisionNotFound", "Invalid rev id: %.200s", rev);
    return -1;
}

void rt__repo_duplicate(struct rt_req *r, const struct rt_space *from, const struct rt_space *to)
{
    struct rt_log_ctx ctx = { .app = to->host, .action = "duplicate" };
    char src[RT_REPO_DIR_MAX], dst[RT_REPO_DIR_MAX + 16], sha[RT_GIT_SHA_LEN + 1];
    char errbuf[512] = "";
    struct rt_err err = { 0 };
    struct rt_space s;
    int rc;

    rt__repo_dir(r->api, from, src, sizeof(src));
    if (rt_git_resolve(src, "refs/heads/main", sha, &err) < 0)
        return; /* nothing committed yet: the copy starts empty too */
    if (rt__repo_ensure(r->api, to, &err) < 0) {
        rt_log(RT_LOG_ERR, &ctx, "create the repository: %s", err.msg);
        return;
    }
    (void) snprintf(dst, sizeof(dst), "--git-dir=");
    rt__repo_dir(r->api, to, dst + strlen(dst), sizeof(dst) - strlen(dst));
    /* The copy may use the original's LFS objects: link them into its scope. */
    {
        char from_key[RT_LFS_SCOPE_KEY_MAX];
        struct rt_lfs *lfs = NULL;

        rt_lfs_scope_key(from->id, from->created_at, from_key);
        if (rt_lfs_open_space(r->api->cfg->data_dir, to->id, to->created_at, &lfs, &err) < 0 ||
            rt_lfs_scope_copy(lfs, from_key, &err) < 0)
            rt_log(RT_LOG_ERR, &ctx, "link the LFS objects of '%s/%s': %s", from->owner, from->name,
                   err.msg);
        rt_lfs_free(lfs);
    }
    rc = rt_run_capture((const char *const[]){ "git", dst, "fetch", "-q", "--no-tags", src,
                                               "+refs/heads/main:refs/heads/main", NULL },
                        NULL, NULL, 0, errbuf, sizeof(errbuf), &err);
    if (rc != 0) {
        rt_log(RT_LOG_ERR, &ctx, "copy the files of '%s/%s': %s", from->owner, from->name,
               rc < 0 ? err.msg : errbuf);
        return;
    }
    if (rt_store_space_get(r->st, to->owner, to->name, &s, &err) == 0) {
        (void) rt_store_revision_add(r->st, s.id, sha, "refs/heads/main", &err);
        if (r->api->builder) {
            (void) snprintf(s.stage, sizeof(s.stage), "BUILDING");
            s.error[0] = '\0';
            (void) rt_store_space_update(r->st, &s, &err);
        }
    }
    if (r->api->builder && rt_builder_enqueue(r->api->builder, to->id, sha, false, &err) < 0)
        rt_log(RT_LOG_ERR, &ctx, "queue the build of %.12s: %s", sha, err.msg);
}

void rt__repo_lfs_forget(const struct rt_api *api, const struct rt_space *s)
{
    char key[RT_LFS_SCOPE_KEY_MAX];

    rt_lfs_scope_key(s->id, s->created_at, key);
    rt_lfs_scope_remove(api->cfg->data_dir, key);
}

/* --- signed LFS transfer URLs ------------------------------------------------------------- */

static unsigned char hmac_key[32];
static bool hmac_key_ok;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

/* A fresh key per process: URLs die with a restart, which only makes a client ask the
 * batch endpoint again. */
static void hmac_key_init(void)
{
    hmac_key_ok = getrandom(hmac_key, sizeof(hmac_key), 0) == (ssize_t) sizeof(hmac_key);
}

static void hmac_hex(const char *msg, char hex[RT_SHA256_HEX_LEN])
{
    unsigned char pad[64], inner[RT_SHA256_LEN], outer[RT_SHA256_LEN];
    struct rt_sha256 c;

    memset(pad, 0x36, sizeof(pad));
    for (size_t i = 0; i < sizeof(hmac_key); i++)
        pad[i] ^= hmac_key[i];
    rt_sha256_init(&c);
    rt_sha256_update(&c, pad, sizeof(pad));
    rt_sha256_update(&c, msg, strlen(msg));
    rt_sha256_final(&c, inner);
    memset(pad, 0x5c, sizeof(pad));
    for (size_t i = 0; i < sizeof(hmac_key); i++)
        pad[i] ^= hmac_key[i];
    rt_sha256_init(&c);
    rt_sha256_update(&c, pad, sizeof(pad));
    rt_sha256_update(&c, inner, sizeof(inner));
    rt_sha256_final(&c, outer);
    for (size_t i = 0; i < RT_SHA256_LEN; i++)
        (void) snprintf(hex + 2 * i, 3, "%02x", outer[i]);
}

static void sign(const char *method, const struct rt_space *s, const char *oid, uint64_t size,
                 long long exp, char hex[RT_SHA256_HEX_LEN])
{
    char msg[512];

    (void) snprintf(msg, sizeof(msg), "%s\n%lld\n%s/%s\n%s\n%llu\n%lld", method, (long long) s->id,
                    s->owner, s->name, oid, (unsigned long long) size, exp);
    hmac_hex(msg, hex);
}

void rt__lfs_signed_path(const char *method, const struct rt_space *s, const char *oid,
                         uint64_t size, char *buf, size_t len)
{
    char sig[RT_SHA256_HEX_LEN];
    long long exp = (long long) time(NULL) + RT_LFS_URL_TTL_S;

    (void) pthread_once(&hmac_once, hmac_key_init);
    sign(method, s, oid, size, exp, sig);
    (void) snprintf(buf, len, "/api/spaces/%s/%s/lfs-object/%s?size=%llu&exp=%lld&sig=%s", s->owner,
                    s->name, oid, (unsigned long long) size, exp, sig);
}

bool rt__lfs_signature_ok(struct rt_req *r, const char *method, const struct rt_space *s,
                          const char *oid, uint64_t *ret_size)
{
    char size[24], exp[24], sig[RT_SHA256_HEX_LEN + 1], want[RT_SHA256_HEX_LEN];
    uint64_t n, e;
    unsigned diff = 0;

    (void) pthread_once(&hmac_once, hmac_key_init);
    if (!hmac_key_ok || rt__query(r, "size", size, sizeof(size)) < 0 ||
        rt__query(r, "exp", exp, sizeof(exp)) < 0 || rt__query(r, "sig", sig, sizeof(sig)) < 0 ||
        rt_parse_u64(size, &n) < 0 || rt_parse_u64(exp, &e) < 0 ||
        strlen(sig) != RT_SHA256_HEX_LEN - 1 || e < (uint64_t) time(NULL))
        return false;
    sign(method, s, oid, n, (long long) e, want);
    for (size_t i = 0; i < RT_SHA256_HEX_LEN - 1; i++) /* constant time */
        diff |= (unsigned) (want[i] ^ sig[i]);
    *ret_size = n;
    return diff == 0;
}

/* --- routing -------------------------------------------------------------------------------- */

static const char *const subs[] = { "preupload", "commit",     "tree",       "paths-info",
                                    "resolve",   "lfs-object", "lfs-verify", NULL };

bool rt__api_repo_owns(const struct rt_req *r)
{
    if (r->nseg < 4 || strcmp(r->seg[0], "spaces") != 0)
        return false;
    for (size_t i = 0; subs[i]; i++)
        if (strcmp(r->seg[3], subs[i]) == 0)
            return true;
    return false;
}

int rt__api_repo(struct rt_req *r)
{
    const char *sub = r->seg[3];
    bool get = rt__is(r, "GET") || rt__is(r, "HEAD");
    struct rt_space s;

    if (strcmp(sub, "lfs-object") == 0) {
        /* Authorised by the URL's signature, not a token: load without the auth check. */
        struct rt_err err = { 0 };
        int rc = -ENOENT;

        if (r->nseg != 5)
            return rt__reply_error(r, 404, "no such endpoint");
        rt_store_lock(r->st);
        if (rt_name_check(r->seg[1], "owner", &err) >= 0 &&
            rt_name_check(r->seg[2], "name", &err) >= 0)
            rc = rt_store_space_get(r->st, r->seg[1], r->seg[2], &s, &err);
        rt_store_unlock(r->st);
        if (rc < 0)
            return rt__reply_coded(r, 404, "RepoNotFound", "Repository not found");
        return rt__api_lfs_object(r, &s, r->seg[4]);
    }
    if (strcmp(sub, "lfs-verify") == 0) {
        if (r->nseg != 4)
            return rt__reply_error(r, 404, "no such endpoint");
        if (!rt__is(r, "POST"))
            return rt__reply_error(r, 405, "use POST");
        if (rt__repo_load(r, r->seg[1], r->seg[2], true, &s) < 0)
            return r->status;
        return rt__api_lfs_verify(r, &s);
    }
    if (strcmp(sub, "tree") == 0) {
        if (r->nseg < 5)
            return rt__reply_error(r, 404, "no such endpoint");
        if (!get)
            return rt__reply_error(r, 405, "use GET");
        if (rt__repo_load(r, r->seg[1], r->seg[2], false, &s) < 0)
            return r->status;
        return rt__api_tree(r, &s, r->seg[4], false);
    }
    if (r->nseg != 5)
        return rt__reply_error(r, 404, "no such endpoint");
    if (strcmp(sub, "resolve") == 0)
        return rt__reply_error(r, 404, "files are served at /spaces/OWNER/NAME/resolve/REV/PATH");
    if (!rt__is(r, "POST"))
        return rt__reply_error(r, 405, "use POST");
    if (strcmp(sub, "paths-info") == 0) {
        if (rt__repo_load(r, r->seg[1], r->seg[2], false, &s) < 0)
            return r->status;
        return rt__api_tree(r, &s, r->seg[4], true);
    }
    if (rt__repo_load(r, r->seg[1], r->seg[2], true, &s) < 0)
        return r->status;
    if (strcmp(sub, "preupload") == 0)
        return rt__api_preupload(r, &s, r->seg[4]);
    return rt__api_commit(r, &s, r->seg[4]);
}

/* The client checks a README.md's front matter here before committing it.  Whether the
 * Space config is usable is the build's verdict (CONFIG_ERROR), as on the Hub. */
int rt__api_validate_yaml(struct rt_req *r)
{
    json_t *body;

    if (!rt__is(r, "POST"))
        return rt__reply_error(r, 405, "use POST");
    body = rt__req_object(r, false);
    if (!body)
        return r->status;
    json_decref(body);
    return rt__reply_json(r, 200, json_pack("{s:[], s:[]}", "errors", "warnings"));
}
