/* Picking the resolvers a Space with egress can reach (resolv.h). */
#include "resolv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "sandbox/netaddr.h"
#include "util.h"
#include "banned.h"

#define HOST_RESOLV "/etc/resolv.conf"
#define RESOLVED_UPSTREAM "/run/systemd/resolve/resolv.conf"
#define RESOLV_MAX (64 * 1024)

static bool parse4(const char *s, uint32_t *ret)
{
    struct in_addr a;

    if (inet_pton(AF_INET, s, &a) != 1)
        return false;
    *ret = ntohl(a.s_addr);
    return true;
}

static int add(struct rt_resolvers *r, const char *ip)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->addr[i], ip) == 0)
            return 0; /* listed twice: once is enough */
    if (r->n >= RT_RESOLV_MAX)
        return -E2BIG;
    (void) snprintf(r->addr[r->n++], INET_ADDRSTRLEN, "%s", ip);
    return 0;
}

/* The address of the next "nameserver ADDR" line at or after *@p (moved past it) into
 * @ip (64 bytes).  False at the end of the text. */
static bool next_nameserver(const char **p, char ip[64])
{
    while (*p && **p) {
        size_t len = strcspn(*p, "\n");
        char line[256], word[32];

        (void) snprintf(line, sizeof(line), "%.*s", (int) (len < 255 ? len : 255), *p);
        *p += len + ((*p)[len] == '\n');
        if (sscanf(line, " %31s %63s", word, ip) == 2 && strcmp(word, "nameserver") == 0)
            return true;
    }
    return false;
}

/* "nameserver ADDR" lines of a resolv.conf; IPv6 and private ones are dropped (counted). */
static void pick_host(const char *text, struct rt_resolvers *r)
{
    const char *p = text;
    char ip[64];

    while (next_nameserver(&p, ip)) {
        uint32_t a;

        if (!parse4(ip, &a) || !sbx_net_ipv4_public(a) || add(r, ip) < 0)
            r->n_dropped++;
    }
}

static int pick_configured(const char *list, struct rt_resolvers *r, struct rt_err *err)
{
    const char *p = list;

    while (*p) {
        size_t len = strcspn(p, " ,\t");
        char ip[64];
        uint32_t a;

        if (len == 0) {
            p++;
            continue;
        }
        (void) snprintf(ip, sizeof(ip), "%.*s", (int) (len < 63 ? len : 63), p);
        p += len;
        if (!parse4(ip, &a))
            return rt_err_set(err, EINVAL, "egress_resolvers: '%s' is not an IPv4 address", ip);
        if (!sbx_net_ipv4_public(a))
            return rt_err_set(err, EINVAL,
                              "egress_resolvers: %s is not a public address: the Spaces' "
                              "egress filter drops it (private, loopback, link-local and "
                              "CGNAT ranges are never reachable from a Space)",
                              ip);
        if (add(r, ip) < 0)
            return rt_err_set(err, E2BIG, "egress_resolvers: at most %d addresses", RT_RESOLV_MAX);
    }
    return 0;
}

int rt_resolv_pick(const char *configured, const char *host_text, struct rt_resolvers *ret,
                   struct rt_err *err)
{
    memset(ret, 0, sizeof(*ret));
    if (configured && strspn(configured, " ,\t") != strlen(configured))
        return pick_configured(configured, ret, err);
    if (host_text)
        pick_host(host_text, ret);
    return 0;
}

/* Reads @path (following a symlink: /etc/resolv.conf usually is one) into @buf; a missing
 * file is empty. */
static int read_conf(const char *path, char *buf, size_t len, struct rt_err *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    ssize_t n;

    buf[0] = '\0';
    if (fd < 0)
        return errno == ENOENT ? 0 : rt_err_set(err, errno, "read '%s'", path);
    n = rt_read_all(fd, buf, len - 1);
    if (n < 0)
        return rt_err_set(err, errno, "read '%s'", path);
    buf[n] = '\0';
    return 0;
}

/* True when every nameserver line names a loopback address (a local stub resolver). */
static bool only_loopback(const char *text)
{
    const char *p = text;
    bool any = false;
    char ip[64];

    while (next_nameserver(&p, ip)) {
        uint32_t a;

        if (!parse4(ip, &a) || (a >> 24) != 127)
            return false;
        any = true;
    }
    return any;
}

int rt_resolv_host(const char *configured, struct rt_resolvers *ret, struct rt_err *err)
{
    _cleanup_free_ char *buf = NULL;
    int r;

    if (configured && strspn(configured, " ,\t") != strlen(configured))
        return rt_resolv_pick(configured, NULL, ret, err);
    buf = malloc(RESOLV_MAX);
    if (!buf)
        return rt_err_set(err, ENOMEM, "read '%s'", HOST_RESOLV);
    r = read_conf(HOST_RESOLV, buf, RESOLV_MAX, err);
    if (r == 0 && only_loopback(buf))
        r = read_conf(RESOLVED_UPSTREAM, buf, RESOLV_MAX, err);
    if (r < 0)
        return r;
    return rt_resolv_pick(configured, buf, ret, err);
}

int rt_resolv_conf_text(const char *const *addrs, size_t n, char *buf, size_t len)
{
    size_t used;
    int w;

    w = snprintf(buf, len, "# written by spaceport: %s\n",
                 n ? "public resolvers (egress_resolvers in runtimed.conf)"
                   : "no resolver this Space can reach (no egress, or set egress_resolvers)");
    if (w < 0 || (size_t) w >= len)
        return -ENOSPC;
    used = (size_t) w;
    for (size_t i = 0; i < n; i++) {
        w = snprintf(buf + used, len - used, "nameserver %s\n", addrs[i]);
        if (w < 0 || (size_t) w >= len - used)
            return -ENOSPC;
        used += (size_t) w;
    }
    w = snprintf(buf + used, len - used, "options timeout:2 attempts:2\n");
    return w < 0 || (size_t) w >= len - used ? -ENOSPC : 0;
}
