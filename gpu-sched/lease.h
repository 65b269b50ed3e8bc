/* ZeroGPU leases: time slices of a pool of GPU units, granted per call of a
 * `@spaces.GPU` function, queued by priority, charged against daily quotas.
 *
 * The scheduler never reads a clock: every call takes the current time in
 * milliseconds (any monotonic origin), so runtimed passes rt_now_ns()/1e6 and
 * the simulator and tests pass a virtual clock.  It never blocks and never
 * signals anyone: it reports what must happen through the callbacks (a lease to
 * grant to a waiting request, a lease whose deadline passed and whose worker
 * must be killed).  README.md maps the `spaces` device API onto these calls. */
#ifndef SP_GPU_LEASE_H
#define SP_GPU_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "gpu.h"

/* Visitor classes, each with its own daily quota and queue priority. */
enum gpu_class {
    GPU_CLASS_ANON = 0, /* no account: billed per client (IP or X-IP-Token identity) */
    GPU_CLASS_USER,
    GPU_CLASS_PRO,
    _GPU_CLASS_MAX,
};

/* gpuSize (REFERENCE.md §5.1): `large` is half a GPU (a MIG slice on the Hub),
 * `xlarge` a whole GPU, charged twice the quota and queued as a longer call. */
enum gpu_size {
    GPU_SIZE_LARGE = 0, /* the default (gpuSize absent) */
    GPU_SIZE_XLARGE,
    _GPU_SIZE_MAX,
};

enum gpu_policy {
    GPU_POLICY_PRIORITY = 0, /* shorter, richer in quota, higher class first, with aging */
    GPU_POLICY_FIFO,         /* arrival order (the simulator's baseline) */
};

struct gpu_sched_config {
    enum gpu_policy policy;
    uint32_t default_duration_s;      /* when a request declares 0 (the spaces package: 60) */
    uint32_t max_duration_s;          /* tier maximum; a longer request is refused (429, wait -1) */
    uint32_t space_concurrency;       /* leases one Space may hold at once, 0 = no cap */
    uint32_t queue_max;               /* waiting requests at most; beyond it: 503 */
    uint32_t queue_timeout_s;         /* a request waiting this long is dropped (0 = never) */
    uint32_t quota_s[_GPU_CLASS_MAX]; /* daily GPU-seconds per identity; 0 = unlimited */
    uint32_t quota_period_s;          /* window length; it starts at an identity's first use */
    /* Priority (GPU_POLICY_PRIORITY): a request's queue key is its arrival time plus a
     * penalty, capped at max_penalty_s, so a request is overtaken only by requests
     * that arrive less than max_penalty_s after it: nothing starves. */
    uint32_t duration_penalty_pct;            /* penalty per declared second, in % of 1 s */
    uint32_t class_penalty_s[_GPU_CLASS_MAX]; /* fixed penalty per class */
    uint32_t quota_penalty_s;                 /* at an empty quota, scaled by the used share */
    uint32_t max_penalty_s;
};

/* The defaults documented in README.md (quotas as HF's 2026 ZeroGPU: 2/5/40 min). */
void gpu_sched_config_default(struct gpu_sched_config *cfg);

/* One GPU unit the pool leases out. */
struct gpu_slot {
    unsigned
        nvidia_index; /* ZeroGPU nvidiaIndex: unique per slot (the client keys workers by it) */
    char uuid[GPU_UUID_MAX];
    /* The largest size it serves: XLARGE for a whole GPU (serves large too), LARGE for
     * a MIG slice.  Zero (LARGE) unless the embedder says it is a whole GPU. */
    enum gpu_size size;
};

enum gpu_verdict {
    GPU_GRANTED = 0, /* 200 JSON ScheduleResponse */
    GPU_QUEUED,      /* 200 event-stream; on_grant (or on_drop) follows */
    GPU_QUOTA,       /* 429 {left, wait}: not enough quota left for the declared duration */
    GPU_TOO_LONG,    /* 429 {left, wait: -1}: longer than the tier maximum */
    GPU_NONE_FREE,   /* 503: no unit and no queueing (queue off, full, or empty pool) */
    GPU_NO_SIZE,     /* 503 + detail: xlarge asked of a pool with no whole GPU (never fits) */
};

enum gpu_queue_reason {
    GPU_WAIT_NONE = 0,
    GPU_WAIT_NODE,        /* X-Queuing-Reason: node */
    GPU_WAIT_CONCURRENCY, /* X-Queuing-Reason: concurrency (the Space is at its cap) */
};

#define GPU_TOKEN_LEN 32 /* hex characters of an allowToken */
#define GPU_ID_MAX 128   /* Space ids and identities, with the NUL */

/* A request: one call of a decorated function (POST /schedule). */
struct gpu_lease_req {
    const char *space;    /* "owner/name" */
    const char *identity; /* who pays: "ip:203.0.113.7", "user:alice"; NULL: the Space */
    enum gpu_class cls;
    uint32_t duration_s; /* declared; 0 = default */
    uint64_t task_id;    /* taskId, kept for listings */
    bool enable_queue;   /* false: 503 instead of queueing */
    enum gpu_size size;  /* gpuSize; XLARGE reserves and charges 2x its seconds */
};

/* A lease, queued or granted. */
struct gpu_lease_info {
    uint64_t id;
    char token[GPU_TOKEN_LEN + 1]; /* the allowToken */
    char space[GPU_ID_MAX];
    char identity[GPU_ID_MAX];
    enum gpu_class cls;
    uint64_t task_id;
    uint32_t duration_s; /* declared, after default and cap */
    enum gpu_size size;  /* as requested (the slot may be larger) */
    uint64_t arrival_ms;
    bool granted;
    unsigned slot;         /* granted: index into the pool */
    unsigned nvidia_index; /* granted */
    char uuid[GPU_UUID_MAX];
    bool idle;            /* granted: the unit's previous lease was this Space's and ended
                             cleanly, so its worker may be reused */
    uint64_t granted_ms;  /* granted */
    uint64_t deadline_ms; /* granted: granted_ms + duration */
    pid_t pid;            /* 0 until /allow */
    pid_t evict_pid;      /* granted: the worker the unit's previous lease left behind
                             (another Space's, or after a failure), or 0.  It still holds
                             the device open: kill it before answering the grant. */
};

struct gpu_answer {
    enum gpu_verdict verdict;
    struct gpu_lease_info lease; /* GRANTED and QUEUED */
    uint32_t position;           /* QUEUED: 1 = next */
    enum gpu_queue_reason reason;
    int64_t left_s; /* quota left (every verdict), seconds */
    int64_t wait_s; /* QUOTA: seconds until the window resets; TOO_LONG: -1 */
};

enum gpu_end {
    GPU_END_RELEASED = 0, /* /release */
    GPU_END_FAILED,       /* /release?fail=true, or the worker died */
    GPU_END_EXPIRED,      /* the deadline passed: the caller must kill the worker */
    GPU_END_CANCELLED,    /* a queued request whose client went away */
    GPU_END_TIMED_OUT,    /* a queued request that waited queue_timeout_s */
};

/* Called from inside gpu_sched_* calls; they must not call back into the scheduler. */
struct gpu_sched_events {
    /* A queued request got a unit (send the SSE "succeeded" event). */
    void (*on_grant)(void *userdata, const struct gpu_lease_info *lease);
    /* A lease ended without /release: EXPIRED (kill lease->pid and deny the device
     * before returning: the unit goes to the next request right after) or
     * TIMED_OUT (send the SSE "failed" event). */
    void (*on_end)(void *userdata, const struct gpu_lease_info *lease, enum gpu_end why);
    void *userdata;
};

struct gpu_sched;

/* @slots are copied.  Returns 0 or -ENOMEM / -EINVAL. */
int gpu_sched_new(const struct gpu_sched_config *cfg, const struct gpu_slot *slots, size_t n,
                  const struct gpu_sched_events *ev, struct gpu_sched **ret_sched,
                  struct rt_err *err);
void gpu_sched_free(struct gpu_sched *s);

/* POST /schedule.  Fills *ret (always) and returns 0; -EINVAL for a request
 * without a Space, -ENOMEM.  Grants at once when a unit is free and the Space is
 * under its cap; a grant reserves the declared duration against the quota. */
int gpu_sched_request(struct gpu_sched *s, const struct gpu_lease_req *req, uint64_t now_ms,
                      struct gpu_answer *ret, struct rt_err *err);

/* Finds a lease (queued or granted) by allowToken; 0 when unknown. */
uint64_t gpu_sched_find_token(const struct gpu_sched *s, const char *token);

/* POST /allow: records the worker pid of a granted lease.  -ENOENT: unknown or
 * ended (404); -EAGAIN: still queued. *ret_lease (may be NULL) tells the caller
 * which unit to open to @pid. */
int gpu_sched_allow(struct gpu_sched *s, uint64_t id, pid_t pid, struct gpu_lease_info *ret_lease);

/* POST /release: ends a granted lease and charges the ACTUAL time used
 * (now - granted, at most the declared duration; twice that for xlarge), or cancels
 * a queued one (no charge).  -ENOENT when unknown (404).  *ret_charged_ms (may be
 * NULL) gets the quota charge; *ret_used (may be NULL) whether a pid was ever allowed (else 204). */
int gpu_sched_release(struct gpu_sched *s, uint64_t id, bool fail, uint64_t now_ms,
                      uint64_t *ret_charged_ms, bool *ret_used);

/* A worker died (pidfd readable, SIGCHLD): its lease ends as FAILED, charged for
 * the time used.  Returns how many leases ended. */
unsigned gpu_sched_release_pid(struct gpu_sched *s, pid_t pid, uint64_t now_ms);

/* A Space stopped: every lease and queued request of it ends.  Returns the count. */
unsigned gpu_sched_release_space(struct gpu_sched *s, const char *space, uint64_t now_ms);

/* Ends expired leases (on_end EXPIRED, charged up to the deadline) and timed-out
 * requests, then grants what it can.  Call it at gpu_sched_next_ms(). */
void gpu_sched_tick(struct gpu_sched *s, uint64_t now_ms);

/* When gpu_sched_tick() next has work: the earliest deadline or queue timeout;
 * UINT64_MAX when none. */
uint64_t gpu_sched_next_ms(const struct gpu_sched *s);

/* 1-based queue position of a queued request, 0 when not queued. */
uint32_t gpu_sched_position(const struct gpu_sched *s, uint64_t id);

/* GET /queue-size. */
size_t gpu_sched_queue_len(const struct gpu_sched *s);

/* Quota of @identity (NULL: the Space's own) of class @cls: seconds left now
 * (reserved durations of running leases count as spent) and seconds until the
 * window resets (0 when no window is open). */
void gpu_sched_quota(struct gpu_sched *s, const char *space, const char *identity,
                     enum gpu_class cls, uint64_t now_ms, int64_t *ret_left_s,
                     int64_t *ret_reset_s);

/* Copies up to @cap granted leases then queued requests, in queue order; returns
 * how many exist (`spacectl gpu leases`). */
size_t gpu_sched_list(const struct gpu_sched *s, struct gpu_lease_info *out, size_t cap);

const char *gpu_class_name(enum gpu_class c);
int gpu_class_from_name(const char *name);  /* -1 when unknown */
const char *gpu_size_name(enum gpu_size z); /* "large", "xlarge" */
int gpu_size_from_name(const char *name);   /* -1 when unknown */

#endif
