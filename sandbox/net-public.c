/* The public/private split of IPv4 for Space egress (netaddr.h). */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "util.h"
#include "banned.h"

/* Never reachable from a Space, even with egress: "this network", RFC 1918, CGNAT, loopback,
 * link-local (cloud metadata 169.254.169.254 lives there), IETF protocol assignments,
 * benchmarking, multicast, reserved and broadcast. */
const char *const sbx_net_deny4[] = {
    "0.0.0.0/8",     "10.0.0.0/8",   "100.64.0.0/10",  "127.0.0.0/8",   "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3",
};
const size_t sbx_net_n_deny4 = ARRAY_SIZE(sbx_net_deny4);

bool sbx_net_ipv4_public(uint32_t addr)
{
    for (size_t i = 0; i < ARRAY_SIZE(sbx_net_deny4); i++) {
        const char *cidr = sbx_net_deny4[i], *slash = strchr(cidr, '/');
        char ip[INET_ADDRSTRLEN];
        struct in_addr a;
        uint64_t prefix = 0;
        uint32_t mask;

        if (rt_parse_u64(slash + 1, &prefix) < 0 || prefix > 32)
            continue; /* cannot happen: the table above is fixed */
        mask = prefix ? UINT32_MAX << (32 - prefix) : 0;
        (void) snprintf(ip, sizeof(ip), "%.*s", (int) (slash - cidr), cidr);
        if (inet_pton(AF_INET, ip, &a) == 1 && (addr & mask) == (ntohl(a.s_addr) & mask))
            return false;
    }
    return true;
}
