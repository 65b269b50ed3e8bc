/* sbxnet: a private network per Space, reachable only from the host (the proxy), with an
 * optional egress that reaches public addresses only.
 *
 * Design: one veth pair per Space, routed, no bridge.  The host end is named
 * "<ifprefix><slot>" (spv0, spv1, ...) and holds <pool>+4*slot+1/30; the Space end is "eth0"
 * in the Space's own network namespace and holds +2/30.  spaceproxy runs unprivileged and
 * dials "IP:PORT" from its route table, so a routed address per Space fits it directly; the
 * other design (the host opening its sockets inside the Space's netns) would need the proxy
 * to hold root or a helper.  A point-to-point link per Space, with no shared L2, rules out ARP
 * tricks between Spaces.
 *
 * Fewest moving parts: the kernel is the only state.
 *  - The slot is claimed by creating the host link with NLM_F_EXCL: no pool file, no daemon.
 *  - The nftables ruleset (table inet spaceport) is static: it matches Space links by name
 *    prefix and marks egress with the link's group (IFLA_GROUP), so nothing in it is per Space
 *    and nothing can be left behind in it when a Space dies.
 *  - Addresses, routes and per-link sysctls live on the link; the kernel destroys both veth
 *    ends when the Space's netns goes away, so a crashed Space leaves nothing behind.
 *  - The link's alias records its owner (pid and start time), so sbx_net_cleanup_leftovers()
 *    can tell a live Space from a leftover whose netns is still pinned by something else.
 *
 * What the ruleset enforces (see net-filter.c for each rule and why):
 *  - input: nothing from a Space link reaches the host itself (any address, any port), except
 *    replies to connections the host opened (the proxy, health checks).
 *  - forward: nothing opens a connection towards a Space (other Spaces, the LAN); a Space
 *    without egress forwards nothing; with egress, only IPv4 to public ranges (never private,
 *    loopback, link-local/metadata, CGNAT, multicast, the pool, or the host's own subnets),
 *    masqueraded.  Packets whose source is not routed back through their own link are dropped.
 *    The ranges are sandbox/netaddr.h's table, which runtimed also uses to give a Space only
 *    resolvers it can reach (runtimed/resolv.h): the host's own resolver usually is not.
 *  - no IPv6 from Spaces at all (the host end has IPv6 disabled, and the ruleset drops it).
 *  - output (optional, allow_uids): only root and the listed uids (the proxy) may open
 *    connections to Spaces from the host.
 *
 * Every process that attaches on one host must use the same configuration: the table is
 * shared, and one made for another pool, prefix or uid list is replaced.
 *
 * Every call works in the network namespace of the calling thread (the "host"), so tests run
 * the whole thing inside a namespace they create.  Calls that change state take a lock file
 * so that concurrent attaches and a cleanup never race. */
#ifndef SP_SANDBOX_NET_H
#define SP_SANDBOX_NET_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

#define SBX_NET_POOL_DEFAULT "10.231.0.0/16"
#define SBX_NET_IFPREFIX_DEFAULT "spv"
#define SBX_NET_TABLE_DEFAULT "spaceport"
#define SBX_NET_LOCK_DEFAULT "/run/spaceport-net.lock"
#define SBX_NET_SPACE_IF "eth0"

#define SBX_NET_MAX_UIDS 8

/* Link groups (IFLA_GROUP) that the ruleset matches: only EGRESS links may forward. */
#define SBX_NET_GROUP_PRIVATE 0x53500000u
#define SBX_NET_GROUP_EGRESS 0x53500001u

struct sbx_net_conf {
    struct in_addr pool; /* network address of the pool, carved into /30 links */
    unsigned pool_prefix;
    char ifprefix[8];     /* host-side link names: <ifprefix><slot>; at most 7 chars */
    char table[32];       /* the nftables table (family inet) this library owns */
    char lock_path[256];  /* lock file serialising attach and cleanup */
    bool host_forwarding; /* an egress attach turns on net.ipv4.ip_forward (global) */
    /* When not empty, only these host uids (and root) may open connections to Spaces: the
     * proxy's uid, so other local users cannot bypass its authentication.  Empty: any. */
    uid_t allow_uids[SBX_NET_MAX_UIDS];
    size_t n_allow_uids;
};

struct sbx_net_link {
    unsigned slot;
    char host_if[IF_NAMESIZE];
    char space_if[IF_NAMESIZE];
    char host_ip[INET_ADDRSTRLEN];  /* the proxy connects from this address */
    char space_ip[INET_ADDRSTRLEN]; /* the Space's upstream address: "<space_ip>:<port>" */
    unsigned prefix;                /* 30 */
    bool egress;
    pid_t owner_pid;                /* 0 when unknown (a link without a readable alias) */
    unsigned long long owner_start; /* the owner's start time, to survive pid reuse */
};

/* Fills @c with the defaults above. */
void sbx_net_conf_init(struct sbx_net_conf *c);

/* Parses "A.B.C.D/N" (N in 8..29, host bits zero) into the pool.  Returns 0 or -EINVAL. */
int sbx_net_conf_set_pool(struct sbx_net_conf *c, const char *cidr, struct rt_err *err);

/* Sets the host-side name prefix: 1..7 chars of [a-z0-9-].  Returns 0 or -EINVAL. */
int sbx_net_conf_set_ifprefix(struct sbx_net_conf *c, const char *prefix, struct rt_err *err);

/* Sets the nftables table name: 1..31 chars of [a-z0-9_], starting with a letter (it goes
 * into nft commands verbatim).  Returns 0 or -EINVAL. */
int sbx_net_conf_set_table(struct sbx_net_conf *c, const char *table, struct rt_err *err);

/* Adds @uid to allow_uids.  Returns 0 or -E2BIG. */
int sbx_net_conf_allow_uid(struct sbx_net_conf *c, uid_t uid, struct rt_err *err);

/* Number of /30 slots in the pool. */
unsigned sbx_net_pool_slots(const struct sbx_net_conf *c);

/* Fills names and addresses of @slot (no kernel access).  Returns 0 or -ERANGE. */
int sbx_net_slot_link(const struct sbx_net_conf *c, unsigned slot, struct sbx_net_link *ret_link,
                      struct rt_err *err);

/* Gives the process @pid (its network namespace) a link: installs the ruleset if needed,
 * claims a free slot, creates the veth pair with "eth0" inside, addresses both ends, brings
 * lo and eth0 up inside, and with @egress a default route via the host end.  Meant to run
 * after clone() and before the child is released.  Blocks for a few netlink round trips.
 * On failure nothing is left behind.  Returns 0 and fills *ret_link, or -errno
 * (-EADDRNOTAVAIL: pool exhausted; -EEXIST: the namespace is not fresh, it has a link other
 * than lo, e.g. a first attach's "eth0"; -ENETUNREACH: egress while the host does not
 * forward and host_forwarding is off). */
int sbx_net_attach(const struct sbx_net_conf *c, pid_t pid, bool egress,
                   struct sbx_net_link *ret_link, struct rt_err *err);

/* Deletes the link of @l (its peer goes with it).  A link already gone (the Space's netns died
 * first) is success.  When @l names its owner, a link with that name but another owner (the
 * slot was freed and claimed again) is left alone, so a late detach never cuts off another
 * Space.  When no Space link is left, the nftables table goes too.  Refuses names without
 * the prefix.  Returns 0 or -errno. */
int sbx_net_detach(const struct sbx_net_conf *c, const struct sbx_net_link *l, struct rt_err *err);

/* Lists the links with the prefix.  *ret_links is malloc'ed (free it), may be NULL when
 * *ret_n is 0.  Returns 0 or -errno. */
int sbx_net_list(const struct sbx_net_conf *c, struct sbx_net_link **ret_links, size_t *ret_n,
                 struct rt_err *err);

/* For runtimed at start: deletes every prefixed link whose owner (pid + start time in its
 * alias) is gone, then, when no prefixed link is left, the nftables table.  Links of live
 * Spaces are kept.  Stores the number of links deleted in *ret_removed (may be NULL).
 * Returns 0 or -errno. */
int sbx_net_cleanup_leftovers(const struct sbx_net_conf *c, unsigned *ret_removed,
                              struct rt_err *err);

#endif
