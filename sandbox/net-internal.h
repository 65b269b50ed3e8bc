/* Private to sbxnet: the pieces that net.c puts together. */
#ifndef SP_SANDBOX_NET_INTERNAL_H
#define SP_SANDBOX_NET_INTERNAL_H

#include <stdint.h>

#include "net.h"

struct nl_sock;

/* An IPv4 network, host byte order. */
struct sbx__net4 {
    uint32_t addr;
    unsigned prefix;
};

/* The owner record kept in a link's alias: "spaceport pid=N start=T". */
#define SBX__ALIAS_TAG "spaceport"
int sbx__net_alias_format(pid_t pid, unsigned long long start, char *buf, size_t len);
int sbx__net_alias_parse(const char *alias, pid_t *ret_pid, unsigned long long *ret_start);

/* Start time of @pid (field 22 of /proc/PID/stat).  Returns 0 or -errno (-ESRCH: gone). */
int sbx__net_pid_start(pid_t pid, unsigned long long *ret_start);

/* True when @name is "<prefix><decimal slot>"; stores the slot. */
bool sbx__net_name_slot(const struct sbx_net_conf *c, const char *name, unsigned *ret_slot);

/* net-filter.c: the ruleset text for @c, denying @hostnets too (the host's own subnets).
 * Returns a malloc'ed string, or NULL and sets err. */
char *sbx__net_ruleset(const struct sbx_net_conf *c, const struct sbx__net4 *hostnets, size_t n,
                       struct rt_err *err);
/* Installs (atomically replaces) the table.  Returns 0 or -errno. */
int sbx__net_filter_install(const struct sbx_net_conf *c, const struct sbx__net4 *hostnets,
                            size_t n, struct rt_err *err);
/* Deletes the table; absent is success.  Returns 0 or -errno. */
int sbx__net_filter_remove(const struct sbx_net_conf *c, struct rt_err *err);
/* 1 when the table exists and was made for @c and @hostnets by these rules, 0 when
 * not (absent or stale: install it), or -errno. */
int sbx__net_filter_present(const struct sbx_net_conf *c, const struct sbx__net4 *hostnets,
                            size_t n, struct rt_err *err);

/* net-link.c: libnl helpers.  Each returns 0 or -errno and fills err. */
int sbx__nl_open(struct nl_sock **ret_sk, struct rt_err *err);
int sbx__nl_open_in_netns(int nsfd, struct nl_sock **ret_sk, struct rt_err *err);
void sbx__nl_closep(struct nl_sock **sk);
int sbx__nl_err(struct rt_err *err, int nlerr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The host's IPv4 subnets on links without the prefix (lo excluded). */
int sbx__net_host_subnets(struct nl_sock *sk, const struct sbx_net_conf *c,
                          struct sbx__net4 **ret_nets, size_t *ret_n, struct rt_err *err);
/* Creates the veth pair for @l with the peer "eth0" in @nsfd, down.  -EEXIST when the
 * host-side name is taken. */
int sbx__net_veth_create(struct nl_sock *sk, const struct sbx_net_link *l, int nsfd,
                         struct rt_err *err);
/* Host end: sysctls, alias, address, up. */
/* Installs (once; idempotent) an unreachable route for the whole pool in the main table,
 * so no address of the pool ever leaves through the default route. */
int sbx__net_pool_guard(struct nl_sock *sk, const struct sbx_net_conf *c, struct rt_err *err);
int sbx__net_host_side(struct nl_sock *sk, const struct sbx_net_link *l, const char *alias,
                       struct rt_err *err);
/* Space end (through a socket opened in its netns): lo up, address, up, default route. */
int sbx__net_space_side(struct nl_sock *nsk, const struct sbx_net_link *l, struct rt_err *err);
/* Deletes a link by name; -ENODEV when absent. */
int sbx__net_link_delete(struct nl_sock *sk, const char *name, struct rt_err *err);
/* 0 when lo is the only link in the socket's netns, else -EEXIST naming another. */
int sbx__net_only_lo(struct nl_sock *sk, struct rt_err *err);
/* True when a link @name exists (in the socket's netns). */
int sbx__net_link_exists(struct nl_sock *sk, const char *name, struct rt_err *err);
/* Prefixed links with slot, group and alias owner; malloc'ed array. */
int sbx__net_link_list(struct nl_sock *sk, const struct sbx_net_conf *c,
                       struct sbx_net_link **ret_links, size_t *ret_n, struct rt_err *err);
/* spacenet bench (net-bench.c): prints timings, returns an exit status. */
int sbx__net_bench(const struct sbx_net_conf *c, int argc, char **argv);

/* Writes @value to /proc/sys/@path.  Returns 0 or -errno. */
int sbx__net_sysctl(const char *path, const char *value, struct rt_err *err);

#endif
