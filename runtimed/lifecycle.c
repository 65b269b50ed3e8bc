/* The lifecycle supervisor: one thread that starts, watches, freezes, stops and switches
 * the shims of Spaces (lifecycle.h).
 *
 * Where things live:
 *   DATA/run/<space row id>/space.json   the build the Space runs: sha and layers
 *   DATA/run/<space row id>/<seq>/       one instance: the shim's state dir (shim.h)
 * Short names, because shim.sock must fit a socket address.
 *
 * Locks: the API calls in with the store locked, so the request functions never take
 * the store lock; the supervisor takes the store lock before lc->mu, never after.  A
 * freeze or the end of a deep sleep's grace (supervisor) and a thaw or resume (wake,
 * activity) all run under the store lock, so they cannot cross. */
#include "lifecycle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "builder.h"
#include "cleanup.h"
#include "config.h"
#include "lifecycle-internal.h"
#include "log.h"
#include "store.h"
#include "template.h"
#include "metrics.h"
#include "util.h"
#include "banned.h"

static struct lc_space *find(struct rt_lifecycle *lc, int64_t id)
{
    for (struct lc_space *sp = lc->spaces; sp; sp = sp->next)
        if (sp->id == id && !sp->deleted)
            return sp;
    return NULL;
}

/* Under lc->mu. */
static struct lc_space *find_or_add(struct rt_lifecycle *lc, int64_t id)
{
    struct lc_space *sp = find(lc, id);

    if (sp)
        return sp;
    sp = calloc(1, sizeof(*sp));
    if (!sp)
        return NULL;
    sp->id = id;
    sp->last_activity_ms = rt_store_now_ms();
    sp->next = lc->spaces;
    lc->spaces = sp;
    return sp;
}

static void kick(struct rt_lifecycle *lc)
{
    lc->kicked = true;
    (void) pthread_cond_signal(&lc->cv);
}

/* --- the request functions (API threads, store locked) ---------------------------------- */

void rt_lifecycle_set_builder(struct rt_lifecycle *lc, struct rt_builder *b)
{
    (void) pthread_mutex_lock(&lc->mu);
    lc->builder = b;
    (void) pthread_mutex_unlock(&lc->mu);
}

void rt_lifecycle_build_ready(struct rt_lifecycle *lc, int64_t space_id, int64_t build_id,
                              const char *sha, const char *app_layer, const char *deps_layer)
{
    struct lc_space *sp;

    (void) pthread_mutex_lock(&lc->mu);
    sp = find_or_add(lc, space_id);
    if (sp) {
        struct lc_build *b = &sp->pending;
        b->set = true;
        b->id = build_id;
        (void) snprintf(b->sha, sizeof(b->sha), "%s", sha ? sha : "");
        (void) snprintf(b->app, sizeof(b->app), "%s", app_layer ? app_layer : "");
        (void) snprintf(b->deps, sizeof(b->deps), "%s", deps_layer ? deps_layer : "");
        kick(lc);
    }
    (void) pthread_mutex_unlock(&lc->mu);
}

bool rt_lifecycle_is_running(struct rt_lifecycle *lc, int64_t space_id)
{
    struct lc_space *sp;
    bool r;

    if (!lc)
        return false;
    (void) pthread_mutex_lock(&lc->mu);
    sp = find(lc, space_id);
    r = sp && live(&sp->cur);
    (void) pthread_mutex_unlock(&lc->mu);
    return r;
}

/* Gives a frozen Space (light sleep) or a dozing one (deep sleep, still in its grace)
 * its route back at once, thawing it when frozen: no restart.  The caller holds the
 * store lock (see the top of this file), as the end of a grace does. */
static void resume_now(struct rt_lifecycle *lc, struct lc_space *sp)
{
    char dir[LC_PATH], upstream[64];
    struct rt_shim_status ss;
    struct rt_err err = { 0 };
    bool dozing, thaw;

    (void) pthread_mutex_lock(&lc->mu);
    dozing = sp->cur.state == LC_DOZING;
    thaw = sp->cur.state == LC_FROZEN || (dozing && sp->doze_frozen);
    if (dozing || thaw) {
        sp->cur.state = LC_RUNNING;
        sp->doze_frozen = false;
        (void) snprintf(dir, sizeof(dir), "%s", sp->cur.dir);
        (void) snprintf(upstream, sizeof(upstream), "%s", sp->cur.upstream);
    }
    (void) pthread_mutex_unlock(&lc->mu);
    if (!dozing && !thaw)
        return;
    {
        uint64_t t0 = rt_now_ns();
        int r = thaw ? rt_shim_command(dir, "thaw", &ss, &err) : 0;
        if (r < 0)
            lc__log(sp, RT_LOG_WARN, "thaw: %s", err.msg);
        rt_metrics_wake((double) (rt_now_ns() - t0) / 1e6, r >= 0);
    }
    if (dozing)
        lc__log(sp, RT_LOG_INFO, "woken in its sleep grace: running on, no restart");
    (void) lc__store_set(
        lc, sp, &(struct lc_change){ .upstream = upstream, .stage = dozing ? "RUNNING" : NULL },
        false);
}

int rt_lifecycle_wake(struct rt_lifecycle *lc, int64_t space_id, struct rt_err *err)
{
    struct lc_space *sp;
    bool frozen = false;

    (void) pthread_mutex_lock(&lc->mu);
    sp = find(lc, space_id);
    if (!sp) {
        (void) pthread_mutex_unlock(&lc->mu);
        return rt_err_set(err, ENOENT, "this Space has never been built");
    }
    if (sp->paused) {
        (void) pthread_mutex_unlock(&lc->mu);
        return rt_err_set(err, EBUSY, "this Space is paused by its owner");
    }
    sp->last_activity_ms = rt_store_now_ms();
    frozen = sp->cur.state == LC_FROZEN || sp->cur.state == LC_DOZING;
    if (!live(&sp->cur)) {
        sp->want_start = true;
        if (!sp->wake_ns)
            sp->wake_ns = rt_now_ns();
        kick(lc);
    }
    (void) pthread_mutex_unlock(&lc->mu);
    if (frozen)
        resume_now(lc, sp);
    return 0;
}

void rt_lifecycle_activity(struct rt_lifecycle *lc, int64_t space_id)
{
    struct lc_space *sp;
    bool frozen = false;

    (void) pthread_mutex_lock(&lc->mu);
    sp = find(lc, space_id);
    if (sp) {
        sp->last_activity_ms = rt_store_now_ms();
        frozen = sp->cur.state == LC_FROZEN || sp->cur.state == LC_DOZING;
    }
    (void) pthread_mutex_unlock(&lc->mu);
    /* The proxy may still hold the old route to a Space that just froze or dozed off:
     * a request there is a visit. */
    if (frozen)
        resume_now(lc, sp);
}

static int request(struct rt_lifecycle *lc, int64_t space_id, unsigned what, struct rt_err *err)
{
    struct lc_space *sp;

    (void) pthread_mutex_lock(&lc->mu);
    sp = find_or_add(lc, space_id);
    if (!sp) {
        (void) pthread_mutex_unlock(&lc->mu);
        return rt_err_set(err, ENOMEM, "lifecycle request");
    }
    sp->want |= what;
    if (what & LC_WANT_PAUSE)
        sp->paused = true;
    if (what & LC_WANT_RESTART)
        sp->paused = false;
    kick(lc);
    (void) pthread_mutex_unlock(&lc->mu);
    return 0;
}

int rt_lifecycle_pause(struct rt_lifecycle *lc, int64_t space_id, struct rt_err *err)
{
    return request(lc, space_id, LC_WANT_PAUSE, err);
}

int rt_lifecycle_restart(struct rt_lifecycle *lc, int64_t space_id, bool factory,
                         struct rt_err *err)
{
    return request(lc, space_id, LC_WANT_RESTART | (factory ? LC_WANT_FACTORY : 0), err);
}

int rt_lifecycle_settings_changed(struct rt_lifecycle *lc, int64_t space_id, struct rt_err *err)
{
    return request(lc, space_id, LC_WANT_SETTINGS, err);
}

int rt_lifecycle_delete(struct rt_lifecycle *lc, int64_t space_id, struct rt_err *err)
{
    return request(lc, space_id, LC_WANT_DELETE, err);
}

/* --- start and stop ------------------------------------------------------------------------ */

static void *supervise(void *arg)
{
    struct rt_lifecycle *lc = arg;

    (void) pthread_mutex_lock(&lc->mu);
    while (!lc->stopping) {
        struct timespec ts;
        uint64_t wait_ms = lc__busy(lc) ? LC_TICK_FAST_MS : LC_TICK_MS;

        (void) pthread_mutex_unlock(&lc->mu);
        lc__tick(lc);
        (void) pthread_mutex_lock(&lc->mu);
        if (lc->kicked || lc->stopping) {
            lc->kicked = false;
            continue;
        }
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t) (wait_ms / 1000);
        ts.tv_nsec += (long) (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void) pthread_cond_timedwait(&lc->cv, &lc->mu, &ts);
        lc->kicked = false;
    }
    (void) pthread_mutex_unlock(&lc->mu);
    return NULL;
}

/* The directory of the running binary, for the shim and templates beside it. */
static void exe_dir(char *buf, size_t len)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    char *slash;

    path[n > 0 ? n : 0] = '\0';
    slash = strrchr(path, '/');
    if (slash)
        *slash = '\0';
    (void) snprintf(buf, len, "%s", path);
}

int rt_lifecycle_start(const struct rt_config *cfg, struct rt_store *st, struct rt_lifecycle **ret,
                       struct rt_err *err)
{
    return rt_lifecycle_start_gpus(cfg, st, NULL, NULL, ret, err);
}

int rt_lifecycle_start_gpus(const struct rt_config *cfg, struct rt_store *st,
                            struct rt_gpunode *gpus, struct rt_gpuzero *zero,
                            struct rt_lifecycle **ret, struct rt_err *err)
{
    struct rt_lifecycle *lc = calloc(1, sizeof(*lc));
    pthread_condattr_t ca;
    char dir[PATH_MAX], tdir[PATH_MAX + 16];
    int r;

    if (!lc)
        return rt_err_set(err, ENOMEM, "lifecycle");
    lc->cfg = cfg;
    lc->st = st;
    lc->gpus = gpus;
    lc->zero = zero; /* before the thread: a zero Space restarted at its first tick needs it */
    exe_dir(dir, sizeof(dir));
    if (cfg->shim[0])
        (void) snprintf(lc->shim, sizeof(lc->shim), "%s", cfg->shim);
    else
        (void) snprintf(lc->shim, sizeof(lc->shim), "%s/spaceport-shim", dir);
    if (cfg->templates_dir[0])
        (void) snprintf(tdir, sizeof(tdir), "%s", cfg->templates_dir);
    else
        (void) snprintf(tdir, sizeof(tdir), "%s/../templates", dir);
    r = rt_templates_load(tdir, &lc->templates, err);
    if (r < 0 && !cfg->templates_dir[0])
        r = rt_templates_load("/usr/share/spaceport/templates", &lc->templates, err);
    if (r < 0) {
        free(lc);
        return rt_err_wrap(err, "lifecycle: load templates");
    }
    (void) snprintf(lc->run_dir, sizeof(lc->run_dir), "%s/run", cfg->data_dir);
    if (mkdir(lc->run_dir, 0700) < 0 && errno != EEXIST) {
        r = rt_err_set(err, errno, "create '%s'", lc->run_dir);
        rt_templates_free(lc->templates);
        free(lc);
        return r;
    }
    (void) pthread_mutex_init(&lc->mu, NULL);
    (void) pthread_condattr_init(&ca);
    (void) pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    (void) pthread_cond_init(&lc->cv, &ca);
    (void) pthread_condattr_destroy(&ca);
    /* Before the thread and the API: the Spaces that kept running while we were away. */
    lc__reattach(lc);
    lc__gpu_rebuild(lc);
    r = pthread_create(&lc->thread, NULL, supervise, lc);
    if (r != 0) {
        rt_lifecycle_stop(lc);
        return rt_err_set(err, r, "lifecycle: start thread");
    }
    lc->has_thread = true;
    *ret = lc;
    return 0;
}

void rt_lifecycle_stop(struct rt_lifecycle *lc)
{
    if (!lc)
        return;
    (void) pthread_mutex_lock(&lc->mu);
    lc->stopping = true;
    kick(lc);
    (void) pthread_mutex_unlock(&lc->mu);
    if (lc->has_thread)
        (void) pthread_join(lc->thread, NULL);
    while (lc->spaces) {
        struct lc_space *sp = lc->spaces;
        lc->spaces = sp->next;
        free(sp);
    }
    rt_templates_free(lc->templates);
    (void) pthread_cond_destroy(&lc->cv);
    (void) pthread_mutex_destroy(&lc->mu);
    free(lc);
}
