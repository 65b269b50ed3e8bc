/* The trace simulator: an event loop over arrivals, lease ends and scheduler
 * deadlines on a virtual millisecond clock.  Visitors refused (429, 503) do not
 * retry: the refusal counts are part of the result. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "sim.h"

#include "banned.h"

void gpu_trace_done(struct gpu_trace *t)
{
    free(t->reqs);
    t->reqs = NULL;
    t->n = 0;
}

static int field(char **p, char *out, size_t len)
{
    char *end = strchr(*p, ',');
    size_t n = end ? (size_t) (end - *p) : strlen(*p);

    while (n && ((*p)[n - 1] == '\n' || (*p)[n - 1] == '\r' || (*p)[n - 1] == ' '))
        n--;
    while (n && **p == ' ') {
        (*p)++;
        n--;
    }
    if (n >= len)
        return -1;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p = end ? end + 1 : *p + strlen(*p);
    return end ? 1 : 0;
}

static int number(const char *s, double max, double *ret)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < 0 || v > max)
        return -1;
    *ret = v;
    return 0;
}

static int arrival_cmp(const void *a, const void *b)
{
    const struct gpu_sim_req *x = a, *y = b;

    return (x->arrival_s > y->arrival_s) - (x->arrival_s < y->arrival_s);
}

int gpu_trace_parse(FILE *f, const char *name, struct gpu_trace *ret, struct rt_err *err)
{
    struct gpu_trace t = { 0 };
    size_t cap = 0, lineno = 0;
    char line[1024];

    while (fgets(line, sizeof(line), f)) {
        char arrival[32], cls[32], declared[32], actual[32], size[32] = "large", *p = line;
        struct gpu_sim_req *r;
        double v;
        int c, z = 0, more = 0;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            gpu_trace_done(&t);
            return rt_err_set(err, EINVAL, "%s:%zu: line too long", name, lineno);
        }
        p += strspn(p, " \t");
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p || strncmp(p, "arrival", 7) == 0)
            continue;
        if (t.n == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            struct gpu_sim_req *nr = reallocarray(t.reqs, ncap, sizeof(*nr));

            if (!nr) {
                gpu_trace_done(&t);
                return rt_err_set(err, ENOMEM, "%s: read trace", name);
            }
            t.reqs = nr;
            cap = ncap;
        }
        r = &t.reqs[t.n];
        memset(r, 0, sizeof(*r));
        if (field(&p, arrival, sizeof(arrival)) != 1 ||
            field(&p, r->space, sizeof(r->space)) != 1 ||
            field(&p, r->visitor, sizeof(r->visitor)) != 1 || field(&p, cls, sizeof(cls)) != 1 ||
            field(&p, declared, sizeof(declared)) != 1 ||
            (more = field(&p, actual, sizeof(actual))) < 0 ||
            (more && field(&p, size, sizeof(size)) != 0)) {
            gpu_trace_done(&t);
            return rt_err_set(
                err, EINVAL,
                "%s:%zu: expected arrival_s,space,visitor,class,declared_s,actual_s[,size]", name,
                lineno);
        }
        if (number(arrival, 1e9, &r->arrival_s) < 0 || !r->space[0] ||
            (c = gpu_class_from_name(cls)) < 0 || number(declared, 86400, &v) < 0 ||
            v != floor(v) || number(actual, 1e6, &r->actual_s) < 0 ||
            (z = gpu_size_from_name(size)) < 0) {
            gpu_trace_done(&t);
            return rt_err_set(err, EINVAL,
                              "%s:%zu: bad value (class: anonymous, user or pro; size: large or "
                              "xlarge)",
                              name, lineno);
        }
        r->size = (enum gpu_size) z;
        r->cls = (enum gpu_class) c;
        r->declared_s = (uint32_t) v;
        t.n++;
    }
    if (ferror(f)) {
        gpu_trace_done(&t);
        return rt_err_set(err, EIO, "%s: read", name);
    }
    if (t.n)
        qsort(t.reqs, t.n, sizeof(*t.reqs), arrival_cmp);
    *ret = t;
    return 0;
}

/* --- the event loop ----------------------------------------------------------------------- */

struct end_event {
    uint64_t at_ms;
    uint64_t id;
};

struct sim {
    const struct gpu_trace *trace;
    uint64_t now_ms;
    size_t *req_of_id; /* lease id -> trace index (ids count accepted requests from 1) */
    double *wait_s;    /* per trace index; < 0 until granted */
    double *run_s;     /* per trace index: GPU time used (actual, capped by the deadline) */
    bool *expired;
    struct end_event *heap; /* lease ends, min-heap by time */
    size_t n_heap;
    double busy_s;
    uint64_t last_end_ms;
    unsigned timed_out[_GPU_CLASS_MAX];
};

static void heap_push(struct sim *m, uint64_t at, uint64_t id)
{
    size_t i = m->n_heap++;

    m->heap[i] = (struct end_event){ at, id };
    while (i && m->heap[(i - 1) / 2].at_ms > m->heap[i].at_ms) {
        struct end_event tmp = m->heap[i];

        m->heap[i] = m->heap[(i - 1) / 2];
        m->heap[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
}

static struct end_event heap_pop(struct sim *m)
{
    struct end_event top = m->heap[0];
    size_t i = 0;

    m->heap[0] = m->heap[--m->n_heap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;

        if (l < m->n_heap && m->heap[l].at_ms < m->heap[min].at_ms)
            min = l;
        if (r < m->n_heap && m->heap[r].at_ms < m->heap[min].at_ms)
            min = r;
        if (min == i)
            break;
        struct end_event tmp = m->heap[i];
        m->heap[i] = m->heap[min];
        m->heap[min] = tmp;
        i = min;
    }
    return top;
}

static uint64_t ms(double s)
{
    return (uint64_t) llround(s * 1000.0);
}

/* A lease started now: it ends when the call finishes or at its deadline. */
static void started(struct sim *m, const struct gpu_lease_info *l)
{
    size_t i = m->req_of_id[l->id];
    const struct gpu_sim_req *r = &m->trace->reqs[i];
    uint64_t run = ms(r->actual_s), cap = (uint64_t) l->duration_s * 1000;

    m->wait_s[i] = (double) (m->now_ms - l->arrival_ms) / 1000.0;
    if (run > cap)
        run = cap;
    m->run_s[i] = (double) run / 1000.0;
    m->busy_s += m->run_s[i];
    if (m->now_ms + run > m->last_end_ms)
        m->last_end_ms = m->now_ms + run;
    /* A call that outlives its deadline is revoked by the tick, not released. */
    if (ms(r->actual_s) <= cap)
        heap_push(m, m->now_ms + run, l->id);
}

static void on_grant(void *ud, const struct gpu_lease_info *l)
{
    started(ud, l);
}

static void on_end(void *ud, const struct gpu_lease_info *l, enum gpu_end why)
{
    struct sim *m = ud;
    size_t i = m->req_of_id[l->id];

    if (why == GPU_END_EXPIRED)
        m->expired[i] = true;
    else if (why == GPU_END_TIMED_OUT)
        m->timed_out[m->trace->reqs[i].cls]++;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted @v. */
static double pct(const double *v, size_t n, double p)
{
    size_t k;

    if (!n)
        return 0;
    k = (size_t) ceil(p / 100.0 * (double) n);
    return v[k ? k - 1 : 0];
}

static void fill_waits(struct gpu_sim_stats *st, double *w, size_t n)
{
    qsort(w, n, sizeof(*w), dbl_cmp);
    st->wait_p50_s = pct(w, n, 50);
    st->wait_p99_s = pct(w, n, 99);
    st->wait_max_s = n ? w[n - 1] : 0;
}

static int visitor_cmp(const void *a, const void *b, void *ctx)
{
    const struct gpu_trace *t = ctx;
    const struct gpu_sim_req *x = &t->reqs[*(const size_t *) a], *y = &t->reqs[*(const size_t *) b];
    int c = strcmp(x->visitor, y->visitor);

    return c ? c : strcmp(x->visitor[0] ? "" : x->space, y->visitor[0] ? "" : y->space);
}

/* Jain's index over visitors (token-less calls: their Space) of the mean service
 * ratio run / (wait + run): 1 when every visitor waited in proportion to work. */
static double jain(const struct sim *m, const struct gpu_trace *t, unsigned *ret_visitors)
{
    _cleanup_free_ size_t *idx = calloc(t->n ? t->n : 1, sizeof(*idx));
    double sum = 0, sq = 0;
    unsigned nv = 0;

    if (!idx)
        return NAN;
    for (size_t i = 0; i < t->n; i++)
        idx[i] = i;
    qsort_r(idx, t->n, sizeof(*idx), visitor_cmp, (void *) t);
    for (size_t i = 0; i < t->n;) {
        double ratio = 0;
        unsigned k = 0;
        size_t j = i;

        for (; j < t->n && visitor_cmp(&idx[i], &idx[j], (void *) t) == 0; j++) {
            double run = fmax(m->run_s[idx[j]], 1.0);

            if (m->wait_s[idx[j]] < 0)
                continue;
            ratio += run / (m->wait_s[idx[j]] + run);
            k++;
        }
        if (k) {
            double x = ratio / k;

            sum += x;
            sq += x * x;
            nv++;
        }
        i = j;
    }
    *ret_visitors = nv;
    return nv && sq > 0 ? sum * sum / (nv * sq) : 1.0;
}

static void sim_free(struct sim *m)
{
    free(m->req_of_id);
    free(m->wait_s);
    free(m->run_s);
    free(m->expired);
    free(m->heap);
}

int gpu_sim_run(const struct gpu_trace *t, const struct gpu_sched_config *cfg, unsigned n_gpus,
                unsigned n_slices, struct gpu_sim_result *ret, struct rt_err *err)
{
    _cleanup_(sim_free) struct sim m = { .trace = t };
    unsigned n_units = n_gpus + n_slices;
    _cleanup_free_ struct gpu_slot *slots = calloc(n_units ? n_units : 1, sizeof(*slots));
    _cleanup_free_ double *w = calloc(t->n ? t->n : 1, sizeof(*w));
    struct gpu_sched_events ev = { on_grant, on_end, &m };
    struct gpu_sched *s = NULL;
    struct gpu_sim_result res = { 0 };
    size_t next = 0;
    int r;

    m.req_of_id = calloc(t->n + 2, sizeof(*m.req_of_id));
    m.wait_s = calloc(t->n ? t->n : 1, sizeof(*m.wait_s));
    m.run_s = calloc(t->n ? t->n : 1, sizeof(*m.run_s));
    m.expired = calloc(t->n ? t->n : 1, sizeof(*m.expired));
    m.heap = calloc(t->n ? t->n : 1, sizeof(*m.heap));
    if (!slots || !w || !m.req_of_id || !m.wait_s || !m.run_s || !m.expired || !m.heap)
        return rt_err_set(err, ENOMEM, "simulate");
    for (unsigned i = 0; i < n_units; i++) {
        slots[i].nvidia_index = i;
        slots[i].size = i < n_gpus ? GPU_SIZE_XLARGE : GPU_SIZE_LARGE;
        (void) snprintf(slots[i].uuid, sizeof(slots[i].uuid),
                        i < n_gpus ? "GPU-sim-%u" : "MIG-sim-%u", i);
    }
    for (size_t i = 0; i < t->n; i++)
        m.wait_s[i] = -1;
    r = gpu_sched_new(cfg, slots, n_units, &ev, &s, err);
    if (r < 0)
        return r;

    for (;;) {
        uint64_t at = UINT64_MAX, tick = gpu_sched_next_ms(s);

        if (next < t->n)
            at = ms(t->reqs[next].arrival_s);
        if (m.n_heap && m.heap[0].at_ms < at)
            at = m.heap[0].at_ms;
        if (tick < at)
            at = tick;
        if (at == UINT64_MAX)
            break;
        m.now_ms = at;
        /* Same instant: calls that finish release before deadlines revoke, and
         * both before new arrivals look for a unit. */
        while (m.n_heap && m.heap[0].at_ms <= at) {
            struct end_event e = heap_pop(&m);

            (void) gpu_sched_release(s, e.id, false, at, NULL, NULL);
        }
        if (tick <= at)
            gpu_sched_tick(s, at);
        while (next < t->n && ms(t->reqs[next].arrival_s) <= at) {
            const struct gpu_sim_req *q = &t->reqs[next];
            struct gpu_lease_req req = {
                .space = q->space,
                .identity = q->visitor[0] ? q->visitor : NULL,
                .cls = q->cls,
                .duration_s = q->declared_s,
                .task_id = next,
                .enable_queue = true,
                .size = q->size,
            };
            struct gpu_answer a;
            struct gpu_sim_stats *st = &res.cls[q->cls];

            r = gpu_sched_request(s, &req, at, &a, err);
            if (r < 0) {
                gpu_sched_free(s);
                return rt_err_wrap(err, "request %zu", next + 1);
            }
            st->requests++;
            if (a.verdict == GPU_GRANTED || a.verdict == GPU_QUEUED)
                m.req_of_id[a.lease.id] = next;
            if (a.verdict == GPU_GRANTED)
                started(&m, &a.lease);
            st->quota += a.verdict == GPU_QUOTA;
            st->too_long += a.verdict == GPU_TOO_LONG;
            st->none_free += a.verdict == GPU_NONE_FREE || a.verdict == GPU_NO_SIZE;
            next++;
        }
    }
    gpu_sched_free(s);

    for (int c = 0; c <= _GPU_CLASS_MAX; c++) {
        struct gpu_sim_stats *st = c < _GPU_CLASS_MAX ? &res.cls[c] : &res.all;
        size_t n = 0;

        for (size_t i = 0; i < t->n; i++) {
            const struct gpu_sim_req *q = &t->reqs[i];

            if (c < _GPU_CLASS_MAX && q->cls != (enum gpu_class) c)
                continue;
            if (m.wait_s[i] < 0)
                continue;
            w[n++] = m.wait_s[i];
            st->granted++;
            st->expired += m.expired[i];
            st->gpu_s += m.run_s[i];
        }
        if (c < _GPU_CLASS_MAX) {
            st->timed_out = m.timed_out[c];
        } else {
            for (int k = 0; k < _GPU_CLASS_MAX; k++) {
                st->requests += res.cls[k].requests;
                st->quota += res.cls[k].quota;
                st->too_long += res.cls[k].too_long;
                st->none_free += res.cls[k].none_free;
                st->timed_out += res.cls[k].timed_out;
            }
        }
        fill_waits(st, w, n);
    }
    if (t->n) {
        uint64_t first = ms(t->reqs[0].arrival_s);

        res.makespan_s = m.last_end_ms > first ? (double) (m.last_end_ms - first) / 1000.0 : 0;
    }
    res.utilization = res.makespan_s > 0 && n_units ? m.busy_s / (n_units * res.makespan_s) : 0;
    res.jain = jain(&m, t, &res.visitors);
    *ret = res;
    return 0;
}
