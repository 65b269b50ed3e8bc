/* Bare git repositories of Spaces: creation, ref lookup, reading one file of a commit,
 * and a checked checkout of a commit's tree into a directory.  Everything runs the real
 * git through common/spawn; nothing here parses git's object format itself. */
#ifndef SP_RUNTIMED_GITREPO_H
#define SP_RUNTIMED_GITREPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RT_GIT_SHA_LEN 40

/* Creates a bare repository at @dir (its parent must exist) whose default branch is
 * main, accepting pushes over smart HTTP (force pushes included) and checking every
 * object pushed (receive.fsckObjects).  @max_push_bytes caps one push (0: no cap).
 * Idempotent: an existing repository is reconfigured, not touched otherwise. */
int rt_git_init_bare(const char *dir, uint64_t max_push_bytes, struct rt_err *err);

/* Resolves @ref ("refs/heads/main") to a commit id.  Returns 0 and fills @ret_sha
 * (41 bytes with the NUL), -ENOENT when the ref does not exist, or another -errno. */
int rt_git_resolve(const char *dir, const char *ref, char ret_sha[RT_GIT_SHA_LEN + 1],
                   struct rt_err *err);

/* Reads @path at @commit into @buf (NUL-terminated).  Returns 0 and the length in
 * *ret_len; -ENOENT when the path is not a file in that commit; -EFBIG when it does not
 * fit in @cap-1 bytes. */
int rt_git_read_file(const char *dir, const char *commit, const char *path, char *buf, size_t cap,
                     size_t *ret_len, struct rt_err *err);

struct rt_git_limits {
    uint64_t max_file_bytes;  /* one file (0: 1 GiB) */
    uint64_t max_total_bytes; /* all files together (0: 4 GiB) */
    uint32_t max_files;       /* entries in the tree (0: 100000) */
};

struct rt_git_checkout_report {
    uint32_t files;
    uint32_t symlinks;
    uint32_t submodules_skipped;
    uint64_t bytes;
};

/* Writes the tree of @commit into the empty directory @dest.  Refused, with the path
 * named in @err: a path with a ".." or ".git" component, a mode other than a file or a
 * symlink, a file over the limits (all checked before anything is written), a symlink
 * that is absolute or climbs out of the tree (checked as it is written: on failure
 * @dest may hold part of the tree, and the caller removes it).  Submodules are skipped
 * and counted.  Returns 0 or -errno. */
int rt_git_checkout(const char *dir, const char *commit, const char *dest,
                    const struct rt_git_limits *limits, struct rt_git_checkout_report *ret_report,
                    struct rt_err *err);

/* Checks that a symlink stored at @path (relative to the tree root) pointing at
 * @target stays inside the tree.  Exposed for the unit tests. */
bool rt_git_symlink_is_contained(const char *path, const char *target);

#endif
