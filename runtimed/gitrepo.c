#include "gitrepo.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define GIT_ERR_MAX 1024

/* git's own complaint, trimmed to its first line, for messages people read. */
static const char *first_line(char *s)
{
    char *nl = strchr(s, '\n');
    if (nl)
        *nl = '\0';
    return s[0] ? s : "no message";
}

static int git_config(const char *dir, const char *key, const char *value, struct rt_err *err)
{
    char errbuf[GIT_ERR_MAX];
    const char *argv[] = { "git", "-C", dir, "config", key, value, NULL };
    int r = rt_run_capture(argv, NULL, NULL, 0, errbuf, sizeof(errbuf), err);

    if (r < 0)
        return r;
    if (r != 0)
        return rt_err_set(err, EIO, "git config %s in '%s': %s", key, dir, first_line(errbuf));
    return 0;
}

int rt_git_init_bare(const char *dir, uint64_t max_push_bytes, struct rt_err *err)
{
    char errbuf[GIT_ERR_MAX], cap[32];
    const char *argv[] = { "git", "init", "--quiet", "--bare", "--initial-branch=main", dir, NULL };
    int r = rt_run_capture(argv, NULL, NULL, 0, errbuf, sizeof(errbuf), err);

    if (r < 0)
        return r;
    if (r != 0)
        return rt_err_set(err, EIO, "git init '%s': %s", dir, first_line(errbuf));
    /* Pushes arrive over HTTP behind runtimed's own auth; git must accept them. */
    if ((r = git_config(dir, "http.receivepack", "true", err)) < 0)
        return r;
    /* A hostile push must not store malformed objects that later crash readers. */
    if ((r = git_config(dir, "receive.fsckObjects", "true", err)) < 0)
        return r;
    /* Force pushes work as on any git host. */
    if ((r = git_config(dir, "receive.denyNonFastForwards", "false", err)) < 0)
        return r;
    if ((r = git_config(dir, "receive.denyDeletes", "true", err)) < 0)
        return r;
    (void) snprintf(cap, sizeof(cap), "%llu", (unsigned long long) max_push_bytes);
    return git_config(dir, "receive.maxInputSize", cap, err);
}

static bool is_sha(const char *s)
{
    for (int i = 0; i < RT_GIT_SHA_LEN; i++)
        if (!isxdigit((unsigned char) s[i]) || isupper((unsigned char) s[i]))
            return false;
    return s[RT_GIT_SHA_LEN] == '\0' || s[RT_GIT_SHA_LEN] == '\n';
}

int rt_git_resolve(const char *dir, const char *ref, char ret_sha[RT_GIT_SHA_LEN + 1],
                   struct rt_err *err)
{
    char out[128], spec[512];
    const char *argv[] = { "git", "-C", dir, "rev-parse", "--verify", "--quiet", spec, NULL };
    int r;

    (void) snprintf(spec, sizeof(spec), "%s^{commit}", ref);
    r = rt_run_capture(argv, NULL, out, sizeof(out), NULL, 0, err);
    if (r < 0)
        return r;
    if (r != 0)
        return rt_err_set(err, ENOENT, "no commit at '%s' in '%s'", ref, dir);
    if (!is_sha(out))
        return rt_err_set(err, EIO, "git rev-parse '%s' gave '%s'", ref, out);
    memcpy(ret_sha, out, RT_GIT_SHA_LEN);
    ret_sha[RT_GIT_SHA_LEN] = '\0';
    return 0;
}

int rt_git_read_file(const char *dir, const char *commit, const char *path, char *buf, size_t cap,
                     size_t *ret_len, struct rt_err *err)
{
    char spec[PATH_MAX + 64], errbuf[GIT_ERR_MAX];
    const char *argv[] = { "git", "-C", dir, "cat-file", "blob", spec, NULL };
    _cleanup_free_ char *out = NULL;
    size_t len;
    int r;

    if (!is_sha(commit))
        return rt_err_set(err, EINVAL, "'%s' is not a commit id", commit);
    (void) snprintf(spec, sizeof(spec), "%s:%s", commit, path);
    r = rt_run_output(argv, NULL, cap ? cap - 1 : 0, &out, &len, errbuf, sizeof(errbuf), err);
    if (r == -EFBIG)
        return rt_err_set(err, EFBIG, "'%s' is larger than %zu bytes", path, cap - 1);
    if (r < 0)
        return r;
    if (r != 0)
        return rt_err_set(err, ENOENT, "'%s' is not a file in commit %.12s", path, commit);
    memcpy(buf, out, len);
    buf[len] = '\0';
    *ret_len = len;
    return 0;
}

bool rt_git_symlink_is_contained(const char *path, const char *target)
{
    int depth = 0;
    const char *p;

    if (target[0] == '/' || target[0] == '\0')
        return false;
    /* The link resolves relative to its own directory: start at that depth. */
    for (p = path; *p; p++)
        if (*p == '/')
            depth++;
    for (p = target; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t) (slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0)
                return false;
        } else if (!(n == 0 || (n == 1 && p[0] == '.'))) {
            depth++;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    return true;
}

/* A path from a tree must stay a plain relative path: no empty, ".", ".." or ".git"
 * component (a hostile tree can hold any of them; git's own checkout refuses them). */
static bool path_is_safe(const char *path)
{
    const char *p = path;

    if (!*p || *p == '/')
        return false;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t) (slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') ||
            (n == 4 && strncasecmp(p, ".git", 4) == 0))
            return false;
        p += n;
        if (*p == '/')
            p++;
    }
    return true;
}

struct tree_entry {
    unsigned mode;
    char sha[RT_GIT_SHA_LEN + 1];
    uint64_t size;
    const char *path; /* points into the ls-tree output */
};

/* Parses one "MODE TYPE SHA SIZE\tPATH" record of `git ls-tree -r -l -z`. */
static int parse_entry(char *rec, struct tree_entry *e)
{
    char *tab = strchr(rec, '\t');
    char type[16], sha[64], size[32];

    if (!tab)
        return -EINVAL;
    *tab = '\0';
    if (sscanf(rec, "%o %15s %63s %31s", &e->mode, type, sha, size) != 4 || !is_sha(sha))
        return -EINVAL;
    memcpy(e->sha, sha, RT_GIT_SHA_LEN + 1);
    if (strcmp(size, "-") == 0)
        e->size = 0;
    else if (rt_parse_u64(size, &e->size) < 0)
        return -EINVAL;
    e->path = tab + 1;
    return 0;
}

/* Creates the parent directories of @path under @root_fd without following any
 * symlink, and returns an fd of the innermost one. */
static int open_parent(int root_fd, const char *path, const char **ret_base, struct rt_err *err)
{
    char buf[PATH_MAX];
    _cleanup_close_ int cur = -1;
    char *p, *slash;

    if (strlen(path) >= sizeof(buf))
        return rt_err_set(err, ENAMETOOLONG, "path '%s'", path);
    memcpy(buf, path, strlen(path) + 1);
    cur = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
    if (cur < 0)
        return rt_err_set(err, errno, "dup the checkout dir");
    for (p = buf; (slash = strchr(p, '/')); p = slash + 1) {
        int next;
        *slash = '\0';
        if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST)
            return rt_err_set(err, errno, "create directory '%s'", p);
        next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return rt_err_set(err, errno, "open directory '%s' of '%s'", p, path);
        (void) rt_close(cur);
        cur = next;
    }
    *ret_base = path + (p - buf);
    return TAKE_FD(cur);
}

static int write_blob(int root_fd, const struct tree_entry *e, const char *data, size_t len,
                      struct rt_err *err)
{
    _cleanup_close_ int dir = -1, fd = -1;
    const char *base = NULL;
    int r;

    dir = open_parent(root_fd, e->path, &base, err);
    if (dir < 0)
        return dir;
    if (e->mode == 0120000) {
        char target[PATH_MAX];
        if (len >= sizeof(target))
            return rt_err_set(err, ENAMETOOLONG, "symlink '%s'", e->path);
        memcpy(target, data, len);
        target[len] = '\0';
        if (memchr(data, '\0', len) || !rt_git_symlink_is_contained(e->path, target))
            return rt_err_set(err, EPERM, "symlink '%s' points outside the repository ('%s')",
                              e->path, target);
        if (symlinkat(target, dir, base) < 0)
            return rt_err_set(err, errno, "create symlink '%s'", e->path);
        return 0;
    }
    fd = openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                (e->mode & 0111) ? 0755 : 0644);
    if (fd < 0)
        return rt_err_set(err, errno, "create '%s'", e->path);
    r = rt_write_all(fd, data, len);
    if (r < 0)
        return rt_err_set(err, -r, "write '%s'", e->path);
    return 0;
}

/* Fetches @e's blob with `git cat-file blob` and writes it.  One process per blob keeps
 * this simple; a batch reader can replace it when checkouts get large. */
static int extract(const char *dir, int root_fd, const struct tree_entry *e, struct rt_err *err)
{
    const char *argv[] = { "git", "-C", dir, "cat-file", "blob", e->sha, NULL };
    _cleanup_free_ char *data = NULL;
    char errbuf[GIT_ERR_MAX];
    size_t len;
    int r = rt_run_output(argv, NULL, e->size, &data, &len, errbuf, sizeof(errbuf), err);

    if (r < 0)
        return r;
    if (r != 0)
        return rt_err_set(err, EIO, "read '%s': %s", e->path, first_line(errbuf));
    return write_blob(root_fd, e, data, len, err);
}

int rt_git_checkout(const char *dir, const char *commit, const char *dest,
                    const struct rt_git_limits *limits, struct rt_git_checkout_report *ret_report,
                    struct rt_err *err)
{
    uint64_t max_file = limits && limits->max_file_bytes ? limits->max_file_bytes : 1ULL << 30;
    uint64_t max_total = limits && limits->max_total_bytes ? limits->max_total_bytes : 4ULL << 30;
    uint32_t max_files = limits && limits->max_files ? limits->max_files : 100000;
    const char *argv[] = { "git", "-C", dir,           "ls-tree", "-r",
                           "-l",  "-z", "--full-tree", commit,    NULL };
    struct rt_git_checkout_report rep = { 0 };
    _cleanup_free_ char *list = NULL;
    _cleanup_close_ int root_fd = -1;
    char errbuf[GIT_ERR_MAX];
    size_t len;
    int r;

    if (!is_sha(commit))
        return rt_err_set(err, EINVAL, "'%s' is not a commit id", commit);
    r = rt_run_output(argv, NULL, (size_t) max_files * 512, &list, &len, errbuf, sizeof(errbuf),
                      err);
    if (r < 0)
        return r;
    if (r != 0)
        return rt_err_set(err, EIO, "list commit %.12s: %s", commit, first_line(errbuf));
    root_fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root_fd < 0)
        return rt_err_set(err, errno, "open checkout dir '%s'", dest);

    /* First pass: refuse the whole tree before writing anything. */
    for (size_t off = 0; off < len; off += strlen(list + off) + 1) {
        char rec[PATH_MAX + 128];
        struct tree_entry e;
        size_t n = strlen(list + off);
        if (n >= sizeof(rec))
            return rt_err_set(err, ENAMETOOLONG, "a path in commit %.12s is too long", commit);
        memcpy(rec, list + off, n + 1);
        if (parse_entry(rec, &e) < 0)
            return rt_err_set(err, EIO, "unexpected ls-tree line '%s'", list + off);
        if (++rep.files > max_files)
            return rt_err_set(err, EFBIG, "the repository has more than %u files", max_files);
        if (!path_is_safe(e.path))
            return rt_err_set(err, EPERM, "unsafe path '%s' in the repository", e.path);
        if (e.mode == 0160000)
            continue;
        if (e.mode != 0100644 && e.mode != 0100755 && e.mode != 0120000)
            return rt_err_set(err, EPERM, "'%s' has unsupported mode %o", e.path, e.mode);
        if (e.size > max_file)
            return rt_err_set(err, EFBIG, "'%s' is %llu bytes, over the %llu-byte file limit",
                              e.path, (unsigned long long) e.size, (unsigned long long) max_file);
        rep.bytes += e.size;
        if (rep.bytes > max_total)
            return rt_err_set(err, EFBIG, "the repository holds over %llu bytes",
                              (unsigned long long) max_total);
    }
    memset(&rep, 0, sizeof(rep));
    for (size_t off = 0; off < len; off += strlen(list + off) + 1) {
        struct tree_entry e;
        char rec[PATH_MAX + 128];
        memcpy(rec, list + off, strlen(list + off) + 1);
        (void) parse_entry(rec, &e);
        if (e.mode == 0160000) {
            rep.submodules_skipped++;
            continue;
        }
        r = extract(dir, root_fd, &e, err);
        if (r < 0)
            return r;
        if (e.mode == 0120000)
            rep.symlinks++;
        else
            rep.files++;
        rep.bytes += e.size;
    }
    if (ret_report)
        *ret_report = rep;
    return 0;
}
