/* The admin listener: GET /metrics and nothing else, on its own socket and thread, so
 * a scrape never takes an API worker and the API port never serves metrics.  One
 * connection at a time with short timeouts: a scraper is one client, and a slow or
 * hostile one only delays the next scrape, never runtimed. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "metrics.h"
#include "util.h"
#include "banned.h"

struct rt_metrics_server {
    struct rt_store *st;
    int listen_fd, stop_fd;
    pthread_t thread;
};

static const struct rt_log_ctx mctx = { .action = "metrics" };

static void reply(int fd, const char *status, const char *ctype, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, ctype, len);

    if (rt_write_all(fd, head, (size_t) n) == 0 && len)
        (void) rt_write_all(fd, body, len);
}

static void serve_one(struct rt_metrics_server *m, int fd)
{
    struct timeval tv = { .tv_sec = 5 };
    char req[4096];
    size_t got = 0;
    struct rt_err err = { 0 };

    (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    /* Only the request line and headers matter; a GET has no body. */
    while (got < sizeof(req) - 1) {
        ssize_t n = read(fd, req + got, sizeof(req) - 1 - got);
        if (n <= 0)
            return;
        got += (size_t) n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[got] = '\0';
    if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics? ", 13) == 0 ||
        strncmp(req, "GET /metrics?", 13) == 0) {
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        if (rt_metrics_render(m->st, &body, &len, &err) < 0) {
            rt_log(RT_LOG_ERR, &mctx, "render: %s", err.msg);
            reply(fd, "500 Internal Server Error", "text/plain", "render failed\n", 14);
            return;
        }
        reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, len);
    } else if (strncmp(req, "GET ", 4) == 0 || strncmp(req, "HEAD ", 5) == 0) {
        reply(fd, "404 Not Found", "text/plain", "only /metrics here\n", 19);
    } else {
        reply(fd, "405 Method Not Allowed", "text/plain", "use GET\n", 8);
    }
}

static void *serve_loop(void *p)
{
    struct rt_metrics_server *m = p;

    for (;;) {
        struct pollfd pfd[2] = { { .fd = m->listen_fd, .events = POLLIN },
                                 { .fd = m->stop_fd, .events = POLLIN } };
        int fd;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents)
            break;
        fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        serve_one(m, fd);
        (void) shutdown(fd, SHUT_WR);
        (void) close(fd);
    }
    return NULL;
}

/* "ADDR:PORT", "[V6]:PORT", ":PORT" or "PORT" (loopback then). */
static int bind_listen(const char *addr, struct rt_err *err)
{
    char host[128] = "127.0.0.1", port[16];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai = NULL;
    _cleanup_close_ int fd = -1;
    int one = 1, rc;

    if (colon) {
        size_t hl = (size_t) (colon - addr);
        const char *h = addr;
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h++;
            hl -= 2;
        }
        if (hl >= sizeof(host))
            return rt_err_set(err, EINVAL, "metrics_listen '%s': address too long", addr);
        if (hl) {
            memcpy(host, h, hl);
            host[hl] = '\0';
        }
        (void) snprintf(port, sizeof(port), "%s", colon + 1);
    } else {
        (void) snprintf(port, sizeof(port), "%s", addr);
    }
    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        return rt_err_set(err, EINVAL, "metrics_listen '%s': %s", addr, gai_strerror(rc));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
        int e = errno;
        freeaddrinfo(ai);
        return rt_err_set(err, e, "metrics_listen '%s'", addr);
    }
    freeaddrinfo(ai);
    return TAKE_FD(fd);
}

int rt_metrics_serve_start(const char *addr, struct rt_store *st, struct rt_metrics_server **ret,
                           struct rt_err *err)
{
    struct rt_metrics_server *m = calloc(1, sizeof(*m));
    int r;

    if (!m)
        return rt_err_set(err, ENOMEM, "allocate metrics listener");
    m->st = st;
    m->stop_fd = -1;
    m->listen_fd = bind_listen(addr, err);
    if (m->listen_fd < 0) {
        r = m->listen_fd;
        free(m);
        return r;
    }
    m->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (m->stop_fd < 0) {
        r = rt_err_set(err, errno, "eventfd");
        goto fail;
    }
    r = -pthread_create(&m->thread, NULL, serve_loop, m);
    if (r < 0) {
        rt_err_set(err, -r, "start the metrics thread");
        goto fail;
    }
    *ret = m;
    return 0;
fail:
    (void) close(m->listen_fd);
    if (m->stop_fd >= 0)
        (void) close(m->stop_fd);
    free(m);
    return r;
}

void rt_metrics_serve_stop(struct rt_metrics_server *m)
{
    uint64_t one = 1;

    if (!m)
        return;
    (void) rt_write_all(m->stop_fd, &one, sizeof(one));
    (void) pthread_join(m->thread, NULL);
    (void) close(m->listen_fd);
    (void) close(m->stop_fd);
    free(m);
}
