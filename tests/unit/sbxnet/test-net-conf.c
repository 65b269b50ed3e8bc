/* Unit tests for sandbox/net-conf.c and the ruleset text of sandbox/net-filter.c: no kernel
 * state is touched here. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "sandbox/net-internal.h"

static void test_pool(void)
{
    static const struct {
        const char *in;
        int r;
        unsigned slots;
    } cases[] = {
        { "10.231.0.0/16", 0, 16384 },     { "172.30.8.0/22", 0, 256 },
        { "10.0.0.0/8", 0, 1u << 22 },     { "10.1.2.0/29", 0, 2 },
        { "10.231.0.1/16", -EINVAL, 0 },   { "10.231.0.0", -EINVAL, 0 },
        { "10.231.0.0/30", -EINVAL, 0 },   { "10.231.0.0/7", -EINVAL, 0 },
        { "10.231.0.0/", -EINVAL, 0 },     { "10.231.0.0/1x", -EINVAL, 0 },
        { "10.231.0/16", -EINVAL, 0 },     { "", -EINVAL, 0 },
        { "10.231.0.0/016x", -EINVAL, 0 },
    };
    struct sbx_net_conf c;
    struct rt_err err = { 0 };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        sbx_net_conf_init(&c);
        is_int(sbx_net_conf_set_pool(&c, cases[i].in, &err), cases[i].r, cases[i].in);
        if (cases[i].r == 0)
            is_int(sbx_net_pool_slots(&c), cases[i].slots, "slot count");
        else
            is_int(c.pool_prefix, 16, "a bad pool leaves the old one");
    }
    is_str(err.msg, "pool '10.231.0.0/016x': prefix must be 8..29", "message names the input");
}

static void test_defaults_and_slots(void)
{
    struct sbx_net_conf c;
    struct sbx_net_link l;
    struct rt_err err = { 0 };
    unsigned slot = 99;

    sbx_net_conf_init(&c);
    is_str(c.ifprefix, "spv", "default prefix");
    is_str(c.table, "spaceport", "default table");
    is_int(sbx_net_slot_link(&c, 0, &l, &err), 0, "slot 0");
    is_str(l.host_if, "spv0", "slot 0 host name");
    is_str(l.space_if, "eth0", "space name");
    is_str(l.host_ip, "10.231.0.1", "slot 0 host address");
    is_str(l.space_ip, "10.231.0.2", "slot 0 space address");
    is_int(l.prefix, 30, "a /30 per link");
    is_int(sbx_net_slot_link(&c, 16383, &l, &err), 0, "last slot");
    is_str(l.host_if, "spv16383", "last slot name");
    is_str(l.space_ip, "10.231.255.254", "last slot stays in the pool");
    is_int(sbx_net_slot_link(&c, 16384, &l, &err), -ERANGE, "past the pool");

    ok(sbx__net_name_slot(&c, "spv12", &slot) && slot == 12, "spv12 is slot 12");
    ok(!sbx__net_name_slot(&c, "spv", &slot), "no number");
    ok(!sbx__net_name_slot(&c, "spv012", &slot), "not canonical");
    ok(sbx__net_name_slot(&c, "spv0", &slot) && slot == 0, "slot 0");
    ok(!sbx__net_name_slot(&c, "spv16384", &slot), "outside the pool");
    ok(!sbx__net_name_slot(&c, "eth0", &slot), "other names");
    ok(!sbx__net_name_slot(&c, "spv1x", &slot), "junk after the number");

    is_int(sbx_net_conf_set_ifprefix(&c, "sbx-a", &err), 0, "prefix ok");
    is_int(sbx_net_conf_set_ifprefix(&c, "12345678", &err), -EINVAL, "prefix too long");
    is_int(sbx_net_conf_set_ifprefix(&c, "", &err), -EINVAL, "empty prefix");
    is_int(sbx_net_conf_set_ifprefix(&c, "a*", &err), -EINVAL, "a wildcard would widen rules");
    is_int(sbx_net_conf_set_ifprefix(&c, "a\"b", &err), -EINVAL, "a quote would break rules");
    is_str(c.ifprefix, "sbx-a", "failed sets keep the old prefix");
    is_int(sbx_net_conf_set_table(&c, "spaceport_test2", &err), 0, "table ok");
    is_int(sbx_net_conf_set_table(&c, "x; flush ruleset", &err), -EINVAL, "no nft injection");
    is_int(sbx_net_conf_set_table(&c, "2x", &err), -EINVAL, "starts with a letter");
    is_int(sbx_net_conf_set_table(&c, "", &err), -EINVAL, "empty table");
    is_int(sbx_net_conf_set_table(&c, "abcdefghijabcdefghijabcdefghijab", &err), -EINVAL,
           "32 characters is too long");
    is_str(c.table, "spaceport_test2", "failed sets keep the old table");
}

static void test_alias(void)
{
    unsigned long long start = 0, self = 0;
    char buf[64];
    pid_t pid = 0;

    is_int(sbx__net_alias_format(1234, 5678, buf, sizeof(buf)), 0, "format");
    is_str(buf, "spaceport pid=1234 start=5678", "alias text");
    is_int(sbx__net_alias_parse(buf, &pid, &start), 0, "parse back");
    ok(pid == 1234 && start == 5678, "round trip");
    is_int(sbx__net_alias_parse("spaceport pid=1 start=2 x", &pid, &start), -EINVAL, "junk");
    is_int(sbx__net_alias_parse("spaceport pid=0 start=2", &pid, &start), -EINVAL, "pid 0");
    is_int(sbx__net_alias_parse("other", &pid, &start), -EINVAL, "not ours");
    is_int(sbx__net_alias_parse(NULL, &pid, &start), -EINVAL, "no alias");
    is_int(sbx__net_alias_format(1, 2, buf, 8), -ENAMETOOLONG, "too small a buffer");

    is_int(sbx__net_pid_start(getpid(), &self), 0, "our own start time");
    ok(self > 0, "start time is set");
    is_int(sbx__net_pid_start(999999999, &start), -ESRCH, "no such pid");
}

static void test_ruleset(void)
{
    struct sbx__net4 hostnets[] = { { 0xc0000202u, 24 }, { 0x0a000005u, 8 } };
    struct rt_err err = { 0 };
    struct sbx_net_conf c;
    _cleanup_free_ char *r = NULL;

    sbx_net_conf_init(&c);
    r = sbx__net_ruleset(&c, hostnets, ARRAY_SIZE(hostnets), &err);
    ok(r != NULL, "ruleset built");
    if (!r)
        return;
    ok(strncmp(r, "table inet spaceport {}\ndelete table inet spaceport\ntable inet spaceport {",
               74) == 0,
       "replaces the table in one transaction");
    ok(strstr(r, "elements = { 10.231.0.0/16 }") != NULL, "pool set");
    ok(strstr(r, "comment \"sbxnet rules v1 pool 10.231.0.0/16 links spv* hostnets ") &&
           strstr(r, " uids any. (spaceport"),
       "the comment says what the table was made for");
    ok(strstr(r, "169.254.0.0/16") != NULL, "metadata range denied");
    ok(strstr(r, "224.0.0.0/3, 10.231.0.0/16, 192.0.2.0/24, 10.0.0.0/8 }") != NULL,
       "the pool and the host's subnets denied");
    ok(strstr(r, "iifname \"spv*\" counter drop") != NULL, "input from spaces dropped");
    ok(strstr(r, "iifname \"spv*\" ct state established,related accept") != NULL,
       "replies to the host accepted");
    ok(strstr(r, "oifname \"spv*\" counter drop") != NULL, "nothing forwarded into a space");
    ok(strstr(r, "iifgroup != 0x53500001 counter drop") != NULL, "egress only by group");
    ok(strstr(r, "fib saddr . iif oif missing counter drop") != NULL, "anti-spoofing");
    ok(strstr(r, "fib saddr type { local, broadcast, multicast } counter drop") != NULL,
       "no host, broadcast or multicast source from a space");
    ok(strstr(r, "meta nfproto != ipv4 counter drop") != NULL, "no IPv6 from spaces");
    ok(strstr(r, "ip saddr @pool4 oifname != \"spv*\" masquerade") != NULL, "masquerade");
}

static void test_allow_uids(void)
{
    struct rt_err err = { 0 };
    struct sbx_net_conf c;
    _cleanup_free_ char *r = NULL, *open_rules = NULL;

    sbx_net_conf_init(&c);
    open_rules = sbx__net_ruleset(&c, NULL, 0, &err);
    ok(open_rules && !strstr(open_rules, "skuid"), "no uid list: no output chain");
    is_int(sbx_net_conf_allow_uid(&c, 1000, &err), 0, "allow 1000");
    is_int(sbx_net_conf_allow_uid(&c, 1000, &err), 0, "twice is once");
    is_int(c.n_allow_uids, 1, "one uid");
    for (uid_t u = 1; u < SBX_NET_MAX_UIDS; u++)
        (void) sbx_net_conf_allow_uid(&c, u, &err);
    is_int(sbx_net_conf_allow_uid(&c, 9999, &err), -E2BIG, "bounded list");
    c.n_allow_uids = 1;
    r = sbx__net_ruleset(&c, NULL, 0, &err);
    ok(r && strstr(r, "oifname \"spv*\" ct state new meta skuid != { 0, 1000 } counter drop"),
       "only root and the proxy open connections to spaces");
    ok(r && strstr(r, " uids 0,1000. (spaceport"), "the uid list is in the comment");
}

int main(void)
{
    tap_start();
    test_pool();
    test_defaults_and_slots();
    test_alias();
    test_ruleset();
    test_allow_uids();
    return tap_done();
}
