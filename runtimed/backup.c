/* Backup and restore: the database through SQLite's online backup API, the bare repos
 * as git bundles, all in one tar made by tar(1) and read back by it. */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "spawn.h"
#include "store.h"
#include "util.h"
#include "banned.h"

#define COPY_BUF 65536
#define MAX_DEPTH 4 /* repos/OWNER/NAME.git and a little room */

static const struct rt_log_ctx bctx = { .action = "backup" };

static void closedirp(DIR **d)
{
    if (*d)
        (void) closedir(*d);
}

/* Runs @argv; a failure names the program and the first line it printed. */
static int run(const char *const *argv, const char *cwd, struct rt_err *err)
{
    char out[256], errbuf[1024];
    int rc = rt_run_capture(argv, cwd, out, sizeof(out), errbuf, sizeof(errbuf), err);

    if (rc < 0)
        return rc;
    if (rc != 0) {
        errbuf[strcspn(errbuf, "\n")] = '\0';
        return rt_err_set(err, EIO, "%s %s: exit %d: %s", argv[0], argv[1], rc, errbuf);
    }
    return 0;
}

static void rm_tree(const char *dir)
{
    const char *argv[] = { "rm", "-rf", "--", dir, NULL };
    struct rt_err err = { 0 };

    if (dir[0] && run(argv, NULL, &err) < 0)
        rt_log(RT_LOG_WARN, &bctx, "remove '%s': %s", dir, err.msg);
}

static bool is_file(const char *dir, const char *name, mode_t type)
{
    char p[PATH_MAX];
    struct stat sb;

    (void) snprintf(p, sizeof(p), "%s/%s", dir, name);
    return lstat(p, &sb) == 0 && (sb.st_mode & S_IFMT) == type;
}

static bool is_bare_repo(const char *dir)
{
    return is_file(dir, "HEAD", S_IFREG) && is_file(dir, "objects", S_IFDIR) &&
           is_file(dir, "refs", S_IFDIR);
}

static int copy_file(const char *from, const char *to, struct rt_err *err)
{
    _cleanup_close_ int in = -1, out = -1;
    _cleanup_free_ char *buf = malloc(COPY_BUF); /* API workers have small stacks */
    ssize_t n;

    if (!buf)
        return rt_err_set(err, ENOMEM, "copy '%s'", from);
    in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return rt_err_set(err, errno, "open '%s'", from);
    out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0)
        return rt_err_set(err, errno, "create '%s'", to);
    while ((n = read(in, buf, COPY_BUF)) > 0)
        if (rt_write_all(out, buf, (size_t) n) < 0)
            return rt_err_set(err, errno, "write '%s'", to);
    if (n < 0)
        return rt_err_set(err, errno, "read '%s'", from);
    return fsync(out) < 0 ? rt_err_set(err, errno, "fsync '%s'", to) : 0;
}

static int mkdirs(const char *path, struct rt_err *err)
{
    const char *argv[] = { "mkdir", "-p", "-m", "0700", "--", path, NULL };

    return run(argv, NULL, err);
}

/* One repo: its HEAD and config, and a bundle of every ref when it has any.  A bundle
 * reads the refs first and then packs what they reach, and a push writes its objects
 * before it moves a ref, so a bundle taken during pushes is always complete. */
static int save_repo(const char *repo, const char *dest, struct rt_err *err)
{
    char p[PATH_MAX], q[PATH_MAX], refs[64];
    const char *count[] = { "git", "-C", repo, "for-each-ref", "--count=1", "--format=x", NULL };
    int r;

    if ((r = mkdirs(dest, err)) < 0)
        return r;
    (void) snprintf(p, sizeof(p), "%s/HEAD", repo);
    (void) snprintf(q, sizeof(q), "%s/HEAD", dest);
    if ((r = copy_file(p, q, err)) < 0)
        return r;
    (void) snprintf(p, sizeof(p), "%s/config", repo);
    (void) snprintf(q, sizeof(q), "%s/config", dest);
    if (is_file(repo, "config", S_IFREG) && (r = copy_file(p, q, err)) < 0)
        return r;
    r = rt_run_capture(count, NULL, refs, sizeof(refs), NULL, 0, err);
    if (r != 0)
        return r < 0 ? r : rt_err_set(err, EIO, "git for-each-ref in '%s': exit %d", repo, r);
    if (!refs[0])
        return 0; /* nothing pushed yet: HEAD and config are the whole repo */
    (void) snprintf(q, sizeof(q), "%s/repo.bundle", dest);
    {
        const char *argv[] = { "git", "-C", repo, "bundle", "create", "-q", q, "--all", NULL };
        return run(argv, NULL, err);
    }
}

/* Walks @dir (relative path @rel under repos/) for bare repos.  Returns the count. */
static int save_repos(const char *dir, const char *rel, const char *stage, int depth,
                      struct rt_err *err)
{
    _cleanup_(closedirp) DIR *d = NULL;
    struct dirent *e;
    int n = 0;

    d = opendir(dir);
    if (!d)
        return errno == ENOENT && depth == 0 ? 0 : rt_err_set(err, errno, "open '%s'", dir);
    while ((e = readdir(d))) {
        char sub[PATH_MAX], subrel[PATH_MAX], dest[PATH_MAX];
        int r;

        if (e->d_name[0] == '.' || !is_file(dir, e->d_name, S_IFDIR))
            continue;
        (void) snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
        (void) snprintf(subrel, sizeof(subrel), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (is_bare_repo(sub)) {
            (void) snprintf(dest, sizeof(dest), "%s/repos/%s", stage, subrel);
            r = save_repo(sub, dest, err);
        } else if (depth + 1 < MAX_DEPTH) {
            r = save_repos(sub, subrel, stage, depth + 1, err);
        } else {
            continue;
        }
        if (r < 0)
            return rt_err_wrap(err, "repo '%s'", subrel);
        n += is_bare_repo(sub) ? 1 : r;
    }
    return n;
}

static int write_manifest(const char *stage, int schema, int repos, struct rt_err *err)
{
    char p[PATH_MAX];
    json_t *m = json_pack("{s:i, s:s, s:i, s:I, s:i}", "format", RT_BACKUP_FORMAT, "version",
                          SPACEPORT_VERSION, "schema", schema, "createdAt",
                          (json_int_t) rt_store_now_ms(), "repos", repos);
    int r;

    if (!m)
        return rt_err_set(err, ENOMEM, "manifest");
    (void) snprintf(p, sizeof(p), "%s/manifest.json", stage);
    r = json_dump_file(m, p, JSON_INDENT(2));
    json_decref(m);
    return r < 0 ? rt_err_set(err, EIO, "write '%s'", p) : 0;
}

int rt_backup_create(struct rt_store *st, const char *data_dir, const char *out, struct rt_err *err)
{
    char stage[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
    static const char *const tokens[] = { "admin.token", "proxy.token" };
    struct stat sb;
    int r, repos, schema;

    if (lstat(out, &sb) == 0)
        return rt_err_set(err, EEXIST, "'%s' exists", out);
    (void) snprintf(stage, sizeof(stage), "%s/.backup-XXXXXX", data_dir);
    if (!mkdtemp(stage))
        return rt_err_set(err, errno, "create a staging dir in '%s'", data_dir);

    /* The database first: every commit it names is then in the bundles taken after. */
    (void) snprintf(p, sizeof(p), "%s/spaceport.db", stage);
    r = rt_store_backup(st, p, err);
    schema = rt_store_schema_version(st);
    if (r < 0)
        goto out;
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        (void) snprintf(p, sizeof(p), "%s/%s", data_dir, tokens[i]);
        (void) snprintf(q, sizeof(q), "%s/%s", stage, tokens[i]);
        if (lstat(p, &sb) == 0 && (r = copy_file(p, q, err)) < 0)
            goto out;
    }
    (void) snprintf(p, sizeof(p), "%s/repos", data_dir);
    repos = r = save_repos(p, "", stage, 0, err);
    if (r < 0)
        goto out;
    r = write_manifest(stage, schema, repos, err);
    if (r < 0)
        goto out;
    {
        /* LFS objects are immutable files named by their hash: plain copies are safe. */
        bool lfs = is_file(data_dir, "lfs", S_IFDIR);
        const char *argv[] = { "tar", "--create",        "--gzip", "--file",
                               out,   "--numeric-owner", "-C",     stage,
                               ".",   lfs ? "-C" : NULL, data_dir, "lfs",
                               NULL };
        r = run(argv, NULL, err);
        if (r < 0)
            (void) unlink(out);
    }
out:
    rm_tree(stage);
    return r < 0 ? r : 0;
}

/* --- restore ------------------------------------------------------------------------- */

static int restore_repo(const char *saved, const char *repo, struct rt_err *err)
{
    char p[PATH_MAX], q[PATH_MAX];
    const char *init[] = { "git", "init", "-q", "--bare", repo, NULL };
    int r;

    if ((r = run(init, NULL, err)) < 0)
        return r;
    (void) snprintf(p, sizeof(p), "%s/config", saved);
    (void) snprintf(q, sizeof(q), "%s/config", repo);
    if (is_file(saved, "config", S_IFREG) && (unlink(q) < 0 || (r = copy_file(p, q, err)) < 0))
        return r < 0 ? r : rt_err_set(err, errno, "replace '%s'", q);
    (void) snprintf(p, sizeof(p), "%s/repo.bundle", saved);
    if (is_file(saved, "repo.bundle", S_IFREG)) {
        const char *argv[] = { "git", "-C", repo, "fetch", "-q", p, "refs/*:refs/*", NULL };
        if ((r = run(argv, NULL, err)) < 0)
            return r;
    }
    (void) snprintf(p, sizeof(p), "%s/HEAD", saved);
    (void) snprintf(q, sizeof(q), "%s/HEAD", repo);
    if (unlink(q) < 0)
        return rt_err_set(err, errno, "replace '%s'", q);
    return copy_file(p, q, err);
}

static int restore_repos(const char *saved, const char *dest, int depth, struct rt_err *err)
{
    _cleanup_(closedirp) DIR *d = opendir(saved);
    struct dirent *e;
    int r;

    if (!d)
        return errno == ENOENT && depth == 0 ? 0 : rt_err_set(err, errno, "open '%s'", saved);
    while ((e = readdir(d))) {
        char sub[PATH_MAX], to[PATH_MAX];

        if (e->d_name[0] == '.' || !is_file(saved, e->d_name, S_IFDIR))
            continue;
        (void) snprintf(sub, sizeof(sub), "%s/%s", saved, e->d_name);
        (void) snprintf(to, sizeof(to), "%s/%s", dest, e->d_name);
        if (is_file(sub, "HEAD", S_IFREG))
            r = restore_repo(sub, to, err);
        else if (depth + 1 < MAX_DEPTH)
            r = mkdirs(to, err) < 0 ? -EIO : restore_repos(sub, to, depth + 1, err);
        else
            continue;
        if (r < 0)
            return rt_err_wrap(err, "restore repo '%s'", e->d_name);
    }
    return 0;
}

static int check_manifest(const char *stage, struct rt_err *err)
{
    char p[PATH_MAX];
    json_error_t jerr;
    json_t *m;
    int format = 0;

    (void) snprintf(p, sizeof(p), "%s/manifest.json", stage);
    m = json_load_file(p, 0, &jerr);
    if (!m)
        return rt_err_set(err, EINVAL, "not a Spaceport backup (manifest.json: %s)", jerr.text);
    (void) json_unpack(json_object_get(m, "format") ? m : json_null(), "{s:i}", "format", &format);
    json_decref(m);
    if (format != RT_BACKUP_FORMAT)
        return rt_err_set(err, EINVAL, "backup format %d; this runtimed reads format %d", format,
                          RT_BACKUP_FORMAT);
    return 0;
}

/* A restored node has the repos and the database, but none of the layers and no shims:
 * each Space that had a commit gets a queued build of it (the builder takes builds a
 * previous runtimed left unfinished at its start), so it comes back as it was, and
 * nothing claims an upstream of the old node. */
struct rebuild {
    int64_t ids[4096];
    size_t n;
    struct rt_space *spaces;
    size_t n_spaces, cap;
};

static int on_unfinished(const struct rt_store_build *b, void *userdata)
{
    struct rebuild *rb = userdata;

    if (rb->n < sizeof(rb->ids) / sizeof(rb->ids[0]))
        rb->ids[rb->n++] = b->space_id;
    return 0;
}

static int on_space(const struct rt_space *sp, void *userdata)
{
    struct rebuild *rb = userdata;

    if (rb->n_spaces == rb->cap) {
        size_t cap = rb->cap ? rb->cap * 2 : 64;
        struct rt_space *n = realloc(rb->spaces, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        rb->spaces = n;
        rb->cap = cap;
    }
    rb->spaces[rb->n_spaces++] = *sp;
    return 0;
}

static int queue_rebuilds(struct rt_store *st, struct rt_err *err)
{
    struct rebuild *rb = calloc(1, sizeof(*rb));
    int r, queued = 0;

    if (!rb)
        return rt_err_set(err, ENOMEM, "allocate");
    rt_store_lock(st);
    r = rt_store_build_list_unfinished(st, on_unfinished, rb, err);
    if (r >= 0)
        r = rt_store_space_list(st, 0, on_space, rb, err);
    if (r == -ENOMEM && !err->msg[0])
        rt_err_set(err, ENOMEM, "list Spaces");
    for (size_t i = 0; r >= 0 && i < rb->n_spaces; i++) {
        struct rt_space *sp = &rb->spaces[i];
        bool pending = false;
        int64_t id;

        for (size_t j = 0; j < rb->n; j++)
            pending |= rb->ids[j] == sp->id;
        sp->upstream[0] = '\0';
        sp->hardware_current[0] = '\0';
        r = rt_store_space_update(st, sp, err);
        if (r >= 0 && sp->sha[0] && !pending) {
            r = rt_store_build_add(st, sp->id, sp->sha, false, &id, err);
            queued += r >= 0;
        }
    }
    rt_store_unlock(st);
    free(rb->spaces);
    free(rb);
    if (r >= 0 && queued)
        rt_log(RT_LOG_INFO, &bctx, "queued a build of each of %d Space%s for their first start",
               queued, queued == 1 ? "" : "s");
    return r < 0 ? r : 0;
}

int rt_backup_restore(const char *data_dir, const char *file, struct rt_err *err)
{
    char stage[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
    static const char *const names[] = { "spaceport.db", "admin.token", "proxy.token" };
    struct rt_store *st = NULL;
    struct stat sb;
    int r;

    if (access(file, R_OK) < 0)
        return rt_err_set(err, errno, "read '%s'", file);
    if (mkdir(data_dir, 0700) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "create data dir '%s'", data_dir);
    (void) snprintf(p, sizeof(p), "%s/spaceport.db", data_dir);
    if (lstat(p, &sb) == 0)
        return rt_err_set(err, EEXIST,
                          "'%s' already holds a database: restore only into a fresh data dir",
                          data_dir);
    (void) snprintf(stage, sizeof(stage), "%s/.restore-XXXXXX", data_dir);
    if (!mkdtemp(stage))
        return rt_err_set(err, errno, "create a staging dir in '%s'", data_dir);
    {
        const char *argv[] = { "tar",
                               "--extract",
                               "--gzip",
                               "--file",
                               file,
                               "--no-same-owner",
                               "--no-same-permissions",
                               "-C",
                               stage,
                               NULL };
        r = run(argv, NULL, err);
    }
    if (r >= 0)
        r = check_manifest(stage, err);
    if (r < 0)
        goto out;
    (void) snprintf(p, sizeof(p), "%s/repos", stage);
    (void) snprintf(q, sizeof(q), "%s/repos", data_dir);
    if ((r = mkdirs(q, err)) < 0 || (r = restore_repos(p, q, 0, err)) < 0)
        goto out;
    (void) snprintf(p, sizeof(p), "%s/lfs", stage);
    (void) snprintf(q, sizeof(q), "%s/lfs", data_dir);
    if (is_file(stage, "lfs", S_IFDIR) && rename(p, q) < 0) {
        r = rt_err_set(err, errno, "move '%s' into place", p);
        goto out;
    }
    /* Opened once where it was unpacked: migrated from an older runtimed's schema, and
     * its Spaces queued for a build (closing it folds the WAL back into the file). */
    (void) snprintf(p, sizeof(p), "%s/spaceport.db", stage);
    if (lstat(p, &sb) < 0) {
        r = rt_err_set(err, EINVAL, "the backup holds no database");
        goto out;
    }
    r = rt_store_open(p, &st, err);
    if (r >= 0)
        r = queue_rebuilds(st, err);
    rt_store_close(st);
    if (r < 0)
        goto out;
    /* The database last, so a restore that failed half-way leaves no database and can
     * simply be run again. */
    for (size_t i = sizeof(names) / sizeof(names[0]); i-- > 0;) {
        (void) snprintf(p, sizeof(p), "%s/%s", stage, names[i]);
        (void) snprintf(q, sizeof(q), "%s/%s", data_dir, names[i]);
        if (lstat(p, &sb) < 0)
            continue;
        if (chmod(p, 0600) < 0 || rename(p, q) < 0) {
            r = rt_err_set(err, errno, "move '%s' into place", p);
            goto out;
        }
    }
out:
    rm_tree(stage);
    return r < 0 ? r : 0;
}
