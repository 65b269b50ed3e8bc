#include "lfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "sha256.h"
#include "util.h"
#include "banned.h"

#define LFS_DEFAULT_MAX (50ULL << 30)
#define LFS_POINTER_VERSION "version https://git-lfs.github.com/spec/v1\n"

struct rt_lfs {
    int objects_fd; /* DATA/lfs/objects */
    int tmp_fd;     /* DATA/lfs/tmp: uploads in progress, same filesystem for rename */
    int lfs_fd;     /* DATA/lfs */
    int scope_fd;   /* DATA/lfs/spaces/KEY, or -1: unscoped */
    uint64_t max_object_bytes;
};

struct rt_lfs_writer {
    int objects_fd, tmp_fd, scope_fd; /* our own copies: the writer may outlive the store */
    int fd;
    char tmp_name[32];
    bool committed;
    char oid[RT_LFS_OID_LEN + 1];
    uint64_t declared, written;
    struct rt_sha256 sha;
};

bool rt_lfs_oid_is_valid(const char *oid)
{
    if (!oid)
        return false;
    for (int i = 0; i < RT_LFS_OID_LEN; i++)
        if (!((oid[i] >= '0' && oid[i] <= '9') || (oid[i] >= 'a' && oid[i] <= 'f')))
            return false;
    return oid[RT_LFS_OID_LEN] == '\0';
}

static int mkdir_open_at(int dirfd, const char *name, struct rt_err *err)
{
    int fd;

    if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "create directory '%s'", name);
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return rt_err_set(err, errno, "open directory '%s'", name);
    return fd;
}

void rt_lfs_free(struct rt_lfs *store)
{
    if (!store)
        return;
    store->objects_fd = rt_close(store->objects_fd);
    store->tmp_fd = rt_close(store->tmp_fd);
    store->lfs_fd = rt_close(store->lfs_fd);
    store->scope_fd = rt_close(store->scope_fd);
    free(store);
}

static void lfs_freep(struct rt_lfs **p)
{
    rt_lfs_free(*p);
}

/* Uploads cut short by a crash leave their temporary files; one untouched for a day is
 * no upload in progress. */
static void sweep_tmp(int tmp_fd)
{
    time_t now = time(NULL);
    struct dirent *e;
    int fd = fcntl(tmp_fd, F_DUPFD_CLOEXEC, 3);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

    if (!d) {
        (void) rt_close(fd);
        return;
    }
    while ((e = readdir(d))) {
        struct stat st;
        if (strncmp(e->d_name, "up-", 3) != 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            now - st.st_mtime > RT_LFS_STALE_UPLOAD_S)
            (void) unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int rt_lfs_open(const char *data_dir, uint64_t max_object_bytes, struct rt_lfs **ret_store,
                struct rt_err *err)
{
    _cleanup_(lfs_freep) struct rt_lfs *s = NULL;
    _cleanup_close_ int data_fd = -1, lfs_fd = -1;

    s = calloc(1, sizeof(*s));
    if (!s)
        return rt_err_set(err, ENOMEM, "allocate the LFS store");
    s->objects_fd = s->tmp_fd = s->lfs_fd = s->scope_fd = -1;
    s->max_object_bytes = max_object_bytes ? max_object_bytes : LFS_DEFAULT_MAX;
    data_fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (data_fd < 0)
        return rt_err_set(err, errno, "open data dir '%s'", data_dir);
    lfs_fd = mkdir_open_at(data_fd, "lfs", err);
    if (lfs_fd < 0)
        return rt_err_wrap(err, "open the LFS store in '%s'", data_dir);
    s->objects_fd = mkdir_open_at(lfs_fd, "objects", err);
    if (s->objects_fd < 0)
        return rt_err_wrap(err, "open the LFS store in '%s'", data_dir);
    s->tmp_fd = mkdir_open_at(lfs_fd, "tmp", err);
    if (s->tmp_fd < 0)
        return rt_err_wrap(err, "open the LFS store in '%s'", data_dir);
    sweep_tmp(s->tmp_fd);
    s->lfs_fd = TAKE_FD(lfs_fd);
    *ret_store = TAKE_PTR(s);
    return 0;
}

void rt_lfs_scope_key(int64_t space_id, int64_t created_at, char buf[RT_LFS_SCOPE_KEY_MAX])
{
    (void) snprintf(buf, RT_LFS_SCOPE_KEY_MAX, "%lld-%lld", (long long) space_id,
                    (long long) created_at);
}

static bool scope_key_is_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;

    if (n == 0 || n >= RT_LFS_SCOPE_KEY_MAX || key[0] == '.')
        return false;
    return strspn(key, "0123456789-") == n;
}

static int open_scope(struct rt_lfs *store, const char *key, struct rt_err *err)
{
    _cleanup_close_ int spaces_fd = -1;

    if (!scope_key_is_valid(key))
        return rt_err_set(err, EINVAL, "'%.60s' is not an LFS scope", key ? key : "");
    spaces_fd = mkdir_open_at(store->lfs_fd, "spaces", err);
    if (spaces_fd < 0)
        return spaces_fd;
    return mkdir_open_at(spaces_fd, key, err);
}

int rt_lfs_set_scope(struct rt_lfs *store, const char *key, struct rt_err *err)
{
    int fd = open_scope(store, key, err);

    if (fd < 0)
        return rt_err_wrap(err, "scope the LFS store");
    (void) rt_close(store->scope_fd);
    store->scope_fd = fd;
    return 0;
}

int rt_lfs_open_space(const char *data_dir, int64_t space_id, int64_t created_at,
                      struct rt_lfs **ret_store, struct rt_err *err)
{
    char key[RT_LFS_SCOPE_KEY_MAX];
    struct rt_lfs *store = NULL;
    int r = rt_lfs_open(data_dir, 0, &store, err);

    if (r < 0)
        return r;
    rt_lfs_scope_key(space_id, created_at, key);
    r = rt_lfs_set_scope(store, key, err);
    if (r < 0) {
        rt_lfs_free(store);
        return r;
    }
    *ret_store = store;
    return 0;
}

/* An empty file named @oid in the scope folder: "this Space may use the object". */
static int link_in_scope(int scope_fd, const char *oid, struct rt_err *err)
{
    int fd;

    if (scope_fd < 0)
        return 0;
    fd = openat(scope_fd, oid, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return rt_err_set(err, errno, "link LFS object %s to its Space", oid);
    (void) rt_close(fd);
    return 0;
}

int rt_lfs_scope_copy(struct rt_lfs *store, const char *from_key, struct rt_err *err)
{
    _cleanup_close_ int from = -1;
    struct dirent *e;
    DIR *d;
    int r = 0;

    if (store->scope_fd < 0)
        return rt_err_set(err, EINVAL, "copy LFS links: the store has no scope");
    from = open_scope(store, from_key, err);
    if (from < 0)
        return rt_err_wrap(err, "copy LFS links");
    d = fdopendir(from);
    if (!d)
        return rt_err_set(err, errno, "read LFS links of %s", from_key);
    from = -1; /* the DIR owns it now */
    while (r == 0 && (e = readdir(d)))
        if (rt_lfs_oid_is_valid(e->d_name))
            r = link_in_scope(store->scope_fd, e->d_name, err);
    closedir(d);
    return r;
}

void rt_lfs_scope_remove(const char *data_dir, const char *key)
{
    char path[PATH_MAX];
    struct dirent *e;
    DIR *d;

    if (!scope_key_is_valid(key))
        return;
    (void) snprintf(path, sizeof(path), "%s/lfs/spaces/%s", data_dir, key);
    d = opendir(path); /* glibc opens directories O_CLOEXEC */
    if (!d)
        return;
    while ((e = readdir(d)))
        if (rt_lfs_oid_is_valid(e->d_name))
            (void) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    (void) rmdir(path);
}

/* "ab/cd/abcd...": the two-level fan-out keeps directories small. */
static void object_path(const char *oid, char path[RT_LFS_OID_LEN + 8])
{
    (void) snprintf(path, RT_LFS_OID_LEN + 8, "%.2s/%.2s/%s", oid, oid + 2, oid);
}

int rt_lfs_open_object(struct rt_lfs *store, const char *oid, uint64_t *ret_size,
                       struct rt_err *err)
{
    char path[RT_LFS_OID_LEN + 8];
    _cleanup_close_ int fd = -1;
    struct stat st;

    if (!rt_lfs_oid_is_valid(oid))
        return rt_err_set(err, EINVAL, "'%.80s' is not an LFS oid (64 lowercase hex digits)",
                          oid ? oid : "");
    if (store->scope_fd >= 0 && faccessat(store->scope_fd, oid, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return rt_err_set(err, ENOENT, "no LFS object %s in this Space", oid);
    object_path(oid, path);
    fd = openat(store->objects_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return rt_err_set(err, ENOENT, "no LFS object %s", oid);
    if (fd < 0)
        return rt_err_set(err, errno, "open LFS object %s", oid);
    if (fstat(fd, &st) < 0)
        return rt_err_set(err, errno, "stat LFS object %s", oid);
    if (!S_ISREG(st.st_mode))
        return rt_err_set(err, EIO, "LFS object %s is not a regular file", oid);
    if (ret_size)
        *ret_size = (uint64_t) st.st_size;
    return TAKE_FD(fd);
}

int rt_lfs_has(struct rt_lfs *store, const char *oid, uint64_t *ret_size, struct rt_err *err)
{
    int fd = rt_lfs_open_object(store, oid, ret_size, err);

    if (fd < 0)
        return fd;
    (void) rt_close(fd);
    return 0;
}

/* Copies @len bytes from @in to @out, in the kernel when it can. */
static int copy_fd(int in, int out, uint64_t len)
{
    char buf[65536];

    while (len > 0) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, len > SSIZE_MAX ? SSIZE_MAX : len, 0);
        if (n > 0) {
            len -= (uint64_t) n;
            continue;
        }
        if (n == 0)
            return -EIO; /* the object shrank under us */
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL)
            return -errno;
        break; /* fall back to read and write */
    }
    while (len > 0) {
        ssize_t n = read(in, buf, len < sizeof(buf) ? len : sizeof(buf));
        int r;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        r = rt_write_all(out, buf, (size_t) n);
        if (r < 0)
            return r;
        len -= (uint64_t) n;
    }
    return 0;
}

int rt_lfs_export(struct rt_lfs *store, const char *oid, int dir_fd, const char *name,
                  unsigned mode, struct rt_err *err)
{
    static uint32_t counter;
    _cleanup_close_ int in = -1, out = -1;
    char tmp[64];
    uint64_t size = 0;
    int r;

    if (!name || !name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return rt_err_set(err, EINVAL, "'%s' is not a file name", name ? name : "");
    in = rt_lfs_open_object(store, oid, &size, err);
    if (in < 0)
        return in;
    (void) snprintf(tmp, sizeof(tmp), ".lfs-export-%d-%u", (int) getpid(),
                    __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    out = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return rt_err_set(err, errno, "create a file for LFS object %s", oid);
    r = copy_fd(in, out, size);
    if (r == 0 && fchmod(out, mode & 07777) < 0)
        r = -errno;
    if (r == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
        r = -errno;
    if (r < 0) {
        (void) unlinkat(dir_fd, tmp, 0);
        return rt_err_set(err, -r, "write LFS object %s as '%s'", oid, name);
    }
    return 0;
}

void rt_lfs_writer_free(struct rt_lfs_writer *w)
{
    if (!w)
        return;
    w->fd = rt_close(w->fd);
    if (!w->committed && w->tmp_name[0])
        (void) unlinkat(w->tmp_fd, w->tmp_name, 0);
    w->objects_fd = rt_close(w->objects_fd);
    w->tmp_fd = rt_close(w->tmp_fd);
    w->scope_fd = rt_close(w->scope_fd);
    free(w);
}

static void writer_freep(struct rt_lfs_writer **p)
{
    rt_lfs_writer_free(*p);
}

/* An unpredictable name that O_EXCL makes ours alone. */
static int create_tmp(struct rt_lfs_writer *w, struct rt_err *err)
{
    static uint32_t counter;

    for (int tries = 0; tries < 16; tries++) {
        uint32_t n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        (void) snprintf(w->tmp_name, sizeof(w->tmp_name), "up-%d-%" PRIx64 "-%u", (int) getpid(),
                        (uint64_t) (rt_now_ns() & 0xffffffffffULL), n);
        w->fd = openat(w->tmp_fd, w->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0600);
        if (w->fd >= 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    w->tmp_name[0] = '\0';
    return rt_err_set(err, errno, "create a temporary file for LFS object %s", w->oid);
}

int rt_lfs_writer_start(struct rt_lfs *store, const char *oid, uint64_t size,
                        struct rt_lfs_writer **ret_writer, struct rt_err *err)
{
    _cleanup_(writer_freep) struct rt_lfs_writer *w = NULL;
    int r;

    if (!rt_lfs_oid_is_valid(oid))
        return rt_err_set(err, EINVAL, "'%.80s' is not an LFS oid (64 lowercase hex digits)",
                          oid ? oid : "");
    if (size > store->max_object_bytes)
        return rt_err_set(err, EFBIG,
                          "LFS object %s is %" PRIu64 " bytes, over the %" PRIu64 "-byte limit",
                          oid, size, store->max_object_bytes);
    w = calloc(1, sizeof(*w));
    if (!w)
        return rt_err_set(err, ENOMEM, "allocate an LFS writer");
    w->fd = w->objects_fd = w->tmp_fd = w->scope_fd = -1;
    memcpy(w->oid, oid, RT_LFS_OID_LEN + 1);
    w->declared = size;
    rt_sha256_init(&w->sha);
    w->objects_fd = fcntl(store->objects_fd, F_DUPFD_CLOEXEC, 3);
    w->tmp_fd = fcntl(store->tmp_fd, F_DUPFD_CLOEXEC, 3);
    if (w->objects_fd < 0 || w->tmp_fd < 0)
        return rt_err_set(err, errno, "duplicate the LFS store fds");
    if (store->scope_fd >= 0 && (w->scope_fd = fcntl(store->scope_fd, F_DUPFD_CLOEXEC, 3)) < 0)
        return rt_err_set(err, errno, "duplicate the LFS store fds");
    r = create_tmp(w, err);
    if (r < 0)
        return r;
    *ret_writer = TAKE_PTR(w);
    return 0;
}

int rt_lfs_writer_write(struct rt_lfs_writer *w, const void *buf, size_t len, struct rt_err *err)
{
    int r;

    if (w->fd < 0)
        return rt_err_set(err, EBADF, "LFS upload of %s is already finished", w->oid);
    if (w->written > w->declared || len > w->declared - w->written) {
        w->written = w->declared + 1; /* poisoned: finish refuses it */
        return rt_err_set(err, EFBIG, "LFS object %s: more than the declared %" PRIu64 " bytes",
                          w->oid, w->declared);
    }
    r = rt_write_all(w->fd, buf, len);
    if (r < 0)
        return rt_err_set(err, -r, "write LFS object %s", w->oid);
    rt_sha256_update(&w->sha, buf, len);
    w->written += len;
    return 0;
}

static void to_hex(const uint8_t *md, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * n] = '\0';
}

/* Creates ab/ and ab/cd/ under objects/ and returns an fd of the inner one. */
static int open_fanout(struct rt_lfs_writer *w, struct rt_err *err)
{
    char name[3] = { w->oid[0], w->oid[1], '\0' };
    _cleanup_close_ int outer = -1;

    outer = mkdir_open_at(w->objects_fd, name, err);
    if (outer < 0)
        return outer;
    name[0] = w->oid[2];
    name[1] = w->oid[3];
    return mkdir_open_at(outer, name, err);
}

int rt_lfs_writer_finish(struct rt_lfs_writer *w, struct rt_err *err)
{
    uint8_t md[RT_SHA256_LEN];
    char got[RT_SHA256_HEX_LEN];
    _cleanup_close_ int dir = -1;

    if (w->fd < 0)
        return rt_err_set(err, EBADF, "LFS upload of %s is already finished", w->oid);
    rt_sha256_final(&w->sha, md);
    to_hex(md, RT_SHA256_LEN, got);
    if (w->written != w->declared) {
        uint64_t written = w->written;
        w->fd = rt_close(w->fd);
        (void) unlinkat(w->tmp_fd, w->tmp_name, 0);
        w->tmp_name[0] = '\0';
        if (written > w->declared)
            return rt_err_set(err, EBADMSG, "LFS object %s: more bytes than the declared %" PRIu64,
                              w->oid, w->declared);
        return rt_err_set(err, EBADMSG, "LFS object %s: got %" PRIu64 " bytes, declared %" PRIu64,
                          w->oid, written, w->declared);
    }
    if (strcmp(got, w->oid) != 0) {
        w->fd = rt_close(w->fd);
        (void) unlinkat(w->tmp_fd, w->tmp_name, 0);
        w->tmp_name[0] = '\0';
        return rt_err_set(err, EBADMSG, "LFS object %s: the content hashes to %s", w->oid, got);
    }
    /* The object must be on disk before any commit can point at it. */
    if (fsync(w->fd) < 0)
        return rt_err_set(err, errno, "sync LFS object %s", w->oid);
    w->fd = rt_close(w->fd);
    dir = open_fanout(w, err);
    if (dir < 0)
        return rt_err_wrap(err, "store LFS object %s", w->oid);
    if (renameat(w->tmp_fd, w->tmp_name, dir, w->oid) < 0)
        return rt_err_set(err, errno, "move LFS object %s into place", w->oid);
    w->committed = true;
    (void) fsync(dir);
    return link_in_scope(w->scope_fd, w->oid, err);
}

int rt_lfs_pointer_format(const char *oid, uint64_t size, char buf[RT_LFS_POINTER_MAX])
{
    if (!rt_lfs_oid_is_valid(oid))
        return -EINVAL;
    return snprintf(buf, RT_LFS_POINTER_MAX,
                    LFS_POINTER_VERSION "oid sha256:%s\nsize %" PRIu64 "\n", oid, size);
}

/* git-lfs's pointer grammar: "version <url>" first, then "key value" lines, each ending
 * in a newline; keys are lowercase [a-z0-9.-]; oid and size are required. */
bool rt_lfs_pointer_parse(const char *buf, size_t len, char ret_oid[RT_LFS_OID_LEN + 1],
                          uint64_t *ret_size)
{
    const size_t vlen = strlen(LFS_POINTER_VERSION);
    char oid[RT_LFS_OID_LEN + 1] = "";
    uint64_t size = 0;
    bool have_size = false;
    size_t off;

    if (len > RT_LFS_POINTER_SCAN_MAX || len < vlen || memcmp(buf, LFS_POINTER_VERSION, vlen))
        return false;
    if (buf[len - 1] != '\n' || memchr(buf, '\0', len))
        return false;
    for (off = vlen; off < len;) {
        const char *line = buf + off;
        const char *nl = memchr(line, '\n', len - off);
        const char *sp = memchr(line, ' ', (size_t) (nl - line));
        size_t klen, vlen2;
        char value[64];

        if (!sp || sp == line)
            return false;
        klen = (size_t) (sp - line);
        vlen2 = (size_t) (nl - sp - 1);
        for (size_t i = 0; i < klen; i++)
            if (!((line[i] >= 'a' && line[i] <= 'z') || (line[i] >= '0' && line[i] <= '9') ||
                  line[i] == '.' || line[i] == '-'))
                return false;
        if (klen == 3 && memcmp(line, "oid", 3) == 0) {
            if (vlen2 != 7 + RT_LFS_OID_LEN || memcmp(sp + 1, "sha256:", 7))
                return false;
            memcpy(oid, sp + 8, RT_LFS_OID_LEN);
            oid[RT_LFS_OID_LEN] = '\0';
            if (!rt_lfs_oid_is_valid(oid))
                return false;
        } else if (klen == 4 && memcmp(line, "size", 4) == 0) {
            if (vlen2 == 0 || vlen2 >= sizeof(value))
                return false;
            memcpy(value, sp + 1, vlen2);
            value[vlen2] = '\0';
            if (rt_parse_u64(value, &size) < 0)
                return false;
            have_size = true;
        }
        off = (size_t) (nl - buf) + 1;
    }
    if (!oid[0] || !have_size)
        return false;
    memcpy(ret_oid, oid, RT_LFS_OID_LEN + 1);
    *ret_size = size;
    return true;
}
