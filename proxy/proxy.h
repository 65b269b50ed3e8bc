/* spaceproxy internals shared by the proxy/ files.
 *
 * Shape: one epoll loop per worker thread (SO_REUSEPORT listener each), a small state
 * machine per client connection (struct px_conn), upstream connections that outlive
 * requests in a per-loop keep-alive pool (struct px_upconn), and one route table shared
 * by every loop, swapped whole (refcounted) when the config or runtimed's feed changes.
 * Nothing here blocks: calls to runtimed happen on the feed thread (feed.c). */
#ifndef SP_PROXY_PROXY_H
#define SP_PROXY_PROXY_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "/usr/share/include/llhttp/llhttp.h"
#include "error.h"

/* ---- configuration (config.c) ------------------------------------------------------ */

struct px_route_conf {
    char *host;           /* full host, lowercase, no port */
    char *upstream;       /* "IP:PORT" */
    char *custom_headers; /* rendered "Name: value\r\n" lines, or NULL */
    bool disable_embedding;
};

struct px_config {
    char *listen;       /* ADDR:PORT */
    char *admin_listen; /* ADDR:PORT or NULL (no admin port) */
    char *domain;
    char *runtimed;      /* base URL or NULL: config routes only */
    char *token_file;    /* runtimed's proxy token */
    char *access_log;    /* "off", "stderr" or a path */
    char *trusted_proxy; /* a TLS terminator's IP whose X-Forwarded-For/-Proto we believe */
    unsigned workers;    /* loops; 0 = one per online CPU */
    uint64_t max_header_size;
    uint64_t max_body_size; /* 0 = unlimited */
    unsigned max_connections;
    unsigned space_max_concurrency; /* requests + tunnels per Space, 0 = unlimited */
    unsigned wake_queue;            /* held requests per Space, per loop */
    unsigned header_timeout_ms;     /* a whole request head must arrive in this */
    unsigned keepalive_timeout_ms;  /* idle client connection between requests */
    unsigned idle_timeout_ms;       /* silence on a request, stream or tunnel */
    unsigned connect_timeout_ms;
    unsigned upstream_keepalive_ms; /* idle pooled upstream connection */
    unsigned wake_timeout_ms;       /* how long a request waits for a sleeping Space */
    unsigned drain_timeout_ms;      /* graceful stop */
    unsigned poll_interval_ms;      /* runtimed route feed */
    unsigned activity_interval_ms;  /* activity reports to runtimed */
    unsigned token_cache_ms;        /* a check-token answer is refreshed after this */
    size_t nroutes;
    struct px_route_conf *routes;
};

/* Fills @cfg with the built-in defaults. */
void px_config_defaults(struct px_config *cfg);
/* Reads a YAML config file over @cfg (unknown keys are errors).  Returns 0 or -errno. */
int px_config_load(struct px_config *cfg, const char *path, struct rt_err *err);
/* Parses "IP:PORT" / "[IPv6]:PORT" / "PORT".  Returns 0 or -EINVAL. */
int px_parse_addr(const char *s, struct sockaddr_storage *ret_addr, socklen_t *ret_len);
/* Parses "30", "30s", "500ms", "5m", "2h" into milliseconds.  Returns 0 or -EINVAL. */
int px_parse_duration_ms(const char *s, unsigned *ret_ms);
void px_config_done(struct px_config *cfg);
/* Sets one option by its config-file name (the command line uses it too). */
int px__config_set(struct px_config *cfg, const char *name, const char *val, struct rt_err *err);

/* ---- routes (route.c) --------------------------------------------------------------- */

enum px_stage {
    PX_STAGE_RUNNING = 0,
    PX_STAGE_RUNNING_BUILDING,
    PX_STAGE_APP_STARTING,
    PX_STAGE_SLEEPING,
    PX_STAGE_STOPPED,
    PX_STAGE_BUILDING,
    PX_STAGE_PAUSED,
    PX_STAGE_NO_APP_FILE,
    PX_STAGE_CONFIG_ERROR,
    PX_STAGE_BUILD_ERROR,
    PX_STAGE_RUNTIME_ERROR,
    PX_STAGE_DELETING,
    _PX_STAGE_MAX,
};

/* Counters that follow a Space across route tables (so a connection opened under an old
 * table is still counted).  Shared by every loop: atomics only. */
struct px_space_stats {
    atomic_int refs;
    atomic_uint active;    /* requests in flight and open tunnels */
    atomic_ullong last_ms; /* monotonic ms of the last request start or end */
    atomic_ullong wake_ms; /* when a wake was last asked for, 0 = never */
    char id[];
};

struct px_route {
    char *host; /* lowercase, no port */
    char *id;   /* "owner/name", or NULL for a config route */
    enum px_stage stage;
    bool private_;
    bool disable_embedding;
    bool has_upstream;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *extra_headers; /* rendered response headers to add, or NULL */
    size_t extra_len;
    struct px_space_stats *stats;
};

struct px_table {
    atomic_int refs;
    uint64_t generation; /* runtimed's, 0 when unknown */
    size_t n;
    struct px_route *routes; /* sorted by host */
};

/* An entry of the runtimed feed as parsed (feed.c), before it is merged into a table. */
struct px_feed_space {
    char *id, *host_label;
    enum px_stage stage;
    bool private_, disable_embedding;
    char *upstream;       /* NULL when not running */
    char *custom_headers; /* rendered lines or NULL */
};

struct px_table *px_table_ref(struct px_table *t);
void px_table_unref(struct px_table *t);
/* Looks @host (lowercase, no port) up.  Returns the route or NULL. */
const struct px_route *px_table_find(const struct px_table *t, const char *host, size_t len);
/* Builds a table from the config routes and the feed's spaces (config wins on a clash),
 * carrying over the per-Space stats of @prev.  Returns NULL with @err set on failure. */
struct px_table *px_table_build(const struct px_config *cfg, const struct px_feed_space *feed,
                                size_t nfeed, uint64_t generation, const struct px_table *prev,
                                struct rt_err *err);
enum px_stage px_stage_from_name(const char *s);
const char *px_stage_name(enum px_stage s);
/* Renders "Name: value\r\n" for a custom header after checking both parts contain no
 * CR/LF/NUL and the name is a token; appends to *buf.  Returns 0 or -EINVAL/-ENOMEM. */
int px_render_header(char **buf, const char *name, const char *value);

/* ---- process-wide state (main.c) ------------------------------------------------- */

struct px_loop;

struct px_global {
    struct px_config cfg;
    const char *config_path;
    unsigned nloops;
    struct px_loop **loops;

    pthread_mutex_t table_lock; /* guards table and feed_* */
    struct px_table *table;
    atomic_ullong table_serial; /* bumped on every swap; loops compare it each turn */
    struct px_feed_space *feed;
    size_t nfeed;
    uint64_t feed_generation;

    atomic_uint conns;    /* client connections, all loops */
    atomic_bool stopping; /* SIGTERM: drain and exit */
    atomic_bool runtimed_up;
    atomic_ullong feed_ok_ms; /* last successful route poll */

    unsigned char cookie_key[32];
    unsigned char visitor_key[32];
};

extern struct px_global px_g;

/* Swaps in a new table built from the current config and feed.  Returns 0 or -errno. */
int px_global_rebuild(struct rt_err *err);
/* Wakes every loop so it re-reads the table and retries held requests. */
void px_global_kick(void);

/* ---- the runtimed feed thread (feed.c) ---------------------------------------------- */

enum px_job_kind { PX_JOB_WAKE, PX_JOB_CHECK_TOKEN };

int px_feed_start(struct rt_err *err);
void px_feed_stop(void);
/* Queues a call to runtimed; never blocks.  Returns false when the queue is full. */
bool px_feed_post(enum px_job_kind kind, const char *id, const char *token);
void px_feed_free_spaces(struct px_feed_space *s, size_t n);
/* Parses a /api/proxy/routes answer.  Returns 0 or -EINVAL with @err set. */
int px_feed_parse(const char *json, size_t len, struct px_feed_space **ret, size_t *ret_n,
                  uint64_t *ret_generation, struct rt_err *err);

/* ---- auth (auth.c) ------------------------------------------------------------------ */

enum px_token_state { PX_TOKEN_UNKNOWN, PX_TOKEN_OK, PX_TOKEN_DENIED };

/* The visitor's class in X-IP-Token (and the ZeroGPU quota it spends). */
enum px_class { PX_CLASS_ANON = 0, PX_CLASS_USER, PX_CLASS_PRO };
#define PX_USER_MAX 64

/* Who a visitor is: a signed-in user (user[0] != 0) or anonymous. */
struct px_who {
    char user[PX_USER_MAX];
    uint8_t cls; /* enum px_class */
};

enum px_class px_class_from_name(const char *s); /* unknown or NULL: user */
const char *px_class_name(enum px_class c);
/* Letters, digits, '-', '_', '.' (runtimed's user names): safe in JSON and cookies. */
bool px_user_name_ok(const char *s, size_t len);

/* Derives the cookie and visitor keys from the proxy token (or random bytes). */
void px_auth_init(const char *token);
/* The cached answer of runtimed's check-token for (@id, @token); asks for one if stale.
 * With PX_TOKEN_OK, *@who (when not NULL) names the token's user. */
enum px_token_state px_auth_token(const char *id, const char *token, size_t token_len,
                                  struct px_who *who);
void px_auth_token_store(const char *id, const char *token, bool read, const char *user,
                         enum px_class cls);
/* runtimed could not answer: keep a cached yes (retried soon), otherwise deny for now. */
void px_auth_token_failed(const char *id, const char *token);
/* Writes the host-scoped session cookie value for @host into @buf, naming @who when it
 * is a user.  Returns its length. */
size_t px_auth_cookie_make(const char *host, const struct px_who *who, uint64_t now_s, char *buf,
                           size_t cap);
/* Checks a session cookie; fills *@who (when not NULL) with the user it names. */
bool px_auth_cookie_check(const char *host, const char *val, size_t len, uint64_t now_s,
                          struct px_who *who);
/* Writes the signed visitor-identity header value (an HS256 JWT) for @ip and @who (NULL:
 * anonymous).  Returns its length, 0 when it does not fit. */
size_t px_auth_visitor(const char *ip, const struct px_who *who, uint64_t now_s, char *buf,
                       size_t cap);
void px_auth_done(void);

/* How long an X-IP-Token stays valid (its "exp" is issue time + this). */
#define PX_VISITOR_TTL_S 3600

#define PX_COOKIE_NAME "spaceport_session"
#define PX_COOKIE_TTL_S (12 * 3600)

/* ---- loops, connections, upstreams (loop.c, conn.c, upstream.c) ------------------- */

struct px_timer {
    struct px_timer *prev, *next;
    uint64_t deadline_ms;
    uint8_t cls; /* enum px_tclass, or PX_T_NONE */
};

enum px_tclass {
    PX_T_HEAD,      /* request head arriving */
    PX_T_KEEPALIVE, /* idle between requests */
    PX_T_CONNECT,
    PX_T_IDLE,   /* in a request, a stream or a tunnel */
    PX_T_WAIT,   /* held for a waking Space or a token check */
    PX_T_POOL,   /* pooled upstream */
    PX_T_LINGER, /* closing after an error page */
    _PX_T_MAX,
    PX_T_NONE = 0xff,
};

struct px_tlist {
    struct px_timer *head, *tail;
    unsigned dur_ms;
};

/* A buffer of PX_BUF bytes; per-loop free lists keep idle connections buffer-free. */
struct px_buf {
    struct px_buf *next_free;
    uint32_t start, end; /* the unconsumed bytes are data[start..end) */
    char data[];
};

/* Where header names and values lie inside a head while it is parsed. */
struct px_hspan {
    uint16_t no, nl, vo, vl;
};
#define PX_MAX_HEADERS 100

struct px_head {
    struct px_head *next_free;
    uint16_t n;
    uint16_t url_o, url_l;
    uint16_t reason_o, reason_l;
    bool in_value;
    struct px_hspan h[PX_MAX_HEADERS];
};

/* Stats a loop keeps without atomics; the admin endpoint sums them (tearing is fine). */
struct px_counters {
    unsigned long long accepted, requests, responses[6], bytes_in, bytes_out;
    unsigned long long upstream_errors, upstream_reused, upstream_connects, rejected;
    unsigned long long wakes, held, held_timeouts;
    long long active, tunnels;
};

struct px_conn;
struct px_upconn;

struct px_pool {
    struct px_pool *next;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned n;
    struct px_upconn *idle; /* most recently used first */
};

#define PX_POOL_BUCKETS 256
#define PX_POOL_MAX_IDLE 1024

struct px_loop {
    unsigned idx;
    int epfd;
    int lfd;  /* client listener, -1 once draining */
    int afd;  /* admin listener (loop 0 only), or -1 */
    int evfd; /* kicked by other threads */
    pthread_t thread;
    uint64_t now_ms;
    uint64_t table_serial;
    struct px_table *table;
    struct px_tlist timers[_PX_T_MAX];
    struct px_conn *conns;   /* every live client connection */
    struct px_conn *waiting; /* held for a wake or a token check */
    struct px_conn *zombies; /* closed this turn, freed after the event batch */
    struct px_conn *ready;   /* stopped while busy, to run again before sleeping */
    struct px_upconn *upzombies;
    struct px_buf *free_bufs;
    unsigned nfree_bufs;
    struct px_head *free_heads;
    struct px_pool *pools[PX_POOL_BUCKETS];
    char *log; /* access log lines, written once per turn */
    size_t log_len, log_cap;
    int log_fd;
    bool draining;
    uint64_t drain_deadline;
    uint64_t accept_paused_until; /* out of fds: listening again at this time */
    struct px_counters st;
};

#define PX_BUF 16384u

/* epoll tags in the low bits of the registered pointer (all objects are 8-aligned). */
enum { PX_TAG_CLIENT = 0, PX_TAG_UP = 1, PX_TAG_LISTEN = 2, PX_TAG_ADMIN = 3, PX_TAG_EV = 4 };

struct px_upconn {
    struct px_loop *loop;
    int fd;
    uint8_t tag_pad;
    bool rd, wr, hup, rdhup, connected, reused, pooled;
    struct px_conn *owner; /* NULL while pooled */
    struct px_pool *pool;  /* the pool it goes back to */
    struct px_upconn *next_idle;
    struct px_upconn *next_zombie;
    struct px_timer tm; /* pool idle timeout */
    bool closed;
};

enum px_cstate {
    PX_C_HEAD,       /* reading a request head */
    PX_C_WAIT,       /* held: Space waking or token being checked */
    PX_C_CONNECT,    /* upstream connecting */
    PX_C_PROXY,      /* request/response streaming */
    PX_C_TUNNEL,     /* after 101: bytes both ways */
    PX_C_LOCAL,      /* writing a response of our own */
    PX_C_LOCAL_BODY, /* reading a small body for a local endpoint (sign-in) */
    PX_C_LINGER,     /* written our last response; draining what the client still sends */
};

struct px_conn {
    struct px_loop *loop;
    int fd;
    bool rd, wr, hup, rdhup, closed, admin;
    enum px_cstate st;
    struct px_timer tm;
    struct px_conn *prev, *next;   /* loop->conns */
    struct px_conn *wprev, *wnext; /* loop->waiting */
    struct px_conn *next_zombie;
    struct px_conn *next_ready; /* loop->ready: more work to do after this batch */
    bool queued;
    struct px_buf *in;  /* from the client */
    struct px_buf *out; /* from the upstream, to the client */
    struct px_head *hd; /* spans while a head is parsed */
    struct px_upconn *up;
    llhttp_t req, resp;
    uint32_t head_end;   /* offset in in->data where the request body starts */
    uint32_t parsed;     /* in->data offset up to which req has parsed */
    uint32_t out_parsed; /* out->data offset up to which resp has parsed */
    uint32_t out_fwd;    /* out->data[start..out_fwd) are body bytes ready for the visitor */
    char *uhead;         /* rewritten request head for the upstream */
    uint32_t uhead_len, uhead_off;
    char *chead; /* response head (or a whole local response) for the client */
    uint32_t chead_len, chead_off;
    bool req_done, resp_started, resp_head_done, resp_done, upgrade, close_after;
    bool req_body, is_head, http10, authed_bearer, tunnel_c_eof, tunnel_u_eof;
    bool retried, wait_wake, counted, head_pending, interim, up_dirty, signin;
    uint8_t resp_lines; /* interim (1xx) heads forwarded */
    uint16_t status;
    uint64_t body_seen; /* request body bytes forwarded (limit) */
    uint64_t t_start_ms, t_up_ms, wait_deadline;
    unsigned long long bytes_out;
    struct px_table *tab; /* ref held while route is used */
    const struct px_route *route;
    struct px_space_stats *stats; /* counted in stats->active */
    char ip[INET6_ADDRSTRLEN];
    char host[128];    /* normalised host of the current request (longer: 400) */
    char *token;       /* bearer token being checked, or NULL */
    struct px_who who; /* the visitor as X-IP-Token names it (set by authorised()) */
    bool who_anon;     /* a public Space's token check timed out: go on anonymous */
    char method[12];
    char path[64]; /* for the access log, truncated */
};

/* loop.c */
int px_loop_new(unsigned idx, struct px_loop **ret, struct rt_err *err);
void px_loop_free(struct px_loop *l);
void *px_loop_main(void *arg);
/* One turn: wait (at most @max_wait_ms, or the next timer when negative), dispatch, run
 * timers and busy connections, free what closed.  Returns the event count or -errno. */
int px_loop_turn(struct px_loop *l, int max_wait_ms);
void px_loop_kick(struct px_loop *l);
void px_timer_set(struct px_loop *l, struct px_timer *t, enum px_tclass cls);
void px_timer_stop(struct px_loop *l, struct px_timer *t);
struct px_buf *px_buf_get(struct px_loop *l);
void px_buf_put(struct px_loop *l, struct px_buf **b);
struct px_head *px_head_get(struct px_loop *l);
void px_head_put(struct px_loop *l, struct px_head **h);
void px_log_access(struct px_conn *c);
extern uint32_t px_bufsize; /* usable bytes in a px_buf */

/* conn.c */
void px_conn_accepted(struct px_loop *l, int fd, const struct sockaddr_storage *sa, bool admin);
void px_conn_event(struct px_conn *c, uint32_t events);
void px_conn_up_event(struct px_upconn *u, uint32_t events);
void px_conn_timeout(struct px_conn *c);
void px_conn_retry_waiting(struct px_loop *l);
void px_conn_run_ready(struct px_loop *l);
void px_conn_close(struct px_conn *c);
void px_conn_free(struct px_conn *c);

/* upstream.c */
/* Takes a pooled connection to @addr or starts a new one.  Returns NULL with errno set. */
struct px_upconn *px_up_get(struct px_loop *l, const struct sockaddr_storage *addr, socklen_t len,
                            bool fresh);
/* Returns @u to its pool (when @reusable) or closes it. */
void px_up_release(struct px_loop *l, struct px_upconn *u, bool reusable);
void px_up_close(struct px_loop *l, struct px_upconn *u);
void px_up_expire(struct px_loop *l, struct px_upconn *u);
void px_up_free_all(struct px_loop *l);

/* http1.c: head capture and rewriting */
extern const llhttp_settings_t px_req_settings, px_resp_settings;
/* Builds the upstream request head for @c's parsed request.  Returns 0 or -ENOMEM. */
int px_build_request_head(struct px_conn *c);
/* Builds the client response head from the upstream's parsed head in @c->out.  Returns 0
 * or -ENOMEM. */
int px_build_response_head(struct px_conn *c, const char *raw, uint32_t raw_len);
/* Finds header @name (lowercase) in the parsed head.  Returns the value or NULL. */
const char *px_header(const struct px_head *h, const char *base, const char *name, size_t *ret_len);
int px_header_count(const struct px_head *h, const char *base, const char *name);
/* Finds cookie @name in the Cookie headers.  Returns its value or NULL. */
const char *px_cookie(const struct px_head *h, const char *base, const char *name, size_t *ret_len);
bool px_token_in_list(const char *v, size_t len, const char *token);

/* pages.c: responses of our own */
enum px_page {
    PX_PAGE_400,
    PX_PAGE_404,
    PX_PAGE_405,
    PX_PAGE_408,
    PX_PAGE_413,
    PX_PAGE_431,
    PX_PAGE_502,
    PX_PAGE_503_BUSY,
    PX_PAGE_503_WAKE_TIMEOUT,
    PX_PAGE_504,
    _PX_PAGE_MAX,
};
/* Renders a complete response into a new malloc'd buffer.  Returns NULL on ENOMEM. */
char *px_page(enum px_page p, bool keep_alive, uint32_t *ret_len);
char *px_page_waking(const struct px_route *r, uint32_t *ret_len);
char *px_page_stage(const struct px_route *r, uint32_t *ret_len);
char *px_page_status_json(const struct px_route *r, bool keep_alive, uint32_t *ret_len);
char *px_page_signin(bool failed, bool keep_alive, uint32_t *ret_len);
char *px_page_redirect_cookie(const char *cookie, const char *location, uint32_t *ret_len);
char *px_page_text(int status, const char *reason, const char *ctype, const char *body,
                   size_t body_len, bool keep_alive, uint32_t *ret_len);

/* admin.c */
char *px_admin_metrics(uint32_t *ret_len);

#endif
