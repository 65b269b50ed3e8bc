/* One blocking HTTP/1.0 probe with a deadline; the supervisor runs it on its own thread. */
#include "health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"
#include "banned.h"

static int parse_upstream(const char *up, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(up, ':');
    uint64_t port;

    if (!colon || (size_t) (colon - up) >= sizeof(host) || rt_parse_u64(colon + 1, &port) < 0 ||
        port == 0 || port > 65535)
        return -EINVAL;
    (void) snprintf(host, sizeof(host), "%.*s", (int) (colon - up), up);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t) port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

/* Waits for @events until @deadline_ns.  Returns 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = rt_now_ns();
        struct pollfd p = { .fd = fd, .events = events };
        int n;

        if (now >= deadline_ns)
            return -ETIMEDOUT;
        n = poll(&p, 1, (int) ((deadline_ns - now) / 1000000 + 1));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

int rt_health_probe(const char *upstream, const char *path, uint64_t timeout_ms)
{
    uint64_t deadline = rt_now_ns() + timeout_ms * 1000000ULL;
    _cleanup_close_ int fd = -1;
    struct sockaddr_in sa;
    char req[512], buf[64];
    size_t got = 0;
    int r, soerr = 0;
    socklen_t sl = sizeof(soerr);
    unsigned status;

    if (parse_upstream(upstream, &sa) < 0)
        return -EINVAL;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
        return -errno;
    r = wait_fd(fd, POLLOUT, deadline);
    if (r < 0)
        return r;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return -errno;
    if (soerr)
        return -soerr;
    r = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: spaceport-health\r\n\r\n",
                 path && *path ? path : "/", upstream);
    if (r < 0 || (size_t) r >= sizeof(req))
        return -EINVAL;
    if (send(fd, req, (size_t) r, MSG_NOSIGNAL) != r)
        return -EIO;
    while (got < 12) {
        ssize_t n;

        r = wait_fd(fd, POLLIN, deadline);
        if (r < 0)
            return r;
        n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPROTO;
        got += (size_t) n;
    }
    buf[got] = '\0';
    if (strncmp(buf, "HTTP/1.", 7) != 0 || sscanf(buf + 8, " %3u", &status) != 1)
        return -EPROTO;
    return (int) status;
}
