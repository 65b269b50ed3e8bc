/* Which IPv4 addresses a Space with egress may reach: one table, used by the nftables
 * ruleset (net-filter.c, sbxnet) and by runtimed when it picks the DNS resolvers a Space
 * gets (runtimed/resolv.c), so the two can never disagree.  No kernel access. */
#ifndef SP_SANDBOX_NETADDR_H
#define SP_SANDBOX_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ranges a Space never reaches, as "A.B.C.D/N" (the ruleset's deny4 set). */
extern const char *const sbx_net_deny4[];
extern const size_t sbx_net_n_deny4;

/* True when @addr (host byte order) is outside every range of sbx_net_deny4.  The host's
 * own subnets and the pool are denied too, at install time: they are not in the table. */
bool sbx_net_ipv4_public(uint32_t addr);

#endif
