/* The garbage collector of build outputs (gc.h).  Never follows a symlink: every walk
 * opens with O_NOFOLLOW and lstat()s (fstatat AT_SYMLINK_NOFOLLOW) before it descends,
 * a symlink is unlinked as itself, and whole trees go through `rm -rf --one-file-system`
 * (as build.c removes its own leftovers), which neither follows links nor leaves the
 * file system. */
#include "gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "lfs.h"
#include "log.h"
#include "spawn.h"
#include "store.h"
#include "util.h"
#include "banned.h"

#define WALK_DEPTH_MAX 128 /* deeper files are neither counted nor trimmed */

static const struct rt_log_ctx gc_ctx = { .app = NULL, .action = "gc" };

/* --- names ------------------------------------------------------------------------------ */

int rt_gc_names_add(struct rt_gc_names *s, const char *name)
{
    char *copy;

    if (rt_gc_names_has(s, name))
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    s->v[s->n++] = copy;
    return 0;
}

bool rt_gc_names_has(const struct rt_gc_names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return true;
    return false;
}

void rt_gc_names_done(struct rt_gc_names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    *s = (struct rt_gc_names){ 0 };
}

void rt_gc_report_done(struct rt_gc_report *rep)
{
    rt_gc_names_done(&(struct rt_gc_names){ .v = rep->removed, .n = rep->n, .cap = rep->cap });
    *rep = (struct rt_gc_report){ 0 };
}

static void report_add(struct rt_gc_report *rep, const char *dir, const char *name,
                       const char *note)
{
    struct rt_gc_names s = { .v = rep->removed, .n = rep->n, .cap = rep->cap };
    char line[PATH_MAX];

    (void) snprintf(line, sizeof(line), "%s/%s%s", dir, name, note);
    if (rt_gc_names_add(&s, line) < 0)
        rt_log(RT_LOG_WARN, &gc_ctx, "out of memory: '%s' left out of the report", line);
    rep->removed = s.v;
    rep->n = s.n;
    rep->cap = s.cap;
}

/* --- the decisions ------------------------------------------------------------------------ */

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

const char *rt_gc_verdict(enum rt_gc_kind kind, const struct rt_gc_entry *e,
                          const struct rt_gc_names *in_use, const struct rt_gc_names *wanted,
                          const struct rt_gc_policy *p)
{
    int64_t age = p->now_s - e->mtime_s;

    /* A layer is always a directory.  Anything else here (a symlink above all, which a
     * run would otherwise mount through) goes, as itself. */
    if (!e->is_dir)
        return "not a layer";
    if (starts_with(e->name, ".tmp-"))
        return age >= RT_GC_LEFTOVER_S ? "leftover" : NULL;
    if (starts_with(e->name, ".old-")) {
        /* .old-<key>-<ms>: a factory rebuild moved <key> aside; an instance started on
         * <key> before that still has this one mounted. */
        char key[NAME_MAX + 1];
        const char *dash = strrchr(e->name, '-');
        size_t len = dash && dash > e->name + 5 ? (size_t) (dash - e->name - 5) : 0;

        if (len == 0 || len >= sizeof(key))
            return NULL;
        memcpy(key, e->name + 5, len);
        key[len] = '\0';
        if (rt_gc_names_has(in_use, key))
            return NULL;
        return age >= RT_GC_LEFTOVER_S ? "leftover" : NULL;
    }
    if (e->name[0] == '.')
        return NULL; /* not ours: left alone */
    if (rt_gc_names_has(in_use, e->name) || rt_gc_names_has(wanted, e->name))
        return NULL;
    if (kind == RT_GC_APP)
        return age >= p->app_grace_s ? "unused" : NULL;
    return age >= p->deps_keep_s ? "unused" : NULL;
}

static int by_mtime(const void *a, const void *b)
{
    const struct rt_gc_file *x = a, *y = b;

    if (x->mtime_s != y->mtime_s)
        return x->mtime_s < y->mtime_s ? -1 : 1;
    return strcmp(x->path, y->path);
}

size_t rt_gc_trim_count(struct rt_gc_file *files, size_t n, uint64_t max)
{
    uint64_t total = 0;
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        total += files[i].bytes;
    if (n)
        qsort(files, n, sizeof(*files), by_mtime);
    while (k < n && total > max)
        total -= files[k++].bytes;
    return k;
}

/* --- walking without following ------------------------------------------------------------ */

struct walk {
    dev_t dev;
    uint64_t bytes;
    struct rt_gc_file *files; /* collected when @collect */
    size_t n, cap;
    bool collect;
    bool oom;
};

static void walk_add(struct walk *w, const char *rel, const struct stat *st)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        struct rt_gc_file *f = realloc(w->files, cap * sizeof(*f));
        if (!f) {
            w->oom = true;
            return;
        }
        w->files = f;
        w->cap = cap;
    }
    w->files[w->n].path = strdup(rel);
    if (!w->files[w->n].path) {
        w->oom = true;
        return;
    }
    w->files[w->n].bytes = (uint64_t) st->st_blocks * 512;
    w->files[w->n].mtime_s = st->st_mtim.tv_sec;
    w->n++;
}

static void walk_done(struct walk *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->files[i].path);
    free(w->files);
}

/* Adds up the tree under @dfd (a directory fd this takes), its files listed when
 * w->collect.  @rel is the path from the walk's root. */
static void walk_dir(struct walk *w, int dfd, const char *rel, int depth)
{
    DIR *d = fdopendir(dfd);
    struct dirent *e;

    if (!d) {
        (void) close(dfd);
        return;
    }
    while ((e = readdir(d))) {
        char sub[PATH_MAX];
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != w->dev)
            continue;
        w->bytes += (uint64_t) st.st_blocks * 512;
        (void) snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        if (S_ISDIR(st.st_mode)) {
            int fd;
            if (depth >= WALK_DEPTH_MAX)
                continue;
            fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0)
                walk_dir(w, fd, sub, depth + 1);
        } else if (w->collect && S_ISREG(st.st_mode)) {
            walk_add(w, sub, &st);
        }
    }
    (void) closedir(d);
}

/* Walks @name in @dfd, a directory, never following a link. */
static int walk_at(struct walk *w, int dfd, const char *name)
{
    struct stat st;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        (void) close(fd);
        return r;
    }
    w->dev = st.st_dev;
    w->bytes = (uint64_t) st.st_blocks * 512;
    walk_dir(w, fd, "", 1);
    return w->oom ? -ENOMEM : 0;
}

/* Unlinks @rel under @rootfd, opening each folder on the way with O_NOFOLLOW. */
static int unlink_rel(int rootfd, const char *rel)
{
    char buf[PATH_MAX], *p = buf, *slash;
    _cleanup_close_ int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);

    if (fd < 0)
        return -errno;
    (void) snprintf(buf, sizeof(buf), "%s", rel);
    while ((slash = strchr(p, '/'))) {
        int next;
        *slash = '\0';
        next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return -errno;
        (void) close(fd);
        fd = next;
        p = slash + 1;
    }
    return unlinkat(fd, p, 0) < 0 ? -errno : 0;
}

/* Removes @name from @dir (open as @dfd): a non-directory is unlinked as itself; a
 * directory is first renamed to .tmp-gc-<name> (a reader sees the whole layer or none;
 * a half-removed one would be "already unpacked" for the next build), then removed.
 * Returns the bytes freed or -errno. */
static int64_t remove_entry(int dfd, const char *dir, const char *name, bool is_dir)
{
    char victim[NAME_MAX + 16], path[PATH_MAX];
    struct rt_err err = { 0 };
    struct walk w = { 0 };
    struct stat st;
    int r;

    if (!is_dir) {
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return -errno;
        if (unlinkat(dfd, name, 0) < 0)
            return -errno;
        return (int64_t) st.st_blocks * 512;
    }
    if ((r = walk_at(&w, dfd, name)) < 0)
        return r;
    if (starts_with(name, ".tmp-")) {
        (void) snprintf(victim, sizeof(victim), "%s", name);
    } else {
        (void) snprintf(victim, sizeof(victim), ".tmp-gc-%s", name);
        if (renameat(dfd, name, dfd, victim) < 0)
            return -errno;
    }
    (void) snprintf(path, sizeof(path), "%s/%s", dir, victim);
    r = rt_run_capture((const char *const[]){ "rm", "-rf", "--one-file-system", "--", path, NULL },
                       NULL, NULL, 0, NULL, 0, &err);
    if (r < 0)
        return r;
    if (fstatat(dfd, victim, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return -EBUSY; /* rm left something: a mount point, or no permission */
    return (int64_t) w.bytes;
}

/* --- what is in use ----------------------------------------------------------------------- */

struct refs {
    struct rt_gc_names use[2], want[2]; /* by enum rt_gc_kind */
    struct rt_gc_names owners;
    int64_t *ids; /* Space row ids */
    size_t n_ids, cap_ids;
    char scope[RT_LFS_SCOPE_KEY_MAX];
    int r;
};

static void refs_done(struct refs *f)
{
    for (int k = 0; k < 2; k++) {
        rt_gc_names_done(&f->use[k]);
        rt_gc_names_done(&f->want[k]);
    }
    rt_gc_names_done(&f->owners);
    free(f->ids);
}

static int on_space(const struct rt_space *s, void *userdata)
{
    struct refs *f = userdata;
    char name[128];

    if (f->n_ids == f->cap_ids) {
        size_t cap = f->cap_ids ? f->cap_ids * 2 : 64;
        int64_t *v = realloc(f->ids, cap * sizeof(*v));
        if (!v)
            return f->r = -ENOMEM;
        f->ids = v;
        f->cap_ids = cap;
    }
    f->ids[f->n_ids++] = s->id;
    if ((f->r = rt_gc_names_add(&f->owners, s->owner)) < 0)
        return f->r;
    if (!s->sha[0])
        return 0;
    /* The serving commit's layer, with or without LFS files (build.c names both). */
    rt_lfs_scope_key(s->id, s->created_at, f->scope);
    (void) snprintf(name, sizeof(name), "%s-%s", s->sha, f->scope);
    if ((f->r = rt_gc_names_add(&f->want[RT_GC_APP], s->sha)) < 0 ||
        (f->r = rt_gc_names_add(&f->want[RT_GC_APP], name)) < 0)
        return f->r;
    return 0;
}

static bool known_space(const struct refs *f, int64_t id)
{
    for (size_t i = 0; i < f->n_ids; i++)
        if (f->ids[i] == id)
            return true;
    return false;
}

/* Files the name of the layer @path points at, if it is one, into @set[kind]. */
static int note_layer(struct rt_gc_names set[2], const char *path)
{
    static const char *const dirs[2] = { "/layers/app/", "/layers/deps/" };

    for (int k = 0; k < 2; k++) {
        const char *at = strstr(path ? path : "", dirs[k]), *next;
        char name[NAME_MAX + 1];
        size_t len;

        while (at && (next = strstr(at + 1, dirs[k])))
            at = next;
        if (!at)
            continue;
        at += strlen(dirs[k]);
        len = strcspn(at, "/");
        if (len == 0 || len >= sizeof(name))
            continue;
        memcpy(name, at, len);
        name[len] = '\0';
        return rt_gc_names_add(&set[k], name);
    }
    return 0;
}

/* Loads @name in @dir.  ENOENT (an instance being made or removed) is no error. */
static int load_json_at(const char *dir, const char *name, json_t **ret, struct rt_err *err)
{
    char path[PATH_MAX];
    json_error_t je;
    json_t *j;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (access(path, F_OK) < 0 && errno == ENOENT) {
        *ret = NULL;
        return 0;
    }
    j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return rt_err_set(err, EIO, "cannot tell what '%s' uses: %s", path, je.text);
    *ret = j;
    return 0;
}

/* The mounts of every instance of the Space whose run dir is @dir. */
static int read_instances(struct refs *f, const char *dir, struct rt_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int r = 0;

    if (!d)
        return errno == ENOENT ? 0 : rt_err_set(err, errno, "open '%s'", dir);
    while (r >= 0 && (e = readdir(d))) {
        char sub[PATH_MAX];
        json_t *spec = NULL, *m;
        size_t i;

        if (!rt_is_digits(e->d_name))
            continue;
        (void) snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
        if ((r = load_json_at(sub, "spec.json", &spec, err)) < 0 || !spec)
            continue;
        json_array_foreach(json_object_get(spec, "mounts"), i, m)
        {
            if (r >= 0)
                r = note_layer(f->use, json_string_value(json_object_get(m, "src")));
        }
        json_decref(spec);
        if (r == -ENOMEM)
            (void) rt_err_set(err, ENOMEM, "read '%s'", sub);
    }
    (void) closedir(d);
    return r;
}

static int read_run_dir(struct refs *f, const char *run, struct rt_err *err)
{
    DIR *d = opendir(run);
    struct dirent *e;
    int r = 0;

    if (!d)
        return errno == ENOENT ? 0 : rt_err_set(err, errno, "open '%s'", run);
    while (r >= 0 && (e = readdir(d))) {
        char dir[PATH_MAX];
        json_t *sj = NULL;

        if (!rt_is_digits(e->d_name))
            continue;
        (void) snprintf(dir, sizeof(dir), "%s/%s", run, e->d_name);
        if ((r = read_instances(f, dir, err)) < 0)
            break;
        /* The build a Space runs or ran last: its next start needs it.  A deleted
         * Space's file does not count (the lifecycle removes it, maybe not yet). */
        if (!known_space(f, strtoll(e->d_name, NULL, 10)))
            continue;
        if ((r = load_json_at(dir, "space.json", &sj, err)) < 0 || !sj)
            continue;
        if ((r = note_layer(f->want, json_string_value(json_object_get(sj, "app")))) >= 0)
            r = note_layer(f->want, json_string_value(json_object_get(sj, "deps")));
        json_decref(sj);
        if (r == -ENOMEM)
            (void) rt_err_set(err, ENOMEM, "read '%s'", dir);
    }
    (void) closedir(d);
    return r;
}

static int collect_refs(const struct rt_config *cfg, struct rt_store *st, struct refs *f,
                        struct rt_err *err)
{
    char run[PATH_MAX];
    int r;

    rt_store_lock(st);
    r = rt_store_space_list(st, 0, on_space, f, err);
    rt_store_unlock(st);
    if (r >= 0 && f->r < 0)
        r = rt_err_set(err, -f->r, "list the Spaces");
    if (r < 0)
        return rt_err_wrap(err, "list the Spaces");
    (void) snprintf(run, sizeof(run), "%s/run", cfg->data_dir);
    return read_run_dir(f, run, err);
}

/* --- the sweeps ----------------------------------------------------------------------------- */

static void sweep_layers(const struct rt_config *cfg, enum rt_gc_kind kind, const struct refs *f,
                         const struct rt_gc_policy *p, struct rt_gc_report *rep)
{
    static const char *const sub[2] = { "app", "deps" };
    char dir[PATH_MAX], rel[32];
    DIR *d;
    struct dirent *e;

    (void) snprintf(dir, sizeof(dir), "%s/layers/%s", cfg->data_dir, sub[kind]);
    (void) snprintf(rel, sizeof(rel), "layers/%s", sub[kind]);
    d = opendir(dir);
    if (!d)
        return;
    while ((e = readdir(d))) {
        struct stat st;
        struct rt_gc_entry ent = { .name = e->d_name };
        const char *why;
        int64_t freed;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        ent.is_dir = S_ISDIR(st.st_mode);
        ent.mtime_s = st.st_mtim.tv_sec;
        why = rt_gc_verdict(kind, &ent, &f->use[kind], &f->want[kind], p);
        if (!why)
            continue;
        freed = remove_entry(dirfd(d), dir, e->d_name, ent.is_dir);
        if (freed < 0) {
            rt_log(RT_LOG_WARN, &gc_ctx, "remove '%s/%s' (%s): %s, ignoring", dir, e->d_name, why,
                   strerror((int) -freed));
            continue;
        }
        rt_log(RT_LOG_INFO, &gc_ctx, "removed '%s/%s' (%s, %lld bytes)", dir, e->d_name, why,
               (long long) freed);
        rep->freed_bytes += (uint64_t) freed;
        report_add(rep, rel, e->d_name, "");
    }
    (void) closedir(d);
}

/* Trims one owner's cache, oldest files first, under @max. */
static void trim_cache(int dfd, const char *owner, uint64_t max, struct rt_gc_report *rep)
{
    struct walk w = { .collect = true };
    _cleanup_close_ int root = -1;
    uint64_t freed = 0;
    size_t k, gone = 0;
    char note[64];

    if (walk_at(&w, dfd, owner) < 0 || w.bytes <= max) {
        walk_done(&w);
        return;
    }
    root = openat(dfd, owner, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* Directories count too but are not trimmed: aim the files at what is left. */
    {
        uint64_t files = 0;
        for (size_t i = 0; i < w.n; i++)
            files += w.files[i].bytes;
        k = rt_gc_trim_count(w.files, w.n, max > w.bytes - files ? max - (w.bytes - files) : 0);
    }
    for (size_t i = 0; i < k && root >= 0; i++) {
        if (unlink_rel(root, w.files[i].path) < 0)
            continue;
        freed += w.files[i].bytes;
        gone++;
    }
    walk_done(&w);
    if (!gone)
        return;
    rt_log(RT_LOG_INFO, &gc_ctx, "trimmed pip cache of '%s': %zu files, %llu bytes", owner, gone,
           (unsigned long long) freed);
    rep->freed_bytes += freed;
    (void) snprintf(note, sizeof(note), " (%zu oldest files)", gone);
    report_add(rep, "cache/pip", owner, note);
}

static void sweep_pip(const struct rt_config *cfg, const struct refs *f, struct rt_gc_report *rep)
{
    char dir[PATH_MAX];
    DIR *d;
    struct dirent *e;

    (void) snprintf(dir, sizeof(dir), "%s/cache/pip", cfg->data_dir);
    d = opendir(dir);
    if (!d)
        return;
    while ((e = readdir(d))) {
        struct stat st;
        int64_t freed;
        bool is_dir;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        is_dir = S_ISDIR(st.st_mode);
        if (is_dir && rt_gc_names_has(&f->owners, e->d_name)) {
            trim_cache(dirfd(d), e->d_name, cfg->gc_pip_cache_max, rep);
            continue;
        }
        /* An owner with no Space left (or not a folder at all) */
        freed = remove_entry(dirfd(d), dir, e->d_name, is_dir);
        if (freed < 0) {
            rt_log(RT_LOG_WARN, &gc_ctx, "remove '%s/%s': %s, ignoring", dir, e->d_name,
                   strerror((int) -freed));
            continue;
        }
        rt_log(RT_LOG_INFO, &gc_ctx, "removed the pip cache of '%s' (no Space left, %lld bytes)",
               e->d_name, (long long) freed);
        rep->freed_bytes += (uint64_t) freed;
        report_add(rep, "cache/pip", e->d_name, "");
    }
    (void) closedir(d);
}

int rt_gc_run(const struct rt_config *cfg, struct rt_store *st, struct rt_gc_report *rep,
              struct rt_err *err)
{
    struct rt_gc_policy p = { .now_s = (int64_t) time(NULL),
                              .app_grace_s = cfg->gc_app_grace_s,
                              .deps_keep_s = cfg->gc_deps_keep_s };
    struct refs f = { 0 };
    int r;

    *rep = (struct rt_gc_report){ 0 };
    r = collect_refs(cfg, st, &f, err);
    if (r >= 0) {
        sweep_layers(cfg, RT_GC_APP, &f, &p, rep);
        sweep_layers(cfg, RT_GC_DEPS, &f, &p, rep);
        sweep_pip(cfg, &f, rep);
    }
    refs_done(&f);
    return r < 0 ? r : 0;
}
