/* The device API server's private parts: connections (devapi-loop.c), HTTP parsing
 * (devapi-http.c), handlers and workers (devapi-routes.c).  Not included elsewhere
 * but in the unit tests. */
#ifndef SP_GPU_DEVAPI_INTERNAL_H
#define SP_GPU_DEVAPI_INTERNAL_H

/* Debian node-llhttp's header, where its wrappers (llhttp_*.c) find it too. */
#include "/usr/share/include/llhttp/llhttp.h"

#include "devapi.h"

/* What an epoll event is for: kind, index and generation packed in its u64, not a
 * pointer, so an event for a connection or pidfd that an earlier event of the same
 * batch closed (and whose memory or slot a new one took) is recognised and dropped. */
enum gpu__watch_kind { GPU__W_LISTEN = 1, GPU__W_CONN, GPU__W_WORKER };
#define GPU__TAG(kind, idx, gen) ((uint64_t) (gen) << 32 | (uint64_t) (idx) << 2 | (kind))
#define GPU__TAG_KIND(t) ((int) ((t) &3))
#define GPU__TAG_IDX(t) ((unsigned) (((t) >> 2) & 0x3fffffff))
#define GPU__TAG_GEN(t) ((uint32_t) ((t) >> 32))

#define GPU__URL_MAX 4096
#define GPU__OUT_MAX 65536 /* a client that stops reading its stream is dropped beyond it */

enum gpu__conn_state {
    GPU__C_READING = 0, /* parsing a request */
    GPU__C_STREAM,      /* queued: an SSE response is open, waiting for a grant */
    GPU__C_CLOSING,     /* flush what is left, then close */
    GPU__C_DRAIN,       /* answered and half-closed: read and drop until EOF or timeout */
};

struct gpu__conn {
    int fd;
    uint32_t gen;
    unsigned idx; /* in api->conns */
    enum gpu__conn_state state;
    char peer[64];          /* client address, for anonymous identities */
    char space[GPU_ID_MAX]; /* the Space its listener serves, "" for the default */
    llhttp_t parser;
    size_t head_bytes, body_bytes;
    size_t max_header, max_body; /* copies of the config, for the parser callbacks */
    bool head_done;              /* the headers were parsed */
    bool done;                   /* a whole request was parsed */
    int status;                  /* >0: the parse failed, answer this */
    size_t url_len;
    char url[GPU__URL_MAX + 1];
    char pending[4096]; /* bytes after a parsed request (pipelining) */
    size_t pending_len;
    char *out;
    size_t out_len, out_off, out_cap;
    bool want_out;        /* EPOLLOUT is armed */
    uint64_t deadline_ms; /* READING: the request must be whole by then; DRAIN: close */
    uint64_t ping_ms;     /* STREAM: next keep-alive */
    uint64_t lease_id;    /* STREAM: the queued request */
};

/* An allowed worker, one per slot: the process holding that unit open. */
struct gpu__worker {
    pid_t pid;
    uint32_t gen;                /* of its pidfd's registration */
    int pidfd;                   /* -1: none */
    struct gpu_lease_info lease; /* the lease it last ran for */
};

/* A listening socket and the Space every connection it accepts speaks for. */
struct gpu__listener {
    int fd; /* -1: a free entry */
    uint32_t gen;
    char key[GPU_ID_MAX];
    char space[GPU_ID_MAX];
};

struct gpu_api {
    struct gpu_api_config cfg;
    struct gpu_api_hooks hooks;
    uint8_t key[GPU_VISITOR_KEY_LEN];
    bool have_key;
    char space[GPU_ID_MAX];
    int epfd;
    int lfd;                         /* the default listener (cfg.listen), or -1 */
    struct gpu__listener *listeners; /* added with gpu_api_listener_add() */
    size_t n_listeners;
    uint32_t gen_next;
    unsigned port;
    struct gpu_sched *sched;
    size_t n_slots;
    struct gpu__worker *workers;
    struct gpu__conn **conns;
    unsigned n_conns;
    /* Grants the scheduler reported from inside a call; handled once it returned,
     * as its callbacks must not call back into it. */
    struct gpu_lease_info *grants;
    size_t n_grants, cap_grants;
    struct gpu_api_stats stats;
};

/* devapi-http.c */
void gpu__http_init(struct gpu__conn *c);
/* Feeds @len bytes.  Returns how many were consumed: fewer than @len when a request
 * completed (c->done) or the parse failed (c->status set). */
size_t gpu__http_feed(struct gpu_api *api, struct gpu__conn *c, const char *buf, size_t len);
/* Readies the parser for the next request on a kept-alive connection. */
void gpu__http_next(struct gpu__conn *c);

/* One decoded query parameter. */
struct gpu__param {
    char *key, *val;
};
#define GPU__PARAMS_MAX 16
/* Splits and percent-decodes @query in place.  Returns the count or -EINVAL
 * (bad escape, NUL, too many, duplicate key). */
int gpu__query_parse(char *query, struct gpu__param *out, size_t cap);
const char *gpu__param(const struct gpu__param *p, size_t n, const char *key);
/* "true"/"false" only, as the client sends them.  -EINVAL otherwise. */
int gpu__parse_bool(const char *s, bool *ret);

/* devapi-loop.c: queue bytes for the client (written now when possible). */
int gpu__conn_send(struct gpu_api *api, struct gpu__conn *c, const void *buf, size_t len);
/* A whole response with a body; keeps the connection when @keep. */
void gpu__respond(struct gpu_api *api, struct gpu__conn *c, int status, const char *extra_headers,
                  const char *ctype, const char *body, bool keep);
void gpu__conn_close(struct gpu_api *api, struct gpu__conn *c);
uint64_t gpu__now_ms(void);

/* devapi-routes.c */
void gpu__route(struct gpu_api *api, struct gpu__conn *c);
/* A stream's client left: cancel its queued request. */
void gpu__stream_gone(struct gpu_api *api, struct gpu__conn *c);
void gpu__stream_ping(struct gpu_api *api, struct gpu__conn *c);
void gpu__worker_exited(struct gpu_api *api, struct gpu__worker *w);
/* Handles the grants the last scheduler call reported. */
void gpu__flush_grants(struct gpu_api *api);
extern const struct gpu_sched_events gpu__sched_events;

#endif
