/* sbxnet: attach, detach, list and clean up Space links (the design is in net.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "net-internal.h"
#include "banned.h"

/* Serialises slot claims, the owner record and cleanup between processes (runtimed, shims,
 * spacebox, spacenet).  An empty path means the caller serialises. */
static int net_lock(const struct sbx_net_conf *c, int *ret_fd, struct rt_err *err)
{
    _cleanup_close_ int fd = -1;

    *ret_fd = -1;
    if (!c->lock_path[0])
        return 0;
    fd = open(c->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return rt_err_set(err, errno, "open lock '%s'", c->lock_path);
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            return rt_err_set(err, errno, "lock '%s'", c->lock_path);
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* Refuses to "attach" the host to itself: the peer would land in the host namespace. */
static int check_other_netns(int nsfd, pid_t pid, struct rt_err *err)
{
    struct stat self, other;

    if (stat("/proc/thread-self/ns/net", &self) < 0)
        return rt_err_set(err, errno, "stat our network namespace");
    if (fstat(nsfd, &other) < 0)
        return rt_err_set(err, errno, "stat the network namespace of pid %d", (int) pid);
    if (self.st_dev == other.st_dev && self.st_ino == other.st_ino)
        return rt_err_set(err, EINVAL, "pid %d shares our network namespace", (int) pid);
    return 0;
}

/* Egress replies come back in on the uplink and are forwarded from there, so the host must
 * forward: say so at attach rather than leave a Space whose egress silently never answers. */
static int check_forwarding(const struct sbx_net_conf *c, struct rt_err *err)
{
    _cleanup_close_ int fd = -1;
    char v = '0';

    if (c->host_forwarding)
        return sbx__net_sysctl("net/ipv4/ip_forward", "1", err);
    fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &v, 1) != 1)
        return rt_err_set(err, errno, "read net.ipv4.ip_forward");
    if (v != '1')
        return rt_err_set(err, ENETUNREACH,
                          "egress needs the host to forward: set net.ipv4.ip_forward=1 or "
                          "allow host_forwarding");
    return 0;
}

static int ensure_filter(struct nl_sock *sk, const struct sbx_net_conf *c, struct rt_err *err)
{
    _cleanup_free_ struct sbx__net4 *nets = NULL;
    size_t n = 0;
    int r;

    r = sbx__net_host_subnets(sk, c, &nets, &n, err);
    if (r < 0)
        return r;
    r = sbx__net_filter_present(c, nets, n, err);
    if (r != 0)
        return r < 0 ? r : 0;
    return sbx__net_filter_install(c, nets, n, err);
}

/* Claims the lowest free slot by creating its link; EEXIST means someone holds it. */
static int claim_slot(struct nl_sock *sk, const struct sbx_net_conf *c, int nsfd, bool egress,
                      struct sbx_net_link *ret_link, struct rt_err *err)
{
    _cleanup_free_ struct sbx_net_link *used = NULL;
    _cleanup_free_ unsigned char *taken = NULL;
    unsigned slots = sbx_net_pool_slots(c);
    size_t n = 0;
    int r;

    r = sbx__net_link_list(sk, c, &used, &n, err);
    if (r < 0)
        return r;
    taken = calloc(slots / 8 + 1, 1);
    if (!taken)
        return rt_err_set(err, ENOMEM, "allocate the slot map");
    for (size_t i = 0; i < n; i++)
        taken[used[i].slot / 8] |= (unsigned char) (1u << (used[i].slot % 8));
    for (unsigned s = 0; s < slots; s++) {
        struct sbx_net_link l;

        if (taken[s / 8] & (1u << (s % 8)))
            continue;
        r = sbx_net_slot_link(c, s, &l, err);
        if (r < 0)
            return r;
        l.egress = egress;
        for (int tries = 0;; tries++) {
            r = sbx__net_veth_create(sk, &l, nsfd, err);
            if (r != -EEXIST)
                break;
            /* Taken since the listing (a link of a dead Space still being torn down), or
             * the Space already has an eth0.  A host name that exists means another slot;
             * one that does not may have just finished going away: try it once more. */
            r = sbx__net_link_exists(sk, l.host_if, err);
            if (r < 0)
                return r;
            if (r == 1)
                break;
            if (tries == 1)
                return rt_err_set(err, EEXIST, "the space already has a link '%s'",
                                  SBX_NET_SPACE_IF);
        }
        if (r == 1)
            continue;
        if (r < 0)
            return r;
        *ret_link = l;
        return 0;
    }
    return rt_err_set(err, EADDRNOTAVAIL, "address pool exhausted (%u links)", slots);
}

int sbx_net_attach(const struct sbx_net_conf *c, pid_t pid, bool egress,
                   struct sbx_net_link *ret_link, struct rt_err *err)
{
    _cleanup_(sbx__nl_closep) struct nl_sock *sk = NULL, *nsk = NULL;
    _cleanup_close_ int nsfd = -1, lock = -1;
    struct sbx_net_link l;
    unsigned long long start;
    char path[64], alias[64];
    int r;

    (void) snprintf(path, sizeof(path), "/proc/%d/ns/net", (int) pid);
    nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0)
        return rt_err_set(err, errno, "open the network namespace of pid %d", (int) pid);
    r = sbx__net_pid_start(pid, &start);
    if (r < 0)
        return rt_err_set(err, r, "read the start time of pid %d", (int) pid);
    r = check_other_netns(nsfd, pid, err);
    if (r < 0)
        return r;
    (void) sbx__net_alias_format(pid, start, alias, sizeof(alias));

    r = net_lock(c, &lock, err);
    if (r < 0)
        return r;
    r = sbx__nl_open(&sk, err);
    if (r < 0)
        return r;
    /* The rules go in before any link exists: a Space is never up without them. */
    r = ensure_filter(sk, c, err);
    if (r < 0)
        return r;
    r = sbx__net_pool_guard(sk, c, err);
    if (r < 0)
        return r;
    if (egress) {
        r = check_forwarding(c, err);
        if (r < 0)
            return r;
    }
    r = sbx__nl_open_in_netns(nsfd, &nsk, err);
    if (r < 0)
        return r;
    /* Only a fresh namespace (lo alone, as clone made it) gets a link: never a second one,
     * and never a namespace that already leads somewhere, such as another host's. */
    r = sbx__net_only_lo(nsk, err);
    if (r < 0)
        return rt_err_wrap(err, "network namespace of pid %d", (int) pid);
    r = claim_slot(sk, c, nsfd, egress, &l, err);
    if (r < 0)
        return r;
    l.owner_pid = pid;
    l.owner_start = start;

    r = sbx__net_host_side(sk, &l, alias, err);
    if (r >= 0)
        r = sbx__net_space_side(nsk, &l, err);
    if (r < 0) {
        struct rt_err ignored = { 0 };

        /* deleting the host end takes the peer and every address and route with it */
        (void) sbx__net_link_delete(sk, l.host_if, &ignored);
        return rt_err_wrap(err, "configure '%s'", l.host_if);
    }
    *ret_link = l;
    return 0;
}

int sbx_net_detach(const struct sbx_net_conf *c, const struct sbx_net_link *l, struct rt_err *err)
{
    _cleanup_(sbx__nl_closep) struct nl_sock *sk = NULL;
    _cleanup_free_ struct sbx_net_link *links = NULL;
    _cleanup_close_ int lock = -1;
    size_t n = 0;
    unsigned slot;
    int r;

    if (!sbx__net_name_slot(c, l->host_if, &slot))
        return rt_err_set(err, EINVAL, "'%s' is not a space link (prefix '%s')", l->host_if,
                          c->ifprefix);
    r = net_lock(c, &lock, err);
    if (r < 0)
        return r;
    r = sbx__nl_open(&sk, err);
    if (r < 0)
        return r;
    if (l->owner_pid) {
        r = sbx__net_link_list(sk, c, &links, &n, err);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n; i++)
            if (strcmp(links[i].host_if, l->host_if) == 0 &&
                (links[i].owner_pid != l->owner_pid || links[i].owner_start != l->owner_start))
                return 0; /* the slot belongs to another Space now */
    }
    r = sbx__net_link_delete(sk, l->host_if, err);
    if (r < 0 && r != -ENODEV)
        return r;
    /* The last Space takes the table with it.  Safe under the lock: an attach installs the
     * table and claims its link while holding it, so none is half-way in. */
    free(links);
    links = NULL;
    r = sbx__net_link_list(sk, c, &links, &n, err);
    if (r < 0)
        return r;
    return n == 0 ? sbx__net_filter_remove(c, err) : 0;
}

int sbx_net_list(const struct sbx_net_conf *c, struct sbx_net_link **ret_links, size_t *ret_n,
                 struct rt_err *err)
{
    _cleanup_(sbx__nl_closep) struct nl_sock *sk = NULL;
    int r = sbx__nl_open(&sk, err);

    if (r < 0)
        return r;
    return sbx__net_link_list(sk, c, ret_links, ret_n, err);
}

static bool owner_alive(const struct sbx_net_link *l)
{
    unsigned long long start;

    return l->owner_pid > 0 && sbx__net_pid_start(l->owner_pid, &start) == 0 &&
           start == l->owner_start;
}

int sbx_net_cleanup_leftovers(const struct sbx_net_conf *c, unsigned *ret_removed,
                              struct rt_err *err)
{
    _cleanup_(sbx__nl_closep) struct nl_sock *sk = NULL;
    _cleanup_free_ struct sbx_net_link *links = NULL;
    _cleanup_close_ int lock = -1;
    unsigned removed = 0;
    size_t n = 0, kept = 0;
    int r;

    r = net_lock(c, &lock, err);
    if (r < 0)
        return r;
    r = sbx__nl_open(&sk, err);
    if (r < 0)
        return r;
    r = sbx__net_link_list(sk, c, &links, &n, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        /* a live owner means a running Space (runtimed may restart under running Spaces) */
        if (owner_alive(&links[i])) {
            kept++;
            continue;
        }
        r = sbx__net_link_delete(sk, links[i].host_if, err);
        if (r < 0 && r != -ENODEV)
            return r;
        removed++;
    }
    /* the table goes only when no Space is left to protect */
    if (kept == 0) {
        r = sbx__net_filter_remove(c, err);
        if (r < 0)
            return r;
    }
    if (ret_removed)
        *ret_removed = removed;
    return 0;
}
