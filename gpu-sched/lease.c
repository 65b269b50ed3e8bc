/* ZeroGPU leases: a pool of slots, a priority queue with aging, per-Space caps,
 * deadlines, and charging of the time actually used.  No clock is read here
 * (lease.h): time comes in as now_ms. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cleanup.h"
#include "internal.h"

#include "banned.h"

struct ticket {
    struct gpu_lease_info info;
    uint64_t key;         /* queue order: smaller first, ties by id */
    uint64_t duration_ms; /* declared: the deadline */
    unsigned weight;      /* quota charge per second on the GPU: 2 for xlarge, else 1 */
    struct gpu__quota_rec *quota;
};

struct slot {
    struct gpu_slot slot;
    struct ticket *lease; /* NULL when free */
    char last_space[GPU_ID_MAX];
    bool last_clean; /* the last lease ended by /release without fail */
    pid_t last_pid;  /* its worker, which the client keeps alive for reuse */
};

struct gpu_sched {
    struct gpu_sched_config cfg;
    struct slot *slots;
    size_t n_slots;
    struct ticket **queue; /* sorted by key */
    size_t qlen, qcap;
    struct gpu__quota quota;
    struct gpu_sched_events ev;
    uint64_t next_id;
};

static const char *const class_names[_GPU_CLASS_MAX] = { "anonymous", "user", "pro" };
static const char *const size_names[_GPU_SIZE_MAX] = { "large", "xlarge" };

const char *gpu_size_name(enum gpu_size z)
{
    return (unsigned) z < _GPU_SIZE_MAX ? size_names[z] : "?";
}

int gpu_size_from_name(const char *name)
{
    for (int i = 0; name && i < _GPU_SIZE_MAX; i++)
        if (strcmp(name, size_names[i]) == 0)
            return i;
    return -1;
}

const char *gpu_class_name(enum gpu_class c)
{
    return (unsigned) c < _GPU_CLASS_MAX ? class_names[c] : "?";
}

int gpu_class_from_name(const char *name)
{
    for (int i = 0; name && i < _GPU_CLASS_MAX; i++)
        if (strcmp(name, class_names[i]) == 0)
            return i;
    if (name && strcmp(name, "anon") == 0)
        return GPU_CLASS_ANON;
    return -1;
}

void gpu_sched_config_default(struct gpu_sched_config *cfg)
{
    *cfg = (struct gpu_sched_config){
        .policy = GPU_POLICY_PRIORITY,
        .default_duration_s = 60,
        .max_duration_s = 300,
        .space_concurrency = 2,
        .queue_max = 1024,
        .queue_timeout_s = 0,
        .quota_s = { [GPU_CLASS_ANON] = 120, [GPU_CLASS_USER] = 300, [GPU_CLASS_PRO] = 2400 },
        .quota_period_s = 86400,
        .duration_penalty_pct = 100,
        .class_penalty_s = { [GPU_CLASS_ANON] = 60, [GPU_CLASS_USER] = 30, [GPU_CLASS_PRO] = 0 },
        .quota_penalty_s = 60,
        .max_penalty_s = 300,
    };
}

int gpu_sched_new(const struct gpu_sched_config *cfg, const struct gpu_slot *slots, size_t n,
                  const struct gpu_sched_events *ev, struct gpu_sched **ret_sched,
                  struct rt_err *err)
{
    struct gpu_sched *s;

    for (size_t i = 0; i < n; i++)
        if ((unsigned) slots[i].size >= _GPU_SIZE_MAX)
            return rt_err_set(err, EINVAL, "gpu slot %zu: unknown size %d", i, (int) slots[i].size);
    s = calloc(1, sizeof(*s));
    if (!s)
        return rt_err_set(err, ENOMEM, "allocate gpu scheduler");
    s->cfg = *cfg;
    if (!s->cfg.default_duration_s)
        s->cfg.default_duration_s = 60;
    if (ev)
        s->ev = *ev;
    s->n_slots = n;
    s->slots = calloc(n ? n : 1, sizeof(*s->slots));
    if (!s->slots || gpu__quota_init(&s->quota, (uint64_t) cfg->quota_period_s * 1000) < 0) {
        gpu_sched_free(s);
        return rt_err_set(err, ENOMEM, "allocate gpu scheduler");
    }
    for (size_t i = 0; i < n; i++)
        s->slots[i].slot = slots[i];
    *ret_sched = s;
    return 0;
}

void gpu_sched_free(struct gpu_sched *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->slots && i < s->n_slots; i++)
        free(s->slots[i].lease);
    for (size_t i = 0; i < s->qlen; i++)
        free(s->queue[i]);
    free(s->queue);
    free(s->slots);
    gpu__quota_done(&s->quota);
    free(s);
}

/* allowTokens are bearer secrets on the device API: unguessable, from getrandom. */
static int make_token(char *out)
{
    unsigned char raw[GPU_TOKEN_LEN / 2];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t) sizeof(raw))
        return -errno;
    for (size_t i = 0; i < sizeof(raw); i++)
        (void) snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static unsigned space_active(const struct gpu_sched *s, const char *space)
{
    unsigned n = 0;

    for (size_t i = 0; i < s->n_slots; i++)
        n += s->slots[i].lease && strcmp(s->slots[i].lease->info.space, space) == 0;
    return n;
}

static bool space_at_cap(const struct gpu_sched *s, const char *space)
{
    return s->cfg.space_concurrency && space_active(s, space) >= s->cfg.space_concurrency;
}

/* A free slot of at least @size for @space.  A large request takes a MIG slice
 * before a whole GPU, so whole GPUs stay free for xlarge; within that, the slot
 * its last clean lease used (its worker is warm there) before the first free one.
 * -1 when none is free. */
static ssize_t pick_slot(const struct gpu_sched *s, const char *space, enum gpu_size size)
{
    ssize_t best = -1;
    int best_rank = 4;

    for (size_t i = 0; i < s->n_slots; i++) {
        const struct slot *sl = &s->slots[i];
        int rank;

        if (sl->lease || sl->slot.size < size)
            continue;
        /* 0: same size, warm; 1: same size; 2: larger, warm; 3: larger. */
        rank = (sl->slot.size > size) * 2 + !(sl->last_clean && strcmp(sl->last_space, space) == 0);
        if (rank < best_rank) {
            best = (ssize_t) i;
            best_rank = rank;
        }
    }
    return best;
}

/* Whether any slot of the pool can ever serve @size. */
static bool pool_has(const struct gpu_sched *s, enum gpu_size size)
{
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].slot.size >= size)
            return true;
    return false;
}

static void grant(struct gpu_sched *s, struct ticket *t, size_t slot, uint64_t now_ms)
{
    struct slot *sl = &s->slots[slot];

    t->info.granted = true;
    t->info.slot = (unsigned) slot;
    t->info.nvidia_index = sl->slot.nvidia_index;
    memcpy(t->info.uuid, sl->slot.uuid, sizeof(t->info.uuid));
    t->info.idle = sl->last_clean && strcmp(sl->last_space, t->info.space) == 0;
    /* Device cgroups check at open() only: a kept worker's open fds outlive any
     * deny, so the only way to take the unit from it is to end it. */
    t->info.evict_pid = t->info.idle ? 0 : sl->last_pid;
    sl->last_pid = 0;
    t->info.granted_ms = now_ms;
    t->info.deadline_ms = now_ms + t->duration_ms;
    sl->lease = t;
}

static void queue_remove(struct gpu_sched *s, size_t i)
{
    memmove(&s->queue[i], &s->queue[i + 1], (s->qlen - i - 1) * sizeof(*s->queue));
    s->qlen--;
}

/* Grants queued requests in key order while slots are free; a request whose Space
 * is at its cap, or that no free slot fits (an xlarge while only MIG slices are
 * free), is passed over (it keeps its place), not granted: a large behind it may
 * take the slice.  Key order still decides who gets a freed whole GPU. */
static void dispatch(struct gpu_sched *s, uint64_t now_ms)
{
    for (size_t i = 0; i < s->qlen;) {
        struct ticket *t = s->queue[i];
        ssize_t slot;

        if (space_at_cap(s, t->info.space)) {
            i++;
            continue;
        }
        slot = pick_slot(s, t->info.space, t->info.size);
        if (slot < 0 && t->info.size == GPU_SIZE_LARGE)
            return; /* a large fits any slot: none is free */
        if (slot < 0) {
            i++;
            continue;
        }
        queue_remove(s, i);
        grant(s, t, (size_t) slot, now_ms);
        if (s->ev.on_grant)
            s->ev.on_grant(s->ev.userdata, &t->info);
    }
}

/* Ends a granted lease: charge, remember the slot's last user, free the slot. */
static void end_lease(struct gpu_sched *s, struct ticket *t, enum gpu_end why, bool worker_kept,
                      uint64_t now_ms, uint64_t *ret_charged_ms)
{
    struct slot *sl = &s->slots[t->info.slot];
    uint64_t used = now_ms > t->info.granted_ms ? now_ms - t->info.granted_ms : 0;

    /* Actual time, never more than declared: the deadline stops the rest. */
    if (used > t->duration_ms)
        used = t->duration_ms;
    used *= t->weight;
    gpu__quota_settle(t->quota, t->duration_ms * t->weight, used);
    memcpy(sl->last_space, t->info.space, sizeof(sl->last_space));
    sl->last_clean = why == GPU_END_RELEASED;
    /* Only a worker the client keeps is remembered for eviction: a dead or killed
     * one's pid may be reused by an unrelated process. */
    sl->last_pid = worker_kept ? t->info.pid : 0;
    sl->lease = NULL;
    if (ret_charged_ms)
        *ret_charged_ms = used;
}

/* @duration_ms is the weighted one: an xlarge call counts as twice as long. */
static uint64_t penalty_ms(const struct gpu_sched *s, const struct gpu_lease_req *req,
                           uint64_t duration_ms, int64_t left_ms)
{
    const struct gpu_sched_config *c = &s->cfg;
    uint32_t quota = c->quota_s[req->cls];
    uint64_t p, cap = (uint64_t) c->max_penalty_s * 1000;

    if (c->policy == GPU_POLICY_FIFO)
        return 0;
    p = duration_ms * c->duration_penalty_pct / 100 +
        (uint64_t) c->class_penalty_s[req->cls] * 1000;
    if (quota) {
        uint64_t q = (uint64_t) quota * 1000;
        uint64_t used = left_ms >= (int64_t) q ? 0 : left_ms <= 0 ? q : q - (uint64_t) left_ms;

        p += (uint64_t) c->quota_penalty_s * 1000 * used / q;
    }
    return p < cap ? p : cap;
}

static int enqueue(struct gpu_sched *s, struct ticket *t)
{
    size_t lo = 0, hi = s->qlen;

    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 64;
        struct ticket **q = reallocarray(s->queue, cap, sizeof(*q));

        if (!q)
            return -ENOMEM;
        s->queue = q;
        s->qcap = cap;
    }
    /* After every equal key: ties keep arrival order. */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (s->queue[mid]->key <= t->key)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(&s->queue[lo + 1], &s->queue[lo], (s->qlen - lo) * sizeof(*s->queue));
    s->queue[lo] = t;
    s->qlen++;
    return 0;
}

static ssize_t queue_find(const struct gpu_sched *s, uint64_t id)
{
    for (size_t i = 0; i < s->qlen; i++)
        if (s->queue[i]->info.id == id)
            return (ssize_t) i;
    return -1;
}

static struct slot *slot_find(const struct gpu_sched *s, uint64_t id)
{
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].lease && s->slots[i].lease->info.id == id)
            return &s->slots[i];
    return NULL;
}

static int64_t ceil_s(int64_t ms)
{
    return ms > 0 ? (ms + 999) / 1000 : ms / 1000;
}

int gpu_sched_request(struct gpu_sched *s, const struct gpu_lease_req *req, uint64_t now_ms,
                      struct gpu_answer *ret, struct rt_err *err)
{
    const struct gpu_sched_config *c = &s->cfg;
    struct gpu__quota_rec *q;
    struct ticket *t;
    uint32_t duration = req->duration_s ? req->duration_s : c->default_duration_s;
    unsigned weight = req->size == GPU_SIZE_XLARGE ? 2 : 1;
    uint32_t quota;
    int64_t left_ms;
    ssize_t slot;

    memset(ret, 0, sizeof(*ret));
    if (!req->space || !*req->space || strlen(req->space) >= GPU_ID_MAX ||
        (req->identity && strlen(req->identity) >= GPU_ID_MAX))
        return rt_err_set(err, EINVAL, "gpu request: a Space id and identity under %d bytes",
                          GPU_ID_MAX);
    if ((unsigned) req->cls >= _GPU_CLASS_MAX)
        return rt_err_set(err, EINVAL, "gpu request: unknown visitor class %d", (int) req->cls);
    if ((unsigned) req->size >= _GPU_SIZE_MAX)
        return rt_err_set(err, EINVAL, "gpu request: unknown gpu size %d", (int) req->size);
    q = gpu__quota_get(&s->quota, req->space, req->identity, true, now_ms);
    if (!q)
        return rt_err_set(err, ENOMEM, "gpu request");
    q->cls = req->cls;
    quota = c->quota_s[req->cls];
    left_ms = gpu__quota_left_ms(q, quota);
    ret->left_s = quota ? (left_ms > 0 ? left_ms / 1000 : 0) : INT32_MAX;
    /* Never fits: refused at once rather than queued forever. */
    if (s->n_slots && !pool_has(s, req->size)) {
        ret->verdict = GPU_NO_SIZE;
        return 0;
    }
    if (c->max_duration_s && duration > c->max_duration_s) {
        ret->verdict = GPU_TOO_LONG;
        ret->wait_s = -1;
        return 0;
    }
    if (quota && (int64_t) duration * 1000 * weight > left_ms) {
        ret->verdict = GPU_QUOTA;
        ret->wait_s =
            q->window
                ? ceil_s((int64_t) (q->window_start_ms + s->quota.period_ms) - (int64_t) now_ms)
                : (int64_t) (s->quota.period_ms / 1000);
        return 0;
    }
    slot = space_at_cap(s, req->space) ? -1 : pick_slot(s, req->space, req->size);
    if (slot < 0 && (!req->enable_queue || !s->n_slots || s->qlen >= c->queue_max)) {
        ret->verdict = GPU_NONE_FREE;
        return 0;
    }

    t = calloc(1, sizeof(*t));
    if (!t)
        return rt_err_set(err, ENOMEM, "gpu request");
    if (make_token(t->info.token) < 0) {
        free(t);
        return rt_err_set(err, errno, "gpu request: getrandom");
    }
    t->info.id = ++s->next_id;
    (void) snprintf(t->info.space, sizeof(t->info.space), "%s", req->space);
    (void) snprintf(t->info.identity, sizeof(t->info.identity), "%s", q->key);
    t->info.cls = req->cls;
    t->info.task_id = req->task_id;
    t->info.duration_s = duration;
    t->info.size = req->size;
    t->info.arrival_ms = now_ms;
    t->duration_ms = (uint64_t) duration * 1000;
    t->weight = weight;
    t->quota = q;
    t->key = now_ms + penalty_ms(s, req, t->duration_ms * weight, left_ms);

    if (slot >= 0) {
        grant(s, t, (size_t) slot, now_ms);
        ret->verdict = GPU_GRANTED;
    } else {
        if (enqueue(s, t) < 0) {
            free(t);
            return rt_err_set(err, ENOMEM, "gpu request");
        }
        ret->verdict = GPU_QUEUED;
        ret->position = gpu_sched_position(s, t->info.id);
        ret->reason = space_at_cap(s, req->space) ? GPU_WAIT_CONCURRENCY : GPU_WAIT_NODE;
    }
    gpu__quota_reserve(q, t->duration_ms * weight, now_ms);
    ret->lease = t->info;
    left_ms = gpu__quota_left_ms(q, quota);
    ret->left_s = quota ? (left_ms > 0 ? left_ms / 1000 : 0) : INT32_MAX;
    return 0;
}

uint64_t gpu_sched_find_token(const struct gpu_sched *s, const char *token)
{
    if (!token || strlen(token) != GPU_TOKEN_LEN)
        return 0;
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].lease && strcmp(s->slots[i].lease->info.token, token) == 0)
            return s->slots[i].lease->info.id;
    for (size_t i = 0; i < s->qlen; i++)
        if (strcmp(s->queue[i]->info.token, token) == 0)
            return s->queue[i]->info.id;
    return 0;
}

int gpu_sched_allow(struct gpu_sched *s, uint64_t id, pid_t pid, struct gpu_lease_info *ret_lease)
{
    struct slot *sl = slot_find(s, id);

    if (!sl)
        return queue_find(s, id) >= 0 ? -EAGAIN : -ENOENT;
    if (pid <= 1)
        return -EINVAL;
    sl->lease->info.pid = pid;
    if (ret_lease)
        *ret_lease = sl->lease->info;
    return 0;
}

int gpu_sched_release(struct gpu_sched *s, uint64_t id, bool fail, uint64_t now_ms,
                      uint64_t *ret_charged_ms, bool *ret_used)
{
    struct slot *sl = slot_find(s, id);
    struct ticket *t;
    ssize_t i;

    if (sl) {
        t = sl->lease;
        if (ret_used)
            *ret_used = t->info.pid != 0;
        end_lease(s, t, fail ? GPU_END_FAILED : GPU_END_RELEASED, true, now_ms, ret_charged_ms);
        free(t);
        dispatch(s, now_ms);
        return 0;
    }
    i = queue_find(s, id);
    if (i < 0)
        return -ENOENT;
    t = s->queue[i];
    queue_remove(s, (size_t) i);
    gpu__quota_settle(t->quota, t->duration_ms * t->weight, 0);
    free(t);
    if (ret_charged_ms)
        *ret_charged_ms = 0;
    if (ret_used)
        *ret_used = false;
    dispatch(s, now_ms);
    return 0;
}

unsigned gpu_sched_release_pid(struct gpu_sched *s, pid_t pid, uint64_t now_ms)
{
    unsigned n = 0;

    for (size_t i = 0; pid > 0 && i < s->n_slots; i++) {
        struct ticket *t = s->slots[i].lease;

        if (t && t->info.pid == pid) {
            end_lease(s, t, GPU_END_FAILED, false, now_ms, NULL);
            free(t);
            n++;
        }
    }
    if (n)
        dispatch(s, now_ms);
    return n;
}

unsigned gpu_sched_release_space(struct gpu_sched *s, const char *space, uint64_t now_ms)
{
    unsigned n = 0;

    for (size_t i = 0; i < s->n_slots; i++) {
        struct ticket *t = s->slots[i].lease;

        if (t && strcmp(t->info.space, space) == 0) {
            end_lease(s, t, GPU_END_FAILED, false, now_ms, NULL);
            free(t);
            n++;
        }
    }
    for (size_t i = 0; i < s->qlen;) {
        struct ticket *t = s->queue[i];

        if (strcmp(t->info.space, space) != 0) {
            i++;
            continue;
        }
        queue_remove(s, i);
        gpu__quota_settle(t->quota, t->duration_ms * t->weight, 0);
        free(t);
        n++;
    }
    dispatch(s, now_ms);
    return n;
}

void gpu_sched_tick(struct gpu_sched *s, uint64_t now_ms)
{
    for (size_t i = 0; i < s->n_slots; i++) {
        struct ticket *t = s->slots[i].lease;

        if (!t || now_ms < t->info.deadline_ms)
            continue;
        end_lease(s, t, GPU_END_EXPIRED, false, t->info.deadline_ms, NULL);
        /* The caller kills the worker and denies the device before we hand the
         * unit to anyone else (dispatch below). */
        if (s->ev.on_end)
            s->ev.on_end(s->ev.userdata, &t->info, GPU_END_EXPIRED);
        free(t);
    }
    for (size_t i = 0; s->cfg.queue_timeout_s && i < s->qlen;) {
        struct ticket *t = s->queue[i];

        if (now_ms < t->info.arrival_ms + (uint64_t) s->cfg.queue_timeout_s * 1000) {
            i++;
            continue;
        }
        queue_remove(s, i);
        gpu__quota_settle(t->quota, t->duration_ms * t->weight, 0);
        if (s->ev.on_end)
            s->ev.on_end(s->ev.userdata, &t->info, GPU_END_TIMED_OUT);
        free(t);
    }
    dispatch(s, now_ms);
    gpu__quota_gc(&s->quota, now_ms);
}

uint64_t gpu_sched_next_ms(const struct gpu_sched *s)
{
    uint64_t next = UINT64_MAX;

    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].lease && s->slots[i].lease->info.deadline_ms < next)
            next = s->slots[i].lease->info.deadline_ms;
    for (size_t i = 0; s->cfg.queue_timeout_s && i < s->qlen; i++) {
        uint64_t at = s->queue[i]->info.arrival_ms + (uint64_t) s->cfg.queue_timeout_s * 1000;

        if (at < next)
            next = at;
    }
    return next;
}

uint32_t gpu_sched_position(const struct gpu_sched *s, uint64_t id)
{
    ssize_t i = queue_find(s, id);

    return i < 0 ? 0 : (uint32_t) i + 1;
}

size_t gpu_sched_queue_len(const struct gpu_sched *s)
{
    return s->qlen;
}

void gpu_sched_quota(struct gpu_sched *s, const char *space, const char *identity,
                     enum gpu_class cls, uint64_t now_ms, int64_t *ret_left_s, int64_t *ret_reset_s)
{
    struct gpu__quota_rec *q = gpu__quota_get(&s->quota, space, identity, false, now_ms);
    uint32_t quota = (unsigned) cls < _GPU_CLASS_MAX ? s->cfg.quota_s[cls] : 0;
    int64_t left = gpu__quota_left_ms(q, quota);

    if (ret_left_s)
        *ret_left_s = quota ? (left > 0 ? left / 1000 : 0) : INT32_MAX;
    if (ret_reset_s)
        *ret_reset_s =
            q && q->window
                ? ceil_s((int64_t) (q->window_start_ms + s->quota.period_ms) - (int64_t) now_ms)
                : 0;
}

size_t gpu_sched_list(const struct gpu_sched *s, struct gpu_lease_info *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].lease) {
            if (n < cap)
                out[n] = s->slots[i].lease->info;
            n++;
        }
    for (size_t i = 0; i < s->qlen; i++, n++)
        if (n < cap)
            out[n] = s->queue[i]->info;
    return n;
}
