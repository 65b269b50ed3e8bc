#include "build.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "gitcommit.h"
#include "gitrepo.h"
#include "lfs.h"
#include "sandbox/sandbox.h"
#include "sha256.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

/* Builds run as uid 1000 inside, mapped to this fixed host range, so that the layer
 * being written and the owner's pip cache can be handed to that uid before the sandbox
 * starts.  Concurrent builds share it: they see neither each other's processes (pid
 * namespaces) nor files (each mounts only its own layer and its owner's cache). */
#define BUILD_HOST_UID_BASE 1800000000u
#define BUILD_UID 1000u
#define LOG_LINE_MAX 4096
#define LOG_FILE_MAX (16ULL << 20)
#define TAIL_LINES 8

struct rt_build {
    pthread_mutex_t lock;
    struct sbx *box; /* the running build sandbox, or NULL */
    atomic_bool cancelled;
};

struct rt_build *rt_build_new(void)
{
    struct rt_build *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return NULL;
    }
    atomic_init(&b->cancelled, false);
    return b;
}

void rt_build_free(struct rt_build *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void rt_build_cancel(struct rt_build *b)
{
    struct rt_err err;

    if (!b)
        return;
    atomic_store(&b->cancelled, true);
    pthread_mutex_lock(&b->lock);
    if (b->box)
        (void) sbx_kill(b->box, SIGKILL, &err);
    pthread_mutex_unlock(&b->lock);
}

/* --- the build log: a file capped in size, plus the live callback ---------------------- */

struct build_log {
    int fd;
    uint64_t written;
    bool capped;
    void (*on_line)(void *data, const char *line);
    void *data;
    char tail[TAIL_LINES][256]; /* the last lines, for the error message */
    unsigned n_tail;
};

static void log_line(struct build_log *l, const char *line)
{
    size_t len = strlen(line);

    if (l->fd >= 0 && !l->capped) {
        if (l->written + len + 1 > LOG_FILE_MAX) {
            static const char note[] = "[build log truncated: over 16 MiB]\n";
            (void) rt_write_all(l->fd, note, sizeof(note) - 1);
            l->capped = true;
        } else {
            (void) rt_write_all(l->fd, line, len);
            (void) rt_write_all(l->fd, "\n", 1);
            l->written += len + 1;
        }
    }
    (void) snprintf(l->tail[l->n_tail % TAIL_LINES], sizeof(l->tail[0]), "%s", line);
    l->n_tail++;
    if (l->on_line)
        l->on_line(l->data, line);
}

static void log_printf(struct build_log *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_printf(struct build_log *l, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_line(l, line);
}

/* The last non-empty line of output: usually the one that says what went wrong. */
static const char *log_last(const struct build_log *l)
{
    for (unsigned i = 0; i < TAIL_LINES && i < l->n_tail; i++) {
        const char *s = l->tail[(l->n_tail - 1 - i) % TAIL_LINES];
        if (s[0])
            return s;
    }
    return "no output";
}

/* --- small file-system helpers ---------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int rm_rf(const char *path)
{
    struct rt_err err;
    return rt_run_capture(
        (const char *const[]){ "rm", "-rf", "--one-file-system", "--", path, NULL }, NULL, NULL, 0,
        NULL, 0, &err);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --- the layer key ------------------------------------------------------------------------ */

int rt_build_deps_key(const struct rt_build_plan *plan, const char *app_dir, char key[65],
                      struct rt_err *err)
{
    static const char hex[] = "0123456789abcdef";
    struct rt_sha256 h;
    uint8_t sum[RT_SHA256_LEN];

    rt_sha256_init(&h);
    rt_sha256_update(&h, "spaceport-deps-v1\n", 18);
    rt_sha256_update(&h, plan->deps_script, strlen(plan->deps_script) + 1);
    if (plan->key_extra)
        rt_sha256_update(&h, plan->key_extra, strlen(plan->key_extra) + 1);
    for (size_t i = 0; i < plan->n_key_files; i++) {
        char path[PATH_MAX], buf[65536];
        _cleanup_close_ int fd = -1;
        ssize_t n;

        (void) snprintf(path, sizeof(path), "%s/%s", app_dir, plan->key_files[i]);
        rt_sha256_update(&h, plan->key_files[i], strlen(plan->key_files[i]) + 1);
        /* O_NOFOLLOW: a symlinked requirements file is refused, not hashed from
         * elsewhere on the host. */
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT)
                return rt_err_set(err, errno, "read '%s'", plan->key_files[i]);
            rt_sha256_update(&h, "\0missing", 8);
            continue;
        }
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            rt_sha256_update(&h, buf, (size_t) n);
        if (n < 0)
            return rt_err_set(err, errno, "read '%s'", plan->key_files[i]);
        rt_sha256_update(&h, "\0end", 4);
    }
    rt_sha256_final(&h, sum);
    for (int i = 0; i < RT_SHA256_LEN; i++) {
        key[2 * i] = hex[sum[i] >> 4];
        key[2 * i + 1] = hex[sum[i] & 15];
    }
    key[64] = '\0';
    return 0;
}

/* --- the app layer ------------------------------------------------------------------------ */

/* A checkout holds LFS pointers; the Space needs the content.  Each pointer file is
 * replaced by its object from the store (never following a symlink: rt_lfs_export
 * replaces the name in its own directory). */
static int export_lfs_files(const struct rt_build_job *job, const struct rt_git_file_list *files,
                            const char *dir, struct build_log *log, struct rt_err *err)
{
    struct rt_lfs *store = NULL;
    unsigned exported = 0;
    int r = 0;

    for (size_t i = 0; i < files->n && r >= 0; i++) {
        const struct rt_git_file *f = &files->files[i];
        char parent[PATH_MAX];
        const char *slash = strrchr(f->path, '/');
        _cleanup_close_ int dfd = -1;

        if (!f->lfs)
            continue;
        if (!store && ((r = rt_lfs_open(job->data_dir, 0, &store, err)) < 0 ||
                       (r = rt_lfs_set_scope(store, job->lfs_scope, err)) < 0))
            break;
        if (slash)
            (void) snprintf(parent, sizeof(parent), "%s/%.*s", dir, (int) (slash - f->path),
                            f->path);
        else
            (void) snprintf(parent, sizeof(parent), "%s", dir);
        /* O_NOFOLLOW on the last part; the checkout refused symlinks that leave the tree. */
        dfd = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) {
            r = rt_err_set(err, errno, "open the folder of '%s'", f->path);
            break;
        }
        r = rt_lfs_export(store, f->lfs_oid, dfd, slash ? slash + 1 : f->path,
                          (f->mode & 0111) ? 0755 : 0644, err);
        if (r == -ENOENT) {
            log_printf(log,
                       "    LFS file '%s': object %.12s was never uploaded to this Space, left "
                       "as a pointer",
                       f->path, f->lfs_oid);
            r = 0;
        } else if (r >= 0) {
            exported++;
        }
    }
    if (r >= 0 && exported)
        log_printf(log, "    %u LFS files fetched from the store", exported);
    rt_lfs_free(store);
    return r;
}

static bool has_lfs_files(const struct rt_git_file_list *files)
{
    for (size_t i = 0; i < files->n; i++)
        if (files->files[i].lfs)
            return true;
    return false;
}

static int build_app_layer(const struct rt_build_job *job, struct build_log *log,
                           struct rt_build_result *res, struct rt_err *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 32];
    struct rt_git_file_list files = { 0 };
    struct rt_git_checkout_report rep;
    bool lfs;
    int r;

    (void) snprintf(dir, sizeof(dir), "%s/layers/app", job->data_dir);
    if ((r = mkdir_p(dir, 0755)) < 0)
        return rt_err_set(err, -r, "create '%s'", dir);
    r = rt_git_list_files(job->repo_dir, job->commit, 0, &files, err);
    if (r < 0)
        return rt_err_wrap(err, "list the files of the commit");
    /* A commit is shared by every Space that has it, its LFS objects are not (lfs.h):
     * the layer of a commit with LFS files is its Space's own. */
    lfs = has_lfs_files(&files);
    if (lfs && !job->lfs_scope) {
        rt_git_file_list_done(&files);
        return rt_err_set(err, EINVAL, "build a commit with LFS files: no LFS scope given");
    }
    (void) snprintf(res->app_layer, sizeof(res->app_layer), "%s/%s%s%s", dir, job->commit,
                    lfs ? "-" : "", lfs ? job->lfs_scope : "");
    if (is_dir(res->app_layer)) {
        rt_git_file_list_done(&files);
        log_printf(log, "==> app files of %.12s: already unpacked", job->commit);
        return 0;
    }
    (void) snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-XXXXXX", dir, job->commit);
    if (!mkdtemp(tmp))
        return rt_err_set(err, errno, "create a directory under '%s'", dir);
    if (chmod(tmp, 0755) < 0) {
        r = rt_err_set(err, errno, "chmod '%s'", tmp);
        goto fail;
    }
    log_printf(log, "==> unpacking the files of commit %.12s", job->commit);
    r = rt_git_checkout(job->repo_dir, job->commit, tmp, job->git_limits, &rep, err);
    if (r < 0)
        goto fail;
    r = export_lfs_files(job, &files, tmp, log, err);
    if (r < 0)
        goto fail;
    log_printf(log, "    %u files, %u symlinks, %llu bytes%s", rep.files, rep.symlinks,
               (unsigned long long) rep.bytes,
               rep.submodules_skipped ? " (submodules skipped)" : "");
    /* rename() is atomic: a reader sees the whole layer or none of it. */
    if (rename(tmp, res->app_layer) < 0 && errno != ENOTEMPTY && errno != EEXIST) {
        r = rt_err_set(err, errno, "store the app layer");
        goto fail;
    }
    (void) rm_rf(tmp);
    rt_git_file_list_done(&files);
    return 0;
fail:
    (void) rm_rf(tmp);
    rt_git_file_list_done(&files);
    return r;
}

/* --- the dependency layer ----------------------------------------------------------------- */

static int prepare_owned_dir(const char *path, struct rt_err *err)
{
    int r = mkdir_p(path, 0755);

    if (r < 0)
        return rt_err_set(err, -r, "create '%s'", path);
    if (chown(path, BUILD_HOST_UID_BASE + BUILD_UID, BUILD_HOST_UID_BASE + BUILD_UID) < 0)
        return rt_err_set(err, errno, "hand '%s' to the build user", path);
    return 0;
}

/* Reads the sandbox's output line by line until it exits, a deadline passes or the
 * build is cancelled. */
static int pump_output(struct rt_build *b, int out_fd, uint32_t timeout_s, struct build_log *log,
                       struct sbx_exit *ex, struct rt_err *err)
{
    uint64_t deadline = rt_now_ns() + (uint64_t) timeout_s * 1000000000ULL;
    char line[LOG_LINE_MAX];
    size_t len = 0;
    bool timed_out = false;

    for (;;) {
        struct pollfd pfd = { .fd = out_fd, .events = POLLIN };
        uint64_t now = rt_now_ns();
        char buf[8192];
        ssize_t n;
        int wait_ms;

        if (atomic_load(&b->cancelled))
            break;
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        wait_ms = (int) ((deadline - now) / 1000000ULL) + 1;
        if (wait_ms > 200)
            wait_ms = 200; /* wake up to notice a cancel */
        if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR)
            return rt_err_set(err, errno, "wait for build output");
        if (!pfd.revents)
            continue;
        n = read(out_fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break; /* every writer is gone: the build ended */
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (c == '\n' || c == '\r' || len + 1 >= sizeof(line)) {
                line[len] = '\0';
                if (len || c == '\n')
                    log_line(log, line);
                len = 0;
                if (c == '\n' || c == '\r')
                    continue;
            }
            line[len++] = c;
        }
    }
    if (len) {
        line[len] = '\0';
        log_line(log, line);
    }
    if (timed_out || atomic_load(&b->cancelled))
        (void) sbx_kill(b->box, SIGKILL, err);
    if (sbx_wait(b->box, -1, ex, err) < 0)
        return -err->code;
    if (atomic_load(&b->cancelled))
        return rt_err_set(err, ECANCELED, "the build was cancelled by a newer push");
    if (timed_out)
        return rt_err_set(err, ETIMEDOUT, "build timed out after %u s", timeout_s);
    return 0;
}

static int run_deps_sandbox(struct rt_build *b, const struct rt_build_job *job, const char *app,
                            const char *layer, const char *cache, struct build_log *log,
                            struct rt_err *err)
{
    const struct rt_build_limits *lim = job->limits;
    _cleanup_close_ int out_rd = -1, out_wr = -1;
    struct sbx_spec spec;
    struct sbx_exit ex;
    struct sbx *box = NULL;
    char src_m[PATH_MAX + 16], layer_m[PATH_MAX + 16], cache_m[PATH_MAX + 16];
    char bind_m[RT_BUILD_MAX_RO_BINDS][2 * PATH_MAX + 2];
    const char *argv[] = { "/bin/sh", "-ec", job->plan->deps_script, NULL };
    int p[2], r;

    sbx_spec_init(&spec);
    spec.argv = argv;
    spec.rootfs = lim->rootfs;
    spec.uid = BUILD_UID;
    spec.host_uid_base = BUILD_HOST_UID_BASE;
    spec.memory_max = lim->memory_max ? lim->memory_max : 4ULL << 30;
    spec.cpu_milli = lim->cpu_milli ? lim->cpu_milli : 2000;
    spec.pids_max = lim->pids_max ? lim->pids_max : 1024;
    spec.upper_size = lim->layer_max ? lim->layer_max : 8ULL << 30;
    spec.tmpfs_size = 1ULL << 30;
    spec.net = lim->host_network ? SBX_NET_HOST : SBX_NET_NONE;
    spec.hostname = "build";
    spec.chdir = RT_BUILD_SRC_MOUNT;
    (void) snprintf(src_m, sizeof(src_m), "%s:%s", app, RT_BUILD_SRC_MOUNT);
    (void) snprintf(layer_m, sizeof(layer_m), "%s:%s", layer, RT_BUILD_DEPS_MOUNT);
    (void) snprintf(cache_m, sizeof(cache_m), "%s:/cache/pip", cache);
    if ((r = sbx_spec_add_mount(&spec, SBX_MOUNT_RO_BIND, src_m, err)) < 0 ||
        (r = sbx_spec_add_mount(&spec, SBX_MOUNT_BIND, layer_m, err)) < 0 ||
        (r = sbx_spec_add_mount(&spec, SBX_MOUNT_BIND, cache_m, err)) < 0)
        return r;
    /* The spec keeps pointers: the strings live as long as this function. */
    for (size_t i = 0; i < job->plan->n_ro_binds && i < RT_BUILD_MAX_RO_BINDS; i++) {
        const char *rb = job->plan->ro_binds[i];
        if (strchr(rb, ':'))
            (void) snprintf(bind_m[i], sizeof(bind_m[i]), "%s", rb);
        else
            (void) snprintf(bind_m[i], sizeof(bind_m[i]), "%s:%s", rb, rb);
        if ((r = sbx_spec_add_mount(&spec, SBX_MOUNT_RO_BIND, bind_m[i], err)) < 0)
            return r;
    }
    (void) sbx_spec_add_env(&spec, "HOME=/tmp", err);
    (void) sbx_spec_add_env(&spec, "PIP_CACHE_DIR=/cache/pip", err);
    (void) sbx_spec_add_env(&spec, "PIP_DISABLE_PIP_VERSION_CHECK=1", err);
    (void) sbx_spec_add_env(&spec, "PIP_NO_INPUT=1", err);
    (void) sbx_spec_add_env(&spec, "PIP_PROGRESS_BAR=off", err);
    (void) sbx_spec_add_env(&spec, "PYTHONUNBUFFERED=1", err);
    for (size_t i = 0; i < job->plan->n_env; i++)
        if ((r = sbx_spec_add_env(&spec, job->plan->env[i], err)) < 0)
            return r;

    if (pipe2(p, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "create the build output pipe");
    out_rd = p[0];
    out_wr = p[1];
    spec.stdio[0] = -1;
    spec.stdio[1] = out_wr;
    spec.stdio[2] = out_wr;
    r = sbx_spawn(&spec, &box, err);
    out_wr = rt_close(out_wr);
    if (r < 0)
        return rt_err_wrap(err, "start the build sandbox");
    pthread_mutex_lock(&b->lock);
    b->box = box;
    pthread_mutex_unlock(&b->lock);
    r = pump_output(b, out_rd, lim->timeout_s ? lim->timeout_s : 1800, log, &ex, err);
    pthread_mutex_lock(&b->lock);
    b->box = NULL;
    pthread_mutex_unlock(&b->lock);
    sbx_destroy(box);
    if (r < 0)
        return r;
    if (ex.reason == SBX_EXIT_OOM)
        return rt_err_set(err, ENOMEM, "installing dependencies ran out of memory (limit %llu MiB)",
                          (unsigned long long) (spec.memory_max >> 20));
    if (ex.code != 0)
        return rt_err_set(err, EIO, "installing dependencies failed (exit %d): %s", ex.code,
                          log_last(log));
    return 0;
}

static int build_deps_layer(struct rt_build *b, const struct rt_build_job *job,
                            struct build_log *log, struct rt_build_result *res, struct rt_err *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 80], cache[PATH_MAX + 64], owner[256];
    uint64_t t0 = rt_now_ns();
    int r;

    if ((r = rt_build_deps_key(job->plan, res->app_layer, res->deps_key, err)) < 0)
        return r;
    (void) snprintf(dir, sizeof(dir), "%s/layers/deps", job->data_dir);
    (void) snprintf(res->deps_layer, sizeof(res->deps_layer), "%s/%s", dir, res->deps_key);
    if (!job->no_cache && is_dir(res->deps_layer)) {
        res->deps_reused = true;
        log_printf(log, "==> dependencies: reusing layer %.12s (same inputs)", res->deps_key);
        return 0;
    }
    if ((r = mkdir_p(dir, 0755)) < 0)
        return rt_err_set(err, -r, "create '%s'", dir);
    (void) snprintf(owner, sizeof(owner), "%s", job->space_id);
    owner[strcspn(owner, "/")] = '\0';
    (void) snprintf(cache, sizeof(cache), "%s/cache/pip/%s", job->data_dir, owner);
    if ((r = prepare_owned_dir(cache, err)) < 0)
        return r;
    (void) snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-XXXXXX", dir, res->deps_key);
    if (!mkdtemp(tmp))
        return rt_err_set(err, errno, "create a directory under '%s'", dir);
    if ((r = prepare_owned_dir(tmp, err)) < 0)
        goto fail;
    log_printf(log, "==> installing dependencies into layer %.12s%s", res->deps_key,
               job->no_cache ? " (factory rebuild: cache ignored)" : "");
    r = run_deps_sandbox(b, job, res->app_layer, tmp, cache, log, err);
    if (r < 0)
        goto fail;
    /* The finished layer is read-only for everyone but root: runs mount it read-only
     * anyway, and no later build may change what another Space runs. */
    if (chown(tmp, 0, 0) < 0 || chmod(tmp, 0755) < 0) {
        r = rt_err_set(err, errno, "seal the layer");
        goto fail;
    }
    if (job->no_cache && is_dir(res->deps_layer)) {
        char old[PATH_MAX + 96];
        /* Moved aside, not removed: a running Space may still have it mounted, and its
         * files must not vanish under it before the switch to the new build. */
        (void) snprintf(old, sizeof(old), "%s/.old-%s-%llu", dir, res->deps_key,
                        (unsigned long long) (rt_now_ns() / 1000000ULL));
        (void) rename(res->deps_layer, old);
    }
    if (rename(tmp, res->deps_layer) < 0) {
        if (errno != ENOTEMPTY && errno != EEXIST) {
            r = rt_err_set(err, errno, "store the dependency layer");
            goto fail;
        }
        (void) rm_rf(tmp); /* a concurrent build stored the same layer first */
    }
    res->deps_ms = (rt_now_ns() - t0) / 1000000ULL;
    log_printf(log, "==> dependencies installed in %.1f s", (double) res->deps_ms / 1000.0);
    return 0;
fail:
    (void) rm_rf(tmp);
    return r;
}

int rt_build_run(struct rt_build *b, const struct rt_build_job *job, struct rt_build_result *ret,
                 struct rt_err *err)
{
    struct build_log log = { .fd = -1, .on_line = job->on_line, .data = job->data };
    struct rt_build_result res = { 0 };
    uint64_t t0 = rt_now_ns();
    int r;

    if (job->log_path) {
        log.fd = open(job->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (log.fd < 0) {
            r = rt_err_set(err, errno, "open build log '%s'", job->log_path);
            goto out;
        }
    }
    log_printf(&log, "==> building %s at %.12s", job->space_id, job->commit);
    r = build_app_layer(job, &log, &res, err);
    res.app_ms = (rt_now_ns() - t0) / 1000000ULL;
    if (r >= 0 && job->plan->deps_script)
        r = build_deps_layer(b, job, &log, &res, err);
    if (r < 0) {
        char msg[RT_ERR_MSG_MAX + 64];
        log_printf(&log, "==> build failed: %s", rt_err_str(err, msg, sizeof(msg)));
    } else {
        log_printf(&log, "==> build done in %.1f s",
                   (double) ((rt_now_ns() - t0) / 1000000ULL) / 1000.0);
        *ret = res;
    }
out:
    log.fd = rt_close(log.fd);
    return r;
}
