/* The device API's five endpoints over the scheduler (the mapping is the table in
 * gpu-sched/README.md), and the workers they allow: one pidfd per allowed worker,
 * so a death gives the lease back and an expiry or an eviction kills exactly that
 * process, never a pid that was reused meanwhile. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "devapi-internal.h"
#include "util.h"

#include "banned.h"

static int pidfd_open_(pid_t pid)
{
    return (int) syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd)
{
    return (int) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
}

static void bad(struct gpu_api *api, struct gpu__conn *c, int status, const char *detail)
{
    char body[512];
    size_t o = 0;

    /* The detail may quote a parameter name; keep the JSON valid whatever it holds. */
    o += (size_t) snprintf(body, sizeof(body), "{\"detail\":\"");
    for (const char *p = detail; *p && o < sizeof(body) - 8; p++)
        if (*p >= ' ' && *p != '"' && *p != '\\' && (unsigned char) *p < 0x7f)
            body[o++] = *p;
    snprintf(body + o, sizeof(body) - o, "\"}");
    gpu__respond(api, c, status, NULL, "application/json", body, true);
}

/* --- workers -------------------------------------------------------------------------- */

static void worker_drop(struct gpu_api *api, struct gpu__worker *w)
{
    /* Out of the epoll set first: a forked child holding a copy would keep it in. */
    if (w->pidfd >= 0)
        (void) epoll_ctl(api->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
    w->pidfd = rt_close(w->pidfd);
    w->pid = 0;
}

/* Kills the worker and takes its device: a lease ran out (EXPIRED) or its unit goes
 * to another Space (RELEASED, an eviction). */
static void worker_kill(struct gpu_api *api, struct gpu__worker *w, enum gpu_end why)
{
    if (w->pidfd < 0)
        return;
    (void) pidfd_kill(w->pidfd);
    if (api->hooks.on_revoke)
        api->hooks.on_revoke(api->hooks.userdata, &w->lease, w->pid, why);
    worker_drop(api, w);
}

void gpu__worker_exited(struct gpu_api *api, struct gpu__worker *w)
{
    pid_t pid = w->pid;

    if (w->pidfd < 0)
        return;
    api->stats.worker_deaths++;
    if (api->hooks.on_revoke)
        api->hooks.on_revoke(api->hooks.userdata, &w->lease, pid, GPU_END_FAILED);
    worker_drop(api, w);
    /* Its lease (if it still holds one) comes back, charged for the time it ran. */
    (void) gpu_sched_release_pid(api->sched, pid, gpu__now_ms());
    gpu__flush_grants(api);
}

static struct gpu__worker *worker_of(struct gpu_api *api, const struct gpu_lease_info *l)
{
    return l->granted && l->slot < api->n_slots ? &api->workers[l->slot] : NULL;
}

/* Before a grant is answered: the unit's previous worker, if another Space's or
 * failed, still holds the device open, so it is ended; an idle unit's worker is
 * this Space's and will run the call, so the lease is tied to it at once (the
 * client does not call /allow for a reused worker). */
static void prepare_grant(struct gpu_api *api, struct gpu_lease_info *l)
{
    struct gpu__worker *w = worker_of(api, l);

    api->stats.grants++;
    if (!w || w->pidfd < 0)
        return;
    if (l->idle && strcmp(w->lease.space, l->space) == 0) {
        if (gpu_sched_allow(api->sched, l->id, w->pid, l) == 0)
            w->lease = *l;
        return;
    }
    /* Not idle: the kept worker must not keep the unit.  evict_pid names it when the
     * scheduler remembers it; a worker we track on that slot is ended either way. */
    api->stats.evictions++;
    worker_kill(api, w, GPU_END_RELEASED);
}

/* --- responses -------------------------------------------------------------------------- */

static size_t grant_json(const struct gpu_lease_info *l, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "{\"idle\":%s,\"nvidiaIndex\":%u,\"nvidiaUUID\":\"%s\",\"allowToken\":\"%s\"}",
                     l->idle ? "true" : "false", l->nvidia_index, l->uuid, l->token);

    return n > 0 && (size_t) n < cap ? (size_t) n : 0;
}

static int send_chunk(struct gpu_api *api, struct gpu__conn *c, const char *event, bool last)
{
    char buf[768];
    size_t len = strlen(event);
    int n = snprintf(buf, sizeof(buf), "%zx\r\n%s\r\n%s", len, event, last ? "0\r\n\r\n" : "");

    if (n < 0 || (size_t) n >= sizeof(buf))
        return -ENOBUFS;
    /* One event, one chunk, one write (and the stream's end with the last one). */
    return gpu__conn_send(api, c, buf, (size_t) n);
}

static struct gpu__conn *stream_of(struct gpu_api *api, uint64_t id)
{
    for (unsigned i = 0; i < api->cfg.max_conns; i++) {
        struct gpu__conn *c = api->conns[i];

        if (c && c->state == GPU__C_STREAM && c->lease_id == id)
            return c;
    }
    return NULL;
}

static void stream_end(struct gpu_api *api, struct gpu__conn *c, const char *event)
{
    c->lease_id = 0;
    (void) send_chunk(api, c, event, true);
    c->state = GPU__C_CLOSING;
}

void gpu__stream_ping(struct gpu_api *api, struct gpu__conn *c)
{
    if (send_chunk(api, c, "event: ping\n\n", false) < 0)
        gpu__conn_close(api, c);
}

void gpu__stream_gone(struct gpu_api *api, struct gpu__conn *c)
{
    uint64_t id = c->lease_id;

    c->lease_id = 0;
    c->state = GPU__C_CLOSING;
    if (!id)
        return;
    /* The visitor left while queued: the request goes, with nothing charged. */
    (void) gpu_sched_release(api->sched, id, false, gpu__now_ms(), NULL, NULL);
    gpu__flush_grants(api);
}

/* --- scheduler callbacks ------------------------------------------------------------ */

static void on_grant(void *userdata, const struct gpu_lease_info *lease)
{
    struct gpu_api *api = userdata;

    if (api->n_grants == api->cap_grants) {
        size_t cap = api->cap_grants ? api->cap_grants * 2 : 8;
        struct gpu_lease_info *p = realloc(api->grants, cap * sizeof(*p));

        if (!p)
            return; /* its stream times out; the client re-schedules */
        api->grants = p;
        api->cap_grants = cap;
    }
    api->grants[api->n_grants++] = *lease;
}

static void on_end(void *userdata, const struct gpu_lease_info *lease, enum gpu_end why)
{
    struct gpu_api *api = userdata;
    struct gpu__conn *c;

    if (why == GPU_END_EXPIRED) {
        struct gpu__worker *w = worker_of(api, lease);

        api->stats.expired++;
        /* The deadline passed: end the worker before the unit is handed on. */
        if (w && w->pidfd >= 0 && w->pid == lease->pid) {
            w->lease = *lease;
            worker_kill(api, w, GPU_END_EXPIRED);
        }
    } else if (why == GPU_END_TIMED_OUT && (c = stream_of(api, lease->id))) {
        stream_end(api, c, "event: failed\n\n");
    }
}

const struct gpu_sched_events gpu__sched_events = { .on_grant = on_grant, .on_end = on_end };

void gpu__flush_grants(struct gpu_api *api)
{
    /* Index, not a copy: handling one grant may release and so report more. */
    for (size_t i = 0; i < api->n_grants; i++) {
        struct gpu_lease_info l = api->grants[i];
        struct gpu__conn *c = stream_of(api, l.id);
        char ev[512], js[384];

        if (!c) {
            /* Nobody waits for it any more: give it straight back. */
            (void) gpu_sched_release(api->sched, l.id, false, gpu__now_ms(), NULL, NULL);
            continue;
        }
        prepare_grant(api, &l);
        grant_json(&l, js, sizeof(js));
        snprintf(ev, sizeof(ev), "event: succeeded\ndata: %s\n\n", js);
        stream_end(api, c, ev);
    }
    api->n_grants = 0;
}

/* --- handlers ----------------------------------------------------------------------------- */

static void h_startup(struct gpu_api *api, struct gpu__conn *c)
{
    if (api->hooks.on_startup)
        api->hooks.on_startup(api->hooks.userdata, c->space[0] ? c->space : api->space);
    gpu__respond(api, c, 200, NULL, "application/json", "{}", true);
}

static void h_queue_size(struct gpu_api *api, struct gpu__conn *c)
{
    char body[32];

    snprintf(body, sizeof(body), "%zu", gpu_sched_queue_len(api->sched));
    gpu__respond(api, c, 200, NULL, "application/json", body, true);
}

static int get_u64(const char *s, uint64_t max, uint64_t *ret)
{
    uint64_t v;

    if (!s || rt_parse_u64(s, &v) < 0 || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* Who pays: a valid token names the visitor; none means the Space itself (the
 * client then says "Space app has reached its GPU limit"); a bad one counts as an
 * anonymous visitor at the caller's address (or 401 when strict). */
static int identify(struct gpu_api *api, struct gpu__conn *c, const char *token,
                    struct gpu_visitor *v, bool *ret_has)
{
    int r;

    *ret_has = false;
    if (!token)
        return 0;
    r = api->have_key ? gpu_visitor_verify(api->key, token, strlen(token), (uint64_t) time(NULL),
                                           api->cfg.token_max_age_s, v)
                      : -EINVAL;
    if (r < 0 && api->cfg.strict_tokens)
        return r;
    if (r < 0) {
        snprintf(v->identity, sizeof(v->identity), "ip:%s", c->peer[0] ? c->peer : "unknown");
        v->cls = GPU_CLASS_ANON;
    }
    *ret_has = true;
    return 0;
}

static void h_schedule(struct gpu_api *api, struct gpu__conn *c, struct gpu__param *p, size_t n)
{
    const char *cg = gpu__param(p, n, "cgroupPath"), *s;
    char space[GPU_ID_MAX], hdr[160], body[512];
    struct gpu_visitor v = { 0 };
    struct gpu_lease_req req = { .enable_queue = true };
    struct gpu_answer a;
    struct rt_err err = { 0 };
    uint64_t u;
    bool has_id;
    const char *auth;

    if (!cg || !*cg)
        return bad(api, c, 400, "cgroupPath is required");
    if ((s = gpu__param(p, n, "taskId")) && get_u64(s, UINT64_MAX, &req.task_id) < 0)
        return bad(api, c, 400, "taskId: expected a non-negative integer");
    if ((s = gpu__param(p, n, "enableQueue")) && gpu__parse_bool(s, &req.enable_queue) < 0)
        return bad(api, c, 400, "enableQueue: expected true or false");
    if ((s = gpu__param(p, n, "durationSeconds"))) {
        if (get_u64(s, 7 * 24 * 3600, &u) < 0)
            return bad(api, c, 400, "durationSeconds: expected seconds, at most a week");
        req.duration_s = (uint32_t) u;
    }
    if ((s = gpu__param(p, n, "tokenVersion")) && get_u64(s, 100, &u) < 0)
        return bad(api, c, 400, "tokenVersion: expected an integer");
    /* Absent = large (half a GPU); xlarge wants a whole GPU and costs 2x quota. */
    if ((s = gpu__param(p, n, "gpuSize"))) {
        int z = gpu_size_from_name(s);

        if (z < 0)
            return bad(api, c, 400, "gpuSize: expected large or xlarge");
        req.size = (enum gpu_size) z;
    }
    if (c->space[0]) {
        /* The listener is the Space's own (reachable only inside its sandbox): that, not
         * the path the caller sends, says who it is. */
        snprintf(space, sizeof(space), "%s", c->space);
    } else if (api->hooks.on_resolve) {
        if (api->hooks.on_resolve(api->hooks.userdata, cg, space, sizeof(space)) < 0)
            return bad(api, c, 404, "unknown cgroupPath");
    } else {
        snprintf(space, sizeof(space), "%s", api->space);
    }
    if (identify(api, c, gpu__param(p, n, "token"), &v, &has_id) < 0)
        return gpu__respond(api, c, 401, NULL, "application/json",
                            "{\"detail\":\"Expired ZeroGPU proxy token\"}", true);
    req.space = space;
    req.identity = has_id ? v.identity : NULL;
    req.cls = has_id ? v.cls : GPU_CLASS_ANON;
    if (gpu_sched_request(api->sched, &req, gpu__now_ms(), &a, &err) < 0)
        return bad(api, c, err.code == ENOMEM ? 500 : 400, err.msg);
    auth = req.cls == GPU_CLASS_PRO ? "pro" : req.cls == GPU_CLASS_USER ? "regular" : NULL;
    snprintf(hdr, sizeof(hdr), "%s%s%s", auth ? "X-Authenticated: " : "", auth ? auth : "",
             auth ? "\r\n" : "");
    switch (a.verdict) {
    case GPU_GRANTED:
        prepare_grant(api, &a.lease);
        grant_json(&a.lease, body, sizeof(body));
        gpu__respond(api, c, 200, hdr, "application/json", body, true);
        break;
    case GPU_QUEUED: {
        char head[512];
        int len = snprintf(head, sizeof(head),
                           "HTTP/1.1 200 OK\r\nServer: spaceport-gpud\r\n"
                           "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                           "Transfer-Encoding: chunked\r\nConnection: close\r\n"
                           "X-Queuing-Reason: %s\r\n%s\r\n",
                           a.reason == GPU_WAIT_CONCURRENCY ? "concurrency" : "node", hdr);

        api->stats.queued++;
        c->state = GPU__C_STREAM;
        c->lease_id = a.lease.id;
        c->ping_ms = gpu__now_ms() + api->cfg.ping_ms;
        if (gpu__conn_send(api, c, head, (size_t) len) < 0)
            c->state = GPU__C_CLOSING; /* the close cancels the request */
        break;
    }
    case GPU_QUOTA:
    case GPU_TOO_LONG:
        snprintf(body, sizeof(body), "{\"left\":%" PRId64 ",\"wait\":%" PRId64 "}",
                 a.left_s < 0 ? 0 : a.left_s, a.verdict == GPU_TOO_LONG ? -1 : a.wait_s);
        gpu__respond(api, c, 429, hdr, "application/json", body, true);
        break;
    case GPU_NONE_FREE:
        gpu__respond(api, c, 503, hdr, "application/json", "{\"detail\":\"no GPU is free\"}", true);
        break;
    case GPU_NO_SIZE:
        /* 503, not a 4xx: the spaces client shows "No GPU was available" for it, but
         * only a bare status code for anything else. */
        gpu__respond(api, c, 503, hdr, "application/json",
                     "{\"detail\":\"gpuSize=xlarge needs a whole GPU, and this node's "
                     "ZeroGPU pool has only MIG slices (large): use size=large\"}",
                     true);
        break;
    }
    gpu__flush_grants(api);
}

static bool lease_in_space(struct gpu_api *api, uint64_t id, const char *space)
{
    struct gpu_lease_info l[16];
    size_t n = gpu_sched_list(api->sched, l, ARRAY_SIZE(l));

    if (n > ARRAY_SIZE(l)) {
        struct gpu_lease_info *all = calloc(n, sizeof(*all));
        bool in = false;

        if (!all)
            return false;
        n = gpu_sched_list(api->sched, all, n);
        for (size_t i = 0; i < n; i++)
            if (all[i].id == id)
                in = strcmp(all[i].space, space) == 0;
        free(all);
        return in;
    }
    for (size_t i = 0; i < n; i++)
        if (l[i].id == id)
            return strcmp(l[i].space, space) == 0;
    return false;
}

static int lease_of(struct gpu_api *api, struct gpu__conn *c, struct gpu__param *p, size_t n,
                    uint64_t *ret_id)
{
    const char *tok = gpu__param(p, n, "allowToken");

    if (!tok || !*tok) {
        bad(api, c, 400, "allowToken is required");
        return -EINVAL;
    }
    *ret_id = gpu_sched_find_token(api->sched, tok);
    /* A Space's listener acts on that Space's leases only: another Space that learnt
     * a token cannot release or take over a lease. */
    if (*ret_id && c->space[0] && !lease_in_space(api, *ret_id, c->space))
        *ret_id = 0;
    if (!*ret_id) {
        bad(api, c, 404, "unknown allowToken");
        return -ENOENT;
    }
    return 0;
}

/* An /allow that cannot finish once the worker got the device: the lease ends (failed,
 * so nobody is charged for a call that never ran) and the worker loses the device. */
static void allow_undo(struct gpu_api *api, struct gpu__conn *c, const struct gpu_lease_info *l,
                       pid_t host, int status, const char *msg)
{
    if (api->hooks.on_revoke)
        api->hooks.on_revoke(api->hooks.userdata, l, host, GPU_END_FAILED);
    (void) gpu_sched_release(api->sched, l->id, true, gpu__now_ms(), NULL, NULL);
    gpu__flush_grants(api);
    bad(api, c, status, msg);
}

static void h_allow(struct gpu_api *api, struct gpu__conn *c, struct gpu__param *p, size_t n)
{
    struct gpu_lease_info l;
    struct gpu__worker *w;
    struct rt_err err = { 0 };
    uint64_t id, u;
    pid_t host;
    int r, pidfd;
    struct epoll_event ev = { .events = EPOLLIN };

    if (get_u64(gpu__param(p, n, "pid"), INT32_MAX, &u) < 0 || u < 2)
        return bad(api, c, 400, "pid: expected a process id above 1");
    if (lease_of(api, c, p, n, &id) < 0)
        return;
    r = gpu_sched_allow(api->sched, id, (pid_t) u, &l);
    if (r == -EAGAIN)
        return bad(api, c, 409, "the request is still queued");
    if (r < 0)
        return bad(api, c, 404, "unknown allowToken");
    host = (pid_t) u;
    if (api->hooks.on_allow &&
        api->hooks.on_allow(api->hooks.userdata, &l, (pid_t) u, &host, &err) < 0) {
        /* No device for the worker: the call cannot run, so the unit goes back. */
        (void) gpu_sched_release(api->sched, id, true, gpu__now_ms(), NULL, NULL);
        gpu__flush_grants(api);
        return bad(api, c, err.code == EPERM ? 403 : 500, err.msg);
    }
    if (host != (pid_t) u && host > 1)
        (void) gpu_sched_allow(api->sched, id, host, &l);
    w = worker_of(api, &l);
    if (w && w->pidfd >= 0 && w->pid == host) {
        w->lease = l; /* the same worker again */
        return gpu__respond(api, c, 200, NULL, "application/json", "{}", true);
    }
    pidfd = pidfd_open_(host);
    if (pidfd < 0 || !w) {
        int e = errno;

        pidfd = rt_close(pidfd);
        return allow_undo(api, c, &l, host, 400,
                          e == ESRCH ? "pid: no such process" : "pid: cannot watch it");
    }
    /* A worker we still track on this unit is superseded (the client forks a new one
     * only when the old one died or the grant was not idle). */
    if (w->pidfd >= 0)
        worker_drop(api, w);
    w->gen = ++api->gen_next;
    ev.data.u64 = GPU__TAG(GPU__W_WORKER, l.slot, w->gen);
    if (epoll_ctl(api->epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
        /* Unwatched, its death would never give the unit back: no lease without it. */
        pidfd = rt_close(pidfd);
        return allow_undo(api, c, &l, host, 500, "cannot watch the worker");
    }
    w->pidfd = pidfd;
    w->pid = host;
    w->lease = l;
    gpu__respond(api, c, 200, NULL, "application/json", "{}", true);
}

static void h_release(struct gpu_api *api, struct gpu__conn *c, struct gpu__param *p, size_t n)
{
    const char *f = gpu__param(p, n, "fail");
    bool fail = false, used = false;
    uint64_t id, charged = 0;

    if (f && gpu__parse_bool(f, &fail) < 0)
        return bad(api, c, 400, "fail: expected true or false");
    if (lease_of(api, c, p, n, &id) < 0)
        return;
    /* The worker stays: the client keeps it for the next call on this unit. */
    if (gpu_sched_release(api->sched, id, fail, gpu__now_ms(), &charged, &used) < 0)
        return bad(api, c, 404, "unknown allowToken");
    gpu__flush_grants(api);
    if (used)
        gpu__respond(api, c, 200, NULL, "application/json", "{}", true);
    else
        gpu__respond(api, c, 204, NULL, NULL, NULL, true);
}

void gpu__route(struct gpu_api *api, struct gpu__conn *c)
{
    struct gpu__param p[GPU__PARAMS_MAX];
    char *q = strchr(c->url, '?'), *path = c->url;
    int method = llhttp_get_method(&c->parser), n;
    static const struct {
        const char *path;
        int method;
    } routes[] = {
        { "/startup-report", HTTP_POST }, { "/schedule", HTTP_POST },  { "/allow", HTTP_POST },
        { "/release", HTTP_POST },        { "/queue-size", HTTP_GET },
    };
    size_t i;

    if (q)
        *q++ = '\0';
    n = gpu__query_parse(q, p, GPU__PARAMS_MAX);
    if (n < 0)
        return bad(api, c, 400, "malformed query string");
    for (i = 0; i < ARRAY_SIZE(routes); i++)
        if (strcmp(path, routes[i].path) == 0)
            break;
    if (i == ARRAY_SIZE(routes))
        return bad(api, c, 404, "no such endpoint");
    if (method != routes[i].method)
        return gpu__respond(api, c, 405,
                            routes[i].method == HTTP_GET ? "Allow: GET\r\n" : "Allow: POST\r\n",
                            "application/json", "{\"detail\":\"method not allowed\"}", true);
    switch (i) {
    case 0:
        return h_startup(api, c);
    case 1:
        return h_schedule(api, c, p, (size_t) n);
    case 2:
        return h_allow(api, c, p, (size_t) n);
    case 3:
        return h_release(api, c, p, (size_t) n);
    default:
        return h_queue_size(api, c);
    }
}

unsigned gpu_api_release_space(struct gpu_api *api, const char *space)
{
    unsigned n = gpu_sched_release_space(api->sched, space, gpu__now_ms());

    for (size_t i = 0; i < api->n_slots; i++) {
        struct gpu__worker *w = &api->workers[i];

        if (w->pidfd >= 0 && strcmp(w->lease.space, space) == 0)
            worker_kill(api, w, GPU_END_RELEASED);
    }
    /* Streams hold only queued requests: one the scheduler no longer knows ended
     * with its Space. */
    for (unsigned i = 0; i < api->cfg.max_conns; i++) {
        struct gpu__conn *c = api->conns[i];

        if (c && c->state == GPU__C_STREAM && gpu_sched_position(api->sched, c->lease_id) == 0)
            stream_end(api, c, "event: failed\n\n");
    }
    gpu__flush_grants(api);
    return n;
}
