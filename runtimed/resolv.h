/* The DNS resolvers a Space with egress gets in its /etc/resolv.conf.  A Space reaches only
 * public IPv4 addresses (sandbox/netaddr.h), so the host's own resolver (127.0.0.53, a LAN
 * address) is useless to it: runtimed keeps the public ones of the host's resolv.conf, or
 * takes the operator's list (egress_resolvers), refusing a private one the filter would
 * drop. */
#ifndef SP_RUNTIMED_RESOLV_H
#define SP_RUNTIMED_RESOLV_H

#include <netinet/in.h>
#include <stddef.h>

#include "error.h"

#define RT_RESOLV_MAX 3 /* glibc reads at most 3 nameserver lines (MAXNS) */

struct rt_resolvers {
    char addr[RT_RESOLV_MAX][INET_ADDRSTRLEN];
    size_t n;
    size_t n_dropped; /* derived: the host's nameservers a Space could not reach */
};

/* @configured: the egress_resolvers setting.  Empty: the public IPv4 nameservers of
 * @host_text (a resolv.conf), in its order, at most RT_RESOLV_MAX; others are counted in
 * n_dropped.  Else addresses separated by spaces or commas: each an IPv4 literal and public,
 * at most RT_RESOLV_MAX, else -EINVAL naming the one refused.  @host_text may be NULL. */
int rt_resolv_pick(const char *configured, const char *host_text, struct rt_resolvers *ret,
                   struct rt_err *err);

/* rt_resolv_pick() over the host's resolv.conf: /etc/resolv.conf, or, when that names only
 * loopback resolvers (systemd-resolved's stub 127.0.0.53), the upstream list systemd-resolved
 * keeps in /run/systemd/resolve/resolv.conf.  A missing file is an empty one. */
int rt_resolv_host(const char *configured, struct rt_resolvers *ret, struct rt_err *err);

/* The resolv.conf text a Space gets: the nameservers and "options timeout:2 attempts:2";
 * none (no egress, or no usable resolver) gives a file naming no server, so the Space's
 * lookups fail at once instead of waiting on an unreachable one.  Returns 0 or -ENOSPC. */
int rt_resolv_conf_text(const char *const *addrs, size_t n, char *buf, size_t len);

#endif
