/* The git side of the Hub's commit API: a list of file operations applied to a bare
 * repository as one real commit on a branch, made with git's own plumbing (read-tree,
 * hash-object, update-index, write-tree, commit-tree, update-ref) in a private index, so
 * a push racing the commit makes one of them fail cleanly instead of losing work.  Also
 * what list_repo_files and the preupload endpoint need: the files of a commit with their
 * LFS pointers decoded, and the regular-or-LFS decision for a file about to be uploaded.
 *
 * Nothing here speaks HTTP or JSON; runtimed's API handlers decode the request (base64
 * with rt_git_base64_decode()), call these functions and map the errors:
 *   -EINVAL  a refused request (path, oid, branch, parent id, identity): 400
 *   -ENOENT  deleting or renaming a path that does not exist: 404 EntryNotFound
 *   -EEXIST  a file where the tree has a folder, or the other way round: 409
 *   -EFBIG   over a size or count limit: 413
 *   -ESTALE  parentCommit is not the head of the branch: 412
 *   -EAGAIN  the branch moved while the commit was being made (a push won): 409
 *   -ENODATA the commit changes nothing and the caller asked to refuse that
 *   -EIO     git failed (the message says how) */
#ifndef SP_RUNTIMED_GITCOMMIT_H
#define SP_RUNTIMED_GITCOMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "gitrepo.h"
#include "lfs.h"

/* Bytes in one path inside a repository. */
#define RT_GIT_PATH_MAX 1024
/* Files larger than this go to LFS, like on the Hub (10 MiB). */
#define RT_GIT_LFS_THRESHOLD (10ULL << 20)

enum rt_git_op_kind {
    RT_GIT_OP_FILE,          /* add or replace @path with @data/@len ("file") */
    RT_GIT_OP_LFS_FILE,      /* add or replace @path with a pointer to @lfs_oid ("lfsFile") */
    RT_GIT_OP_DELETE_FILE,   /* remove the file @path ("deletedFile") */
    RT_GIT_OP_DELETE_FOLDER, /* remove every file under @path ("deletedFolder"; a trailing
                                '/' is allowed) */
    RT_GIT_OP_DELETE_ENTRY,  /* the file @path if there is one, else the folder ("deletedEntry") */
    RT_GIT_OP_RENAME,        /* move the file @old_path to @path, content and mode kept */
};

/* One operation.  Paths are relative to the repository root; @path_len/@old_path_len
 * give their exact length (0: up to the NUL), so a NUL inside a JSON string is refused
 * rather than silently cutting the path.  For FILE and LFS_FILE a non-NULL @old_path is
 * the Hub's "oldPath": that file is removed in the same commit (a rename with new
 * content); a "file" line with an oldPath but no content is a RENAME.  Operations apply
 * in order; a later one sees what the earlier ones did. */
struct rt_git_op {
    enum rt_git_op_kind kind;
    const char *path;
    size_t path_len;
    const char *old_path;
    size_t old_path_len;
    const void *data;    /* FILE: the decoded content */
    size_t len;          /* FILE: its length */
    const char *lfs_oid; /* LFS_FILE: SHA-256 of the content, 64 lowercase hex digits */
    uint64_t lfs_size;   /* LFS_FILE: size of the content (the pointer records it) */
};

struct rt_git_commit_req {
    const char *branch;        /* NULL: "main" */
    const char *parent_commit; /* NULL: none; else 5 to 40 hex digits the branch head must
                                  start with (the Hub's parentCommit) */
    const char *summary;       /* required, the first paragraph of the message */
    const char *description;   /* NULL or "": none; else the message's second paragraph */
    const char *author_name;   /* author and committer; NULL: "Spaceport" */
    const char *author_email;  /* NULL: "spaceport@localhost" */
    const struct rt_git_op *ops;
    size_t n_ops;
    /* A commit whose tree equals its parent's (every file re-uploaded unchanged, or no
     * operation at all) is made anyway by default, as the Hub does; true refuses it with
     * -ENODATA instead. */
    bool refuse_empty;
    uint64_t max_file_bytes;   /* one FILE operation's content (0: RT_GIT_LFS_THRESHOLD) */
    uint64_t max_commit_bytes; /* all FILE contents together (0: 1 GiB) */
    uint32_t max_files;        /* files in the resulting tree, and operations (0: 100000) */
    /* Non-NULL: every LFS_FILE object must be in this store with the declared size
     * (-ENOENT when it was never uploaded, -EINVAL when the size differs).  NULL: the
     * caller has checked. */
    struct rt_lfs *lfs;
};

struct rt_git_commit_result {
    char commit[RT_GIT_SHA_LEN + 1]; /* the new commit */
    char parent[RT_GIT_SHA_LEN + 1]; /* the head it was made on; "" for the first commit */
    bool changed;                    /* false: the tree is the parent's (an empty commit) */
};

/* Applies @req->ops to the head of the branch of the bare repository @repo (which may
 * have no commit yet) and moves the branch to the new commit, but only if it still points
 * where it did when the work started.  Every operation is checked before anything is
 * written; refused paths: empty, absolute, longer than RT_GIT_PATH_MAX, with a NUL or a
 * control character, or with an empty, ".", ".." or ".git" (any case) component.  A
 * failed commit leaves the branch where it was (at worst a few unreferenced blobs that
 * git gc prunes).  Blocks while git runs.  Returns 0 and fills *ret, or a negative errno
 * listed at the top. */
int rt_git_commit(const char *repo, const struct rt_git_commit_req *req,
                  struct rt_git_commit_result *ret, struct rt_err *err);

/* Checks one repository path by the rules above.  Returns 0 or -EINVAL. */
int rt_git_path_check(const char *path, size_t len, struct rt_err *err);

/* One file of a commit, as list_repo_files and the siblings of space_info show it.  The
 * "oid" preupload returns for a file already in the repository is lfs_oid for an LFS file
 * and blob_id otherwise: huggingface_hub compares it with its own hash of the file
 * (SHA-256 for LFS, git's blob id for regular) to leave unchanged files out. */
struct rt_git_file {
    char *path;
    unsigned mode;                    /* 0100644, 0100755, 0120000 (symlink), 0160000 */
    char blob_id[RT_GIT_SHA_LEN + 1]; /* the git blob (for LFS files: the pointer's) */
    uint64_t blob_size;               /* size of that blob */
    uint64_t size;                    /* size of the content: the LFS object's for LFS */
    bool lfs;                         /* the blob is an LFS pointer */
    char lfs_oid[RT_LFS_OID_LEN + 1]; /* its SHA-256 when lfs */
};

struct rt_git_file_list {
    struct rt_git_file *files; /* sorted by path (bytewise) */
    size_t n;
};

/* Lists every file of @commit (a 40-digit commit id) recursively, reading the small blobs
 * to recognise LFS pointers; submodules are left out.  At most @max_files files (0:
 * 100000), else -EFBIG.  Free the list with rt_git_file_list_done().  Returns 0, -ENOENT
 * when the repository has no such commit, or another -errno. */
int rt_git_list_files(const char *repo, const char *commit, uint32_t max_files,
                      struct rt_git_file_list *ret, struct rt_err *err);

/* Finds @path in @list.  Returns the file or NULL. */
const struct rt_git_file *rt_git_file_list_find(const struct rt_git_file_list *list,
                                                const char *path);

/* Frees the files and empties the list; accepts an empty list. */
void rt_git_file_list_done(struct rt_git_file_list *list);

enum rt_git_upload_mode {
    RT_GIT_UPLOAD_REGULAR, /* send the content in the commit ("file") */
    RT_GIT_UPLOAD_LFS,     /* upload to the LFS store, commit a pointer ("lfsFile") */
};

/* The preupload decision for a file of @size bytes whose first bytes are @sample (the
 * client sends up to 512): LFS when the path matches a "filter=lfs" pattern of
 * @gitattributes (the text of the repository's .gitattributes, or NULL), when @size is over
 * RT_GIT_LFS_THRESHOLD, or when the sample looks binary (a NUL byte or invalid UTF-8);
 * regular otherwise, and always for an empty file (LFS cannot store one). */
enum rt_git_upload_mode rt_git_preupload_mode(const char *path, uint64_t size, const void *sample,
                                              size_t sample_len, const char *gitattributes);

/* Whether @path matches a "filter=lfs" line of @gitattributes (the last line that sets
 * or unsets the filter attribute wins, as in git). */
bool rt_git_attributes_lfs(const char *gitattributes, const char *path);

/* Whether @path is ignored by @gitignore (the text of a .gitignore at the repository root,
 * or NULL): preupload's "shouldIgnore".  Patterns as in git: "!" re-includes, a trailing
 * '/' names folders only, a '/' elsewhere anchors at the root, "**" spans folders, and a
 * file inside an ignored folder stays ignored. */
bool rt_git_ignored(const char *gitignore, const char *path);

/* The .gitattributes the Hub puts in every new repository, for the repository-creation
 * code to commit: model weights, archives and arrays go to LFS. */
extern const char rt_git_default_gitattributes[];

/* Decodes strict standard base64 (RFC 4648 alphabet, '=' padding required, no
 * whitespace, unused bits zero) into a new buffer of at most @max bytes (free() it;
 * NUL-terminated for convenience).  -EINVAL with the offending offset named in @err,
 * -EFBIG over @max. */
int rt_git_base64_decode(const char *in, size_t len, uint64_t max, unsigned char **ret_out,
                         size_t *ret_len, struct rt_err *err);

#endif
