/* One build: README → config → template → script → layers, each failure turned into
 * the stage and message a Space author can act on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lfs.h"
#include "build.h"
#include "builder-job.h"
#include "buildplan.h"
#include "cleanup.h"
#include "config.h"
#include "gitcommit.h"
#include "lfs.h"
#include "lifecycle.h"
#include "log.h"
#include "spaceconfig.h"
#include "store.h"
#include "metrics.h"
#include "util.h"
#include "banned.h"

/* Weak: runtimed links the lifecycle supervisor, a build-only test program need not;
 * neither is called without a lifecycle handle. */
#pragma weak rt_lifecycle_is_running
#pragma weak rt_lifecycle_build_ready

#define TAIL_LINES 6
#define README_MAX (4u << 20)

void rt__builder_repo_dir(const char *data_dir, const char *owner, const char *name, char *buf,
                          size_t len)
{
    (void) snprintf(buf, len, "%s/repos/%s/%s.git", data_dir, owner, name);
}

struct job_ctx {
    const struct rt__builder_env *env;
    int64_t space_id;
    int64_t build_id;
    const char *sha;
    struct rt_space space;
    char id[RT_ID_SIZE];
    struct rt_log_ctx log;
    char tail[TAIL_LINES][160];
    unsigned n_tail;
    uint64_t t0_ns; /* when the build started, for its duration metric */
};

/* --- the log: every line to the store as it comes, so the SSE stream shows it live ------ */

static void on_line(void *data, const char *line)
{
    struct job_ctx *c = data;
    struct rt_err err = { 0 };

    rt_store_lock(c->env->st);
    if (rt_store_log_append(c->env->st, c->space_id, RT_LOGS_BUILD, line, &err) < 0)
        rt_log(RT_LOG_WARN, &c->log, "append build log: %s, ignoring", err.msg);
    rt_store_unlock(c->env->st);
    /* The build's own summary lines are not the tail an author needs. */
    if (strncmp(line, "==> build failed", 16) != 0) {
        (void) snprintf(c->tail[c->n_tail % TAIL_LINES], sizeof(c->tail[0]), "%s", line);
        c->n_tail++;
    }
}

static void logf_(struct job_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct job_ctx *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    on_line(c, line);
}

/* --- the Space's row ------------------------------------------------------------------------ */

struct find_space {
    int64_t id;
    struct rt_space *out;
    bool found;
};

static int on_space(const struct rt_space *s, void *userdata)
{
    struct find_space *f = userdata;

    if (s->id == f->id) {
        *f->out = *s;
        f->found = true;
    }
    return 1; /* the first row after id-1 is the one, or there is none */
}

/* Loads the Space.  Called with the store locked. */
static int load_space(struct rt_store *st, int64_t id, struct rt_space *ret, struct rt_err *err)
{
    struct find_space f = { .id = id, .out = ret };
    int r = rt_store_space_list(st, id - 1, on_space, &f, err);

    if (r < 0)
        return r;
    return f.found ? 0 : rt_err_set(err, ENOENT, "no Space %lld", (long long) id);
}

/* Sets the stage and message, unless the Space is gone or a newer build owns it. */
static void set_stage(struct job_ctx *c, const char *stage, const char *msg)
{
    struct rt_space s;
    struct rt_err err = { 0 };

    rt_store_lock(c->env->st);
    if (load_space(c->env->st, c->space_id, &s, &err) == 0) {
        (void) snprintf(s.stage, sizeof(s.stage), "%s", stage);
        (void) snprintf(s.error, sizeof(s.error), "%s", msg ? msg : "");
        if (rt_store_space_update(c->env->st, &s, &err) < 0)
            rt_log(RT_LOG_WARN, &c->log, "set stage %s: %s, ignoring", stage, err.msg);
    }
    rt_store_unlock(c->env->st);
}

static void finish(struct job_ctx *c, const char *status)
{
    struct rt_err err = { 0 };

    if (!c->build_id)
        return;
    rt_metrics_build_done((double) (rt_now_ns() - c->t0_ns) / 1e9, strcmp(status, "done") == 0);
    rt_store_lock(c->env->st);
    if (rt_store_build_finish(c->env->st, c->build_id, status, &err) < 0)
        rt_log(RT_LOG_WARN, &c->log, "finish build %lld: %s, ignoring", (long long) c->build_id,
               err.msg);
    rt_store_unlock(c->env->st);
}

/* A failure the author has to fix: the stage, the reason, and for BUILD_ERROR the last
 * lines of the log (what pip said). */
static void fail(struct job_ctx *c, const char *stage, const char *reason)
{
    char msg[512];
    size_t n;

    n = (size_t) snprintf(msg, sizeof(msg), "%s", reason);
    if (strcmp(stage, "BUILD_ERROR") == 0 && c->n_tail && n < sizeof(msg)) {
        unsigned first = c->n_tail > TAIL_LINES ? c->n_tail - TAIL_LINES : 0;
        n += (size_t) snprintf(msg + n, sizeof(msg) - n, "\n\nBuild log tail:");
        for (unsigned i = first; i < c->n_tail && n < sizeof(msg); i++)
            n += (size_t) snprintf(msg + n, sizeof(msg) - n, "\n%s", c->tail[i % TAIL_LINES]);
    }
    logf_(c, "===== %s: %s =====", stage, reason);
    rt_log(RT_LOG_INFO, &c->log, "%s at %.12s: %s", stage, c->sha, reason);
    set_stage(c, stage, msg);
    finish(c, "failed");
}

/* --- the steps ------------------------------------------------------------------------------ */

struct files {
    struct rt_git_file_list list;
};

static bool has_path(const char *path, void *userdata)
{
    const struct files *f = userdata;
    return rt_git_file_list_find(&f->list, path) != NULL;
}

static int start(struct job_ctx *c, bool factory, struct rt_err *err)
{
    bool running = c->env->lc && rt_lifecycle_is_running(c->env->lc, c->space_id);
    struct rt_store *st = c->env->st;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    int r;

    c->t0_ns = rt_now_ns();
    rt_store_lock(st);
    r = load_space(st, c->space_id, &c->space, err);
    if (r >= 0)
        r = rt_store_build_add(st, c->space_id, c->sha, factory, &c->build_id, err);
    if (r >= 0) {
        (void) snprintf(c->space.stage, sizeof(c->space.stage), "%s",
                        running ? "RUNNING_BUILDING" : "BUILDING");
        c->space.error[0] = '\0';
        r = rt_store_space_update(st, &c->space, err);
        if (r < 0) {
            struct rt_err ignored = { 0 };
            (void) rt_store_build_finish(st, c->build_id, "failed", &ignored);
        }
    }
    rt_store_unlock(st);
    if (r < 0)
        return r;
    (void) snprintf(c->id, sizeof(c->id), "%s/%s", c->space.owner, c->space.name);
    c->log.app = c->space.host;
    (void) gmtime_r(&now, &tm);
    (void) strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    logf_(c, "===== Build Queued at %s / Commit SHA: %.7s =====", when, c->sha);
    return 0;
}

void rt__builder_run(const struct rt__builder_env *env, struct rt_build *rb, int64_t space_id,
                     const char *sha, bool factory)
{
    struct job_ctx c = {
        .env = env, .space_id = space_id, .sha = sha, .log = { .action = "build" }
    };
    struct files files = { 0 };
    _cleanup_(rt_spaceconfig_freep) struct rt_spaceconfig *cfg = NULL;
    struct rt_recipe recipe = { 0 };
    struct rt_err err = { 0 };
    char repo[PATH_MAX], msg[RT_ERR_MSG_MAX + 64];
    _cleanup_free_ char *readme = NULL;
    size_t readme_len = 0;
    int r;

    if (start(&c, factory, &err) < 0) {
        rt_log(RT_LOG_WARN, &c.log, "build of %.12s for Space %lld not started: %s", sha,
               (long long) space_id, err.msg);
        return;
    }
    rt__builder_repo_dir(env->cfg->data_dir, c.space.owner, c.space.name, repo, sizeof(repo));

    r = rt_git_list_files(repo, sha, 0, &files.list, &err);
    if (r < 0) {
        fail(&c, "BUILD_ERROR", rt_err_str(&err, msg, sizeof(msg)));
        goto out;
    }
    readme = malloc(README_MAX + 1);
    if (!readme) {
        fail(&c, "BUILD_ERROR", "out of memory");
        goto out;
    }
    r = rt_git_read_file(repo, sha, RT_README_NAME, readme, README_MAX + 1, &readme_len, &err);
    if (r < 0 && r != -ENOENT) {
        fail(&c, "CONFIG_ERROR", err.msg);
        goto out;
    }
    r = rt_spaceconfig_parse(r == 0 ? readme : NULL, r == 0 ? readme_len : 0, &cfg, &err);
    if (r < 0) {
        fail(&c, "CONFIG_ERROR", err.msg);
        goto out;
    }
    for (size_t i = 0; i < cfg->warnings.n; i++)
        logf_(&c, "warning: %s", cfg->warnings.v[i]);
    if (rt_spaceconfig_check_app_file(cfg, has_path, &files, &err) < 0) {
        fail(&c, "NO_APP_FILE", err.msg);
        goto out;
    }
    {
        struct rt_recipe_in in = { .templates = env->templates,
                                   .cfg = cfg,
                                   .space_id = c.id,
                                   .host = c.space.host,
                                   .has = has_path,
                                   .userdata = &files,
                                   .pip = env->pip,
                                   .rootfs = env->cfg->rootfs };
        r = rt_recipe_render(&in, &recipe, &err);
    }
    if (r < 0) {
        fail(&c, r == -EOPNOTSUPP || r == -ENOENT ? "CONFIG_ERROR" : "BUILD_ERROR", err.msg);
        goto out;
    }
    for (size_t i = 0; i < recipe.notes.n; i++)
        logf_(&c, "%s", recipe.notes.v[i]);
    {
        struct rt_build_plan plan = { .deps_script = recipe.deps_script,
                                      .key_extra = recipe.key_extra };
        struct rt_git_limits glim = { .max_file_bytes = env->cfg->max_file_size };
        struct rt_build_limits lim = {
            .memory_max = env->cfg->build_memory,
            .timeout_s = (uint32_t) env->cfg->build_timeout_s,
            .host_network = strcmp(env->cfg->build_network, "none") != 0,
            .rootfs = env->cfg->rootfs[0] ? env->cfg->rootfs : NULL,
        };
        char lfs_scope[RT_LFS_SCOPE_KEY_MAX];
        struct rt_build_job job = { .data_dir = env->cfg->data_dir,
                                    .space_id = c.id,
                                    .repo_dir = repo,
                                    .commit = sha,
                                    .lfs_scope = lfs_scope,
                                    .no_cache = factory,
                                    .git_limits = &glim,
                                    .plan = &plan,
                                    .limits = &lim,
                                    .on_line = on_line,
                                    .data = &c };
        struct rt_build_result res;

        rt_lfs_scope_key(c.space.id, c.space.created_at, lfs_scope);

        for (size_t i = 0; i < recipe.key_files.n && i < RT_BUILD_MAX_KEY_FILES; i++)
            plan.key_files[plan.n_key_files++] = recipe.key_files.v[i];
        for (size_t i = 0; i < recipe.env.n && i < RT_BUILD_MAX_ENV; i++)
            plan.env[plan.n_env++] = recipe.env.v[i];
        for (size_t i = 0; i < recipe.ro_binds.n && i < RT_BUILD_MAX_RO_BINDS; i++)
            plan.ro_binds[plan.n_ro_binds++] = recipe.ro_binds.v[i];

        r = rt_build_run(rb, &job, &res, &err);
        if (r == -ECANCELED) {
            /* A newer push or a delete owns the Space now; when runtimed is stopping,
             * the build stays unfinished so the next start queues it again. */
            if (!(env->stopping && atomic_load(env->stopping)))
                finish(&c, "cancelled");
            else
                c.build_id = 0;
            goto out;
        }
        if (r < 0) {
            fail(&c, "BUILD_ERROR", rt_err_str(&err, msg, sizeof(msg)));
            goto out;
        }
        finish(&c, "done");
        /* The collector's clocks (gc.h): a layer handed over now is new, even a reused
         * one, so the grace keeps it until the lifecycle records it in space.json. */
        (void) utimensat(AT_FDCWD, res.app_layer, NULL, AT_SYMLINK_NOFOLLOW);
        if (res.deps_layer[0])
            (void) utimensat(AT_FDCWD, res.deps_layer, NULL, AT_SYMLINK_NOFOLLOW);
        rt_log(RT_LOG_INFO, &c.log, "built %.12s (app %llu ms, deps %s)", sha,
               (unsigned long long) res.app_ms,
               !res.deps_layer[0] ? "none"
               : res.deps_reused  ? "reused"
                                  : "built");
        if (env->lc) {
            rt_lifecycle_build_ready(env->lc, space_id, c.build_id, sha, res.app_layer,
                                     res.deps_layer);
        } else {
            /* Nothing runs Spaces in this process (tests of the builder alone): the
             * commit is built, and stopped. */
            set_stage(&c, "STOPPED", "");
        }
    }
out:
    rt_recipe_done(&recipe);
    rt_git_file_list_done(&files.list);
}
