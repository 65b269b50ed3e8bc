/* sbxnet host filtering: one static nftables table (family inet) owned by this library.
 *
 * Nothing in it names a Space: Space links are matched by their name prefix, and the one
 * per-Space choice (egress or not) is the link's group.  So the table never grows, never
 * needs an update when a Space comes or goes, and a crashed Space cannot leave a rule behind.
 * It is replaced atomically (add + delete + add in one transaction). */
#include <arpa/inet.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "net-internal.h"
#include "netaddr.h"
#include "banned.h"

/* deny4 (netaddr.h: shared with runtimed's choice of resolvers): never reachable from a
 * Space, even with egress.  The pool and the host's own subnets are added at install time.
 * IPv6 is not forwarded at all. */

static uint32_t net4_masked(struct sbx__net4 n);

static void put_net(FILE *f, const char *sep, struct sbx__net4 n)
{
    struct in_addr a = { htonl(net4_masked(n)) };
    char ip[INET_ADDRSTRLEN];

    (void) inet_ntop(AF_INET, &a, ip, sizeof(ip));
    fprintf(f, "%s%s/%u", sep, ip, n.prefix);
}

static uint32_t net4_masked(struct sbx__net4 n)
{
    return n.prefix ? n.addr & (UINT32_MAX << (32 - n.prefix)) : 0;
}

/* Written into the table's comment: an existing table is reused only when it was made for
 * the same pool, prefix, host subnets and uids by this version of the rules, so a change of
 * any of them (a DHCP renewal included) is picked up by the next attach. */
static void fingerprint(const struct sbx_net_conf *c, const struct sbx__net4 *hostnets,
                        size_t nnets, char *buf, size_t len)
{
    char ip[INET_ADDRSTRLEN];
    uint32_t h = 2166136261u; /* FNV-1a over the masked subnets, in the kernel's order */
    size_t n;

    for (size_t i = 0; i < nnets; i++) {
        uint32_t v[2] = { net4_masked(hostnets[i]), hostnets[i].prefix };
        const unsigned char *b = (const unsigned char *) v;

        for (size_t j = 0; j < sizeof(v); j++)
            h = (h ^ b[j]) * 16777619u;
    }
    (void) inet_ntop(AF_INET, &c->pool, ip, sizeof(ip));
    (void) snprintf(buf, len, "sbxnet rules v1 pool %s/%u links %s* hostnets %08x uids %s", ip,
                    c->pool_prefix, c->ifprefix, (unsigned) h, c->n_allow_uids ? "0" : "any");
    for (size_t i = 0; i < c->n_allow_uids; i++) {
        n = strlen(buf);
        (void) snprintf(buf + n, len - n, ",%u", (unsigned) c->allow_uids[i]);
    }
    /* the full stop ends it: "uids 0,42." must not match inside "uids 0,4242." */
    n = strlen(buf);
    (void) snprintf(buf + n, len - n, ".");
}

static void rt__fclose_memp(FILE **f)
{
    if (*f)
        (void) fclose(*f);
}

char *sbx__net_ruleset(const struct sbx_net_conf *c, const struct sbx__net4 *hostnets, size_t n,
                       struct rt_err *err)
{
    _cleanup_(rt__fclose_memp) FILE *f = NULL;
    _cleanup_free_ char *buf = NULL;
    const char *t = c->table, *p = c->ifprefix;
    struct sbx__net4 pool = { ntohl(c->pool.s_addr), c->pool_prefix };
    char fp[256];
    size_t len = 0;

    fingerprint(c, hostnets, n, fp, sizeof(fp));
    f = open_memstream(&buf, &len);
    if (!f) {
        rt_err_set(err, errno, "allocate the ruleset");
        return NULL;
    }
    /* add, delete, add: one transaction that replaces the table whether it existed or not */
    fprintf(f, "table inet %s {}\ndelete table inet %s\ntable inet %s {\n", t, t, t);
    fprintf(f, "  comment \"%s (spaceport: generated, do not edit)\"\n", fp);
    fprintf(f, "  set pool4 { type ipv4_addr; flags interval; elements = { ");
    put_net(f, "", pool);
    fprintf(f, " } }\n");
    fprintf(f, "  set deny4 { type ipv4_addr; flags interval; auto-merge; elements = { %s",
            sbx_net_deny4[0]);
    for (size_t i = 1; i < sbx_net_n_deny4; i++)
        fprintf(f, ", %s", sbx_net_deny4[i]);
    put_net(f, ", ", pool);
    for (size_t i = 0; i < n; i++)
        put_net(f, ", ", hostnets[i]);
    fprintf(f, " } }\n");

    /* Before anything else: a Space speaks IPv4 only, and only from the address routed to
     * its own link (strict reverse-path check), so it cannot pose as another Space or the
     * host, nor send IPv6 to the host's link-local addresses. */
    fprintf(f,
            "  chain prerouting {\n"
            "    type filter hook prerouting priority raw; policy accept;\n"
            "    iifname \"%s*\" meta nfproto != ipv4 counter drop\n"
            "    iifname \"%s*\" fib saddr . iif oif missing counter drop\n"
            "    iifname \"%s*\" fib saddr type { local, broadcast, multicast } counter drop\n"
            "  }\n",
            p, p, p);
    /* The host is not a service for Spaces: a host service bound to 0.0.0.0 is otherwise
     * reachable through the host end of the link (measured).  Only replies to connections
     * the host opened (the proxy, health checks) come back in. */
    fprintf(f,
            "  chain input {\n"
            "    type filter hook input priority filter - 10; policy accept;\n"
            "    iifname \"%s*\" ct state established,related accept\n"
            "    iifname \"%s*\" counter drop\n"
            "  }\n",
            p, p);
    /* Forwarding: only the host itself (through output) opens connections to a Space, so
     * nothing forwarded may (other Spaces, the LAN).  A Space forwards only when its link is
     * in the egress group, and then never to private, local or metadata ranges. */
    fprintf(f,
            "  chain forward {\n"
            "    type filter hook forward priority filter - 10; policy accept;\n"
            "    oifname \"%s*\" ct state established,related accept\n"
            "    oifname \"%s*\" counter drop\n"
            "    iifname \"%s*\" iifgroup != 0x%08x counter drop\n"
            "    iifname \"%s*\" ip daddr @deny4 counter drop\n"
            "  }\n",
            p, p, p, SBX_NET_GROUP_EGRESS, p);
    /* The proxy authenticates visitors of private Spaces: another local user must not be
     * able to walk around it by dialing the Space's address directly. */
    if (c->n_allow_uids) {
        fprintf(f,
                "  chain output {\n"
                "    type filter hook output priority filter - 10; policy accept;\n"
                "    oifname \"%s*\" ct state new meta skuid != { 0",
                p);
        for (size_t i = 0; i < c->n_allow_uids; i++)
            fprintf(f, ", %u", (unsigned) c->allow_uids[i]);
        fprintf(f, " } counter drop\n  }\n");
    }
    /* Egress leaves with the host's address: the pool is never routed outside. */
    fprintf(f,
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            "    ip saddr @pool4 oifname != \"%s*\" masquerade\n"
            "  }\n"
            "}\n",
            p);
    if (fclose(f) != 0) {
        f = NULL;
        rt_err_set(err, ENOMEM, "write the ruleset");
        return NULL;
    }
    f = NULL;
    return TAKE_PTR(buf);
}

static void nft_ctx_freep(struct nft_ctx **ctx)
{
    if (*ctx)
        nft_ctx_free(*ctx);
}

/* Runs @cmds in one transaction.  Returns 0, or -errno with nft's first error line. */
static int nft_run(const char *cmds, char **ret_out, struct rt_err *err)
{
    _cleanup_(nft_ctx_freep) struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    const char *msg;
    int len;

    if (!ctx)
        return rt_err_set(err, ENOMEM, "create an nftables context");
    if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)
        return rt_err_set(err, ENOMEM, "buffer nftables output");
    if (nft_run_cmd_from_buffer(ctx, cmds) != 0) {
        msg = nft_ctx_get_error_buffer(ctx);
        msg = msg ? msg : "";
        len = (int) strcspn(msg, "\n");
        /* nft reports "No such file or directory" for a missing table */
        return rt_err_set(err, strstr(msg, "No such file") ? ENOENT : EPROTO, "nft: %.*s", len,
                          msg);
    }
    if (ret_out) {
        msg = nft_ctx_get_output_buffer(ctx);
        *ret_out = strdup(msg ? msg : "");
        if (!*ret_out)
            return rt_err_set(err, ENOMEM, "copy nftables output");
    }
    return 0;
}

int sbx__net_filter_install(const struct sbx_net_conf *c, const struct sbx__net4 *hostnets,
                            size_t n, struct rt_err *err)
{
    _cleanup_free_ char *rules = sbx__net_ruleset(c, hostnets, n, err);
    int r;

    if (!rules)
        return -err->code;
    r = nft_run(rules, NULL, err);
    if (r < 0)
        return rt_err_wrap(err, "install nftables table 'inet %s'", c->table);
    return 0;
}

int sbx__net_filter_remove(const struct sbx_net_conf *c, struct rt_err *err)
{
    char cmds[128];

    (void) snprintf(cmds, sizeof(cmds), "table inet %s {}\ndelete table inet %s\n", c->table,
                    c->table);
    if (nft_run(cmds, NULL, err) < 0)
        return rt_err_wrap(err, "delete nftables table 'inet %s'", c->table);
    return 0;
}

int sbx__net_filter_present(const struct sbx_net_conf *c, const struct sbx__net4 *hostnets,
                            size_t n, struct rt_err *err)
{
    _cleanup_free_ char *out = NULL;
    char cmds[128], fp[256];
    int r;

    (void) snprintf(cmds, sizeof(cmds), "list table inet %s\n", c->table);
    r = nft_run(cmds, &out, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return rt_err_wrap(err, "list nftables table 'inet %s'", c->table);
    fingerprint(c, hostnets, n, fp, sizeof(fp));
    return strstr(out, fp) ? 1 : 0;
}
