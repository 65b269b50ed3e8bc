/* spacenet: the operator's view of sbxnet (sandbox/net.h): attach a Space link to a process,
 * detach it, list links, clean up leftovers, print the ruleset, and time it all. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "net-internal.h"
#include "util.h"
#include "version.h"
#include "banned.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spacenet [OPTIONS] COMMAND [ARGS]\n"
            "\n"
            "private networks for Spaces: one veth link per Space, filtered on the host.\n"
            "\n"
            "commands:\n"
            "  attach [--egress] PID  give the network namespace of PID a Space link\n"
            "  detach IFNAME          delete a Space link (its peer goes with it)\n"
            "  list                   show the Space links and their owners\n"
            "  cleanup                delete links whose owner is gone; the table when none is "
            "left\n"
            "  ruleset                print the nftables ruleset that attach installs\n"
            "  bench [--count N]      time attach and detach in a private namespace\n"
            "\n"
            "options:\n"
            "  --pool CIDR        address pool carved into /30 links (default %s)\n"
            "  --ifprefix NAME    host-side link name prefix (default %s)\n"
            "  --table NAME       nftables table, family inet (default %s)\n"
            "  --lock PATH        lock file (default %s)\n"
            "  --host-forwarding  let an egress attach turn on net.ipv4.ip_forward\n"
            "  --allow-uid UID    only root and these uids may connect to Spaces (repeatable)\n"
            "  -h, --help         show this help\n"
            "  --version          show the version\n",
            SBX_NET_POOL_DEFAULT, SBX_NET_IFPREFIX_DEFAULT, SBX_NET_TABLE_DEFAULT,
            SBX_NET_LOCK_DEFAULT);
}

static int fail(const struct rt_err *err)
{
    char buf[RT_ERR_MSG_MAX + 64];

    fprintf(stderr, "spacenet: %s\n", rt_err_str(err, buf, sizeof(buf)));
    return 1;
}

static void print_link(const struct sbx_net_link *l)
{
    printf("host_if=%s host_ip=%s space_if=%s space_ip=%s prefix=%u egress=%s owner=%d\n",
           l->host_if, l->host_ip, l->space_if, l->space_ip, l->prefix, l->egress ? "yes" : "no",
           (int) l->owner_pid);
}

static int parse_pid(const char *s, pid_t *ret)
{
    uint64_t v;

    if (rt_parse_u64(s, &v) < 0 || v == 0 || v > INT32_MAX)
        return -EINVAL;
    *ret = (pid_t) v;
    return 0;
}

static int cmd_attach(const struct sbx_net_conf *c, int argc, char **argv)
{
    struct rt_err err = { 0 };
    struct sbx_net_link l;
    bool egress = false;
    const char *pid_arg = NULL;
    pid_t pid;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--egress") == 0)
            egress = true;
        else if (!pid_arg && argv[i][0] != '-')
            pid_arg = argv[i];
        else {
            fprintf(stderr, "spacenet: attach: unexpected '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!pid_arg || parse_pid(pid_arg, &pid) < 0) {
        fprintf(stderr, "spacenet: attach: expected a PID (see --help)\n");
        return 2;
    }
    if (sbx_net_attach(c, pid, egress, &l, &err) < 0)
        return fail(&err);
    print_link(&l);
    return 0;
}

static int cmd_detach(const struct sbx_net_conf *c, int argc, char **argv)
{
    struct sbx_net_link l = { 0 };
    struct rt_err err = { 0 };

    if (argc != 2) {
        fprintf(stderr, "spacenet: detach: expected IFNAME (see --help)\n");
        return 2;
    }
    (void) snprintf(l.host_if, sizeof(l.host_if), "%s", argv[1]);
    if (sbx_net_detach(c, &l, &err) < 0)
        return fail(&err);
    return 0;
}

static int cmd_list(const struct sbx_net_conf *c)
{
    _cleanup_free_ struct sbx_net_link *links = NULL;
    struct rt_err err = { 0 };
    size_t n = 0;

    if (sbx_net_list(c, &links, &n, &err) < 0)
        return fail(&err);
    for (size_t i = 0; i < n; i++)
        print_link(&links[i]);
    return 0;
}

static int cmd_cleanup(const struct sbx_net_conf *c)
{
    struct rt_err err = { 0 };
    unsigned removed = 0;

    if (sbx_net_cleanup_leftovers(c, &removed, &err) < 0)
        return fail(&err);
    printf("removed=%u\n", removed);
    return 0;
}

static int cmd_ruleset(const struct sbx_net_conf *c)
{
    _cleanup_(sbx__nl_closep) struct nl_sock *sk = NULL;
    _cleanup_free_ struct sbx__net4 *nets = NULL;
    _cleanup_free_ char *rules = NULL;
    struct rt_err err = { 0 };
    size_t n = 0;

    if (sbx__nl_open(&sk, &err) < 0 || sbx__net_host_subnets(sk, c, &nets, &n, &err) < 0)
        return fail(&err);
    rules = sbx__net_ruleset(c, nets, n, &err);
    if (!rules)
        return fail(&err);
    fputs(rules, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "pool", required_argument, NULL, 'p' },
        { "ifprefix", required_argument, NULL, 'i' },
        { "table", required_argument, NULL, 't' },
        { "lock", required_argument, NULL, 'l' },
        { "host-forwarding", no_argument, NULL, 'f' },
        { "allow-uid", required_argument, NULL, 'u' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct sbx_net_conf c;
    struct rt_err err = { 0 };
    const char *cmd;
    int o;

    sbx_net_conf_init(&c);
    opterr = 0;
    /* "+": options stop at the command, whose own options follow it */
    while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            if (sbx_net_conf_set_pool(&c, optarg, &err) < 0)
                return fail(&err), 2;
            break;
        case 'i':
            if (sbx_net_conf_set_ifprefix(&c, optarg, &err) < 0)
                return fail(&err), 2;
            break;
        case 't':
            if (sbx_net_conf_set_table(&c, optarg, &err) < 0)
                return fail(&err), 2;
            break;
        case 'l':
            (void) snprintf(c.lock_path, sizeof(c.lock_path), "%s", optarg);
            break;
        case 'f':
            c.host_forwarding = true;
            break;
        case 'u': {
            uint64_t uid;

            if (rt_parse_u64(optarg, &uid) < 0 || uid >= UINT32_MAX) {
                fprintf(stderr, "spacenet: --allow-uid: expected a uid, got '%s'\n", optarg);
                return 2;
            }
            if (sbx_net_conf_allow_uid(&c, (uid_t) uid, &err) < 0)
                return fail(&err), 2;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("spacenet %s\n", SPACEPORT_VERSION);
            return 0;
        default:
            fprintf(stderr, "spacenet: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = argv[optind];
    argc -= optind;
    argv += optind;
    if (strcmp(cmd, "attach") == 0)
        return cmd_attach(&c, argc, argv);
    if (strcmp(cmd, "detach") == 0)
        return cmd_detach(&c, argc, argv);
    if (strcmp(cmd, "list") == 0 && argc == 1)
        return cmd_list(&c);
    if (strcmp(cmd, "cleanup") == 0 && argc == 1)
        return cmd_cleanup(&c);
    if (strcmp(cmd, "ruleset") == 0 && argc == 1)
        return cmd_ruleset(&c);
    if (strcmp(cmd, "bench") == 0)
        return sbx__net_bench(&c, argc, argv);
    fprintf(stderr, "spacenet: unknown command '%s' (see --help)\n", cmd);
    return 2;
}
