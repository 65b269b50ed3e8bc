/* The Git LFS object store: content-addressed files under DATA/lfs/objects/ab/cd/<oid>,
 * where <oid> is the SHA-256 of the content in lowercase hex (the layout git-lfs uses).
 * Objects arrive through a streaming writer that hashes while it writes and moves the
 * object into place only when the hash and size match what the client declared, so the
 * store never holds an object under a name that is not its hash.  Also the pointer text
 * that stands for an object inside a git tree. */
#ifndef SP_RUNTIMED_LFS_H
#define SP_RUNTIMED_LFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RT_LFS_OID_LEN 64 /* hex digits of a SHA-256 */
/* The longest pointer rt_lfs_pointer_format() writes, with its NUL. */
#define RT_LFS_POINTER_MAX 160
/* A blob larger than this cannot be a pointer (git-lfs reads at most 1024 bytes). */
#define RT_LFS_POINTER_SCAN_MAX 1024
/* rt_lfs_open() removes temporary upload files older than this (a crashed upload). */
#define RT_LFS_STALE_UPLOAD_S (24 * 3600)

struct rt_lfs; /* a store: its root fd and limits */
struct rt_lfs_writer;

/* Opens (creating when needed, mode 0700) the store under @data_dir/lfs and removes stale
 * temporary files of crashed uploads.  Objects larger than @max_object_bytes are refused
 * (0: 50 GiB, the Hub's limit for one file).  Free the store with rt_lfs_free().  Returns
 * 0 or -errno. */
int rt_lfs_open(const char *data_dir, uint64_t max_object_bytes, struct rt_lfs **ret_store,
                struct rt_err *err);

/* Frees the store; accepts NULL.  Writers still open keep working until freed. */
void rt_lfs_free(struct rt_lfs *store);

/* LFS objects are scoped per Space, as git hosts scope them per repository: a store
 * scoped to a Space sees an object only once it was uploaded to that Space (or linked
 * from the Space it was duplicated from), so knowing an object's hash never yields
 * another Space's content.  Scope links are empty files DATA/lfs/spaces/KEY/<oid>;
 * objects themselves are stored once.  An unscoped store (tools, tests) sees all. */
#define RT_LFS_SCOPE_KEY_MAX 48
/* KEY for a Space: "<id>-<created_at>", as ids of deleted Spaces can come back. */
void rt_lfs_scope_key(int64_t space_id, int64_t created_at, char buf[RT_LFS_SCOPE_KEY_MAX]);
/* Scopes @store to @key (creating its link folder).  Returns 0 or -errno. */
int rt_lfs_set_scope(struct rt_lfs *store, const char *key, struct rt_err *err);
/* rt_lfs_open() then rt_lfs_set_scope() for the Space @space_id created at @created_at. */
int rt_lfs_open_space(const char *data_dir, int64_t space_id, int64_t created_at,
                      struct rt_lfs **ret_store, struct rt_err *err);
/* Links into @store's scope every object that scope @from_key holds (a duplicate). */
int rt_lfs_scope_copy(struct rt_lfs *store, const char *from_key, struct rt_err *err);
/* Removes scope @key's links (its Space is deleted); the objects stay. */
void rt_lfs_scope_remove(const char *data_dir, const char *key);

/* True when @oid is 64 lowercase hex digits and nothing else. */
bool rt_lfs_oid_is_valid(const char *oid);

/* Whether the store (its scope, when scoped) holds @oid.  Returns 0 and its size in
 * *ret_size (may be NULL), -ENOENT when absent, -EINVAL when @oid is not a valid oid. */
int rt_lfs_has(struct rt_lfs *store, const char *oid, uint64_t *ret_size, struct rt_err *err);

/* Opens @oid for reading (the resolve endpoint streams it).  Returns an O_CLOEXEC fd
 * the caller closes and its size in *ret_size, or -ENOENT / -EINVAL. */
int rt_lfs_open_object(struct rt_lfs *store, const char *oid, uint64_t *ret_size,
                       struct rt_err *err);

/* Writes object @oid as the file @name (one path component) of the directory @dir_fd with
 * @mode, atomically replacing what is there (a checkout's pointer file; a symlink is
 * replaced, never followed).  A checkout of a Space holds pointers, the Space needs the
 * content: the builder calls this for each LFS file rt_git_list_files() reports.  Returns
 * 0, -ENOENT when the store lacks the object, -EINVAL for a bad oid or name. */
int rt_lfs_export(struct rt_lfs *store, const char *oid, int dir_fd, const char *name,
                  unsigned mode, struct rt_err *err);

/* Starts an upload of @size bytes declared to hash to @oid, into a private temporary
 * file.  -EINVAL: bad oid; -EFBIG: @size over the store's limit.  Free the writer with
 * rt_lfs_writer_free() (which removes the temporary file unless it was committed). */
int rt_lfs_writer_start(struct rt_lfs *store, const char *oid, uint64_t size,
                        struct rt_lfs_writer **ret_writer, struct rt_err *err);

/* Appends @len bytes.  -EFBIG when they would exceed the declared size (the upload is
 * then dead: finish will refuse it). */
int rt_lfs_writer_write(struct rt_lfs_writer *w, const void *buf, size_t len, struct rt_err *err);

/* Checks the size and SHA-256 of what was written against the declared ones and, when
 * both match, syncs the file and renames it into place (an object already present is
 * simply replaced by identical bytes) and links it into the store's scope.  -EBADMSG on a mismatch, with the temporary file
 * removed.  Either way the writer is finished: free it next. */
int rt_lfs_writer_finish(struct rt_lfs_writer *w, struct rt_err *err);

/* Removes the temporary file unless finish committed it, and frees.  Accepts NULL. */
void rt_lfs_writer_free(struct rt_lfs_writer *w);

/* Writes the pointer text git-lfs stores in a tree for an object:
 * "version https://git-lfs.github.com/spec/v1\noid sha256:<oid>\nsize <size>\n".
 * @buf holds RT_LFS_POINTER_MAX bytes.  Returns its length, or -EINVAL for a bad oid. */
int rt_lfs_pointer_format(const char *oid, uint64_t size, char buf[RT_LFS_POINTER_MAX]);

/* Parses @len bytes of a blob as an LFS pointer (the version line first, then keys in
 * any order as git-lfs accepts).  Returns true and fills @ret_oid (65 bytes) and
 * *ret_size when it is one; false otherwise. */
bool rt_lfs_pointer_parse(const char *buf, size_t len, char ret_oid[RT_LFS_OID_LEN + 1],
                          uint64_t *ret_size);

#endif
