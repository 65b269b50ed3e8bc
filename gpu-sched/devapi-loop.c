/* The device API's event loop: one epoll fd for the listener, the connections and
 * the allowed workers' pidfds; timers are the scheduler's next deadline and each
 * connection's own (request timeout, SSE ping), found by a scan of at most
 * max_conns entries per turn. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "devapi-internal.h"
#include "util.h"

#include "banned.h"

#define READ_CHUNK 4096
#define MAX_EVENTS 64
#define DRAIN_MS 2000

uint64_t gpu__now_ms(void)
{
    return rt_now_ns() / 1000000;
}

static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    uint64_t port;
    size_t hl;

    if (!colon || rt_parse_u64(colon + 1, &port) < 0 || port > 65535)
        return -EINVAL;
    hl = (size_t) (colon - s);
    if (hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) ss;

        host[hl - 1] = '\0';
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t) port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return -EINVAL;
        *len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *) ss;

        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t) port);
        if (inet_pton(AF_INET, hl ? host : "127.0.0.1", &a->sin_addr) != 1)
            return -EINVAL;
        *len = sizeof(*a);
    }
    return 0;
}

static int listen_on(struct gpu_api *api, struct rt_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    _cleanup_close_ int fd = -1;
    int one = 1;

    if (parse_listen(api->cfg.listen, &ss, &len) < 0)
        return rt_err_set(err, EINVAL, "listen address '%s': expected ADDR:PORT", api->cfg.listen);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rt_err_set(err, errno, "socket");
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *) &ss, len) < 0)
        return rt_err_set(err, errno, "bind '%s'", api->cfg.listen);
    if (listen(fd, 128) < 0)
        return rt_err_set(err, errno, "listen '%s'", api->cfg.listen);
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
        return rt_err_set(err, errno, "getsockname");
    api->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                               : ((struct sockaddr_in *) &ss)->sin_port);
    api->lfd = TAKE_FD(fd);
    return 0;
}

int gpu_api_new(const struct gpu_api_config *cfg, const struct gpu_sched_config *sched_cfg,
                const struct gpu_slot *slots, size_t n_slots, const struct gpu_api_hooks *hooks,
                struct gpu_api **ret_api, struct rt_err *err)
{
    struct gpu_api *api;
    struct epoll_event ev = { .events = EPOLLIN };
    struct gpu_sched_events sev = gpu__sched_events;
    int r;

    /* Without a listen address the embedder adds listeners, a Space each. */
    if (cfg->listen && !cfg->space && !(hooks && hooks->on_resolve))
        return rt_err_set(err, EINVAL, "device api: a listen address needs a Space");
    api = calloc(1, sizeof(*api));
    if (!api)
        return rt_err_set(err, ENOMEM, "device api");
    api->epfd = api->lfd = -1;
    api->cfg = *cfg;
    if (hooks)
        api->hooks = *hooks;
    if (!api->cfg.max_conns)
        api->cfg.max_conns = 256;
    if (!api->cfg.max_header)
        api->cfg.max_header = 8192;
    if (!api->cfg.max_body)
        api->cfg.max_body = 4096;
    if (!api->cfg.ping_ms)
        api->cfg.ping_ms = 5000;
    if (!api->cfg.request_ms)
        api->cfg.request_ms = 10000;
    if (!api->cfg.token_max_age_s)
        api->cfg.token_max_age_s = 3600;
    if (cfg->visitor_key) {
        memcpy(api->key, cfg->visitor_key, sizeof(api->key));
        api->have_key = true;
    }
    api->cfg.visitor_key = NULL; /* copied: the caller's buffer need not outlive us */
    snprintf(api->space, sizeof(api->space), "%s", cfg->space ? cfg->space : "");
    api->cfg.space = api->space;
    api->cfg.listen = NULL;
    api->n_slots = n_slots;
    api->workers = calloc(n_slots ? n_slots : 1, sizeof(*api->workers));
    api->conns = calloc(api->cfg.max_conns, sizeof(*api->conns));
    if (!api->workers || !api->conns) {
        gpu_api_free(api);
        return rt_err_set(err, ENOMEM, "device api");
    }
    for (size_t i = 0; i < n_slots; i++) {
        api->workers[i].pidfd = -1;
    }
    sev.userdata = api;
    r = gpu_sched_new(sched_cfg, slots, n_slots, &sev, &api->sched, err);
    if (r < 0) {
        gpu_api_free(api);
        return r;
    }
    api->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (api->epfd < 0) {
        r = rt_err_set(err, errno, "epoll_create1");
        gpu_api_free(api);
        return r;
    }
    if (!cfg->listen) {
        *ret_api = api;
        return 0;
    }
    api->cfg.listen = cfg->listen;
    r = listen_on(api, err);
    api->cfg.listen = NULL;
    if (r < 0) {
        gpu_api_free(api);
        return r;
    }
    ev.data.u64 = GPU__TAG(GPU__W_LISTEN, 0, 0);
    if (epoll_ctl(api->epfd, EPOLL_CTL_ADD, api->lfd, &ev) < 0) {
        r = rt_err_set(err, errno, "epoll_ctl");
        gpu_api_free(api);
        return r;
    }
    *ret_api = api;
    return 0;
}

static void conn_free(struct gpu_api *api, struct gpu__conn *c)
{
    api->conns[c->idx] = NULL;
    api->n_conns--;
    /* Explicitly: close() leaves the epoll set only when no forked child still
     * holds a copy of the socket, and a stale registration would fire forever. */
    (void) epoll_ctl(api->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->fd = rt_close(c->fd);
    free(c->out);
    free(c);
}

void gpu_api_free(struct gpu_api *api)
{
    if (!api)
        return;
    for (unsigned i = 0; api->conns && i < api->cfg.max_conns; i++)
        if (api->conns[i])
            conn_free(api, api->conns[i]);
    for (size_t i = 0; api->workers && i < api->n_slots; i++)
        api->workers[i].pidfd = rt_close(api->workers[i].pidfd);
    gpu_sched_free(api->sched);
    api->lfd = rt_close(api->lfd);
    for (size_t i = 0; i < api->n_listeners; i++)
        api->listeners[i].fd = rt_close(api->listeners[i].fd);
    free(api->listeners);
    api->epfd = rt_close(api->epfd);
    free(api->grants);
    free(api->workers);
    free(api->conns);
    free(api);
}

unsigned gpu_api_port(const struct gpu_api *api)
{
    return api->port;
}

int gpu_api_fd(const struct gpu_api *api)
{
    return api->epfd;
}

struct gpu_sched *gpu_api_sched(struct gpu_api *api)
{
    return api->sched;
}

void gpu_api_stats(const struct gpu_api *api, struct gpu_api_stats *ret)
{
    *ret = api->stats;
    ret->conns = api->n_conns;
}

static void set_out(struct gpu_api *api, struct gpu__conn *c, bool want)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u),
                              .data.ptr = c };

    if (c->want_out == want)
        return;
    c->want_out = want;
    (void) epoll_ctl(api->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

void gpu__conn_close(struct gpu_api *api, struct gpu__conn *c)
{
    if (c->state == GPU__C_STREAM)
        gpu__stream_gone(api, c);
    conn_free(api, c);
}

/* Writes what is queued.  Returns 0, or -1 when the connection is gone (freed). */
static int flush_out(struct gpu_api *api, struct gpu__conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(api, c, true);
            return 0;
        }
        if (n <= 0) {
            gpu__conn_close(api, c);
            return -1;
        }
        c->out_off += (size_t) n;
    }
    c->out_len = c->out_off = 0;
    set_out(api, c, false);
    if (c->state == GPU__C_CLOSING) {
        /* Lingering close: a client still sending (an oversized body, a pipeline)
         * would get a reset instead of our answer if we closed with unread input. */
        if (shutdown(c->fd, SHUT_WR) < 0) {
            gpu__conn_close(api, c);
            return -1;
        }
        c->state = GPU__C_DRAIN;
        c->deadline_ms = gpu__now_ms() + DRAIN_MS;
    }
    return 0;
}

int gpu__conn_send(struct gpu_api *api, struct gpu__conn *c, const void *buf, size_t len)
{
    /* Each send is one write when the socket has room: the client reads an SSE
     * event per chunk, and a chunk per write is what keeps events apart. */
    if (c->out_len - c->out_off + len > GPU__OUT_MAX)
        return -ENOBUFS;
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_len + len + 1024;
        char *p = realloc(c->out, cap);

        if (!p)
            return -ENOMEM;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

void gpu__respond(struct gpu_api *api, struct gpu__conn *c, int status, const char *extra_headers,
                  const char *ctype, const char *body, bool keep)
{
    char head[1024];
    size_t blen = body ? strlen(body) : 0;
    int n;

    if (status >= 400 && status != 429 && status != 503)
        api->stats.bad_requests++;
    /* HTTP/1.0, or "Connection: close": the client wants this to be the last. */
    if (keep && !llhttp_should_keep_alive(&c->parser))
        keep = false;
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nServer: spaceport-gpud\r\n%s%s%s%s"
                 "Content-Length: %zu\r\n%s\r\n",
                 status, reason(status), ctype ? "Content-Type: " : "", ctype ? ctype : "",
                 ctype ? "\r\n" : "", extra_headers ? extra_headers : "", status == 204 ? 0 : blen,
                 keep ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t) n >= sizeof(head) || gpu__conn_send(api, c, head, (size_t) n) < 0 ||
        (status != 204 && blen && gpu__conn_send(api, c, body, blen) < 0)) {
        c->state = GPU__C_CLOSING;
        return;
    }
    if (!keep)
        c->state = GPU__C_CLOSING;
}

int gpu_api_listener_add(struct gpu_api *api, const char *key, const char *space, int fd,
                         struct rt_err *err)
{
    struct epoll_event ev = { .events = EPOLLIN };
    struct gpu__listener *l = NULL;
    size_t i;

    if (!key || !*key || !space || !*space || strlen(key) >= GPU_ID_MAX ||
        strlen(space) >= GPU_ID_MAX || fd < 0)
        return rt_err_set(err, EINVAL, "device api listener: a key, a Space and a socket");
    for (i = 0; i < api->n_listeners; i++) {
        if (api->listeners[i].fd >= 0 && strcmp(api->listeners[i].key, key) == 0)
            return rt_err_set(err, EEXIST, "device api listener '%s' exists", key);
        if (api->listeners[i].fd < 0 && !l)
            l = &api->listeners[i];
    }
    if (!l) {
        struct gpu__listener *p =
            realloc(api->listeners, (api->n_listeners + 1) * sizeof(*api->listeners));

        if (!p)
            return rt_err_set(err, ENOMEM, "device api listener");
        api->listeners = p;
        l = &api->listeners[api->n_listeners++];
        l->fd = -1; /* a free slot until it holds the socket, whatever fails below */
    }
    /* Non-blocking: accept4() runs until EAGAIN. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        return rt_err_set(err, errno, "device api listener: O_NONBLOCK");
    l->gen = ++api->gen_next;
    ev.data.u64 = GPU__TAG(GPU__W_LISTEN, (unsigned) (l - api->listeners) + 1, l->gen);
    if (epoll_ctl(api->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        l->fd = -1;
        return rt_err_set(err, errno, "device api listener: epoll_ctl");
    }
    l->fd = fd;
    snprintf(l->key, sizeof(l->key), "%s", key);
    snprintf(l->space, sizeof(l->space), "%s", space);
    return 0;
}

bool gpu_api_listener_remove(struct gpu_api *api, const char *key)
{
    for (size_t i = 0; i < api->n_listeners; i++) {
        struct gpu__listener *l = &api->listeners[i];

        if (l->fd < 0 || strcmp(l->key, key) != 0)
            continue;
        (void) epoll_ctl(api->epfd, EPOLL_CTL_DEL, l->fd, NULL);
        l->fd = rt_close(l->fd);
        return true;
    }
    return false;
}

static void accept_all(struct gpu_api *api, int lfd, const char *space)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
        struct gpu__conn *c;
        int fd = accept4(lfd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int one = 1;
        unsigned i;

        if (fd < 0)
            return; /* EAGAIN, or a transient error (EMFILE): the next turn retries */
        /* Bounded: beyond max_conns a client is refused at once rather than queued. */
        if (api->n_conns >= api->cfg.max_conns || !(c = calloc(1, sizeof(*c)))) {
            fd = rt_close(fd);
            continue;
        }
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        for (i = 0; api->conns[i]; i++)
            ;
        c->gen = ++api->gen_next;
        c->fd = fd;
        c->idx = i;
        snprintf(c->space, sizeof(c->space), "%s", space);
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, c->peer, sizeof(c->peer));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, c->peer,
                      sizeof(c->peer));
        gpu__http_init(c);
        c->deadline_ms = gpu__now_ms() + api->cfg.request_ms;
        ev.data.u64 = GPU__TAG(GPU__W_CONN, i, c->gen);
        if (epoll_ctl(api->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            fd = rt_close(fd);
            free(c);
            continue;
        }
        api->conns[i] = c;
        api->n_conns++;
    }
}

/* Parses and answers what is buffered.  Returns -1 when @c was freed. */
static int process(struct gpu_api *api, struct gpu__conn *c, const char *buf, size_t len)
{
    while (len && c->state == GPU__C_READING) {
        size_t used = gpu__http_feed(api, c, buf, len);

        if (c->status) {
            char body[64];

            snprintf(body, sizeof(body), "{\"detail\":\"%s\"}",
                     c->status == 400 ? "malformed request" : reason(c->status));
            gpu__respond(api, c, c->status, NULL, "application/json", body, false);
            break;
        }
        if (!c->done)
            break;
        buf += used;
        len -= used;
        if (len > sizeof(c->pending)) {
            gpu__respond(api, c, 400, NULL, "application/json",
                         "{\"detail\":\"too much pipelined\"}", false);
            break;
        }
        api->stats.requests++;
        /* Keep the rest (a pipelined request) until this one is answered. */
        memmove(c->pending, buf, len);
        c->pending_len = len;
        gpu__route(api, c);
        if (c->state != GPU__C_READING)
            break;
        gpu__http_next(c);
        c->deadline_ms = gpu__now_ms() + api->cfg.request_ms;
        buf = c->pending;
        len = c->pending_len;
        c->pending_len = 0;
    }
    return flush_out(api, c);
}

static void on_conn(struct gpu_api *api, struct gpu__conn *c, uint32_t events)
{
    char buf[READ_CHUNK];

    if (events & EPOLLOUT) {
        if (flush_out(api, c) < 0)
            return;
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    if (c->state == GPU__C_DRAIN) {
        for (;;) {
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

            if (n > 0 || (n < 0 && errno == EINTR))
                continue;
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                gpu__conn_close(api, c);
            return;
        }
    }
    if (c->state != GPU__C_READING) {
        /* A stream or a closing response: the client sends nothing more, so any
         * readable state here is its EOF or garbage; either way it is done. */
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
            (events & (EPOLLHUP | EPOLLERR)))
            gpu__conn_close(api, c);
        return;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            gpu__conn_close(api, c);
            return;
        }
        if (process(api, c, buf, (size_t) n) < 0 || c->state != GPU__C_READING)
            return;
    }
}

int gpu_api_next_ms(const struct gpu_api *api)
{
    uint64_t now = gpu__now_ms(), next = gpu_sched_next_ms(api->sched);

    for (unsigned i = 0; i < api->cfg.max_conns; i++) {
        const struct gpu__conn *c = api->conns[i];

        if (!c)
            continue;
        if ((c->state == GPU__C_READING || c->state == GPU__C_DRAIN) && c->deadline_ms < next)
            next = c->deadline_ms;
        if (c->state == GPU__C_STREAM && c->ping_ms < next)
            next = c->ping_ms;
    }
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : next - now > 60000 ? 60000 : (int) (next - now);
}

static void run_timers(struct gpu_api *api)
{
    uint64_t now = gpu__now_ms();

    if (gpu_sched_next_ms(api->sched) <= now) {
        gpu_sched_tick(api->sched, now);
        gpu__flush_grants(api);
    }
    for (unsigned i = 0; i < api->cfg.max_conns; i++) {
        struct gpu__conn *c = api->conns[i];

        if (!c)
            continue;
        if (c->state == GPU__C_DRAIN && c->deadline_ms <= now) {
            gpu__conn_close(api, c);
        } else if (c->state == GPU__C_READING && c->deadline_ms <= now) {
            /* Slow or silent clients (slowloris) must not hold a slot forever; an idle
             * kept-alive connection just closes. */
            if (c->url_len || c->head_bytes)
                gpu__respond(api, c, 408, NULL, "application/json",
                             "{\"detail\":\"request timeout\"}", false);
            else
                c->state = GPU__C_CLOSING;
            (void) flush_out(api, c);
        } else if (c->state == GPU__C_STREAM && c->ping_ms <= now) {
            gpu__stream_ping(api, c);
            c->ping_ms = now + api->cfg.ping_ms;
            (void) flush_out(api, c);
        }
    }
}

int gpu_api_dispatch(struct gpu_api *api, int timeout_ms, struct rt_err *err)
{
    struct epoll_event ev[MAX_EVENTS];
    int next = gpu_api_next_ms(api), n;

    if (next >= 0 && (timeout_ms < 0 || next < timeout_ms))
        timeout_ms = next;
    n = epoll_wait(api->epfd, ev, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR)
        return rt_err_set(err, errno, "epoll_wait");
    /* Workers first: a dead worker's unit may go to a request handled below. */
    for (int i = 0; i < n; i++) {
        uint64_t t = ev[i].data.u64;
        unsigned idx = GPU__TAG_IDX(t);

        if (GPU__TAG_KIND(t) == GPU__W_WORKER && idx < api->n_slots &&
            api->workers[idx].pidfd >= 0 && api->workers[idx].gen == GPU__TAG_GEN(t))
            gpu__worker_exited(api, &api->workers[idx]);
    }
    for (int i = 0; i < n; i++) {
        uint64_t t = ev[i].data.u64;
        unsigned idx = GPU__TAG_IDX(t);

        if (GPU__TAG_KIND(t) == GPU__W_LISTEN && idx == 0)
            accept_all(api, api->lfd, "");
        else if (GPU__TAG_KIND(t) == GPU__W_LISTEN && idx <= api->n_listeners &&
                 api->listeners[idx - 1].fd >= 0 && api->listeners[idx - 1].gen == GPU__TAG_GEN(t))
            accept_all(api, api->listeners[idx - 1].fd, api->listeners[idx - 1].space);
        else if (GPU__TAG_KIND(t) == GPU__W_CONN && idx < api->cfg.max_conns && api->conns[idx] &&
                 api->conns[idx]->gen == GPU__TAG_GEN(t))
            on_conn(api, api->conns[idx], ev[i].events);
    }
    run_timers(api);
    /* A grant, a failure or a ping may have been queued on a stream other than the
     * connection an event came in on: write everything that waits. */
    for (unsigned i = 0; i < api->cfg.max_conns; i++) {
        struct gpu__conn *c = api->conns[i];

        if (c && (c->out_len > c->out_off || c->state == GPU__C_CLOSING) && !c->want_out)
            (void) flush_out(api, c);
    }
    return 0;
}

int gpu_api_run(struct gpu_api *api, volatile sig_atomic_t *stop, struct rt_err *err)
{
    while (!*stop) {
        int r = gpu_api_dispatch(api, -1, err);

        if (r < 0)
            return r;
    }
    return 0;
}
