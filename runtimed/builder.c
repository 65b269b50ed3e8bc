/* The build queue: one worker thread, at most one queued build per Space (a newer push
 * replaces it), and a cancel for the running one when its Space is pushed again. */
#include "builder.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build.h"
#include "builder-job.h"
#include "buildplan.h"
#include "cleanup.h"
#include "config.h"
#include "gc.h"
#include "lifecycle.h"
#include "log.h"
#include "store.h"
#include "metrics.h"
#include "banned.h"

struct job {
    int64_t space_id;
    char sha[RT_GIT_SHA_SIZE];
    bool factory;
    struct job *next;
};

/* A POST /api/admin/gc waiting for the worker (on the caller's stack). */
struct gc_req {
    struct rt_gc_report *rep;
    struct rt_err *err;
    int r;
    bool started, done;
    struct gc_req *next;
};

#define GC_WAIT_S 60 /* longest a GC request waits for a running build to end */

struct rt_builder {
    const struct rt_config *cfg;
    struct rt_store *st;
    struct rt_lifecycle *lc;
    struct rt_templates *templates;
    struct rt_pip_settings pip;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *queue; /* oldest first */
    int64_t running_space;
    struct rt_build *running;
    bool stopping;
    atomic_bool stopping_flag; /* the same, read by a build without the lock */
    bool started;
    pthread_t thread;
    struct gc_req *gc_reqs; /* oldest first */
    pthread_cond_t gc_cond; /* a gc_req is done */
    uint64_t gc_next_ns;    /* monotonic; 0: no timer (gc_interval_s 0) */
};

static const struct rt_log_ctx builder_ctx = { .app = NULL, .action = "builder" };

/* --- the queue ------------------------------------------------------------------------- */

/* Builds waiting now; the caller holds b->lock. */
static int64_t queue_length(const struct rt_builder *b)
{
    int64_t n = 0;

    for (const struct job *j = b->queue; j; j = j->next)
        n++;
    return n;
}

/* Removes and frees the queued build of @space_id; returns whether there was one and
 * whether it was a factory build.  Called with b->lock held. */
static bool drop_queued(struct rt_builder *b, int64_t space_id, bool *ret_factory)
{
    for (struct job **p = &b->queue; *p; p = &(*p)->next) {
        struct job *j = *p;
        if (j->space_id != space_id)
            continue;
        *p = j->next;
        if (ret_factory)
            *ret_factory = j->factory;
        free(j);
        return true;
    }
    return false;
}

int rt_builder_enqueue(struct rt_builder *b, int64_t space_id, const char *sha, bool factory,
                       struct rt_err *err)
{
    struct job *j, **tail;
    bool was_factory = false;

    if (!b)
        return rt_err_set(err, EINVAL, "no builder");
    if (!sha || strlen(sha) != RT_GIT_SHA_SIZE - 1 || strspn(sha, "0123456789abcdef") != 40)
        return rt_err_set(err, EINVAL, "'%s' is not a commit id", sha ? sha : "");
    j = calloc(1, sizeof(*j));
    if (!j)
        return rt_err_set(err, ENOMEM, "queue a build");
    j->space_id = space_id;
    memcpy(j->sha, sha, RT_GIT_SHA_SIZE);
    pthread_mutex_lock(&b->lock);
    /* A factory rebuild that is superseded before it starts still owes its cache-less
     * build to the commit that replaces it. */
    if (drop_queued(b, space_id, &was_factory))
        factory = factory || was_factory;
    j->factory = factory;
    for (tail = &b->queue; *tail; tail = &(*tail)->next)
        ;
    *tail = j;
    rt_metrics_build_queue(queue_length(b));
    if (b->running && b->running_space == space_id)
        rt_build_cancel(b->running);
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

void rt_builder_forget(struct rt_builder *b, int64_t space_id)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    while (drop_queued(b, space_id, NULL))
        ;
    if (b->running && b->running_space == space_id)
        rt_build_cancel(b->running);
    pthread_mutex_unlock(&b->lock);
}

/* --- garbage collection ------------------------------------------------------------------ */

/* The collector (gc.h) runs here, on the build worker between two builds, rather than on
 * a thread of its own: no build can then be writing a layer, or have found an old one
 * "already unpacked" or "reusing layer" and be about to hand it over, while the
 * collector judges it unused.  That is the whole coordination: no lock to share with
 * build.c.  The build running finishes first; queued builds wait for the run (seconds). */
static uint64_t now_mono_ns(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static void gc_arm(struct rt_builder *b)
{
    b->gc_next_ns = b->cfg->gc_interval_s > 0
                        ? now_mono_ns() + (uint64_t) b->cfg->gc_interval_s * 1000000000ULL
                        : 0;
}

/* Whether a run is due; the caller holds b->lock. */
static bool gc_due(const struct rt_builder *b)
{
    return b->gc_reqs || (b->gc_next_ns && now_mono_ns() >= b->gc_next_ns);
}

/* Waits for work or the timer; the caller holds b->lock. */
static void wait_for_work(struct rt_builder *b)
{
    struct timespec ts;

    if (!b->gc_next_ns) {
        pthread_cond_wait(&b->cond, &b->lock);
        return;
    }
    ts.tv_sec = (time_t) (b->gc_next_ns / 1000000000ULL);
    ts.tv_nsec = (long) (b->gc_next_ns % 1000000000ULL);
    (void) pthread_cond_timedwait(&b->cond, &b->lock, &ts);
}

/* One run, for the oldest request or the timer.  Called without b->lock. */
static void run_gc(struct rt_builder *b)
{
    struct rt_gc_report mine = { 0 };
    struct rt_err err = { 0 };
    struct gc_req *q;
    int r;

    pthread_mutex_lock(&b->lock);
    q = b->gc_reqs;
    if (q) {
        b->gc_reqs = q->next;
        q->started = true;
    }
    gc_arm(b);
    pthread_mutex_unlock(&b->lock);

    r = rt_gc_run(b->cfg, b->st, q ? q->rep : &mine, q ? q->err : &err);
    if (r < 0)
        rt_log(RT_LOG_WARN, &builder_ctx, "garbage collection: %s, ignoring",
               (q ? q->err : &err)->msg);
    else
        rt_log(RT_LOG_INFO, &builder_ctx, "garbage collection: %zu removed, %llu bytes freed",
               (q ? q->rep : &mine)->n, (unsigned long long) (q ? q->rep : &mine)->freed_bytes);
    if (r >= 0)
        rt_metrics_gc((q ? q->rep : &mine)->freed_bytes);
    rt_gc_report_done(&mine);
    if (!q)
        return;
    pthread_mutex_lock(&b->lock);
    q->r = r;
    q->done = true;
    pthread_cond_broadcast(&b->gc_cond);
    pthread_mutex_unlock(&b->lock);
}

int rt_builder_gc(struct rt_builder *b, struct rt_gc_report *ret, struct rt_err *err)
{
    struct gc_req q = { .rep = ret, .err = err }, **tail;
    struct timespec until;

    if (!b)
        return rt_err_set(err, EINVAL, "no builder");
    (void) clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += GC_WAIT_S;
    pthread_mutex_lock(&b->lock);
    if (b->stopping) {
        pthread_mutex_unlock(&b->lock);
        return rt_err_set(err, ECANCELED, "runtimed is stopping");
    }
    for (tail = &b->gc_reqs; *tail; tail = &(*tail)->next)
        ;
    *tail = &q;
    pthread_cond_signal(&b->cond);
    while (!q.done) {
        if (pthread_cond_timedwait(&b->gc_cond, &b->lock, &until) == ETIMEDOUT && !q.started) {
            for (tail = &b->gc_reqs; *tail != &q; tail = &(*tail)->next)
                ;
            *tail = q.next;
            pthread_mutex_unlock(&b->lock);
            return rt_err_set(err, EBUSY, "a build is running: try again once it ends");
        }
    }
    pthread_mutex_unlock(&b->lock);
    return q.r;
}

/* --- the worker ------------------------------------------------------------------------- */

static void *worker(void *p)
{
    struct rt_builder *b = p;

    for (;;) {
        struct job *j;
        struct rt_build *rb = rt_build_new();

        pthread_mutex_lock(&b->lock);
        while (!b->queue && !b->stopping && !gc_due(b))
            wait_for_work(b);
        if (b->stopping) {
            pthread_mutex_unlock(&b->lock);
            rt_build_free(rb);
            break;
        }
        if (gc_due(b)) {
            pthread_mutex_unlock(&b->lock);
            rt_build_free(rb);
            run_gc(b);
            continue;
        }
        j = b->queue;
        b->queue = j->next;
        rt_metrics_build_queue(queue_length(b));
        b->running_space = j->space_id;
        b->running = rb;
        pthread_mutex_unlock(&b->lock);

        if (!rb)
            rt_log(RT_LOG_ERR, &builder_ctx, "out of memory: build of %.12s dropped", j->sha);
        else
            rt__builder_run(&(struct rt__builder_env){ .cfg = b->cfg,
                                                       .st = b->st,
                                                       .lc = b->lc,
                                                       .templates = b->templates,
                                                       .pip = &b->pip,
                                                       .stopping = &b->stopping_flag },
                            rb, j->space_id, j->sha, j->factory);

        pthread_mutex_lock(&b->lock);
        b->running = NULL;
        b->running_space = 0;
        pthread_mutex_unlock(&b->lock);
        rt_build_free(rb);
        free(j);
    }
    return NULL;
}

/* --- start and stop ------------------------------------------------------------------------ */

struct requeue {
    struct rt_builder *b;
    int64_t ids[256];
    size_t n;
};

static int on_unfinished(const struct rt_store_build *bd, void *userdata)
{
    struct requeue *q = userdata;
    struct rt_err err = { 0 };

    /* Oldest first: a later build of the same Space replaces an earlier one. */
    if (rt_builder_enqueue(q->b, bd->space_id, bd->sha, bd->factory, &err) < 0)
        rt_log(RT_LOG_WARN, &builder_ctx, "requeue build %lld: %s, ignoring", (long long) bd->id,
               err.msg);
    if (q->n < sizeof(q->ids) / sizeof(q->ids[0]))
        q->ids[q->n++] = bd->id;
    return 0;
}

static int on_unbuilt(const struct rt_store_build *bd, void *userdata)
{
    struct requeue *q = userdata;
    struct rt_err err = { 0 };

    if (rt_builder_enqueue(q->b, bd->space_id, bd->sha, false, &err) < 0)
        rt_log(RT_LOG_WARN, &builder_ctx, "queue the unbuilt push of Space %lld: %s, ignoring",
               (long long) bd->space_id, err.msg);
    else
        q->n++;
    return 0;
}

/* Builds a runtimed that died left unfinished or never started: queue them again,
 * never lose them. */
static void requeue_unfinished(struct rt_builder *b)
{
    struct requeue q = { .b = b };
    struct rt_err err = { 0 };
    size_t unfinished;

    rt_store_lock(b->st);
    if (rt_store_build_list_unfinished(b->st, on_unfinished, &q, &err) < 0)
        rt_log(RT_LOG_WARN, &builder_ctx, "list unfinished builds: %s, ignoring", err.msg);
    unfinished = q.n;
    for (size_t i = 0; i < q.n; i++)
        (void) rt_store_build_finish(b->st, q.ids[i], "interrupted", &err);
    /* Pushes that were only queued in memory have a revision and no build row yet:
     * build their newest commit (it supersedes the requeued one of the same Space). */
    q.n = 0;
    if (rt_store_build_list_unbuilt(b->st, on_unbuilt, &q, &err) < 0)
        rt_log(RT_LOG_WARN, &builder_ctx, "list unbuilt pushes: %s, ignoring", err.msg);
    rt_store_unlock(b->st);
    if (unfinished + q.n)
        rt_log(RT_LOG_INFO, &builder_ctx,
               "queued %zu build%s a previous runtimed left unfinished, %zu never started",
               unfinished, unfinished == 1 ? "" : "s", q.n);
}

int rt_builder_start(const struct rt_config *cfg, struct rt_store *st, struct rt_lifecycle *lc,
                     struct rt_builder **ret, struct rt_err *err)
{
    struct rt_builder *b = calloc(1, sizeof(*b));
    int r;

    if (!b)
        return rt_err_set(err, ENOMEM, "start the builder");
    b->cfg = cfg;
    b->st = st;
    b->lc = lc;
    (void) pthread_mutex_init(&b->lock, NULL);
    {
        /* Monotonic: the GC timer and the wait for it (rt_builder_gc) ignore clock steps. */
        pthread_condattr_t ca;
        (void) pthread_condattr_init(&ca);
        (void) pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        (void) pthread_cond_init(&b->cond, &ca);
        (void) pthread_cond_init(&b->gc_cond, &ca);
        (void) pthread_condattr_destroy(&ca);
    }
    gc_arm(b);
    r = rt_recipe_templates_load(cfg, &b->templates, err);
    if (r < 0) {
        rt_builder_stop(b);
        return rt_err_wrap(err, "load the SDK templates");
    }
    rt_pip_settings_load(cfg, NULL, &b->pip);
    requeue_unfinished(b);
    r = pthread_create(&b->thread, NULL, worker, b);
    if (r != 0) {
        rt_builder_stop(b);
        return rt_err_set(err, r, "start the build worker");
    }
    b->started = true;
    *ret = b;
    return 0;
}

void rt_builder_stop(struct rt_builder *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    atomic_store(&b->stopping_flag, true);
    if (b->running)
        rt_build_cancel(b->running);
    while (b->queue) {
        struct job *j = b->queue;
        b->queue = j->next;
        free(j);
    }
    while (b->gc_reqs) {
        struct gc_req *q = b->gc_reqs;
        b->gc_reqs = q->next;
        q->r = rt_err_set(q->err, ECANCELED, "runtimed is stopping");
        q->done = true;
    }
    pthread_cond_broadcast(&b->gc_cond);
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    if (b->started)
        (void) pthread_join(b->thread, NULL);
    rt_recipe_templates_free(b->templates);
    pthread_cond_destroy(&b->cond);
    pthread_cond_destroy(&b->gc_cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
