/* sbxnet links through libnl-route: the veth pair, its addresses, and the routes inside. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "net-internal.h"
#include "util.h"
#include "banned.h"

static int nlerr_to_errno(int nlerr)
{
    switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_EXIST:
        return EEXIST;
    case NLE_NOMEM:
        return ENOMEM;
    case NLE_PERM:
    case NLE_NOACCESS:
        return EPERM;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
        return ENODEV;
    case NLE_INVAL:
        return EINVAL;
    case NLE_BUSY:
        return EBUSY;
    case NLE_OPNOTSUPP:
        return EOPNOTSUPP;
    case NLE_RANGE:
        return ERANGE;
    default:
        return EIO;
    }
}

int sbx__nl_err(struct rt_err *err, int nlerr, const char *fmt, ...)
{
    char what[RT_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    /* libnl's own text says more than the errno it maps to ("Object exists") */
    return rt_err_set(err, nlerr_to_errno(nlerr), "%s (%s)", what, nl_geterror(nlerr));
}

void sbx__nl_closep(struct nl_sock **sk)
{
    if (*sk) {
        nl_socket_free(*sk); /* closes the socket, if connected */
        *sk = NULL;
    }
}

static void link_putp(struct rtnl_link **l)
{
    if (*l)
        rtnl_link_put(*l);
}

static void addr_putp(struct rtnl_addr **a)
{
    if (*a)
        rtnl_addr_put(*a);
}

static void nladdr_putp(struct nl_addr **a)
{
    if (*a)
        nl_addr_put(*a);
}

static void route_putp(struct rtnl_route **r)
{
    if (*r)
        rtnl_route_put(*r);
}

static void cache_freep(struct nl_cache **c)
{
    if (*c)
        nl_cache_free(*c);
}

int sbx__nl_open(struct nl_sock **ret_sk, struct rt_err *err)
{
    _cleanup_(sbx__nl_closep) struct nl_sock *sk = nl_socket_alloc();
    int r;

    if (!sk)
        return rt_err_set(err, ENOMEM, "allocate a netlink socket");
    /* libnl creates its socket with SOCK_CLOEXEC (lib/nl.c) */
    r = nl_connect(sk, NETLINK_ROUTE);
    if (r < 0)
        return sbx__nl_err(err, r, "connect to rtnetlink");
    *ret_sk = TAKE_PTR(sk);
    return 0;
}

struct ns_open {
    int nsfd;
    struct nl_sock *sk;
    struct rt_err err;
    int r;
};

/* Runs in its own thread: a network namespace is per thread, and a socket keeps the netns
 * it was created in, so the caller's thread never leaves its namespace. */
static void *ns_open_thread(void *arg)
{
    struct ns_open *o = arg;

    if (setns(o->nsfd, CLONE_NEWNET) < 0)
        o->r = rt_err_set(&o->err, errno, "enter the space's network namespace");
    else
        o->r = sbx__nl_open(&o->sk, &o->err);
    return NULL;
}

int sbx__nl_open_in_netns(int nsfd, struct nl_sock **ret_sk, struct rt_err *err)
{
    struct ns_open o = { .nsfd = nsfd };
    pthread_t t;
    int r;

    r = pthread_create(&t, NULL, ns_open_thread, &o);
    if (r != 0)
        return rt_err_set(err, r, "start a thread to enter the space's network namespace");
    r = pthread_join(t, NULL);
    if (r != 0)
        return rt_err_set(err, r, "join the netns thread");
    if (o.r < 0) {
        *err = o.err;
        return o.r;
    }
    *ret_sk = o.sk;
    return 0;
}

int sbx__net_sysctl(const char *path, const char *value, struct rt_err *err)
{
    _cleanup_close_ int fd = -1;
    char full[256];

    (void) snprintf(full, sizeof(full), "/proc/sys/%s", path);
    fd = open(full, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", full);
    if (rt_write_all(fd, value, strlen(value)) < 0)
        return rt_err_set(err, errno, "write '%s'", full);
    return 0;
}

static int get_link(struct nl_sock *sk, const char *name, struct rtnl_link **ret,
                    struct rt_err *err)
{
    int r = rtnl_link_get_kernel(sk, 0, name, ret);

    if (r < 0)
        return sbx__nl_err(err, r, "find link '%s'", name);
    return 0;
}

static int link_up(struct nl_sock *sk, struct rtnl_link *orig, const char *alias,
                   struct rt_err *err)
{
    _cleanup_(link_putp) struct rtnl_link *change = rtnl_link_alloc();
    int r;

    if (!change)
        return rt_err_set(err, ENOMEM, "allocate a link change");
    rtnl_link_set_flags(change, IFF_UP);
    if (alias)
        rtnl_link_set_ifalias(change, alias);
    r = rtnl_link_change(sk, orig, change, 0);
    if (r < 0)
        return sbx__nl_err(err, r, "bring link '%s' up", rtnl_link_get_name(orig));
    return 0;
}

static int parse_addr(const char *ip, unsigned prefix, struct nl_addr **ret, struct rt_err *err)
{
    char buf[INET_ADDRSTRLEN + 4];
    int r;

    (void) snprintf(buf, sizeof(buf), "%s/%u", ip, prefix);
    r = nl_addr_parse(buf, AF_INET, ret);
    if (r < 0)
        return sbx__nl_err(err, r, "parse address '%s'", buf);
    return 0;
}

static int addr_add(struct nl_sock *sk, int ifindex, const char *ip, unsigned prefix,
                    struct rt_err *err)
{
    _cleanup_(addr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
    _cleanup_(nladdr_putp) struct nl_addr *local = NULL;
    int r;

    if (!a)
        return rt_err_set(err, ENOMEM, "allocate an address");
    r = parse_addr(ip, prefix, &local, err);
    if (r < 0)
        return r;
    rtnl_addr_set_ifindex(a, ifindex);
    r = rtnl_addr_set_local(a, local);
    if (r < 0)
        return sbx__nl_err(err, r, "set address '%s'", ip);
    rtnl_addr_set_prefixlen(a, (int) prefix);
    r = rtnl_addr_add(sk, a, 0);
    if (r < 0)
        return sbx__nl_err(err, r, "add address '%s/%u'", ip, prefix);
    return 0;
}

int sbx__net_veth_create(struct nl_sock *sk, const struct sbx_net_link *l, int nsfd,
                         struct rt_err *err)
{
    _cleanup_(link_putp) struct rtnl_link *link = rtnl_link_veth_alloc();
    struct rtnl_link *peer;
    int r;

    if (!link)
        return rt_err_set(err, ENOMEM, "allocate a veth link");
    rtnl_link_set_name(link, l->host_if);
    /* the ruleset lets a Space forward only when its host link is in the egress group */
    rtnl_link_set_group(link, l->egress ? SBX_NET_GROUP_EGRESS : SBX_NET_GROUP_PRIVATE);
    peer = rtnl_link_veth_get_peer(link);
    rtnl_link_set_name(peer, l->space_if);
    /* the peer is born inside the Space: it is never visible in the host's namespace */
    rtnl_link_set_ns_fd(peer, nsfd);
    rtnl_link_put(peer);
    /* NLM_F_EXCL makes the create the slot claim: two attaches never share a name */
    r = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0)
        return sbx__nl_err(err, r, "create veth '%s'", l->host_if);
    return 0;
}

int sbx__net_host_side(struct nl_sock *sk, const struct sbx_net_link *l, const char *alias,
                       struct rt_err *err)
{
    _cleanup_(link_putp) struct rtnl_link *link = NULL;
    char path[128];
    int r;

    /* No IPv6 on the host end: no link-local address for a Space to reach, no RA or ND
     * accepted from a Space.  (Without IPv6 in the kernel there is nothing to disable.) */
    (void) snprintf(path, sizeof(path), "net/ipv6/conf/%s/disable_ipv6", l->host_if);
    r = sbx__net_sysctl(path, "1", err);
    if (r < 0 && r != -ENOENT)
        return r;
    /* Forwarding is decided per input link; the ruleset still has the last word. */
    (void) snprintf(path, sizeof(path), "net/ipv4/conf/%s/forwarding", l->host_if);
    r = sbx__net_sysctl(path, l->egress ? "1" : "0", err);
    if (r < 0)
        return r;
    r = get_link(sk, l->host_if, &link, err);
    if (r < 0)
        return r;
    r = addr_add(sk, rtnl_link_get_ifindex(link), l->host_ip, l->prefix, err);
    if (r < 0)
        return r;
    return link_up(sk, link, alias, err);
}

int sbx__net_space_side(struct nl_sock *nsk, const struct sbx_net_link *l, struct rt_err *err)
{
    _cleanup_(link_putp) struct rtnl_link *lo = NULL, *eth = NULL;
    _cleanup_(route_putp) struct rtnl_route *route = NULL;
    _cleanup_(nladdr_putp) struct nl_addr *dst = NULL, *gw = NULL;
    struct rtnl_nexthop *nh;
    int r;

    r = get_link(nsk, "lo", &lo, err);
    if (r < 0)
        return r;
    r = link_up(nsk, lo, NULL, err);
    if (r < 0)
        return r;
    r = get_link(nsk, l->space_if, &eth, err);
    if (r < 0)
        return r;
    r = addr_add(nsk, rtnl_link_get_ifindex(eth), l->space_ip, l->prefix, err);
    if (r < 0)
        return r;
    r = link_up(nsk, eth, NULL, err);
    if (r < 0)
        return r;
    /* Without egress there is no default route: connects elsewhere fail at once
     * (ENETUNREACH) instead of timing out against the host's drop rules. */
    if (!l->egress)
        return 0;
    route = rtnl_route_alloc();
    nh = rtnl_route_nh_alloc();
    if (!route || !nh) {
        if (nh)
            rtnl_route_nh_free(nh);
        return rt_err_set(err, ENOMEM, "allocate a route");
    }
    r = parse_addr("0.0.0.0", 0, &dst, err);
    if (r >= 0)
        r = parse_addr(l->host_ip, 32, &gw, err);
    if (r < 0) {
        rtnl_route_nh_free(nh);
        return r;
    }
    rtnl_route_set_family(route, AF_INET);
    (void) rtnl_route_set_dst(route, dst);
    rtnl_route_nh_set_gateway(nh, gw);
    rtnl_route_nh_set_ifindex(nh, rtnl_link_get_ifindex(eth));
    rtnl_route_add_nexthop(route, nh); /* the route owns nh from here */
    r = rtnl_route_add(nsk, route, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0)
        return sbx__nl_err(err, r, "add the default route via '%s'", l->host_ip);
    return 0;
}

int sbx__net_pool_guard(struct nl_sock *sk, const struct sbx_net_conf *c, struct rt_err *err)
{
    _cleanup_(route_putp) struct rtnl_route *route = rtnl_route_alloc();
    _cleanup_(nladdr_putp) struct nl_addr *dst = NULL;
    char pool[INET_ADDRSTRLEN];
    int r;

    /* Without it, an address of a Space that is gone (a proxy's stale route, a probe
     * after a stop) follows the host's default route off the machine.  The /30 of each
     * live link is more specific, so the guard only catches what no Space answers.  It
     * stays when the last Space goes: that is the moment stale addresses are dialled. */
    if (!route)
        return rt_err_set(err, ENOMEM, "allocate a route");
    if (!inet_ntop(AF_INET, &c->pool, pool, sizeof(pool)))
        return rt_err_set(err, errno, "format the pool address");
    r = parse_addr(pool, c->pool_prefix, &dst, err);
    if (r < 0)
        return r;
    rtnl_route_set_family(route, AF_INET);
    rtnl_route_set_type(route, RTN_UNREACHABLE);
    rtnl_route_set_table(route, RT_TABLE_MAIN);
    rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
    (void) rtnl_route_set_dst(route, dst);
    r = rtnl_route_add(sk, route, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0 && r != -NLE_EXIST)
        return sbx__nl_err(err, r, "add the unreachable route for the pool %s/%u", pool,
                           c->pool_prefix);
    return 0;
}

int sbx__net_link_delete(struct nl_sock *sk, const char *name, struct rt_err *err)
{
    _cleanup_(link_putp) struct rtnl_link *link = rtnl_link_alloc();
    int r;

    if (!link)
        return rt_err_set(err, ENOMEM, "allocate a link");
    rtnl_link_set_name(link, name);
    r = rtnl_link_delete(sk, link);
    if (r < 0)
        return sbx__nl_err(err, r, "delete link '%s'", name);
    return 0;
}

int sbx__net_link_exists(struct nl_sock *sk, const char *name, struct rt_err *err)
{
    _cleanup_(link_putp) struct rtnl_link *link = NULL;
    int r = rtnl_link_get_kernel(sk, 0, name, &link);

    if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
        return 0;
    if (r < 0)
        return sbx__nl_err(err, r, "look up link '%s'", name);
    return 1;
}

int sbx__net_only_lo(struct nl_sock *sk, struct rt_err *err)
{
    _cleanup_(cache_freep) struct nl_cache *cache = NULL;
    int r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);

    if (r < 0)
        return sbx__nl_err(err, r, "list links");
    for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        const char *name = rtnl_link_get_name((struct rtnl_link *) o);

        if (name && strcmp(name, "lo") != 0)
            return rt_err_set(err, EEXIST, "not a fresh one: it has a link '%s'", name);
    }
    return 0;
}

int sbx__net_link_list(struct nl_sock *sk, const struct sbx_net_conf *c,
                       struct sbx_net_link **ret_links, size_t *ret_n, struct rt_err *err)
{
    _cleanup_(cache_freep) struct nl_cache *cache = NULL;
    _cleanup_free_ struct sbx_net_link *links = NULL;
    struct nl_object *o;
    size_t n = 0, cap;
    int r;

    r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
    if (r < 0)
        return sbx__nl_err(err, r, "list links");
    cap = (size_t) nl_cache_nitems(cache);
    links = calloc(cap ? cap : 1, sizeof(*links));
    if (!links)
        return rt_err_set(err, ENOMEM, "allocate the link list");
    for (o = nl_cache_get_first(cache); o && n < cap; o = nl_cache_get_next(o)) {
        struct rtnl_link *link = (struct rtnl_link *) o;
        const char *name = rtnl_link_get_name(link);
        struct sbx_net_link *l = &links[n];
        unsigned slot;

        if (!name || !sbx__net_name_slot(c, name, &slot))
            continue;
        if (sbx_net_slot_link(c, slot, l, NULL) < 0)
            continue;
        l->egress = rtnl_link_get_group(link) == SBX_NET_GROUP_EGRESS;
        if (sbx__net_alias_parse(rtnl_link_get_ifalias(link), &l->owner_pid, &l->owner_start) < 0) {
            l->owner_pid = 0;
            l->owner_start = 0;
        }
        n++;
    }
    *ret_n = n;
    *ret_links = n ? TAKE_PTR(links) : NULL;
    return 0;
}

int sbx__net_host_subnets(struct nl_sock *sk, const struct sbx_net_conf *c,
                          struct sbx__net4 **ret_nets, size_t *ret_n, struct rt_err *err)
{
    _cleanup_(cache_freep) struct nl_cache *addrs = NULL, *links = NULL;
    _cleanup_free_ struct sbx__net4 *nets = NULL;
    struct nl_object *o;
    size_t n = 0, cap;
    int r;

    r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
    if (r < 0)
        return sbx__nl_err(err, r, "list links");
    r = rtnl_addr_alloc_cache(sk, &addrs);
    if (r < 0)
        return sbx__nl_err(err, r, "list addresses");
    cap = (size_t) nl_cache_nitems(addrs);
    nets = calloc(cap ? cap : 1, sizeof(*nets));
    if (!nets)
        return rt_err_set(err, ENOMEM, "allocate the subnet list");
    for (o = nl_cache_get_first(addrs); o && n < cap; o = nl_cache_get_next(o)) {
        struct rtnl_addr *a = (struct rtnl_addr *) o;
        struct nl_addr *local = rtnl_addr_get_local(a);
        char name[IF_NAMESIZE] = "";
        uint32_t ip;

        if (rtnl_addr_get_family(a) != AF_INET || !local || nl_addr_get_len(local) != 4)
            continue;
        (void) rtnl_link_i2name(links, rtnl_addr_get_ifindex(a), name, sizeof(name));
        /* loopback is denied anyway; Space links are the pool, denied as a whole */
        if (strcmp(name, "lo") == 0 || strncmp(name, c->ifprefix, strlen(c->ifprefix)) == 0)
            continue;
        memcpy(&ip, nl_addr_get_binary_addr(local), 4);
        nets[n].addr = ntohl(ip);
        nets[n].prefix = (unsigned) rtnl_addr_get_prefixlen(a);
        if (nets[n].prefix > 32)
            nets[n].prefix = 32;
        n++;
    }
    *ret_n = n;
    *ret_nets = TAKE_PTR(nets);
    return 0;
}
