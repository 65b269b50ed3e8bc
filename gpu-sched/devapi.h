/* The ZeroGPU device API: the HTTP server the `spaces` package's client talks to
 * (REFERENCE.md §5.4), over the lease scheduler of lease.h.
 *
 *   POST /startup-report                      200
 *   POST /schedule?cgroupPath&taskId&enableQueue&durationSeconds&gpuSize&token
 *        200 JSON grant, or 200 text/event-stream (queued: ping ... succeeded|failed,
 *        one event per HTTP chunk), 429 {left, wait}, 503, 404 unknown cgroup
 *   POST /allow?allowToken&pid                200, 404 unknown token
 *   POST /release?allowToken&fail             200 (used) or 204, 404 unknown token
 *   GET  /queue-size                          JSON number
 *
 * One thread, one epoll fd, non-blocking sockets, bounded connections, headers and
 * bodies.  The server owns the scheduler and every allowed worker's pidfd: a worker
 * that dies gives its lease back, a lease past its deadline gets its worker
 * SIGKILLed and its device access revoked (the hooks), charged for what it used.
 *
 * Visitor identity comes from the `token` parameter (the X-IP-Token header the Space
 * forwards), verified with gpu_visitor_verify(); see there for the formats. */
#ifndef SP_GPU_DEVAPI_H
#define SP_GPU_DEVAPI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "lease.h"

/* --- visitor tokens (devapi-token.c) --------------------------------------------------- */

#define GPU_VISITOR_KEY_LEN 32

/* HMAC-SHA256 (RFC 2104) over common/sha256. */
void gpu_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len, uint8_t out[32]);

/* The visitor key from the proxy's secret, as spaceproxy derives it:
 * HMAC-SHA256(secret, "spaceport-visitor-v1"). */
void gpu_visitor_key(const void *secret, size_t len, uint8_t key[GPU_VISITOR_KEY_LEN]);

struct gpu_visitor {
    char identity[GPU_ID_MAX]; /* "user:alice" or "ip:203.0.113.7" */
    enum gpu_class cls;
};

/* Verifies a visitor token and fills *ret.  Two formats are accepted:
 *
 *  - a JWT (HS256) "B64URL(header).B64URL(payload).B64URL(HMAC)", the shape of the
 *    Hub's X-IP-Token, so the spaces client can read its payload: header
 *    {"alg":"HS256","typ":"JWT"}, payload {"ip": "...", "user": "alice",
 *    "class": "anonymous|user|pro", "exp": UNIX}.  `user` present: identity
 *    user:NAME, class from `class` (default user); else ip:IP, anonymous.
 *  - spaceproxy's "v1;ip=IP;t=UNIX;sig=HEX(HMAC(key, "v1;ip=IP;t=UNIX"))":
 *    ip:IP, anonymous, valid for @max_age_s after t.
 *
 * Returns 0, -EINVAL when malformed or badly signed, -ETIMEDOUT when expired.
 * Never reads beyond @len; @tok need not be NUL-terminated. */
int gpu_visitor_verify(const uint8_t key[GPU_VISITOR_KEY_LEN], const char *tok, size_t len,
                       uint64_t now_s, uint32_t max_age_s, struct gpu_visitor *ret);

/* Writes a JWT for @v valid until @exp_s (tests and operators).  @ip may be NULL.
 * Returns its length, or 0 when @cap is too small. */
size_t gpu_visitor_sign(const uint8_t key[GPU_VISITOR_KEY_LEN], const char *ip, const char *user,
                        enum gpu_class cls, uint64_t exp_s, char *buf, size_t cap);

/* --- the server (devapi-loop.c, devapi-routes.c) --------------------------------------- */

struct gpu_api_config {
    const char *listen;         /* "ADDR:PORT" (IPv4 or [IPv6]); port 0 picks one; NULL: none
                                   (an embedder adds a listener per Space instead) */
    const char *space;          /* the Space served when no on_resolve hook is given */
    unsigned max_conns;         /* open connections at most (0: 256); beyond: closed at once */
    size_t max_header;          /* request line + headers, bytes (0: 8 KiB); beyond: 431 */
    size_t max_body;            /* bytes (0: 4 KiB; the client sends none); beyond: 413 */
    uint32_t ping_ms;           /* SSE keep-alive period (0: 5000) */
    uint32_t request_ms;        /* a request must arrive whole within this (0: 10000) */
    const uint8_t *visitor_key; /* GPU_VISITOR_KEY_LEN bytes; NULL: every token is invalid */
    uint32_t token_max_age_s;   /* for "v1;" tokens (0: 3600) */
    bool strict_tokens;         /* invalid token: 401 "expired proxy token"; else anonymous
                                  by client address */
};

struct gpu_api_hooks {
    /* cgroupPath -> the Space it belongs to.  Return 0, or -ENOENT (404).  NULL hook:
     * every path is config.space. */
    int (*on_resolve)(void *userdata, const char *cgroup_path, char *ret_space, size_t cap);
    /* /allow: give @pid (as the worker sees itself) access to @lease's unit.  Store the
     * pid as the host sees it in *ret_host_pid (a sandbox has its own pid namespace).
     * It MUST refuse a pid that is not in @lease->space's sandbox: the server kills
     * the allowed pid at the deadline, so a caller could otherwise have any process
     * killed.  A negative return is a 500 with @err's message (-EPERM: 403). */
    int (*on_allow)(void *userdata, const struct gpu_lease_info *lease, pid_t pid,
                    pid_t *ret_host_pid, struct rt_err *err);
    /* The worker @pid on @lease's unit lost the device: EXPIRED (it was SIGKILLed
     * first), FAILED (it died), or RELEASED when another Space's grant evicted it. */
    void (*on_revoke)(void *userdata, const struct gpu_lease_info *lease, pid_t pid,
                      enum gpu_end why);
    /* /startup-report. */
    void (*on_startup)(void *userdata, const char *space);
    void *userdata;
};

struct gpu_api;

/* Binds the listener and creates the scheduler over @slots.  Returns 0 or -errno. */
int gpu_api_new(const struct gpu_api_config *cfg, const struct gpu_sched_config *sched_cfg,
                const struct gpu_slot *slots, size_t n_slots, const struct gpu_api_hooks *hooks,
                struct gpu_api **ret_api, struct rt_err *err);
/* Serves @space on the listening socket @fd (taken over on success; made non-blocking),
 * under the name @key (unique: one per sandbox, e.g. its state dir).  Every connection it
 * accepts speaks for @space, whatever cgroupPath says, and /allow and /release through
 * it act on @space's leases only.  runtimed makes @fd inside the Space's network
 * namespace, so the listener is the only way to the API and the Space is whoever can
 * reach it.  -EEXIST when @key is taken. */
int gpu_api_listener_add(struct gpu_api *api, const char *key, const char *space, int fd,
                         struct rt_err *err);
/* Closes @key's listener (connections it accepted end with their clients).  Leases stay:
 * gpu_api_release_space() ends them.  Returns whether it existed. */
bool gpu_api_listener_remove(struct gpu_api *api, const char *key);

/* Closes every connection (queued requests are cancelled) and frees.  Workers are not
 * killed: their Spaces own them. */
void gpu_api_free(struct gpu_api *api);

/* The bound port (useful after port 0). */
unsigned gpu_api_port(const struct gpu_api *api);

/* The epoll fd: readable when gpu_api_dispatch() has work.  An embedder polls it in
 * its own loop; timers need a call at least every gpu_api_next_ms() too. */
int gpu_api_fd(const struct gpu_api *api);
/* Milliseconds until the next timer (lease deadline, SSE ping, request timeout). */
int gpu_api_next_ms(const struct gpu_api *api);

/* One turn: waits up to @timeout_ms (0: not at all) for events, handles them and
 * the due timers.  Returns 0 or -errno (epoll failure). */
int gpu_api_dispatch(struct gpu_api *api, int timeout_ms, struct rt_err *err);

/* Turns until *@stop is set (a signal handler may set it). */
int gpu_api_run(struct gpu_api *api, volatile sig_atomic_t *stop, struct rt_err *err);

/* A Space stopped: its leases and queued requests end (streams get "failed"), its
 * workers are killed and revoked (on_revoke RELEASED).  Returns how many leases and
 * requests ended. */
unsigned gpu_api_release_space(struct gpu_api *api, const char *space);

/* The scheduler, for listings and quota queries (do not free). */
struct gpu_sched *gpu_api_sched(struct gpu_api *api);

/* Counters for tests and `spacectl gpu leases`. */
struct gpu_api_stats {
    uint64_t requests, bad_requests, grants, queued, expired, worker_deaths, evictions;
    unsigned conns;
};
void gpu_api_stats(const struct gpu_api *api, struct gpu_api_stats *ret);

#endif
