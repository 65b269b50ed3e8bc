/* One visitor connection: a small state machine driven by edge-triggered readiness.
 *
 *   HEAD -> (route, auth, wake) -> CONNECT -> PROXY -> HEAD (keep-alive) ...
 *                                  WAIT  --^        \-> TUNNEL (after 101)
 *   HEAD -> LOCAL (a page of ours) -> HEAD | LINGER -> closed
 *
 * Bytes are forwarded as they arrive, in both directions: llhttp walks over the body
 * bytes only to know where each message ends (so chunked framing passes untouched and
 * pipelined requests are kept apart); nothing waits for a whole body. */
#include "proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "banned.h"

static void conn_run(struct px_conn *c);
static void dispatch(struct px_conn *c);
static void continue_signin(struct px_conn *c);

/* ---- small helpers ------------------------------------------------------------------ */

static uint32_t avail_in(const struct px_conn *c)
{
    return c->in ? px_bufsize - c->in->end : 0;
}

static void free_heads(struct px_conn *c)
{
    free(c->uhead);
    c->uhead = NULL;
    c->uhead_len = c->uhead_off = 0;
    free(c->chead);
    c->chead = NULL;
    c->chead_len = c->chead_off = 0;
}

static void leave_waiting(struct px_conn *c)
{
    struct px_loop *l = c->loop;

    if (!c->wprev && !c->wnext && l->waiting != c)
        return;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        l->waiting = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->wprev = c->wnext = NULL;
}

static void uncount(struct px_conn *c)
{
    if (c->counted && c->stats) {
        atomic_fetch_sub_explicit(&c->stats->active, 1, memory_order_relaxed);
        atomic_store_explicit(&c->stats->last_ms, c->loop->now_ms, memory_order_relaxed);
        c->loop->st.active--;
    }
    c->counted = false;
}

static void drop_route(struct px_conn *c)
{
    uncount(c);
    c->route = NULL;
    c->stats = NULL;
    px_table_unref(c->tab);
    c->tab = NULL;
}

void px_conn_close(struct px_conn *c)
{
    struct px_loop *l = c->loop;

    if (c->closed)
        return;
    if (c->t_start_ms && !c->admin)
        px_log_access(c);
    c->closed = true;
    px_timer_stop(c->loop, &c->tm);
    /* a queued connection stays on loop->ready until the queue runs; it is freed only
     * after that, with the zombies */
    leave_waiting(c);
    if (c->up) {
        px_up_release(l, c->up, false);
        c->up = NULL;
    }
    if (c->st == PX_C_TUNNEL)
        l->st.tunnels--;
    drop_route(c);
    c->fd = rt_close(c->fd);
    px_buf_put(l, &c->in);
    px_buf_put(l, &c->out);
    px_head_put(l, &c->hd);
    free_heads(c);
    free(c->token);
    c->token = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next_zombie = l->zombies;
    l->zombies = c;
    atomic_fetch_sub_explicit(&px_g.conns, 1, memory_order_relaxed);
}

void px_conn_free(struct px_conn *c)
{
    free(c);
}

/* Sends @page (a whole response) and then keeps the connection or lingers it closed. */
static void respond(struct px_conn *c, char *page, const uint32_t *lenp)
{
    uint32_t len = page ? *lenp : 0;

    if (!page) {
        px_conn_close(c);
        return;
    }
    if (c->up) {
        px_up_release(c->loop, c->up, false);
        c->up = NULL;
    }
    free_heads(c);
    px_head_put(c->loop, &c->hd);
    leave_waiting(c);
    c->chead = page;
    c->chead_len = len;
    c->chead_off = 0;
    c->st = PX_C_LOCAL;
    c->resp_done = true;
    px_timer_set(c->loop, &c->tm, PX_T_IDLE);
}

/* An error page; the connection closes after it unless the request can be skipped. */
static void respond_page(struct px_conn *c, enum px_page p, int status)
{
    uint32_t len;

    if (c->req_body && !c->req_done)
        c->close_after = true; /* the body was not read: we cannot find the next request */
    c->status = (uint16_t) status;
    respond(c, px_page(p, !c->close_after, &len), &len);
}

/* ---- accepting ---------------------------------------------------------------------- */

void px_conn_accepted(struct px_loop *l, int fd, const struct sockaddr_storage *sa, bool admin)
{
    struct px_conn *c = calloc(1, sizeof(*c));
    struct epoll_event ev;

    if (!c) {
        (void) close(fd);
        return;
    }
    c->loop = l;
    c->fd = fd;
    c->admin = admin;
    c->tm.cls = PX_T_NONE;
    if (sa->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, c->ip, sizeof(c->ip));
    else if (sa->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, c->ip, sizeof(c->ip));
    else
        snprintf(c->ip, sizeof(c->ip), "unknown");
    llhttp_init(&c->req, HTTP_REQUEST, &px_req_settings);
    c->req.data = c;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (uint64_t) (uintptr_t) c | PX_TAG_CLIENT;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        (void) close(fd);
        free(c);
        return;
    }
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    atomic_fetch_add_explicit(&px_g.conns, 1, memory_order_relaxed);
    l->st.accepted++;
    c->st = PX_C_HEAD;
    c->rd = c->wr = true; /* the first request usually came with the handshake */
    px_timer_set(l, &c->tm, PX_T_HEAD);
    conn_run(c);
}

/* ---- request heads ------------------------------------------------------------------ */

static bool host_ok(const char *v, size_t len, char *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char ch = (char) tolower((unsigned char) v[i]);
        if (ch == ':')
            break; /* a port: route on the name alone */
        if (!isalnum((unsigned char) ch) && ch != '-' && ch != '.')
            return false;
        if (n + 1 >= cap)
            return false;
        out[n++] = ch;
    }
    while (n > 0 && out[n - 1] == '.')
        n--;
    out[n] = '\0';
    return n > 0;
}

static void start_upstream(struct px_conn *c);

static bool is_navigation(struct px_conn *c)
{
    size_t len;
    const char *accept = px_header(c->hd, c->in->data, "accept", &len);

    if (c->req.method != HTTP_GET || c->upgrade || !accept)
        return false;
    for (size_t i = 0; i + 9 <= len; i++)
        if (strncasecmp(accept + i, "text/html", 9) == 0)
            return true;
    return false;
}

static void park(struct px_conn *c, bool wake)
{
    struct px_loop *l = c->loop;

    c->st = PX_C_WAIT;
    c->wait_wake = wake;
    if (!c->wnext && !c->wprev && l->waiting != c) {
        c->wnext = l->waiting;
        if (l->waiting)
            l->waiting->wprev = c;
        l->waiting = c;
    }
    if (c->tm.cls != PX_T_WAIT)
        px_timer_set(l, &c->tm, PX_T_WAIT);
    l->st.held++;
}

static unsigned waiting_for(struct px_loop *l, const struct px_route *r)
{
    unsigned n = 0;
    for (struct px_conn *w = l->waiting; w; w = w->wnext)
        if (w->route == r || (w->route && r->id && w->route->id && !strcmp(w->route->id, r->id)))
            n++;
    return n;
}

static void ask_wake(struct px_conn *c)
{
    struct px_space_stats *s = c->route->stats;
    unsigned long long last = atomic_load_explicit(&s->wake_ms, memory_order_relaxed);

    /* One wake call per Space every few seconds is plenty: runtimed's wake is idempotent. */
    if (c->route->id && (last == 0 || c->loop->now_ms - last > 3000)) {
        atomic_store_explicit(&s->wake_ms, c->loop->now_ms, memory_order_relaxed);
        if (px_feed_post(PX_JOB_WAKE, c->route->id, NULL))
            c->loop->st.wakes++;
    }
}

static bool bearer(struct px_conn *c, const char **tok, size_t *len)
{
    size_t vl;
    const char *v = px_header(c->hd, c->in->data, "authorization", &vl);

    /* gradio_client (token=...) sends its token the way the Hub's Space hosts take it. */
    if (!v || vl < 8 || strncasecmp(v, "Bearer ", 7) != 0)
        v = px_header(c->hd, c->in->data, "x-hf-authorization", &vl);
    if (!v || vl < 8 || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    *tok = v + 7;
    *len = vl - 7;
    while (*len && (*tok)[0] == ' ') {
        (*tok)++;
        (*len)--;
    }
    return *len > 0 && *len < 512;
}

/* May this request see the route, and who is the visitor?  1 yes (c->who set), 0 no,
 * -1 not known yet (parked).  A bearer token (gradio_client's) names its user once
 * runtimed has answered; else the sign-in cookie does; else the visitor is anonymous.
 * On a public Space an unknown token waits for runtimed only while it is up. */
static int authorised(struct px_conn *c)
{
    const struct px_route *r = c->route;
    const char *tok;
    size_t len;

    memset(&c->who, 0, sizeof(c->who));
    if (r->id && !c->who_anon && bearer(c, &tok, &len)) {
        switch (px_auth_token(r->id, tok, len, &c->who)) {
        case PX_TOKEN_OK:
            c->authed_bearer = r->private_; /* our credential: a private Space never sees it */
            return 1;
        case PX_TOKEN_DENIED:
            memset(&c->who, 0, sizeof(c->who));
            break;
        default:
            memset(&c->who, 0, sizeof(c->who));
            if (px_g.cfg.runtimed && (r->private_ || atomic_load(&px_g.runtimed_up)))
                return -1;
            break;
        }
    }
    const char *ck = px_cookie(c->hd, c->in->data, PX_COOKIE_NAME, &len);
    if (ck && px_auth_cookie_check(c->host, ck, len, (uint64_t) time(NULL), &c->who))
        return 1;
    memset(&c->who, 0, sizeof(c->who));
    return r->private_ ? 0 : 1;
}

static bool runnable(const struct px_route *r)
{
    if (!r->has_upstream)
        return false;
    return !r->id || r->stage == PX_STAGE_RUNNING || r->stage == PX_STAGE_RUNNING_BUILDING;
}

static bool wakeable(enum px_stage s)
{
    return s == PX_STAGE_SLEEPING || s == PX_STAGE_STOPPED || s == PX_STAGE_APP_STARTING ||
           s == PX_STAGE_BUILDING || s == PX_STAGE_RUNNING || s == PX_STAGE_RUNNING_BUILDING;
}

/* Local endpoints under /.spaceport/ on every host (they reveal nothing on their own). */
static bool local_endpoint(struct px_conn *c)
{
    const char *url = c->in->data + c->hd->url_o;
    size_t ul = c->hd->url_l;
    uint32_t len;

    if (ul < 12 || strncmp(url, "/.spaceport/", 12) != 0)
        return false;
    if (ul >= 18 && strncmp(url + 12, "status", 6) == 0 && c->req.method == HTTP_GET) {
        if (!c->route || authorised(c) != 1) {
            respond_page(c, PX_PAGE_404, 404);
            return true;
        }
        c->status = 200;
        respond(c, px_page_status_json(c->route, !c->close_after, &len), &len);
        return true;
    }
    if (ul >= 18 && strncmp(url + 12, "signin", 6) == 0) {
        if (c->req.method == HTTP_GET) {
            c->status = 200;
            respond(c, px_page_signin(false, !c->close_after, &len), &len);
            return true;
        }
        if (c->req.method == HTTP_POST && c->req_body) {
            /* read the small form body, then check the token (feed thread) */
            c->st = PX_C_LOCAL_BODY;
            c->in->start = c->head_end;
            c->parsed = c->head_end;
            llhttp_resume(&c->req);
            return true;
        }
    }
    respond_page(c, PX_PAGE_404, 404);
    return true;
}

static void admin_request(struct px_conn *c)
{
    const char *url = c->in->data + c->hd->url_o;
    size_t ul = c->hd->url_l;
    uint32_t len;

    c->close_after = true;
    if (ul == 8 && strncmp(url, "/metrics", 8) == 0) {
        char *m = px_admin_metrics(&len);
        c->status = 200;
        if (m) {
            char *p = px_page_text(200, "OK", "text/plain; version=0.0.4", m, len, false, &len);
            free(m);
            respond(c, p, &len);
            return;
        }
    } else if (ul == 8 && strncmp(url, "/healthz", 8) == 0) {
        c->status = 200;
        respond(c, px_page_text(200, "OK", "text/plain", "ok\n", 3, false, &len), &len);
        return;
    }
    respond_page(c, PX_PAGE_404, 404);
}

/* llhttp is lenient in a few places a proxy must not be: header names must be tokens and
 * values must not fold over lines (RFC 9112 section 5), or the Space could read a
 * different request than the one we routed. */
static bool head_valid(const struct px_conn *c)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    const struct px_head *h = c->hd;
    const char *b = c->in->data;

    for (unsigned i = 0; i < h->n; i++) {
        const struct px_hspan *s = &h->h[i];
        if (s->nl == 0)
            return false;
        for (unsigned k = 0; k < s->nl; k++) {
            unsigned char ch = (unsigned char) b[s->no + k];
            if (!isalnum(ch) && !strchr(tchar, ch))
                return false;
        }
        for (unsigned k = 0; k < s->vl; k++) {
            unsigned char ch = (unsigned char) b[s->vo + k];
            if (ch == '\r' || ch == '\n' || ch == '\0')
                return false;
        }
    }
    return true;
}

/* The head is complete (parser paused right after it): decide where the request goes. */
static void on_head(struct px_conn *c)
{
    struct px_loop *l = c->loop;
    size_t vl;
    const char *v;
    llhttp_t *p = &c->req;

    c->t_start_ms = l->now_ms;
    c->status = 0;
    c->bytes_out = 0;
    c->t_up_ms = 0;
    l->st.requests++;
    snprintf(c->method, sizeof(c->method), "%s", llhttp_method_name((llhttp_method_t) p->method));
    snprintf(c->path, sizeof(c->path), "%.*s", (int) c->hd->url_l, c->in->data + c->hd->url_o);
    c->host[0] = '\0';
    c->http10 = p->http_major == 1 && p->http_minor == 0;
    c->upgrade = p->upgrade && p->method != HTTP_CONNECT;
    c->is_head = p->method == HTTP_HEAD;
    c->req_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    c->req_done = !c->req_body && !c->upgrade;
    c->close_after = !llhttp_should_keep_alive(p) || l->draining;
    c->authed_bearer = false;
    c->who_anon = false;
    memset(&c->who, 0, sizeof(c->who));
    c->retried = false;
    c->body_seen = 0;
    px_timer_set(l, &c->tm, PX_T_IDLE);

    if (c->admin) {
        admin_request(c);
        return;
    }
    if (p->method == HTTP_CONNECT) {
        c->close_after = true;
        respond_page(c, PX_PAGE_405, 405);
        return;
    }
    if (p->http_major != 1 || !head_valid(c)) {
        c->close_after = true;
        respond_page(c, PX_PAGE_400, 400);
        return;
    }
    /* Exactly one Host, origin-form target: anything else is how smuggling and cache
     * poisoning start, and no browser sends it. */
    v = px_header(c->hd, c->in->data, "host", &vl);
    if (px_header_count(c->hd, c->in->data, "host") != 1 ||
        !host_ok(v, vl, c->host, sizeof(c->host)) || c->hd->url_l == 0 ||
        c->in->data[c->hd->url_o] != '/') {
        c->close_after = true;
        respond_page(c, PX_PAGE_400, 400);
        return;
    }
    if (px_g.cfg.max_body_size && (p->flags & F_CONTENT_LENGTH) &&
        p->content_length > px_g.cfg.max_body_size) {
        c->close_after = true;
        respond_page(c, PX_PAGE_413, 413);
        return;
    }
    c->tab = px_table_ref(l->table);
    c->route = px_table_find(c->tab, c->host, strlen(c->host));
    if (local_endpoint(c))
        return;
    if (!c->route) {
        respond_page(c, PX_PAGE_404, 404);
        return;
    }
    dispatch(c);
}

/* Route, authorise and wake; called again for held requests when something changed. */
static void dispatch(struct px_conn *c)
{
    const struct px_route *r = c->route;
    uint32_t len;
    int a;

    if (!r) {
        respond_page(c, PX_PAGE_404, 404);
        return;
    }
    a = authorised(c);
    if (a == 0) {
        respond_page(c, PX_PAGE_404, 404); /* the same page as an unknown host */
        return;
    }
    if (a < 0) {
        park(c, false);
        return;
    }
    if (runnable(r)) {
        leave_waiting(c);
        start_upstream(c);
        return;
    }
    if (!r->id || !wakeable(r->stage)) {
        c->status = 503;
        if (c->req_body)
            c->close_after = true;
        respond(c, px_page_stage(r, &len), &len);
        return;
    }
    ask_wake(c);
    if (c->st == PX_C_WAIT)
        return; /* still held: the route changed but the Space is not up yet */
    if (is_navigation(c)) {
        c->status = 503;
        if (c->req_body)
            c->close_after = true;
        respond(c, px_page_waking(r, &len), &len);
        return;
    }
    if (waiting_for(c->loop, r) >= px_g.cfg.wake_queue) {
        respond_page(c, PX_PAGE_503_BUSY, 503);
        return;
    }
    park(c, true);
}

void px_conn_retry_waiting(struct px_loop *l)
{
    struct px_conn *next;

    for (struct px_conn *c = l->waiting; c; c = next) {
        next = c->wnext;
        if (c->closed || c->st != PX_C_WAIT)
            continue;
        if (c->signin) {
            continue_signin(c);
        } else {
            if (c->tab != l->table) {
                uncount(c);
                px_table_unref(c->tab);
                c->tab = px_table_ref(l->table);
                c->route = px_table_find(c->tab, c->host, strlen(c->host));
            }
            dispatch(c);
        }
        if (!c->closed)
            conn_run(c);
    }
}

/* ---- sign-in (a cookie for one Space's host, set after a token check) ---------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char) tolower((unsigned char) ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Finds "token=" in an urlencoded form and decodes it into a new string. */
static char *form_token(const char *b, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t st = i;
        while (i < len && b[i] != '&')
            i++;
        if (i - st > 6 && strncmp(b + st, "token=", 6) == 0) {
            char *out = malloc(i - st);
            size_t n = 0;
            if (!out)
                return NULL;
            for (size_t j = st + 6; j < i; j++) {
                if (b[j] == '+') {
                    out[n++] = ' ';
                } else if (b[j] == '%' && j + 2 < i && hexval(b[j + 1]) >= 0 &&
                           hexval(b[j + 2]) >= 0) {
                    out[n++] = (char) (hexval(b[j + 1]) * 16 + hexval(b[j + 2]));
                    j += 2;
                } else {
                    out[n++] = b[j];
                }
            }
            out[n] = '\0';
            while (n && (out[n - 1] == ' ' || out[n - 1] == '\n' || out[n - 1] == '\r'))
                out[--n] = '\0';
            return out;
        }
        i++;
    }
    return NULL;
}

static void continue_signin(struct px_conn *c)
{
    const struct px_route *r = c->route;
    enum px_token_state st = PX_TOKEN_DENIED;
    struct px_who who = { 0 };
    uint32_t len;

    if (r && r->id && c->token && c->token[0] && !strchr(c->token, '\r'))
        st = px_auth_token(r->id, c->token, strlen(c->token), &who);
    if (st == PX_TOKEN_UNKNOWN && px_g.cfg.runtimed) {
        park(c, false);
        return;
    }
    leave_waiting(c);
    c->signin = false;
    if (st == PX_TOKEN_OK) {
        char cookie[320];
        /* the cookie names the user and the class of its plan at sign-in */
        px_auth_cookie_make(c->host, &who, (uint64_t) time(NULL), cookie, sizeof(cookie));
        c->status = 303;
        respond(c, px_page_redirect_cookie(cookie, "/", &len), &len);
        return;
    }
    c->status = 403;
    respond(c, px_page_signin(true, !c->close_after, &len), &len);
}

static void step_local_body(struct px_conn *c)
{
    for (;;) {
        if (c->parsed < c->in->end) {
            llhttp_errno_t e =
                llhttp_execute(&c->req, c->in->data + c->parsed, c->in->end - c->parsed);
            if (e == HPE_PAUSED) {
                c->parsed = (uint32_t) (llhttp_get_error_pos(&c->req) - c->in->data);
                c->signin = true;
                free(c->token);
                c->token = form_token(c->in->data + c->head_end, c->parsed - c->head_end);
                c->in->start = c->parsed;
                continue_signin(c);
                return;
            }
            if (e != HPE_OK) {
                c->close_after = true;
                respond_page(c, PX_PAGE_400, 400);
                return;
            }
            c->parsed = c->in->end;
        }
        if (avail_in(c) == 0) {
            c->close_after = true;
            respond_page(c, PX_PAGE_413, 413);
            return;
        }
        if (!c->rd)
            return;
        ssize_t n = read(c->fd, c->in->data + c->in->end, avail_in(c));
        if (n > 0) {
            c->in->end += (uint32_t) n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            c->rd = errno == EINTR;
            if (!c->rd)
                return;
            continue;
        }
        px_conn_close(c);
        return;
    }
}

/* ---- upstream ----------------------------------------------------------------------- */

static void fail_upstream(struct px_conn *c, bool timeout);

/* Walks the request parser over body bytes already read: they become forwardable. */
static bool req_parse(struct px_conn *c)
{
    if (c->req_done || c->upgrade || c->parsed >= c->in->end)
        return true;
    uint32_t from = c->parsed;
    llhttp_errno_t e = llhttp_execute(&c->req, c->in->data + from, c->in->end - from);
    if (e == HPE_PAUSED)
        c->parsed = (uint32_t) (llhttp_get_error_pos(&c->req) - c->in->data);
    else if (e == HPE_OK)
        c->parsed = c->in->end;
    else
        return false;
    c->body_seen += c->parsed - from;
    if (px_g.cfg.max_body_size && c->body_seen > px_g.cfg.max_body_size + 64)
        return false; /* chunked framing counted too, hence the slack */
    return true;
}

static void start_upstream(struct px_conn *c)
{
    struct px_loop *l = c->loop;
    const struct px_route *r = c->route;
    struct px_space_stats *s = r->stats;
    unsigned lim = px_g.cfg.space_max_concurrency;

    if (lim && atomic_load_explicit(&s->active, memory_order_relaxed) >= lim) {
        respond_page(c, PX_PAGE_503_BUSY, 503);
        return;
    }
    if (!c->counted) {
        atomic_fetch_add_explicit(&s->active, 1, memory_order_relaxed);
        atomic_store_explicit(&s->last_ms, l->now_ms, memory_order_relaxed);
        c->stats = s;
        c->counted = true;
        l->st.active++;
    }
    if (px_build_request_head(c) < 0) {
        respond_page(c, PX_PAGE_502, 502);
        return;
    }
    px_head_put(l, &c->hd);
    c->in->start = c->head_end;
    c->parsed = c->head_end;
    if (!c->upgrade) {
        llhttp_resume(&c->req);
        if (!req_parse(c)) {
            c->close_after = true;
            respond_page(c, PX_PAGE_400, 400);
            return;
        }
    }
    llhttp_init(&c->resp, HTTP_RESPONSE, &px_resp_settings);
    c->resp.data = c;
    c->resp_started = c->resp_head_done = c->resp_done = false;
    c->out_parsed = 0;
    c->up = px_up_get(l, &r->addr, r->addrlen, c->retried);
    if (!c->up) {
        l->st.upstream_errors++;
        respond_page(c, PX_PAGE_502, 502);
        return;
    }
    c->up->owner = c;
    c->t_up_ms = l->now_ms;
    if (c->up->connected) {
        l->st.upstream_reused++;
        c->st = PX_C_PROXY;
        px_timer_set(l, &c->tm, PX_T_IDLE);
    } else {
        l->st.upstream_connects++;
        c->st = PX_C_CONNECT;
        px_timer_set(l, &c->tm, PX_T_CONNECT);
    }
}

static void fail_upstream(struct px_conn *c, bool timeout)
{
    struct px_loop *l = c->loop;
    bool reused = c->up && c->up->reused;

    l->st.upstream_errors++;
    if (c->up) {
        px_up_release(l, c->up, false);
        c->up = NULL;
    }
    if (c->resp_started) {
        px_conn_close(c); /* part of the response went out: only a close tells the truth */
        return;
    }
    /* A pooled connection the Space closed while we picked it: replay once, on a fresh
     * one, if nothing of the body has been consumed. */
    if (reused && !c->retried && !c->req_body && c->uhead) {
        c->retried = true;
        c->uhead_off = 0;
        c->up = px_up_get(l, &c->route->addr, c->route->addrlen, true);
        if (c->up) {
            c->up->owner = c;
            c->st = PX_C_CONNECT;
            px_timer_set(l, &c->tm, PX_T_CONNECT);
            return;
        }
    }
    if (c->req_body)
        c->close_after = true;
    respond_page(c, timeout ? PX_PAGE_504 : PX_PAGE_502, timeout ? 504 : 502);
}

static void step_connect(struct px_conn *c)
{
    struct px_upconn *u = c->up;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (!u->wr && !u->hup)
        return;
    if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
        fail_upstream(c, false);
        return;
    }
    u->connected = true;
    c->st = PX_C_PROXY;
    px_timer_set(c->loop, &c->tm, PX_T_IDLE);
}

/* ---- responses ---------------------------------------------------------------------- */

static void finish_request(struct px_conn *c);

/* The response parser stopped right after a head that ends at @pos: rewrite it. */
static bool on_resp_head(struct px_conn *c, uint32_t pos)
{
    uint32_t head_start = c->out->start;

    if (c->status == 101) {
        if (!c->upgrade)
            return false;
        /* The switch is the Space's answer: relay its head as it is and become a tunnel
         * (Sec-WebSocket-Protocol and Set-Cookie included). */
        free(c->chead);
        c->chead = malloc(pos - head_start);
        if (!c->chead)
            return false;
        memcpy(c->chead, c->out->data + head_start, pos - head_start);
        c->chead_len = pos - head_start;
        c->chead_off = 0;
        c->out->start = pos;
        px_head_put(c->loop, &c->hd);
        free(c->uhead);
        c->uhead = NULL;
        c->st = PX_C_TUNNEL;
        c->loop->st.tunnels++;
        /* client bytes sent after the upgrade request are tunnel bytes too */
        c->parsed = c->in ? c->in->end : 0;
        px_timer_set(c->loop, &c->tm, PX_T_IDLE);
        return true;
    }
    if (c->status >= 200 && (c->upgrade || llhttp_message_needs_eof(&c->resp) || c->http10))
        c->close_after = true;
    if (px_build_response_head(c, c->out->data + head_start, pos - head_start) < 0)
        return false;
    c->out->start = c->out_fwd = pos;
    if (c->status >= 200)
        px_head_put(c->loop, &c->hd);
    return true;
}

/* Walks the response parser over bytes read from the Space.  False: it broke HTTP. */
static bool resp_parse(struct px_conn *c)
{
    while (c->st == PX_C_PROXY && !c->resp_done) {
        if (c->interim) {
            if (c->chead_off < c->chead_len)
                return true; /* write the 1xx head before parsing the next one */
            c->interim = false;
            llhttp_resume(&c->resp);
        }
        if (c->out_parsed >= c->out->end)
            break;
        llhttp_errno_t e =
            llhttp_execute(&c->resp, c->out->data + c->out_parsed, c->out->end - c->out_parsed);
        uint32_t pos;
        if (e == HPE_OK)
            pos = c->out->end;
        else if (e == HPE_PAUSED)
            pos = (uint32_t) (llhttp_get_error_pos(&c->resp) - c->out->data);
        else
            return false;
        c->out_parsed = pos;
        if (c->head_pending) {
            c->head_pending = false;
            if (!on_resp_head(c, pos))
                return false;
            if (c->st == PX_C_TUNNEL)
                return true;
            if (c->status < 200) {
                c->interim = true;
                continue;
            }
        } else if (c->resp_head_done) {
            c->out_fwd = pos;
        }
        if (c->resp_done) {
            if (pos < c->out->end)
                c->up_dirty = true; /* bytes after the response: never reuse this one */
            c->out->end = pos;
            break;
        }
        if (e == HPE_PAUSED)
            llhttp_resume(&c->resp);
    }
    if (!c->resp_head_done && c->out->end == px_bufsize)
        return false; /* a response head larger than our buffer */
    return true;
}

/* Reads into @b from @fd.  Returns bytes, 0 at EOF, -EAGAIN (and clears *rd), or -errno.
 * A short read drained the socket, so *rd is cleared then too and the next read waits for
 * the next edge (one read syscall less per request) -- unless the peer's FIN was already
 * announced (@rdhup): then no edge would come, and we read on until EOF. */
static ssize_t rd_into(int fd, struct px_buf *b, bool *rd, bool rdhup)
{
    for (;;) {
        size_t want = px_bufsize - b->end;
        ssize_t n = read(fd, b->data + b->end, want);
        if (n > 0) {
            b->end += (uint32_t) n;
            if ((size_t) n < want && !rdhup)
                *rd = false;
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            *rd = false;
            return -EAGAIN;
        }
        return -errno;
    }
}

/* Writes @head (its unsent part) then b->data[b->start..end) in one writev. */
static ssize_t wr_two(int fd, char *head, uint32_t *hoff, uint32_t hlen, struct px_buf *b,
                      uint32_t end, bool *wr)
{
    struct iovec iov[2];
    int cnt = 0;
    uint32_t hl = head ? hlen - *hoff : 0;

    if (hl)
        iov[cnt++] = (struct iovec){ head + *hoff, hl };
    if (b && end > b->start)
        iov[cnt++] = (struct iovec){ b->data + b->start, end - b->start };
    if (!cnt)
        return 0;
    for (;;) {
        ssize_t n = writev(fd, iov, cnt);
        if (n >= 0) {
            size_t left = (size_t) n;
            if (hl) {
                size_t k = left < hl ? left : hl;
                *hoff += (uint32_t) k;
                left -= k;
            }
            if (left)
                b->start += (uint32_t) left;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            *wr = false;
            return -EAGAIN;
        }
        return -errno;
    }
}

static bool step_proxy(struct px_conn *c)
{
    struct px_loop *l = c->loop;
    struct px_upconn *u = c->up;
    bool progress = false;
    ssize_t n;

    /* 1. the request head and body bytes to the Space */
    if (u && u->wr && (c->uhead_off < c->uhead_len || (c->in && c->parsed > c->in->start))) {
        n = wr_two(u->fd, c->uhead, &c->uhead_off, c->uhead_len, c->in,
                   c->upgrade ? c->in->start : c->parsed, &u->wr);
        if (n > 0) {
            progress = true;
            if (c->in->start == c->in->end && c->req_done) {
                c->in->start = c->in->end = c->parsed = 0;
            }
        } else if (n < 0 && n != -EAGAIN) {
            fail_upstream(c, false);
            return true;
        }
    }
    /* 2. more request body from the visitor, unless the Space is not taking it */
    if (!c->req_done && !c->upgrade && c->rd && c->parsed == c->in->end &&
        c->uhead_off == c->uhead_len) {
        if (c->in->start == c->in->end)
            c->in->start = c->in->end = c->parsed = 0;
        if (avail_in(c) > 0) {
            n = rd_into(c->fd, c->in, &c->rd, c->rdhup);
            if (n > 0) {
                l->st.bytes_in += (unsigned long long) n;
                if (!req_parse(c)) {
                    if (!c->resp_started) {
                        c->close_after = true;
                        respond_page(c,
                                     px_g.cfg.max_body_size && c->body_seen > px_g.cfg.max_body_size
                                         ? PX_PAGE_413
                                         : PX_PAGE_400,
                                     c->body_seen > px_g.cfg.max_body_size ? 413 : 400);
                    } else {
                        px_conn_close(c);
                    }
                    return true;
                }
                progress = true;
            } else if (n == 0 || n != -EAGAIN) {
                px_conn_close(c); /* the visitor left in the middle of its upload */
                return true;
            }
        }
    }
    /* 3. the response to the visitor */
    if (c->wr && (c->chead_off < c->chead_len || (c->out && c->out_fwd > c->out->start))) {
        n = wr_two(c->fd, c->chead, &c->chead_off, c->chead_len, c->out, c->out ? c->out_fwd : 0,
                   &c->wr);
        if (n > 0) {
            progress = true;
            c->bytes_out += (unsigned long long) n;
            l->st.bytes_out += (unsigned long long) n;
            if (c->out && c->out->start == c->out->end && !c->interim) {
                c->out->start = c->out->end = c->out_parsed = c->out_fwd = 0;
            }
            if (c->interim && !resp_parse(c)) {
                fail_upstream(c, false);
                return true;
            }
        } else if (n < 0 && n != -EAGAIN) {
            px_conn_close(c);
            return true;
        }
    }
    /* 4. more from the Space, when there is room (backpressure: a slow visitor stalls it) */
    if (u && u->rd && !c->resp_done && c->st == PX_C_PROXY) {
        if ((!c->out && !(c->out = px_buf_get(l))) ||
            (!c->resp_head_done && !c->hd && !(c->hd = px_head_get(l)))) {
            px_conn_close(c);
            return true;
        }
        if (c->out->end < px_bufsize) {
            n = rd_into(u->fd, c->out, &u->rd, u->rdhup);
            if (n > 0) {
                if (!c->resp_started) {
                    c->resp_started = true;
                    c->t_up_ms = l->now_ms - c->t_up_ms;
                    free(c->uhead); /* no replay once the Space has answered */
                    c->uhead = NULL;
                    c->uhead_len = c->uhead_off = 0;
                }
                if (!resp_parse(c)) {
                    fail_upstream(c, false);
                    return true;
                }
                progress = true;
            } else if (n == 0 || n != -EAGAIN) {
                /* EOF: the end of an until-close body, or a Space that went away */
                if (c->resp_head_done && !c->head_pending && !c->interim &&
                    llhttp_finish(&c->resp) == HPE_OK && c->resp_done) {
                    c->close_after = true;
                    c->up_dirty = true;
                    progress = true;
                } else if (n == 0 && c->resp_head_done && c->resp_done) {
                    progress = true;
                } else {
                    c->up_dirty = true;
                    c->resp_started = c->resp_started || c->chead_off > 0;
                    fail_upstream(c, false);
                    return true;
                }
            }
        }
    }
    if (progress)
        px_timer_set(l, &c->tm, PX_T_IDLE);
    /* 5. done when the whole response went out */
    if (c->resp_done && c->chead_off == c->chead_len && (!c->out || c->out->start == c->out->end)) {
        finish_request(c);
        return true;
    }
    return progress;
}

/* After a 101: copy bytes both ways, half-closes included; buffers only while busy. */
static bool tunnel_dir(struct px_conn *c, int from, bool *from_rd, bool *from_eof, int to,
                       bool *to_wr, struct px_buf **bp, char *head, uint32_t *hoff, uint32_t hlen)
{
    struct px_loop *l = c->loop;
    struct px_buf *b = *bp;
    bool progress = false;
    ssize_t n;

    if (*to_wr && ((head && *hoff < hlen) || (b && b->end > b->start))) {
        n = wr_two(to, head, hoff, hlen, b, b ? b->end : 0, to_wr);
        if (n > 0) {
            progress = true;
            if (to == c->fd) {
                c->bytes_out += (unsigned long long) n;
                l->st.bytes_out += (unsigned long long) n;
            }
        } else if (n < 0 && n != -EAGAIN) {
            px_conn_close(c);
            return true;
        }
    }
    if (b && b->start == b->end) {
        px_buf_put(l, bp); /* an idle tunnel holds no buffer */
        b = NULL;
    }
    if (!b && !*from_eof && *from_rd && !(head && *hoff < hlen)) {
        if (!(b = *bp = px_buf_get(l))) {
            px_conn_close(c);
            return true;
        }
        n = rd_into(from, b, from_rd, from == c->fd ? c->rdhup : c->up->rdhup);
        if (n > 0) {
            if (from == c->fd)
                l->st.bytes_in += (unsigned long long) n;
            progress = true;
        } else if (n == 0) {
            *from_eof = true;
            progress = true;
        } else if (n != -EAGAIN) {
            px_conn_close(c);
            return true;
        }
    }
    if (*from_eof && (!*bp || (*bp)->start == (*bp)->end) && !(head && *hoff < hlen))
        (void) shutdown(to, SHUT_WR); /* pass the half-close on */
    return progress;
}

static bool step_tunnel(struct px_conn *c)
{
    struct px_upconn *u = c->up;
    bool p1, p2;

    p1 = tunnel_dir(c, c->fd, &c->rd, &c->tunnel_c_eof, u->fd, &u->wr, &c->in, NULL, NULL, 0);
    if (c->closed)
        return true;
    p2 = tunnel_dir(c, u->fd, &u->rd, &c->tunnel_u_eof, c->fd, &c->wr, &c->out, c->chead,
                    &c->chead_off, c->chead_len);
    if (c->closed)
        return true;
    if (c->tunnel_c_eof && c->tunnel_u_eof && !c->in && !c->out) {
        px_conn_close(c);
        return true;
    }
    if (p1 || p2)
        px_timer_set(c->loop, &c->tm, PX_T_IDLE);
    return p1 || p2;
}

/* ---- the end of a request ----------------------------------------------------------- */

static void linger(struct px_conn *c)
{
    /* Closing with unread bytes would send a RST that can destroy the response we just
     * wrote; half-close, drain for a moment, then close (nginx calls it lingering). */
    (void) shutdown(c->fd, SHUT_WR);
    c->st = PX_C_LINGER;
    px_buf_put(c->loop, &c->out);
    px_timer_set(c->loop, &c->tm, PX_T_LINGER);
}

static void finish_request(struct px_conn *c)
{
    struct px_loop *l = c->loop;

    if (c->status)
        l->st.responses[c->status / 100 < 6 ? c->status / 100 : 0]++;
    px_log_access(c);
    c->t_start_ms = 0;
    if (c->up) {
        bool reuse = !c->up_dirty && !c->upgrade && c->req_done && c->resp_done &&
                     llhttp_should_keep_alive(&c->resp);
        px_up_release(l, c->up, reuse);
        c->up = NULL;
    }
    c->up_dirty = false;
    drop_route(c);
    free_heads(c);
    px_head_put(l, &c->hd);
    px_buf_put(l, &c->out);
    if (c->close_after || !c->req_done || l->draining) {
        linger(c);
        return;
    }
    /* keep-alive: a pipelined request may already be waiting in the buffer */
    llhttp_reset(&c->req);
    c->st = PX_C_HEAD;
    c->resp_done = c->resp_started = c->resp_head_done = false;
    if (c->in) {
        uint32_t left = c->in->end - c->parsed;
        if (left)
            memmove(c->in->data, c->in->data + c->parsed, left);
        c->in->start = 0;
        c->in->end = left;
        c->parsed = 0;
        if (!left)
            px_buf_put(l, &c->in);
    }
    px_timer_set(l, &c->tm, c->in ? PX_T_HEAD : PX_T_KEEPALIVE);
}

/* ---- reading heads ------------------------------------------------------------------ */

static bool step_head(struct px_conn *c)
{
    struct px_loop *l = c->loop;

    for (;;) {
        if (c->in && c->parsed < c->in->end) {
            if (!c->hd && !(c->hd = px_head_get(l))) {
                px_conn_close(c);
                return true;
            }
            if (c->parsed == 0) {
                c->hd->n = 0;
                c->hd->url_l = 0;
                c->hd->in_value = false;
            }
            llhttp_errno_t e =
                llhttp_execute(&c->req, c->in->data + c->parsed, c->in->end - c->parsed);
            if (e == HPE_PAUSED) {
                c->head_end = (uint32_t) (llhttp_get_error_pos(&c->req) - c->in->data);
                c->parsed = c->head_end;
                on_head(c);
                return true;
            }
            if (e != HPE_OK) {
                /* malformed, or smuggling-shaped (CL+TE, two CLs, bad chunked TE) */
                c->t_start_ms = l->now_ms;
                snprintf(c->method, sizeof(c->method), "-");
                snprintf(c->path, sizeof(c->path), "-");
                c->close_after = true;
                bool big = e == HPE_USER;
                respond_page(c, big ? PX_PAGE_431 : PX_PAGE_400, big ? 431 : 400);
                return true;
            }
            c->parsed = c->in->end;
        }
        if (c->in && c->in->end >= px_g.cfg.max_header_size) {
            c->t_start_ms = l->now_ms;
            snprintf(c->method, sizeof(c->method), "-");
            snprintf(c->path, sizeof(c->path), "-");
            c->close_after = true;
            respond_page(c, PX_PAGE_431, 431);
            return true;
        }
        if (!c->rd)
            return false;
        if (!c->in && !(c->in = px_buf_get(l))) {
            px_conn_close(c);
            return true;
        }
        uint32_t was = c->in->end;
        ssize_t n = rd_into(c->fd, c->in, &c->rd, c->rdhup);
        if (n > 0) {
            l->st.bytes_in += (unsigned long long) n;
            if (was == 0 && c->tm.cls == PX_T_KEEPALIVE)
                px_timer_set(l, &c->tm, PX_T_HEAD); /* slowloris: the whole head in time */
            continue;
        }
        if (n == -EAGAIN) {
            if (c->in->end == 0) {
                px_buf_put(l, &c->in); /* an idle keep-alive connection holds no buffer */
                px_head_put(l, &c->hd);
            }
            return false;
        }
        px_conn_close(c); /* EOF or error: between requests that is a normal goodbye */
        return true;
    }
}

static bool step_local(struct px_conn *c)
{
    if (c->chead_off < c->chead_len) {
        if (!c->wr)
            return false;
        ssize_t n = wr_two(c->fd, c->chead, &c->chead_off, c->chead_len, NULL, 0, &c->wr);
        if (n < 0 && n != -EAGAIN) {
            px_conn_close(c);
            return true;
        }
        if (n > 0) {
            c->bytes_out += (unsigned long long) n;
            c->loop->st.bytes_out += (unsigned long long) n;
        }
        if (c->chead_off < c->chead_len)
            return n > 0;
    }
    finish_request(c);
    return true;
}

static bool step_linger(struct px_conn *c)
{
    char sink[4096];

    while (c->rd) {
        ssize_t n = read(c->fd, sink, sizeof(sink));
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->rd = false;
            return false;
        }
        px_conn_close(c);
        return true;
    }
    return false;
}

static void conn_run(struct px_conn *c)
{
    bool progress = true;
    int spins = 0;

    for (; progress && !c->closed && spins < 64; spins++) {
        switch (c->st) {
        case PX_C_HEAD:
            progress = step_head(c);
            break;
        case PX_C_CONNECT:
            step_connect(c);
            progress = c->st != PX_C_CONNECT;
            break;
        case PX_C_PROXY:
            progress = step_proxy(c);
            break;
        case PX_C_TUNNEL:
            progress = step_tunnel(c);
            break;
        case PX_C_LOCAL:
            progress = step_local(c);
            break;
        case PX_C_LOCAL_BODY:
            step_local_body(c);
            progress = c->st != PX_C_LOCAL_BODY;
            break;
        case PX_C_LINGER:
            progress = step_linger(c);
            break;
        case PX_C_WAIT:
            progress = false;
            break;
        }
    }
    if (progress && !c->closed && !c->queued) {
        /* still busy: let the other connections have a turn; edge-triggered epoll will
         * not tell us again, so the loop runs it after this batch */
        c->queued = true;
        c->next_ready = c->loop->ready;
        c->loop->ready = c;
    }
}

void px_conn_run_ready(struct px_loop *l)
{
    struct px_conn *list = l->ready;

    l->ready = NULL;
    while (list) {
        struct px_conn *c = list;
        list = c->next_ready;
        c->queued = false;
        if (!c->closed)
            conn_run(c);
    }
}

void px_conn_event(struct px_conn *c, uint32_t events)
{
    if (c->closed)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rd = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true;
    if (events & EPOLLOUT)
        c->wr = true;
    if (events & (EPOLLHUP | EPOLLERR)) {
        c->hup = true;
        c->wr = true;
        if (c->st == PX_C_WAIT || c->st == PX_C_CONNECT) {
            px_conn_close(c); /* the visitor is gone; stop waiting for it */
            return;
        }
    }
    conn_run(c);
}

void px_conn_up_event(struct px_upconn *u, uint32_t events)
{
    if (u->closed)
        return;
    if (!u->owner) {
        /* an idle upstream has nothing to say: any byte or hang-up means it is finished */
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            px_up_close(u->loop, u);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        u->rd = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        u->rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        u->wr = true;
    if (events & (EPOLLHUP | EPOLLERR))
        u->hup = true;
    if (!u->owner->closed)
        conn_run(u->owner);
}

void px_conn_timeout(struct px_conn *c)
{
    switch (c->st) {
    case PX_C_HEAD:
        if (c->in && c->in->end > 0) {
            c->t_start_ms = c->loop->now_ms;
            snprintf(c->method, sizeof(c->method), "-");
            snprintf(c->path, sizeof(c->path), "-");
            c->close_after = true;
            respond_page(c, PX_PAGE_408, 408);
            conn_run(c);
            return;
        }
        break;
    case PX_C_CONNECT:
        fail_upstream(c, true);
        conn_run(c);
        return;
    case PX_C_PROXY:
        if (!c->resp_started) {
            fail_upstream(c, true);
            conn_run(c);
            return;
        }
        break;
    case PX_C_WAIT:
        c->loop->st.held_timeouts++;
        leave_waiting(c);
        if (c->wait_wake) {
            respond_page(c, PX_PAGE_503_WAKE_TIMEOUT, 503);
        } else if (!c->signin && c->route && !c->route->private_) {
            c->who_anon = true; /* no answer about the token: a public Space serves anyway */
            dispatch(c);
        } else {
            respond_page(c, PX_PAGE_404, 404); /* no answer about the token: deny */
        }
        conn_run(c);
        return;
    default:
        break;
    }
    px_conn_close(c);
}
