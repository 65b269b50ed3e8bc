/* One event loop per worker thread: its own SO_REUSEPORT listener, epoll set, timers,
 * buffer free lists and upstream pools, so loops share nothing but the route table. */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "banned.h"

uint32_t px_bufsize = PX_BUF;

#define MAX_EVENTS 256
#define MAX_FREE_BUFS 256

/* ---- buffers and head span tables, recycled per loop ---------------------------------- */

struct px_buf *px_buf_get(struct px_loop *l)
{
    struct px_buf *b = l->free_bufs;

    if (b) {
        l->free_bufs = b->next_free;
        l->nfree_bufs--;
    } else {
        b = malloc(sizeof(*b) + px_bufsize);
        if (!b)
            return NULL;
    }
    b->start = b->end = 0;
    b->next_free = NULL;
    return b;
}

void px_buf_put(struct px_loop *l, struct px_buf **bp)
{
    struct px_buf *b = *bp;

    if (!b)
        return;
    *bp = NULL;
    if (l->nfree_bufs >= MAX_FREE_BUFS) {
        free(b);
        return;
    }
    b->next_free = l->free_bufs;
    l->free_bufs = b;
    l->nfree_bufs++;
}

struct px_head *px_head_get(struct px_loop *l)
{
    struct px_head *h = l->free_heads;

    if (h)
        l->free_heads = h->next_free;
    else if (!(h = malloc(sizeof(*h))))
        return NULL;
    h->next_free = NULL;
    h->n = 0;
    h->url_l = h->reason_l = 0;
    h->in_value = false;
    return h;
}

void px_head_put(struct px_loop *l, struct px_head **hp)
{
    if (!*hp)
        return;
    (*hp)->next_free = l->free_heads;
    l->free_heads = *hp;
    *hp = NULL;
}

/* ---- timers: one FIFO per class; every entry of a class has the same duration, so
 * appending keeps each list sorted and arming or re-arming is O(1). ----------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    (void) clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void px_timer_stop(struct px_loop *l, struct px_timer *t)
{
    if (t->cls == PX_T_NONE)
        return;
    struct px_tlist *tl = &l->timers[t->cls];
    if (t->prev)
        t->prev->next = t->next;
    else
        tl->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        tl->tail = t->prev;
    t->prev = t->next = NULL;
    t->cls = PX_T_NONE;
}

void px_timer_set(struct px_loop *l, struct px_timer *t, enum px_tclass cls)
{
    struct px_tlist *tl = &l->timers[cls];

    if (t->cls == cls && tl->tail == t) {
        t->deadline_ms = l->now_ms + tl->dur_ms; /* already last: just move the deadline */
        return;
    }
    px_timer_stop(l, t);
    t->cls = (uint8_t) cls;
    t->deadline_ms = l->now_ms + tl->dur_ms;
    t->prev = tl->tail;
    t->next = NULL;
    if (tl->tail)
        tl->tail->next = t;
    else
        tl->head = t;
    tl->tail = t;
}

static int next_timeout(struct px_loop *l)
{
    uint64_t min = UINT64_MAX;

    for (int i = 0; i < _PX_T_MAX; i++)
        if (l->timers[i].head && l->timers[i].head->deadline_ms < min)
            min = l->timers[i].head->deadline_ms;
    if (l->draining && l->drain_deadline < min)
        min = l->drain_deadline;
    if (l->accept_paused_until && l->accept_paused_until < min)
        min = l->accept_paused_until;
    if (min == UINT64_MAX)
        return 1000; /* still wake up now and then for the table and the stop flag */
    if (min <= l->now_ms)
        return 0;
    return min - l->now_ms > 1000 ? 1000 : (int) (min - l->now_ms);
}

static void run_timers(struct px_loop *l)
{
    for (int i = 0; i < _PX_T_MAX; i++) {
        struct px_tlist *tl = &l->timers[i];
        unsigned guard = 0;
        while (tl->head && tl->head->deadline_ms <= l->now_ms && guard++ < 100000) {
            struct px_timer *t = tl->head;
            px_timer_stop(l, t);
            if (i == PX_T_POOL) {
                struct px_upconn *u =
                    (struct px_upconn *) ((char *) t - offsetof(struct px_upconn, tm));
                px_up_expire(l, u);
            } else {
                struct px_conn *c = (struct px_conn *) ((char *) t - offsetof(struct px_conn, tm));
                if (!c->closed)
                    px_conn_timeout(c);
            }
        }
    }
}

/* ---- listeners ------------------------------------------------------------------------ */

static int listen_on(const char *spec, bool reuseport, struct rt_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;
    _cleanup_close_ int fd = -1;

    if (px_parse_addr(spec, &ss, &len) < 0)
        return rt_err_set(err, EINVAL, "bad listen address '%s'", spec);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rt_err_set(err, errno, "socket for '%s'", spec);
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        return rt_err_set(err, errno, "SO_REUSEPORT on '%s'", spec);
    if (bind(fd, (struct sockaddr *) &ss, len) < 0)
        return rt_err_set(err, errno, "bind '%s'", spec);
    if (listen(fd, 4096) < 0)
        return rt_err_set(err, errno, "listen on '%s'", spec);
    return TAKE_FD(fd);
}

static int add_fd(struct px_loop *l, int fd, void *ptr, unsigned tag, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.u64 = (uint64_t) (uintptr_t) ptr | tag };
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int px_loop_new(unsigned idx, struct px_loop **ret, struct rt_err *err)
{
    struct px_loop *l = calloc(1, sizeof(*l));
    const struct px_config *cfg = &px_g.cfg;
    int r;

    if (!l)
        return rt_err_set(err, ENOMEM, "allocate loop");
    l->idx = idx;
    l->lfd = l->afd = l->evfd = l->log_fd = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        r = rt_err_set(err, errno, "epoll_create1");
        goto fail;
    }
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->evfd < 0) {
        r = rt_err_set(err, errno, "eventfd");
        goto fail;
    }
    r = listen_on(cfg->listen, true, err);
    if (r < 0)
        goto fail;
    l->lfd = r;
    if (idx == 0 && cfg->admin_listen) {
        r = listen_on(cfg->admin_listen, false, err);
        if (r < 0)
            goto fail;
        l->afd = r;
    }
    if (add_fd(l, l->lfd, l, PX_TAG_LISTEN, EPOLLIN) < 0 ||
        add_fd(l, l->evfd, l, PX_TAG_EV, EPOLLIN) < 0 ||
        (l->afd >= 0 && add_fd(l, l->afd, l, PX_TAG_ADMIN, EPOLLIN) < 0)) {
        r = rt_err_set(err, errno, "epoll_ctl");
        goto fail;
    }
    l->timers[PX_T_HEAD].dur_ms = cfg->header_timeout_ms;
    l->timers[PX_T_KEEPALIVE].dur_ms = cfg->keepalive_timeout_ms;
    l->timers[PX_T_CONNECT].dur_ms = cfg->connect_timeout_ms;
    l->timers[PX_T_IDLE].dur_ms = cfg->idle_timeout_ms;
    l->timers[PX_T_WAIT].dur_ms = cfg->wake_timeout_ms;
    l->timers[PX_T_POOL].dur_ms = cfg->upstream_keepalive_ms;
    l->timers[PX_T_LINGER].dur_ms = 2000;
    if (strcmp(cfg->access_log, "off") == 0)
        l->log_fd = -1;
    else if (strcmp(cfg->access_log, "stderr") == 0)
        l->log_fd = STDERR_FILENO;
    else {
        l->log_fd = open(cfg->access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (l->log_fd < 0) {
            r = rt_err_set(err, errno, "open access log '%s'", cfg->access_log);
            goto fail;
        }
    }
    l->now_ms = now_ms();
    *ret = l;
    return 0;
fail:
    px_loop_free(l);
    return r;
}

void px_loop_free(struct px_loop *l)
{
    if (!l)
        return;
    while (l->conns)
        px_conn_close(l->conns);
    while (l->zombies) {
        struct px_conn *c = l->zombies;
        l->zombies = c->next_zombie;
        px_conn_free(c);
    }
    px_up_free_all(l);
    while (l->free_bufs) {
        struct px_buf *b = l->free_bufs;
        l->free_bufs = b->next_free;
        free(b);
    }
    while (l->free_heads) {
        struct px_head *h = l->free_heads;
        l->free_heads = h->next_free;
        free(h);
    }
    px_table_unref(l->table);
    l->lfd = rt_close(l->lfd);
    l->afd = rt_close(l->afd);
    l->evfd = rt_close(l->evfd);
    l->epfd = rt_close(l->epfd);
    if (l->log_fd > STDERR_FILENO)
        l->log_fd = rt_close(l->log_fd);
    free(l->log);
    free(l);
}

void px_loop_kick(struct px_loop *l)
{
    uint64_t one = 1;
    (void) !write(l->evfd, &one, sizeof(one));
}

/* ---- the access log: one line per request, written once per loop turn --------------- */

void px_log_access(struct px_conn *c)
{
    struct px_loop *l = c->loop;
    char line[768];
    struct timespec ts;
    struct tm tm;
    char tbuf[32];

    if (l->log_fd < 0 || !c->t_start_ms)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    /* the path is the visitor's: quote it the way logfmt readers expect */
    char path[160];
    size_t j = 0;
    for (size_t i = 0; c->path[i] && j + 2 < sizeof(path); i++) {
        unsigned char ch = (unsigned char) c->path[i];
        if (ch == '"' || ch == '\\')
            path[j++] = '\\';
        path[j++] = ch < 0x20 || ch >= 0x7f ? '?' : (char) ch;
    }
    path[j] = '\0';
    int n =
        snprintf(line, sizeof(line),
                 "%s.%03ldZ access host=%s client=%s method=%s path=\"%s\" status=%u "
                 "bytes=%llu time_ms=%llu upstream_ms=%llu\n",
                 tbuf, ts.tv_nsec / 1000000, c->host[0] ? c->host : "-", c->ip, c->method, path,
                 (unsigned) c->status, c->bytes_out,
                 (unsigned long long) (l->now_ms - c->t_start_ms), (unsigned long long) c->t_up_ms);
    if (n <= 0)
        return;
    if ((size_t) n >= sizeof(line))
        n = sizeof(line) - 1;
    if (l->log_len + (size_t) n > l->log_cap) {
        size_t cap = l->log_cap ? l->log_cap * 2 : 65536;
        while (cap < l->log_len + (size_t) n)
            cap *= 2;
        if (cap > (1u << 22))
            return; /* a stuck log file must not eat memory: drop the line */
        char *nl = realloc(l->log, cap);
        if (!nl)
            return;
        l->log = nl;
        l->log_cap = cap;
    }
    memcpy(l->log + l->log_len, line, (size_t) n);
    l->log_len += (size_t) n;
}

static void flush_log(struct px_loop *l)
{
    if (l->log_len && l->log_fd >= 0)
        (void) rt_write_all(l->log_fd, l->log, l->log_len);
    l->log_len = 0;
}

/* ---- the loop ------------------------------------------------------------------------- */

/* Out of fds: stop listening for a moment instead of spinning on a readable listener
 * (level-triggered) that accept4 cannot empty; timers then close what they can. */
static void pause_accept(struct px_loop *l, int lfd)
{
    struct epoll_event ev = { .events = 0, .data.u64 = (uint64_t) (uintptr_t) l | PX_TAG_LISTEN };

    if (lfd != l->lfd || l->accept_paused_until)
        return;
    (void) epoll_ctl(l->epfd, EPOLL_CTL_MOD, lfd, &ev);
    l->accept_paused_until = l->now_ms + 100;
}

static void resume_accept(struct px_loop *l)
{
    struct epoll_event ev = { .events = EPOLLIN,
                              .data.u64 = (uint64_t) (uintptr_t) l | PX_TAG_LISTEN };

    if (!l->accept_paused_until || l->now_ms < l->accept_paused_until)
        return;
    l->accept_paused_until = 0;
    if (l->lfd >= 0)
        (void) epoll_ctl(l->epfd, EPOLL_CTL_MOD, l->lfd, &ev);
}

static void do_accept(struct px_loop *l, int lfd, bool admin)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *) &ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accept(l, lfd);
            return;
        }
        if (atomic_load_explicit(&px_g.conns, memory_order_relaxed) >= px_g.cfg.max_connections) {
            l->st.rejected++;
            (void) close(fd);
            continue;
        }
        int one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        px_conn_accepted(l, fd, &ss, admin);
    }
}

static void refresh_table(struct px_loop *l)
{
    unsigned long long serial = atomic_load_explicit(&px_g.table_serial, memory_order_acquire);

    if (serial == l->table_serial)
        return;
    pthread_mutex_lock(&px_g.table_lock);
    struct px_table *t = px_table_ref(px_g.table);
    serial = atomic_load_explicit(&px_g.table_serial, memory_order_acquire);
    pthread_mutex_unlock(&px_g.table_lock);
    px_table_unref(l->table);
    l->table = t;
    l->table_serial = serial;
    px_conn_retry_waiting(l);
}

static void start_drain(struct px_loop *l)
{
    l->draining = true;
    l->drain_deadline = l->now_ms + px_g.cfg.drain_timeout_ms;
    if (l->lfd >= 0) {
        (void) epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->lfd, NULL);
        l->lfd = rt_close(l->lfd);
    }
    /* idle keep-alive connections go now; busy ones close after their response */
    struct px_conn *next;
    for (struct px_conn *c = l->conns; c; c = next) {
        next = c->next;
        if (c->st == PX_C_HEAD && !c->in)
            px_conn_close(c);
    }
}

int px_loop_turn(struct px_loop *l, int max_wait_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int wait = l->ready ? 0 : next_timeout(l);

    if (max_wait_ms >= 0 && wait > max_wait_ms)
        wait = max_wait_ms;
    int n = epoll_wait(l->epfd, ev, MAX_EVENTS, wait);
    l->now_ms = now_ms();
    if (n < 0 && errno != EINTR)
        return -errno;
    for (int i = 0; i < n; i++) {
        uint64_t d = ev[i].data.u64;
        void *p = (void *) (uintptr_t) (d & ~(uint64_t) 7);
        switch (d & 7) {
        case PX_TAG_CLIENT:
            px_conn_event(p, ev[i].events);
            break;
        case PX_TAG_UP:
            px_conn_up_event(p, ev[i].events);
            break;
        case PX_TAG_LISTEN:
            if (l->lfd >= 0)
                do_accept(l, l->lfd, false);
            break;
        case PX_TAG_ADMIN:
            do_accept(l, l->afd, true);
            break;
        case PX_TAG_EV: {
            uint64_t v;
            (void) !read(l->evfd, &v, sizeof(v));
            l->table_serial = 0; /* re-check: a token answer may have come in too */
            break;
        }
        }
    }
    refresh_table(l);
    run_timers(l);
    resume_accept(l);
    px_conn_run_ready(l); /* last: nothing else closes a connection it re-queues */
    while (l->zombies) {
        struct px_conn *c = l->zombies;
        l->zombies = c->next_zombie;
        px_conn_free(c);
    }
    while (l->upzombies) {
        struct px_upconn *u = l->upzombies;
        l->upzombies = u->next_zombie;
        free(u);
    }
    flush_log(l);
    return n;
}

void *px_loop_main(void *arg)
{
    struct px_loop *l = arg;

    l->now_ms = now_ms();
    refresh_table(l);
    for (;;) {
        int r = px_loop_turn(l, -1);
        if (r < 0) {
            rt_log(RT_LOG_ERR, NULL, "epoll_wait: %s", strerror(-r));
            break;
        }
        if (atomic_load_explicit(&px_g.stopping, memory_order_relaxed) && !l->draining)
            start_drain(l);
        if (l->draining && (!l->conns || l->now_ms >= l->drain_deadline))
            break;
    }
    while (l->conns)
        px_conn_close(l->conns);
    flush_log(l);
    return NULL;
}
