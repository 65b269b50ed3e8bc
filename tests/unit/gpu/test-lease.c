/* Unit tests for ZeroGPU leases, driven by a virtual clock: grant, queue order,
 * aging, deadline expiry, actual-time charging, quotas (429 left/wait), the
 * per-Space cap, crashed workers, timeouts, sizes (large on MIG slices first,
 * xlarge on whole GPUs only, charged twice). */
#include <errno.h>
#include <string.h>

#include "../tap.h"
#include "cleanup.h"
#include "gpu-sched/lease.h"

#define S(x) ((uint64_t) (x) *1000) /* seconds to ms */

struct events {
    unsigned grants, ends;
    uint64_t last_grant_id, last_end_id;
    enum gpu_end last_end;
    pid_t last_end_pid;
    uint64_t order[64];
    unsigned n_order;
};

static void on_grant(void *ud, const struct gpu_lease_info *l)
{
    struct events *e = ud;

    e->grants++;
    e->last_grant_id = l->id;
    if (e->n_order < ARRAY_SIZE(e->order))
        e->order[e->n_order++] = l->id;
}

static void on_end(void *ud, const struct gpu_lease_info *l, enum gpu_end why)
{
    struct events *e = ud;

    e->ends++;
    e->last_end_id = l->id;
    e->last_end = why;
    e->last_end_pid = l->pid;
    if (e->n_order < ARRAY_SIZE(e->order))
        e->order[e->n_order++] = 1000 + l->id; /* ends and grants in one timeline */
}

static struct gpu_sched *make(struct gpu_sched_config *cfg, size_t slots, struct events *e)
{
    struct gpu_slot sl[4] = {
        { 0, "MIG-a", GPU_SIZE_LARGE },
        { 1, "MIG-b", GPU_SIZE_LARGE },
        { 2, "MIG-c", GPU_SIZE_LARGE },
        { 3, "MIG-d", GPU_SIZE_LARGE },
    };
    struct gpu_sched_events ev = { on_grant, on_end, e };
    struct gpu_sched *s = NULL;
    struct rt_err err = { 0 };

    memset(e, 0, sizeof(*e));
    if (gpu_sched_new(cfg, sl, slots, &ev, &s, &err) < 0)
        printf("# %s\n", err.msg);
    return s;
}

static struct gpu_answer ask(struct gpu_sched *s, const char *space, const char *who,
                             enum gpu_class cls, uint32_t dur, uint64_t now)
{
    struct gpu_lease_req req = { space, who, cls, dur, 7, true, GPU_SIZE_LARGE };
    struct gpu_answer a;
    struct rt_err err = { 0 };

    if (gpu_sched_request(s, &req, now, &a, &err) < 0) {
        printf("# request: %s\n", err.msg);
        memset(&a, 0, sizeof(a));
        a.verdict = GPU_NONE_FREE;
    }
    return a;
}

/* A pool of @n slots: whole GPUs ("GPU-N", xlarge) first, then MIG slices. */
static struct gpu_sched *make_sized(struct gpu_sched_config *cfg, size_t whole, size_t mig,
                                    struct events *e)
{
    struct gpu_slot sl[8] = { 0 };
    struct gpu_sched_events ev = { on_grant, on_end, e };
    struct gpu_sched *s = NULL;
    struct rt_err err = { 0 };

    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < whole + mig && i < ARRAY_SIZE(sl); i++) {
        sl[i].nvidia_index = (unsigned) i;
        sl[i].size = i < whole ? GPU_SIZE_XLARGE : GPU_SIZE_LARGE;
        (void) snprintf(sl[i].uuid, sizeof(sl[i].uuid), "%s-%zu", i < whole ? "GPU" : "MIG", i);
    }
    if (gpu_sched_new(cfg, sl, whole + mig, &ev, &s, &err) < 0)
        printf("# %s\n", err.msg);
    return s;
}

static struct gpu_answer ask_size(struct gpu_sched *s, const char *space, const char *who,
                                  enum gpu_class cls, uint32_t dur, enum gpu_size size,
                                  uint64_t now)
{
    struct gpu_lease_req req = { space, who, cls, dur, 7, true, size };
    struct gpu_answer a;
    struct rt_err err = { 0 };

    if (gpu_sched_request(s, &req, now, &a, &err) < 0) {
        printf("# request: %s\n", err.msg);
        memset(&a, 0, sizeof(a));
        a.verdict = GPU_NONE_FREE;
    }
    return a;
}

static void test_grant_and_charge(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a;
    struct gpu_lease_info info;
    uint64_t charged = 0;
    bool used = true;
    int64_t left, reset;

    gpu_sched_config_default(&cfg);
    s = make(&cfg, 2, &e);
    if (!s)
        return;
    a = ask(s, "alice/sd", "user:bob", GPU_CLASS_USER, 60, S(1000));
    is_int(a.verdict, GPU_GRANTED, "free unit: granted at once");
    is_int(a.lease.nvidia_index, 0, "first slot");
    is_str(a.lease.uuid, "MIG-a", "its uuid");
    is_int(strlen(a.lease.token), GPU_TOKEN_LEN, "a 32-character allowToken");
    is_int(a.lease.deadline_ms, S(1060), "deadline = now + declared");
    ok(!a.lease.idle, "no warm worker yet");
    is_int(a.left_s, 240, "the declared 60 s are reserved from 300");
    is_int(gpu_sched_find_token(s, a.lease.token), a.lease.id, "token finds the lease");
    is_int(gpu_sched_find_token(s, "0123456789abcdef0123456789abcdef"), 0, "wrong token");
    is_int(gpu_sched_release(s, a.lease.id + 1, false, S(1001), NULL, NULL), -ENOENT,
           "unknown lease: -ENOENT (404)");
    is_int(gpu_sched_allow(s, a.lease.id, 4321, &info), 0, "allow records the worker");
    is_int(info.pid, 4321, "allowed pid");
    is_int(gpu_sched_allow(s, a.lease.id, 1, NULL), -EINVAL, "pid 1 refused");
    /* Declared 60 s, used 12.5 s: 12.5 s are charged. */
    is_int(gpu_sched_release(s, a.lease.id, false, S(1012) + 500, &charged, &used), 0, "release");
    is_int(charged, 12500, "charged the actual time used");
    ok(used, "a pid was allowed (200, not 204)");
    gpu_sched_quota(s, "alice/sd", "user:bob", GPU_CLASS_USER, S(1013), &left, &reset);
    is_int(left, 287, "300 - 12.5 s = 287 s left");
    is_int(reset, 86400 - 13, "window resets 24 h after first use");
    is_int(gpu_sched_release(s, a.lease.id, false, S(1014), NULL, NULL), -ENOENT,
           "second release: -ENOENT");
    /* Same Space again after a clean release: the warm slot, idle. */
    a = ask(s, "alice/sd", "user:bob", GPU_CLASS_USER, 30, S(1020));
    ok(a.verdict == GPU_GRANTED && a.lease.idle && a.lease.nvidia_index == 0,
       "same Space gets its warm slot back with idle=true");
    is_int(gpu_sched_release(s, a.lease.id, true, S(1021), NULL, &used), 0, "release fail=true");
    ok(!used, "never allowed: used=false (204)");
    a = ask(s, "alice/sd", "user:bob", GPU_CLASS_USER, 30, S(1022));
    ok(a.verdict == GPU_GRANTED && !a.lease.idle, "after a failure the worker is not reused");
    is_int(a.lease.evict_pid, 0, "that lease never had a worker: nothing to evict");
    /* The quota resets when the period ends. */
    gpu_sched_quota(s, "alice/sd", "user:bob", GPU_CLASS_USER, S(1000 + 86400), &left, &reset);
    is_int(left, 270, "the running lease's 30 s stay reserved across the reset");
    ok(gpu_sched_release(s, a.lease.id, false, S(1000 + 86401), &charged, NULL) == 0 &&
           charged == S(30),
       "charge capped at the declared duration");
    gpu_sched_quota(s, "other/space", NULL, GPU_CLASS_ANON, S(1), &left, &reset);
    ok(left == 120 && reset == 0, "unknown identity: full quota, no window");
    gpu_sched_free(s);
}

/* A kept worker holds the device open; the unit may go to another Space only
 * after that worker is killed. */
static void test_evict(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a;

    gpu_sched_config_default(&cfg);
    s = make(&cfg, 1, &e);
    if (!s)
        return;
    a = ask(s, "a/a", "user:1", GPU_CLASS_USER, 30, S(0));
    (void) gpu_sched_allow(s, a.lease.id, 700, NULL);
    (void) gpu_sched_release(s, a.lease.id, false, S(5), NULL, NULL);
    a = ask(s, "a/a", "user:1", GPU_CLASS_USER, 30, S(6));
    ok(a.lease.idle && a.lease.evict_pid == 0, "same Space: reuse worker 700, evict nothing");
    (void) gpu_sched_allow(s, a.lease.id, 700, NULL);
    (void) gpu_sched_release(s, a.lease.id, false, S(7), NULL, NULL);
    a = ask(s, "b/b", "user:2", GPU_CLASS_USER, 30, S(8));
    ok(!a.lease.idle, "another Space: not idle");
    is_int(a.lease.evict_pid, 700, "the previous Space's kept worker must be killed first");
    (void) gpu_sched_release(s, a.lease.id, false, S(9), NULL, NULL);
    a = ask(s, "a/a", "user:1", GPU_CLASS_USER, 30, S(10));
    is_int(a.lease.evict_pid, 0, "evicted once, never reported again");
    /* Dead or killed workers are never named: their pids may be reused. */
    (void) gpu_sched_allow(s, a.lease.id, 701, NULL);
    is_int(gpu_sched_release_pid(s, 701, S(11)), 1, "worker 701 died");
    a = ask(s, "b/b", "user:2", GPU_CLASS_USER, 5, S(12));
    is_int(a.lease.evict_pid, 0, "a dead worker is not evicted");
    (void) gpu_sched_allow(s, a.lease.id, 702, NULL);
    gpu_sched_tick(s, S(17));
    is_int(e.last_end_pid, 702, "expired: the caller kills 702");
    a = ask(s, "a/a", "user:1", GPU_CLASS_USER, 5, S(18));
    is_int(a.lease.evict_pid, 0, "nor a worker killed at expiry");
    gpu_sched_free(s);
}

static void test_quota_refusals(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a;

    gpu_sched_config_default(&cfg);
    s = make(&cfg, 2, &e);
    if (!s)
        return;
    /* anonymous: 120 s a day.  Use 100 s. */
    a = ask(s, "x/y", "ip:203.0.113.7", GPU_CLASS_ANON, 100, S(0));
    ok(a.verdict == GPU_GRANTED, "first anonymous call granted");
    a = ask(s, "x/y", "ip:203.0.113.7", GPU_CLASS_ANON, 60, S(10));
    is_int(a.verdict, GPU_QUOTA, "running lease's reservation counts: 429");
    is_int(a.left_s, 20, "left = 120 - 100 reserved");
    (void) gpu_sched_release(s, 1, false, S(100), NULL, NULL);
    a = ask(s, "x/y", "ip:203.0.113.7", GPU_CLASS_ANON, 60, S(3600));
    is_int(a.verdict, GPU_QUOTA, "60 s wanted, 20 s left: 429");
    is_int(a.left_s, 20, "429 left");
    is_int(a.wait_s, 86400 - 3600, "429 wait = until the window resets");
    a = ask(s, "x/y", "ip:203.0.113.7", GPU_CLASS_ANON, 20, S(3601));
    is_int(a.verdict, GPU_GRANTED, "exactly what is left is granted");
    (void) gpu_sched_release(s, a.lease.id, false, S(3605), NULL, NULL);
    a = ask(s, "x/y", "ip:198.51.100.1", GPU_CLASS_ANON, 60, S(3606));
    is_int(a.verdict, GPU_GRANTED, "another anonymous client has its own quota");
    (void) gpu_sched_release(s, a.lease.id, false, S(3607), NULL, NULL);
    a = ask(s, "x/y", "ip:203.0.113.7", GPU_CLASS_ANON, 60, S(86400));
    is_int(a.verdict, GPU_GRANTED, "quota reset a day after first use");
    (void) gpu_sched_release(s, a.lease.id, false, S(86401), NULL, NULL);
    a = ask(s, "x/y", "user:pro1", GPU_CLASS_PRO, 301, S(86402));
    is_int(a.verdict, GPU_TOO_LONG, "over the tier maximum");
    is_int(a.wait_s, -1, "429 wait -1: illegal duration");
    is_int(a.left_s, 2400, "left still reported");
    a = ask(s, "x/y", NULL, GPU_CLASS_ANON, 121, S(86403));
    is_int(a.verdict, GPU_QUOTA, "token-less call billed to the Space, 121 > 120");
    is_int(a.wait_s, 86400, "no window yet: wait a full period");
    is_str(a.lease.identity, "", "nothing granted");
    a = ask(s, "x/y", NULL, GPU_CLASS_ANON, 10, S(86404));
    is_str(a.lease.identity, "space:x/y", "billed identity is the Space");
    gpu_sched_free(s);
}

static void test_queue_order(enum gpu_policy policy)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a, longer, shorter, pro;

    gpu_sched_config_default(&cfg);
    cfg.policy = policy;
    s = make(&cfg, 1, &e);
    if (!s)
        return;
    a = ask(s, "a/a", "user:u0", GPU_CLASS_USER, 60, S(0));
    longer = ask(s, "b/b", "user:u1", GPU_CLASS_USER, 120, S(1));
    shorter = ask(s, "c/c", "user:u2", GPU_CLASS_USER, 10, S(2));
    pro = ask(s, "d/d", "user:u3", GPU_CLASS_PRO, 120, S(3));
    ok(longer.verdict == GPU_QUEUED && shorter.verdict == GPU_QUEUED, "busy: queued");
    is_int(longer.reason, GPU_WAIT_NODE, "waiting for the node");
    is_int(gpu_sched_queue_len(s), 3, "three waiting");
    if (policy == GPU_POLICY_PRIORITY) {
        is_int(shorter.position, 1, "shorter declared duration goes first");
        is_int(gpu_sched_position(s, longer.lease.id), 3, "the long user request is last");
        is_int(gpu_sched_position(s, pro.lease.id), 2, "pro outranks a long user request");
    } else {
        is_int(gpu_sched_position(s, longer.lease.id), 1, "FIFO: arrival order");
        is_int(shorter.position, 2, "FIFO: second");
    }
    (void) gpu_sched_release(s, a.lease.id, false, S(20), NULL, NULL);
    is_int(e.grants, 1, "release hands the unit to the head of the queue");
    is_int(e.last_grant_id, policy == GPU_POLICY_PRIORITY ? shorter.lease.id : longer.lease.id,
           "the right request got it");
    is_int(gpu_sched_queue_len(s), 2, "two still waiting");
    {
        struct gpu_lease_info l[4];

        is_int(gpu_sched_list(s, l, 4), 3, "list: one lease and two queued");
        ok(l[0].granted && !l[1].granted, "granted first, then the queue");
    }
    is_int(gpu_sched_allow(s, pro.lease.id, 99, NULL), -EAGAIN, "allow while queued: -EAGAIN");
    is_int(gpu_sched_release(s, pro.lease.id, false, S(21), NULL, NULL), 0, "cancel queued");
    is_int(gpu_sched_queue_len(s), 1, "cancelled request left the queue");
    gpu_sched_free(s);
}

static void test_quota_priority(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a, rich, poor;

    gpu_sched_config_default(&cfg);
    s = make(&cfg, 1, &e);
    if (!s)
        return;
    /* u-poor spends 200 of 300 s first. */
    a = ask(s, "p/p", "user:poor", GPU_CLASS_USER, 200, S(0));
    (void) gpu_sched_release(s, a.lease.id, false, S(200), NULL, NULL);
    a = ask(s, "a/a", "user:x", GPU_CLASS_USER, 60, S(300));
    poor = ask(s, "p/p", "user:poor", GPU_CLASS_USER, 30, S(301));
    rich = ask(s, "r/r", "user:rich", GPU_CLASS_USER, 30, S(302));
    is_int(rich.position, 1, "more remaining quota goes first");
    is_int(poor.position, 1, "alone in the queue at first");
    is_int(gpu_sched_position(s, poor.lease.id), 2, "less remaining quota waits");
    gpu_sched_free(s);
}

/* A long request keeps losing to a stream of short pro requests, but its key
 * (arrival + at most max_penalty_s) lets it in after at most ~max_penalty_s. */
static void test_aging(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer longreq;
    uint64_t t = 0, granted_at = 0;

    gpu_sched_config_default(&cfg);
    cfg.quota_s[GPU_CLASS_PRO] = 0; /* unlimited: only ordering matters here */
    s = make(&cfg, 1, &e);
    if (!s)
        return;
    (void) ask(s, "p/0", "user:p0", GPU_CLASS_PRO, 5, t);
    longreq = ask(s, "l/l", "ip:1", GPU_CLASS_ANON, 100, S(1));
    is_int(longreq.verdict, GPU_QUEUED, "long anonymous request queued");
    (void) ask(s, "p/1", "user:p1", GPU_CLASS_PRO, 5, S(2));
    /* Every 5 s the pro lease ends and a new pro request is already waiting. */
    for (unsigned i = 2; i < 200 && !granted_at; i++) {
        char sp[16], who[16];
        struct gpu_answer n;

        t = S(5 * i);
        (void) snprintf(sp, sizeof(sp), "p/%u", i);
        (void) snprintf(who, sizeof(who), "user:p%u", i);
        n = ask(s, sp, who, GPU_CLASS_PRO, 5, t - S(1));
        ok(n.verdict == GPU_QUEUED || n.verdict == GPU_GRANTED, "pro request %u accepted", i);
        e.last_grant_id = 0;
        {
            struct gpu_lease_info l[8];

            /* The running lease is listed first. */
            if (gpu_sched_list(s, l, 8) && l[0].granted)
                (void) gpu_sched_release(s, l[0].id, false, t, NULL, NULL);
        }
        if (e.last_grant_id == longreq.lease.id)
            granted_at = t;
    }
    ok(granted_at > 0, "the long request was granted (at %llu s)",
       (unsigned long long) granted_at / 1000);
    ok(granted_at <= S(1) + S(cfg.max_penalty_s) + S(10),
       "within max_penalty_s (+ one lease) of its arrival");
    ok(granted_at > S(60), "but short pro requests did go first for a while");
    gpu_sched_free(s);
}

static void test_expiry(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a, b;
    int64_t left;

    gpu_sched_config_default(&cfg);
    s = make(&cfg, 1, &e);
    if (!s)
        return;
    a = ask(s, "a/a", "user:u", GPU_CLASS_USER, 10, S(100));
    b = ask(s, "b/b", "user:v", GPU_CLASS_USER, 10, S(101));
    (void) gpu_sched_allow(s, a.lease.id, 5555, NULL);
    is_int(gpu_sched_next_ms(s), S(110), "next work at the deadline");
    gpu_sched_tick(s, S(110) - 1);
    is_int(e.ends, 0, "nothing before the deadline");
    gpu_sched_tick(s, S(112));
    is_int(e.ends, 1, "deadline passed: the lease ends");
    is_int(e.last_end, GPU_END_EXPIRED, "as EXPIRED");
    is_int(e.last_end_pid, 5555, "with the pid to kill");
    is_int(e.order[0], 1000 + a.lease.id, "revoked before the unit is handed on");
    is_int(e.order[1], b.lease.id, "then granted to the waiting request");
    gpu_sched_quota(s, "a/a", "user:u", GPU_CLASS_USER, S(113), &left, NULL);
    is_int(left, 290, "charged up to the deadline, not to the tick");
    is_int(gpu_sched_release(s, a.lease.id, true, S(113), NULL, NULL), -ENOENT,
           "the late /release of an expired lease: 404");
    is_int(gpu_sched_next_ms(s), S(122), "b's deadline: granted at the tick + 10 s");
    gpu_sched_free(s);
}

static void test_space_cap(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a1, a2, b;

    gpu_sched_config_default(&cfg);
    cfg.space_concurrency = 1;
    s = make(&cfg, 2, &e);
    if (!s)
        return;
    a1 = ask(s, "a/a", "user:1", GPU_CLASS_USER, 10, S(0));
    a2 = ask(s, "a/a", "user:2", GPU_CLASS_USER, 10, S(1));
    is_int(a2.verdict, GPU_QUEUED, "Space at its cap: queued though a unit is free");
    is_int(a2.reason, GPU_WAIT_CONCURRENCY, "reason: concurrency");
    b = ask(s, "b/b", "user:3", GPU_CLASS_USER, 60, S(2));
    is_int(b.verdict, GPU_GRANTED, "another Space takes the free unit");
    (void) gpu_sched_release(s, a1.lease.id, false, S(5), NULL, NULL);
    is_int(e.last_grant_id, a2.lease.id, "the Space's next request runs when its first ends");
    ok(e.grants == 1, "one grant");
    gpu_sched_free(s);
}

static void test_crash_and_space_stop(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a, b, c;
    int64_t left;

    gpu_sched_config_default(&cfg);
    s = make(&cfg, 1, &e);
    if (!s)
        return;
    a = ask(s, "a/a", "user:u", GPU_CLASS_USER, 60, S(0));
    b = ask(s, "b/b", "user:v", GPU_CLASS_USER, 60, S(1));
    (void) gpu_sched_allow(s, a.lease.id, 4242, NULL);
    is_int(gpu_sched_release_pid(s, 4243, S(7)), 0, "another pid: nothing");
    is_int(gpu_sched_release_pid(s, 4242, S(7)), 1, "crashed worker's lease comes back");
    is_int(e.last_grant_id, b.lease.id, "and goes to the next request");
    gpu_sched_quota(s, "a/a", "user:u", GPU_CLASS_USER, S(8), &left, NULL);
    is_int(left, 293, "charged the 7 s it ran");
    is_int(gpu_sched_release(s, a.lease.id, true, S(8), NULL, NULL), -ENOENT,
           "the client's release(fail, allow_404) gets 404");
    c = ask(s, "b/b", "user:w", GPU_CLASS_USER, 60, S(9));
    is_int(c.verdict, GPU_QUEUED, "queued behind b");
    is_int(gpu_sched_release_space(s, "b/b", S(10)), 2, "Space stop ends its lease and request");
    is_int(gpu_sched_queue_len(s), 0, "queue empty");
    gpu_sched_quota(s, "b/b", "user:w", GPU_CLASS_USER, S(11), &left, NULL);
    is_int(left, 300, "a dropped queued request costs nothing");
    gpu_sched_free(s);
}

static void test_none_free_and_timeout(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a;
    struct gpu_lease_req req = { "a/a", "user:z", GPU_CLASS_USER, 10, 1, false, GPU_SIZE_LARGE };
    struct rt_err err = { 0 };
    int64_t left;

    gpu_sched_config_default(&cfg);
    cfg.queue_max = 1;
    cfg.queue_timeout_s = 60;
    s = make(&cfg, 1, &e);
    if (!s)
        return;
    (void) ask(s, "a/a", "user:u", GPU_CLASS_USER, 100, S(0));
    ok(gpu_sched_request(s, &req, S(1), &a, &err) == 0 && a.verdict == GPU_NONE_FREE,
       "queue disabled and busy: 503");
    a = ask(s, "b/b", "user:v", GPU_CLASS_USER, 10, S(2));
    is_int(a.verdict, GPU_QUEUED, "one may wait");
    is_int(ask(s, "c/c", "user:w", GPU_CLASS_USER, 10, S(3)).verdict, GPU_NONE_FREE,
           "queue full: 503");
    is_int(gpu_sched_next_ms(s), S(62), "next work: the queue timeout");
    gpu_sched_tick(s, S(62));
    is_int(e.last_end, GPU_END_TIMED_OUT, "waited 60 s: dropped");
    is_int(e.last_end_id, a.lease.id, "the waiting request");
    gpu_sched_quota(s, "b/b", "user:v", GPU_CLASS_USER, S(63), &left, NULL);
    is_int(left, 300, "its reservation is returned");
    req.space = "";
    is_int(gpu_sched_request(s, &req, S(64), &a, &err), -EINVAL, "no Space: -EINVAL");
    gpu_sched_free(s);

    s = make(&cfg, 0, &e);
    if (s) {
        is_int(ask(s, "a/a", "user:u", GPU_CLASS_USER, 10, 0).verdict, GPU_NONE_FREE,
               "empty pool: 503");
        gpu_sched_free(s);
    }
}

/* Random requests, releases, crashes, cancels and ticks on a virtual clock.  After
 * every step: no unit has two leases, no Space is over its cap, and the scheduler
 * is work-conserving (nobody waits while a unit is free and their Space may run).
 * @sized: a pool of one whole GPU (slot 0) and two MIG slices, random sizes: never
 * an xlarge on a slice, and nobody waits beside a free unit that fits them. */
static void test_random_invariants(bool sized)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_lease_info l[64];
    unsigned seed = 12345, bad_slot = 0, bad_cap = 0, idle_waste = 0, grants = 0, bad_size = 0;
    uint64_t now = 0;

    gpu_sched_config_default(&cfg);
    cfg.space_concurrency = 1;
    cfg.queue_max = 40;
    cfg.queue_timeout_s = 90;
    s = sized ? make_sized(&cfg, 1, 2, &e) : make(&cfg, 3, &e);
    if (!s)
        return;
    for (unsigned step = 0; step < 20000; step++) {
        unsigned op = (seed = seed * 1103515245 + 12345) >> 16;
        size_t n = gpu_sched_list(s, l, 64), granted = 0;

        now += op % 4000;
        if (op % 5 < 2) {
            char sp[8], who[16];
            struct gpu_answer a;

            (void) snprintf(sp, sizeof(sp), "s/%u", op % 6);
            (void) snprintf(who, sizeof(who), "ip:%u", (op >> 3) % 50);
            a = ask_size(s, sp, who, (enum gpu_class)(op % 3), 5 + op % 120,
                         sized && (op >> 9) % 3 == 0 ? GPU_SIZE_XLARGE : GPU_SIZE_LARGE, now);
            grants += a.verdict == GPU_GRANTED;
            if (a.verdict == GPU_GRANTED && op % 3 == 0)
                (void) gpu_sched_allow(s, a.lease.id, (pid_t) (1000 + a.lease.id), NULL);
        } else if (op % 5 == 2 && n) {
            (void) gpu_sched_release(s, l[op % n].id, op & 8, now, NULL, NULL);
        } else if (op % 5 == 3 && n) {
            (void) gpu_sched_release_pid(s, l[op % n].pid, now);
        } else {
            gpu_sched_tick(s, now);
        }
        n = gpu_sched_list(s, l, 64);
        bool whole_free = true;

        for (size_t i = 0; i < n && i < 64; i++) {
            if (!l[i].granted)
                continue;
            granted++;
            whole_free &= l[i].slot != 0;
            bad_size += sized && l[i].size == GPU_SIZE_XLARGE && l[i].slot != 0;
            for (size_t k = 0; k < i; k++) {
                bad_slot += l[k].granted && l[k].slot == l[i].slot;
                bad_cap += l[k].granted && strcmp(l[k].space, l[i].space) == 0;
            }
        }
        if (granted < 3)
            for (size_t i = 0; i < n && i < 64; i++) {
                bool space_busy = false;

                for (size_t k = 0; k < n && k < 64; k++)
                    space_busy |= l[k].granted && strcmp(l[k].space, l[i].space) == 0;
                idle_waste +=
                    !l[i].granted && !space_busy && (l[i].size == GPU_SIZE_LARGE || whole_free);
            }
    }
    ok(grants > 1000, "many immediate grants (%u)", grants);
    is_int(bad_slot, 0, "never two leases on one unit");
    is_int(bad_cap, 0, "never a Space over its cap");
    is_int(idle_waste, 0, "never a runnable request waiting beside a free unit");
    is_int(bad_size, 0, "never an xlarge on a MIG slice");
    gpu_sched_free(s);
}

/* A large call takes a MIG slice before a whole GPU; an xlarge one only a whole GPU,
 * and waits for one while large calls behind it take the slices. */
static void test_sizes_placement(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a, b, c, d, x;
    struct gpu_lease_info l[8];
    struct gpu_slot bad = { 0, "GPU-x", (enum gpu_size) 7 };
    struct rt_err err = { 0 };

    gpu_sched_config_default(&cfg);
    is_int(gpu_sched_new(&cfg, &bad, 1, NULL, &s, &err), -EINVAL,
           "a slot of unknown size: -EINVAL");
    cfg.space_concurrency = 0;
    /* slot 0: a whole GPU; 1, 2: MIG slices. */
    s = make_sized(&cfg, 1, 2, &e);
    if (!s)
        return;
    a = ask_size(s, "a/a", "user:a", GPU_CLASS_USER, 10, GPU_SIZE_LARGE, S(0));
    ok(a.verdict == GPU_GRANTED && a.lease.slot == 1,
       "large: a MIG slice, not the whole GPU first");
    is_str(a.lease.uuid, "MIG-1", "its MIG uuid");
    is_int(a.lease.size, GPU_SIZE_LARGE, "lease size large");
    b = ask_size(s, "b/b", "user:b", GPU_CLASS_USER, 10, GPU_SIZE_LARGE, S(0));
    ok(b.verdict == GPU_GRANTED && b.lease.slot == 2, "second large: the other slice");
    c = ask_size(s, "c/c", "user:c", GPU_CLASS_USER, 10, GPU_SIZE_LARGE, S(0));
    ok(c.verdict == GPU_GRANTED && c.lease.slot == 0, "slices busy: large falls back to the GPU");
    x = ask_size(s, "x/x", "user:x", GPU_CLASS_PRO, 10, GPU_SIZE_XLARGE, S(1));
    is_int(x.verdict, GPU_QUEUED, "xlarge with the GPU busy: queued");
    is_int(x.reason, GPU_WAIT_NODE, "reason node");
    (void) gpu_sched_release(s, a.lease.id, false, S(2), NULL, NULL);
    is_int(gpu_sched_position(s, x.lease.id), 1, "a slice is free: xlarge still waits");
    is_int(e.grants, 0, "the slice is not given to it");
    d = ask_size(s, "d/d", "user:d", GPU_CLASS_USER, 10, GPU_SIZE_LARGE, S(3));
    ok(d.verdict == GPU_GRANTED && d.lease.slot == 1, "a new large takes the free slice at once");
    /* All busy; a large queued behind the xlarge (anonymous: larger key). */
    a = ask_size(s, "e/e", "ip:e", GPU_CLASS_ANON, 10, GPU_SIZE_LARGE, S(4));
    is_int(a.verdict, GPU_QUEUED, "large queued");
    is_int(gpu_sched_position(s, a.lease.id), 2, "behind the xlarge");
    is_int(gpu_sched_list(s, l, 8), 5, "3 leases + 2 queued");
    ok(l[3].id == x.lease.id && l[3].size == GPU_SIZE_XLARGE && !l[3].granted,
       "the listing shows the queued xlarge's size");
    (void) gpu_sched_release(s, b.lease.id, false, S(5), NULL, NULL);
    ok(e.grants == 1 && e.last_grant_id == a.lease.id, "a freed slice goes past the xlarge");
    is_int(gpu_sched_position(s, x.lease.id), 1, "xlarge keeps its place");
    (void) gpu_sched_release(s, c.lease.id, false, S(6), NULL, NULL);
    ok(e.grants == 2 && e.last_grant_id == x.lease.id, "the freed whole GPU goes to the xlarge");
    is_int(gpu_sched_list(s, l, 8), 3, "3 leases");
    for (size_t i = 0; i < 3; i++)
        if (l[i].id == x.lease.id)
            ok(l[i].slot == 0 && strcmp(l[i].uuid, "GPU-0") == 0, "xlarge on the whole GPU");
    gpu_sched_free(s);

    /* A pool of MIG slices only: xlarge can never run there. */
    s = make_sized(&cfg, 0, 2, &e);
    if (!s)
        return;
    x = ask_size(s, "x/x", "user:x", GPU_CLASS_USER, 10, GPU_SIZE_XLARGE, S(0));
    is_int(x.verdict, GPU_NO_SIZE, "xlarge on a MIG-only pool: refused, not queued");
    is_int(x.left_s, 300, "nothing reserved");
    is_int(gpu_sched_queue_len(s), 0, "queue empty");
    x = ask_size(s, "x/x", "user:x", GPU_CLASS_USER, 10, GPU_SIZE_LARGE, S(0));
    is_int(x.verdict, GPU_GRANTED, "large there: granted");
    is_int(gpu_sched_request(s,
                             &(struct gpu_lease_req){ "x/x", NULL, GPU_CLASS_USER, 10, 1, true,
                                                      (enum gpu_size) 9 },
                             S(0), &x, &err),
           -EINVAL, "unknown size: -EINVAL");
    gpu_sched_free(s);
}

/* xlarge reserves and charges twice its seconds, and queues as a call twice as long. */
static void test_sizes_quota(void)
{
    struct gpu_sched_config cfg;
    struct events e = { 0 };
    struct gpu_sched *s;
    struct gpu_answer a, b;
    uint64_t charged = 0;
    int64_t left, reset;

    gpu_sched_config_default(&cfg);
    cfg.space_concurrency = 0;
    s = make_sized(&cfg, 1, 0, &e);
    if (!s)
        return;
    a = ask_size(s, "p/p", "user:pro", GPU_CLASS_PRO, 60, GPU_SIZE_XLARGE, S(0));
    is_int(a.verdict, GPU_GRANTED, "xlarge on a whole GPU: granted");
    is_int(a.lease.deadline_ms, S(60), "deadline: the declared 60 s, not doubled");
    is_int(a.left_s, 2400 - 120, "reserves 2 x 60 s");
    gpu_sched_quota(s, "p/p", "user:pro", GPU_CLASS_PRO, S(1), &left, NULL);
    is_int(left, 2280, "quota query counts the doubled reservation");
    (void) gpu_sched_release(s, a.lease.id, false, S(10) + 500, &charged, NULL);
    is_int(charged, 21000, "10.5 s used: 21 s charged");
    gpu_sched_quota(s, "p/p", "user:pro", GPU_CLASS_PRO, S(11), &left, NULL);
    is_int(left, 2379, "2400 - 21");

    /* Expired at its deadline: charged 2x the declared time. */
    a = ask_size(s, "p/p", "user:pro", GPU_CLASS_PRO, 5, GPU_SIZE_XLARGE, S(20));
    gpu_sched_tick(s, S(26));
    is_int(e.last_end, GPU_END_EXPIRED, "xlarge expired");
    gpu_sched_quota(s, "p/p", "user:pro", GPU_CLASS_PRO, S(27), &left, NULL);
    is_int(left, 2369, "expiry charged 2 x 5 s");

    /* 429 for anonymous (120 s): xlarge 61 s is 122 s. */
    a = ask_size(s, "q/q", "ip:192.0.2.9", GPU_CLASS_ANON, 61, GPU_SIZE_XLARGE, S(100));
    is_int(a.verdict, GPU_QUOTA, "xlarge 61 s = 122 s > 120: 429");
    is_int(a.left_s, 120, "429 left in quota seconds");
    is_int(a.wait_s, 86400, "429 wait: a full period (no window yet)");
    a = ask_size(s, "q/q", "ip:192.0.2.9", GPU_CLASS_ANON, 61, GPU_SIZE_LARGE, S(100));
    is_int(a.verdict, GPU_GRANTED, "the same 61 s as large fits");
    (void) gpu_sched_release(s, a.lease.id, false, S(130), NULL, NULL);
    a = ask_size(s, "q/q", "ip:192.0.2.9", GPU_CLASS_ANON, 46, GPU_SIZE_XLARGE, S(200));
    is_int(a.verdict, GPU_QUOTA, "90 s left, xlarge 46 s = 92 s: 429");
    is_int(a.left_s, 90, "left 90");
    gpu_sched_quota(s, "q/q", "ip:192.0.2.9", GPU_CLASS_ANON, S(200), NULL, &reset);
    is_int(a.wait_s, reset, "wait = until the window resets");
    a = ask_size(s, "q/q", "ip:192.0.2.9", GPU_CLASS_ANON, 45, GPU_SIZE_XLARGE, S(201));
    is_int(a.verdict, GPU_GRANTED, "xlarge 45 s = exactly 90 s: granted");
    is_int(a.left_s, 0, "nothing left while it runs");
    gpu_sched_release_space(s, "q/q", S(202));

    /* Queue order: an xlarge 30 s call ranks as a 60 s one. */
    a = ask_size(s, "busy/b", "user:busy", GPU_CLASS_USER, 100, GPU_SIZE_LARGE, S(300));
    b = ask_size(s, "x/x", "user:x", GPU_CLASS_USER, 30, GPU_SIZE_XLARGE, S(301));
    is_int(b.verdict, GPU_QUEUED, "xlarge queued");
    a = ask_size(s, "l/l", "user:l", GPU_CLASS_USER, 50, GPU_SIZE_LARGE, S(302));
    is_int(gpu_sched_position(s, a.lease.id), 1,
           "a later large 50 s goes before an xlarge 30 s (penalty 60 s)");
    is_int(gpu_sched_position(s, b.lease.id), 2, "xlarge second");
    gpu_sched_free(s);
}

int main(void)
{
    tap_start();
    test_grant_and_charge();
    test_evict();
    test_quota_refusals();
    test_queue_order(GPU_POLICY_PRIORITY);
    test_queue_order(GPU_POLICY_FIFO);
    test_quota_priority();
    test_aging();
    test_expiry();
    test_space_cap();
    test_crash_and_space_stop();
    test_none_free_and_timeout();
    test_random_invariants(false);
    test_random_invariants(true);
    test_sizes_placement();
    test_sizes_quota();
    is_str(gpu_size_name(GPU_SIZE_XLARGE), "xlarge", "size name");
    is_int(gpu_size_from_name("large"), GPU_SIZE_LARGE, "size from name");
    is_int(gpu_size_from_name("huge"), -1, "unknown size");
    is_str(gpu_class_name(GPU_CLASS_PRO), "pro", "class name");
    is_int(gpu_class_from_name("anon"), GPU_CLASS_ANON, "class alias");
    is_int(gpu_class_from_name("vip"), -1, "unknown class");
    return tap_done();
}
