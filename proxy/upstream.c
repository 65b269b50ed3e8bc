/* Connections to Spaces: non-blocking connects and a per-loop keep-alive pool per
 * upstream address, so a busy Space costs no handshake per request.  A pooled
 * connection the Space closes is noticed by epoll and dropped at once. */
#include "proxy.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "banned.h"

static unsigned addr_hash(const struct sockaddr_storage *a, socklen_t len)
{
    const unsigned char *p = (const unsigned char *) a;
    unsigned h = 2166136261u;

    for (socklen_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % PX_POOL_BUCKETS;
}

static struct px_pool *pool_for(struct px_loop *l, const struct sockaddr_storage *a, socklen_t len)
{
    unsigned h = addr_hash(a, len);

    for (struct px_pool *p = l->pools[h]; p; p = p->next)
        if (p->addrlen == len && memcmp(&p->addr, a, len) == 0)
            return p;
    struct px_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    memcpy(&p->addr, a, len);
    p->addrlen = len;
    p->next = l->pools[h];
    l->pools[h] = p;
    return p;
}

static void unlink_idle(struct px_upconn *u)
{
    struct px_pool *p = u->pool;

    for (struct px_upconn **pp = &p->idle; *pp; pp = &(*pp)->next_idle)
        if (*pp == u) {
            *pp = u->next_idle;
            p->n--;
            break;
        }
    u->next_idle = NULL;
    u->pooled = false;
}

struct px_upconn *px_up_get(struct px_loop *l, const struct sockaddr_storage *addr, socklen_t len,
                            bool fresh)
{
    struct px_pool *p = pool_for(l, addr, len);
    struct epoll_event ev;
    int one = 1;

    if (!p)
        return NULL;
    if (!fresh && p->idle) {
        struct px_upconn *u = p->idle;
        p->idle = u->next_idle;
        p->n--;
        u->next_idle = NULL;
        u->pooled = false;
        px_timer_stop(u->loop, &u->tm);
        u->reused = true;
        return u;
    }
    struct px_upconn *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->loop = l;
    u->pool = p;
    u->tm.cls = PX_T_NONE;
    u->fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        free(u);
        return NULL;
    }
    /* small writes (SSE events, WebSocket frames) must leave at once */
    (void) setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(u->fd, (const struct sockaddr *) addr, len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        u->fd = rt_close(u->fd);
        free(u);
        errno = e;
        return NULL;
    }
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (uint64_t) (uintptr_t) u | PX_TAG_UP;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, u->fd, &ev) < 0) {
        u->fd = rt_close(u->fd);
        free(u);
        return NULL;
    }
    return u;
}

void px_up_close(struct px_loop *l, struct px_upconn *u)
{
    if (u->closed)
        return;
    u->closed = true;
    px_timer_stop(u->loop, &u->tm);
    if (u->pooled)
        unlink_idle(u);
    u->owner = NULL;
    u->fd = rt_close(u->fd);
    u->next_zombie = l->upzombies;
    l->upzombies = u;
}

void px_up_release(struct px_loop *l, struct px_upconn *u, bool reusable)
{
    u->owner = NULL;
    if (!reusable || u->hup || l->draining || u->pool->n >= PX_POOL_MAX_IDLE) {
        px_up_close(l, u);
        return;
    }
    u->rd = false; /* from now on any readiness means the Space closed it */
    u->pooled = true;
    u->next_idle = u->pool->idle;
    u->pool->idle = u;
    u->pool->n++;
    px_timer_set(l, &u->tm, PX_T_POOL);
}

void px_up_expire(struct px_loop *l, struct px_upconn *u)
{
    px_up_close(l, u);
}

void px_up_free_all(struct px_loop *l)
{
    for (unsigned i = 0; i < PX_POOL_BUCKETS; i++) {
        struct px_pool *p = l->pools[i];
        while (p) {
            struct px_pool *next = p->next;
            while (p->idle)
                px_up_close(l, p->idle);
            free(p);
            p = next;
        }
        l->pools[i] = NULL;
    }
    while (l->upzombies) {
        struct px_upconn *u = l->upzombies;
        l->upzombies = u->next_zombie;
        free(u);
    }
}
