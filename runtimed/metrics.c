/* The counters behind /metrics and their rendering in the Prometheus text format. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "store.h"
#include "version.h"
#include "banned.h"

/* A histogram with fixed upper bounds; the sum kept in microunits so it stays atomic. */
#define MAX_BUCKETS 12
struct histo {
    const double *le;
    size_t n;
    atomic_uint_fast64_t bucket[MAX_BUCKETS]; /* not cumulative: rendering adds them up */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_micro;
};

static const double build_le[] = { 10, 30, 60, 120, 300, 600, 1200, 1800, 3600 };
static const double wake_le[] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

static struct histo build_hist = { .le = build_le, .n = sizeof(build_le) / sizeof(build_le[0]) };
static struct histo wake_hist = { .le = wake_le, .n = sizeof(wake_le) / sizeof(wake_le[0]) };
static atomic_uint_fast64_t builds_ok, builds_failed, wakes_ok, wakes_failed, sleeps_light,
    sleeps_deep, starts_ok, starts_failed, pushes, gc_runs, gc_freed;
static atomic_int_fast64_t build_queue, gpu_dedicated, zero_leases, zero_queued, node_gpus;
static atomic_int_fast64_t started_at; /* unix seconds the process started */

__attribute__((constructor)) static void note_start(void)
{
    atomic_store(&started_at, (int_fast64_t) time(NULL));
}

static void observe(struct histo *h, double v)
{
    size_t i = 0;

    if (!(v >= 0) || !isfinite(v)) /* NaN, negative and infinite values are dropped */
        return;
    while (i < h->n && v > h->le[i])
        i++;
    if (i < h->n)
        atomic_fetch_add(&h->bucket[i], 1);
    atomic_fetch_add(&h->count, 1);
    atomic_fetch_add(&h->sum_micro, (uint_fast64_t) llround(v * 1e6));
}

void rt_metrics_build_done(double seconds, bool ok)
{
    observe(&build_hist, seconds);
    atomic_fetch_add(ok ? &builds_ok : &builds_failed, 1);
}

void rt_metrics_build_queue(int64_t queued)
{
    atomic_store(&build_queue, queued);
}

void rt_metrics_wake(double ms, bool ok)
{
    if (ok)
        observe(&wake_hist, ms / 1000.0);
    atomic_fetch_add(ok ? &wakes_ok : &wakes_failed, 1);
}

void rt_metrics_sleep(bool deep)
{
    atomic_fetch_add(deep ? &sleeps_deep : &sleeps_light, 1);
}

void rt_metrics_start(bool ok)
{
    atomic_fetch_add(ok ? &starts_ok : &starts_failed, 1);
}

void rt_metrics_gpu(int64_t dedicated_leased, int64_t zero_leases_now, int64_t zero_queued_now)
{
    atomic_store(&gpu_dedicated, dedicated_leased);
    atomic_store(&zero_leases, zero_leases_now);
    atomic_store(&zero_queued, zero_queued_now);
}

void rt_metrics_node_gpus(int64_t n)
{
    atomic_store(&node_gpus, n);
}

void rt_metrics_push(void)
{
    atomic_fetch_add(&pushes, 1);
}

void rt_metrics_gc(uint64_t bytes)
{
    atomic_fetch_add(&gc_runs, 1);
    atomic_fetch_add(&gc_freed, bytes);
}

/* --- rendering ----------------------------------------------------------------------- */

/* The stages a Space can be in (DESIGN.md), so each is a series even at zero. */
static const char *const stages[] = { "NO_APP_FILE",      "CONFIG_ERROR",  "BUILDING",
                                      "BUILD_ERROR",      "APP_STARTING",  "RUNNING",
                                      "RUNNING_BUILDING", "RUNTIME_ERROR", "SLEEPING",
                                      "PAUSED",           "STOPPED",       "DELETING" };
#define N_STAGES (sizeof(stages) / sizeof(stages[0]))

/* Label values: only letters, digits and "-_./" pass, so a name can never break the
 * format (names are already limited to those by names.c; this is belt and braces). */
static const char *label(const char *s, char *buf, size_t len)
{
    size_t j = 0;

    for (; *s && j + 1 < len; s++)
        buf[j++] = (strchr("\"\\\n", *s) || (unsigned char) *s < 0x20) ? '_' : *s;
    buf[j] = '\0';
    return buf;
}

struct tally {
    char names[64][RT_STAGE_SIZE + RT_TIER_SIZE];
    int64_t counts[64];
    size_t n;
};

static void tally_add(struct tally *t, const char *name, int64_t by)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0) {
            t->counts[i] += by;
            return;
        }
    if (t->n == sizeof(t->counts) / sizeof(t->counts[0]))
        return; /* bounded: a scrape never grows without limit */
    (void) snprintf(t->names[t->n], sizeof(t->names[0]), "%s", name);
    t->counts[t->n++] = by;
}

struct scan {
    struct tally stage, hardware, owner, builds;
    struct tally tier_gpus, tier_zero; /* per tier: GPUs it dedicates; 1 when ZeroGPU */
    int64_t gpus_requested, zero_spaces;
};

static int on_tier(const struct rt_tier *t, void *userdata)
{
    struct scan *sc = userdata;

    tally_add(&sc->tier_gpus, t->name, t->gpus);
    tally_add(&sc->tier_zero, t->name, t->zero);
    return 0;
}

static int64_t tally_get(const struct tally *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0)
            return t->counts[i];
    return 0;
}

static int on_space(const struct rt_space *s, void *userdata)
{
    struct scan *sc = userdata;

    tally_add(&sc->stage, s->paused ? "PAUSED" : s->stage, 1);
    tally_add(&sc->hardware, s->hardware, 1);
    tally_add(&sc->owner, s->owner, 1);
    if (!s->paused) {
        sc->gpus_requested += tally_get(&sc->tier_gpus, s->hardware);
        sc->zero_spaces += tally_get(&sc->tier_zero, s->hardware);
    }
    return 0;
}

static int on_build_status(const char *status, int64_t n, void *userdata)
{
    tally_add(&((struct scan *) userdata)->builds, status, n);
    return 0;
}

static void render_histo(FILE *f, const char *name, const char *help, struct histo *h)
{
    uint_fast64_t cum = 0;

    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < h->n; i++) {
        cum += atomic_load(&h->bucket[i]);
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long) cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long) atomic_load(&h->count));
    fprintf(f, "%s_sum %.6f\n", name, (double) atomic_load(&h->sum_micro) / 1e6);
    fprintf(f, "%s_count %llu\n", name, (unsigned long long) atomic_load(&h->count));
}

static void counter2(FILE *f, const char *name, const char *help, const char *lname, const char *a,
                     atomic_uint_fast64_t *va, const char *b, atomic_uint_fast64_t *vb)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    fprintf(f, "%s{%s=\"%s\"} %llu\n", name, lname, a, (unsigned long long) atomic_load(va));
    fprintf(f, "%s{%s=\"%s\"} %llu\n", name, lname, b, (unsigned long long) atomic_load(vb));
}

static void gauge(FILE *f, const char *name, const char *help, long long v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

static void tally_gauge(FILE *f, const char *name, const char *help, const char *lname,
                        const struct tally *t)
{
    char buf[RT_STAGE_SIZE + RT_TIER_SIZE];

    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (size_t i = 0; i < t->n; i++)
        fprintf(f, "%s{%s=\"%s\"} %lld\n", name, lname, label(t->names[i], buf, sizeof(buf)),
                (long long) t->counts[i]);
}

static void memstream_closep(FILE **f)
{
    if (*f)
        (void) fclose(*f);
}

int rt_metrics_render(struct rt_store *st, char **ret, size_t *ret_len, struct rt_err *err)
{
    _cleanup_(memstream_closep) FILE *f = NULL;
    _cleanup_free_ char *buf = NULL;
    struct scan *sc;
    size_t len = 0;
    int users, r;
    sc = calloc(1, sizeof(*sc));
    if (!sc)
        return rt_err_set(err, ENOMEM, "allocate metrics");
    for (size_t i = 0; i < N_STAGES; i++)
        tally_add(&sc->stage, stages[i], 0);
    rt_store_lock(st);
    r = rt_store_tier_list(st, on_tier, sc, err);
    if (r >= 0)
        r = rt_store_space_list(st, 0, on_space, sc, err);
    if (r >= 0)
        r = rt_store_build_stats(st, on_build_status, sc, err);
    users = r >= 0 ? rt_store_user_count(st, false, err) : 0;
    rt_store_unlock(st);
    if (r < 0 || users < 0) {
        free(sc);
        return r < 0 ? r : users;
    }

    f = open_memstream(&buf, &len);
    if (!f) {
        free(sc);
        return rt_err_set(err, ENOMEM, "open_memstream");
    }
    fprintf(f,
            "# HELP spaceport_info The running runtimed's version.\n"
            "# TYPE spaceport_info gauge\nspaceport_info{version=\"%s\"} 1\n",
            SPACEPORT_VERSION);
    gauge(f, "spaceport_start_time_seconds", "When runtimed started (unix seconds).",
          (long long) atomic_load(&started_at));
    tally_gauge(f, "spaceport_spaces", "Spaces by the stage runtimed reports.", "stage",
                &sc->stage);
    tally_gauge(f, "spaceport_spaces_by_hardware", "Spaces by the hardware tier they asked for.",
                "hardware", &sc->hardware);
    tally_gauge(f, "spaceport_user_spaces", "Spaces each user owns (quota use).", "user",
                &sc->owner);
    gauge(f, "spaceport_users", "Users.", users);
    tally_gauge(f, "spaceport_builds", "Builds in the store by status.", "status", &sc->builds);
    gauge(f, "spaceport_build_queue_length", "Builds waiting in the builder's queue.",
          (long long) atomic_load(&build_queue));
    counter2(f, "spaceport_builds_finished_total", "Builds finished since runtimed started.",
             "result", "ok", &builds_ok, "error", &builds_failed);
    render_histo(f, "spaceport_build_duration_seconds", "How long builds took.", &build_hist);
    counter2(f, "spaceport_wakes_total", "Sleeping Spaces woken since runtimed started.", "result",
             "ok", &wakes_ok, "error", &wakes_failed);
    render_histo(f, "spaceport_wake_duration_seconds",
                 "From a wake request to the Space's first healthy answer.", &wake_hist);
    counter2(f, "spaceport_sleeps_total", "Spaces put to sleep (light: frozen, deep: stopped).",
             "kind", "light", &sleeps_light, "deep", &sleeps_deep);
    counter2(f, "spaceport_space_starts_total", "App processes started.", "result", "ok",
             &starts_ok, "error", &starts_failed);
    fprintf(f,
            "# HELP spaceport_pushes_total Pushes accepted.\n"
            "# TYPE spaceport_pushes_total counter\nspaceport_pushes_total %llu\n",
            (unsigned long long) atomic_load(&pushes));
    fprintf(f,
            "# HELP spaceport_gc_runs_total Garbage collections of build outputs.\n"
            "# TYPE spaceport_gc_runs_total counter\nspaceport_gc_runs_total %llu\n"
            "# HELP spaceport_gc_freed_bytes_total Bytes the garbage collector freed.\n"
            "# TYPE spaceport_gc_freed_bytes_total counter\nspaceport_gc_freed_bytes_total %llu\n",
            (unsigned long long) atomic_load(&gc_runs),
            (unsigned long long) atomic_load(&gc_freed));
    gauge(f, "spaceport_node_gpus", "GPUs this node offers.", (long long) atomic_load(&node_gpus));
    gauge(f, "spaceport_gpus_requested",
          "Dedicated GPUs the tiers of all Spaces not paused ask for (GPU quota use).",
          (long long) sc->gpus_requested);
    gauge(f, "spaceport_zerogpu_spaces", "Spaces not paused on a ZeroGPU tier.",
          (long long) sc->zero_spaces);
    gauge(f, "spaceport_gpu_dedicated_leased", "Dedicated GPUs leased to Spaces now.",
          (long long) atomic_load(&gpu_dedicated));
    gauge(f, "spaceport_zerogpu_leases", "ZeroGPU leases held now.",
          (long long) atomic_load(&zero_leases));
    gauge(f, "spaceport_zerogpu_queue_length", "ZeroGPU requests waiting for a slice.",
          (long long) atomic_load(&zero_queued));
    free(sc);
    if (fflush(f) != 0 || ferror(f))
        return rt_err_set(err, ENOMEM, "render metrics");
    (void) fclose(f);
    f = NULL;
    *ret_len = len;
    *ret = TAKE_PTR(buf);
    return 0;
}
