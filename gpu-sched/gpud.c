/* spaceport-gpud: the ZeroGPU device API for ONE Space, over a fake GPU inventory,
 * for tests and for operators trying the protocol with the real `spaces` client.
 * runtimed embeds the same library (libgpuapi) for every ZeroGPU Space.
 *
 * With --cgroup DIR /allow is enforced for real: the worker moves into
 * DIR/gpu-<nvidiaIndex>, which denies every device but the leased unit's nodes (v1:
 * devices.deny "a" then devices.allow; v2: an eBPF allowlist), and a revoke denies
 * those too.  Without it allows and revokes are only logged.  --backend nvml serves
 * the node's real GPUs (their UUIDs and device numbers). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "devapi.h"
#include "gpu.h"
#include "log.h"
#include "util.h"
#include "version.h"

#include "banned.h"

static volatile sig_atomic_t stop;
static const struct rt_log_ctx logctx = { .app = "gpud", .action = "serving the device api" };

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

struct gpud {
    struct gpu_inventory *inv;
    const char *cgroup; /* devices cgroup directory (v1 or v2), or NULL */
    bool v2;
    int *progs;             /* v2: the device program attached to each gpu-N, or -1 */
    const char *app_cgroup; /* the only cgroupPath served, or NULL: any */
    const char *space;
};

static void on_signal(int sig)
{
    stop = 1;
}

static void usage(FILE *f)
{
    fputs("usage: spaceport-gpud --space OWNER/NAME [--listen ADDR:PORT] [--gpus SPEC]\n"
          "         [--backend fake|nvml|none] [--dev-dir DIR] [--max-duration S] "
          "[--default-duration S]\n"
          "         [--quota anonymous=S,user=S,pro=S] [--quota-period S] [--concurrency N]\n"
          "         [--queue-max N] [--queue-timeout S] [--policy priority|fifo] [--ping-ms MS]\n"
          "         [--max-conns N] [--visitor-secret-file FILE] [--strict-tokens]\n"
          "         [--app-cgroup PATH] [--cgroup DIR] [--port-file FILE] [--log-level L]\n"
          "       spaceport-gpud --sign-token --visitor-secret-file FILE [--ip IP]\n"
          "         [--user NAME [--class user|pro]] [--ttl S]\n",
          f);
}

static int write_file(const char *dir, const char *name, const char *s, struct rt_err *err)
{
    char path[512];
    _cleanup_close_ int fd = -1;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", path);
    if (write(fd, s, strlen(s)) != (ssize_t) strlen(s))
        return rt_err_set(err, errno ? errno : EIO, "write '%s' to '%s'", s, path);
    return 0;
}

static const struct gpu_unit *unit_of(struct gpud *d, const struct gpu_lease_info *l)
{
    return l->slot < d->inv->n_units ? &d->inv->units[l->slot] : NULL;
}

static int on_resolve(void *ud, const char *cgroup_path, char *ret_space, size_t cap)
{
    struct gpud *d = ud;

    if (d->app_cgroup && strcmp(cgroup_path, d->app_cgroup) != 0)
        return -ENOENT;
    snprintf(ret_space, cap, "%s", d->space);
    return 0;
}

/* v2: replaces gpu-N's program with one that allows the unit's nodes (@allow) or
 * nothing at all; the replacement is atomic, so there is no window of either. */
static int set_v2(struct gpud *d, unsigned slot, const char *dir, const struct gpu_unit *u,
                  bool allow, struct rt_err *err)
{
    struct rt_dev_rule rules[GPU_NODES_MAX];
    size_t n = 0;
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int prog;

    if (fd < 0)
        return rt_err_set(err, errno, "open cgroup '%s'", dir);
    if (allow && gpu_dev_rules_from_nodes(u->nodes, u->n_nodes, rules, &n, GPU_NODES_MAX) < 0)
        return rt_err_set(err, ENOSPC, "too many device rules");
    prog = rt_devcg_v2_attach(fd, rules, n, d->progs[slot], err);
    if (prog < 0)
        return prog;
    d->progs[slot] = rt_close(d->progs[slot]);
    d->progs[slot] = prog;
    return 0;
}

static int on_allow(void *ud, const struct gpu_lease_info *l, pid_t pid, pid_t *ret_host_pid,
                    struct rt_err *err)
{
    struct gpud *d = ud;
    const struct gpu_unit *u = unit_of(d, l);
    char dir[512], num[32];
    int r;

    rt_log(RT_LOG_INFO, &logctx, "allow lease=%llu pid=%d nvidiaIndex=%u uuid=%s",
           (unsigned long long) l->id, (int) pid, l->nvidia_index, l->uuid);
    *ret_host_pid = pid; /* no pid namespace here: the worker runs beside us */
    if (!d->cgroup || !u)
        return 0;
    snprintf(dir, sizeof(dir), "%s/gpu-%u", d->cgroup, l->nvidia_index);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "create cgroup '%s'", dir);
    if (d->v2) {
        r = set_v2(d, l->slot, dir, u, true, err);
    } else {
        /* Default deny first ("a" clears every exception), then exactly the unit. */
        r = write_file(dir, "devices.deny", "a", err);
        if (r >= 0)
            r = gpu_devcg_v1_allow(dir, u->nodes, u->n_nodes, err);
    }
    snprintf(num, sizeof(num), "%d", (int) pid);
    if (r >= 0)
        r = write_file(dir, "cgroup.procs", num, err);
    return r;
}

static const char *end_name(enum gpu_end why)
{
    switch (why) {
    case GPU_END_RELEASED:
        return "evicted";
    case GPU_END_FAILED:
        return "died";
    case GPU_END_EXPIRED:
        return "expired";
    default:
        return "ended";
    }
}

static void on_revoke(void *ud, const struct gpu_lease_info *l, pid_t pid, enum gpu_end why)
{
    struct gpud *d = ud;
    const struct gpu_unit *u = unit_of(d, l);
    struct rt_err err = { 0 };
    char dir[512], buf[600];

    rt_log(RT_LOG_INFO, &logctx, "revoke lease=%llu pid=%d nvidiaIndex=%u why=%s",
           (unsigned long long) l->id, (int) pid, l->nvidia_index, end_name(why));
    if (!d->cgroup || !u)
        return;
    snprintf(dir, sizeof(dir), "%s/gpu-%u", d->cgroup, l->nvidia_index);
    if ((d->v2 ? set_v2(d, l->slot, dir, u, false, &err)
               : gpu_devcg_v1_deny(dir, u->nodes, u->n_nodes, true, &err)) < 0)
        rt_log(RT_LOG_WARN, &logctx, "revoke: %s, ignoring", rt_err_str(&err, buf, sizeof(buf)));
}

static void on_startup(void *ud, const char *space)
{
    rt_log(RT_LOG_INFO, &logctx, "startup-report space=%s", space);
}

static int parse_quota(const char *s, struct gpu_sched_config *c)
{
    _cleanup_free_ char *copy = strdup(s);
    char *save = NULL;

    if (!copy)
        return -ENOMEM;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        uint64_t v;
        int cls;

        if (!eq)
            return -EINVAL;
        *eq = '\0';
        cls = gpu_class_from_name(t);
        if (cls < 0 || rt_parse_u64(eq + 1, &v) < 0 || v > UINT32_MAX)
            return -EINVAL;
        c->quota_s[cls] = (uint32_t) v;
    }
    return 0;
}

static int read_secret(const char *path, uint8_t key[GPU_VISITOR_KEY_LEN], struct rt_err *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[4096];
    ssize_t n;

    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", path);
    n = rt_read_all(fd, buf, sizeof(buf));
    if (n < 0)
        return rt_err_set(err, (int) -n, "read '%s'", path);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n == 0)
        return rt_err_set(err, EINVAL, "'%s' is empty", path);
    /* The same derivation as spaceproxy's, so both can use the proxy token file. */
    gpu_visitor_key(buf, (size_t) n, key);
    return 0;
}

static int write_port_file(const char *path, unsigned port, struct rt_err *err)
{
    char tmp[512], num[16];
    _cleanup_close_ int fd = -1;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(num, sizeof(num), "%u\n", port);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", tmp);
    if (rt_write_all(fd, num, strlen(num)) < 0)
        return rt_err_set(err, errno, "write '%s'", tmp);
    /* Renamed whole: a reader never sees a half-written port. */
    if (rename(tmp, path) < 0)
        return rt_err_set(err, errno, "rename '%s'", tmp);
    return 0;
}

static int u32_arg(const char *name, const char *s, uint32_t *ret)
{
    uint64_t v;

    if (rt_parse_u64(s, &v) < 0 || v > UINT32_MAX) {
        fprintf(stderr, "spaceport-gpud: %s: expected a non-negative integer, got '%s'\n", name, s);
        return -EINVAL;
    }
    *ret = (uint32_t) v;
    return 0;
}

enum {
    O_SPACE = 256,
    O_LISTEN,
    O_GPUS,
    O_DEVDIR,
    O_MAXDUR,
    O_DEFDUR,
    O_QUOTA,
    O_PERIOD,
    O_CONC,
    O_QMAX,
    O_QTIMEOUT,
    O_POLICY,
    O_PING,
    O_MAXCONNS,
    O_SECRET,
    O_STRICT,
    O_APPCG,
    O_CGROUP,
    O_PORTFILE,
    O_BACKEND,
    O_LOGLEVEL,
    O_SIGN,
    O_IP,
    O_USER,
    O_CLASS,
    O_TTL,
    O_HELP,
    O_VERSION,
};

static const struct option opts[] = {
    { "space", 1, 0, O_SPACE },
    { "listen", 1, 0, O_LISTEN },
    { "gpus", 1, 0, O_GPUS },
    { "dev-dir", 1, 0, O_DEVDIR },
    { "max-duration", 1, 0, O_MAXDUR },
    { "default-duration", 1, 0, O_DEFDUR },
    { "quota", 1, 0, O_QUOTA },
    { "quota-period", 1, 0, O_PERIOD },
    { "concurrency", 1, 0, O_CONC },
    { "queue-max", 1, 0, O_QMAX },
    { "queue-timeout", 1, 0, O_QTIMEOUT },
    { "policy", 1, 0, O_POLICY },
    { "ping-ms", 1, 0, O_PING },
    { "max-conns", 1, 0, O_MAXCONNS },
    { "visitor-secret-file", 1, 0, O_SECRET },
    { "strict-tokens", 0, 0, O_STRICT },
    { "app-cgroup", 1, 0, O_APPCG },
    { "cgroup", 1, 0, O_CGROUP },
    { "backend", 1, 0, O_BACKEND },
    { "port-file", 1, 0, O_PORTFILE },
    { "log-level", 1, 0, O_LOGLEVEL },
    { "sign-token", 0, 0, O_SIGN },
    { "ip", 1, 0, O_IP },
    { "user", 1, 0, O_USER },
    { "class", 1, 0, O_CLASS },
    { "ttl", 1, 0, O_TTL },
    { "help", 0, 0, O_HELP },
    { "version", 0, 0, O_VERSION },
    { 0, 0, 0, 0 },
};

int main(int argc, char **argv)
{
    struct gpu_sched_config scfg;
    struct gpu_api_config acfg = { .listen = "127.0.0.1:7861" };
    struct gpu_config gcfg = { .backend = "fake", .fake_spec = "1xa100:80G" };
    struct gpud d = { 0 };
    struct gpu_api_hooks hooks = {
        .on_allow = on_allow, .on_revoke = on_revoke, .on_startup = on_startup, .userdata = &d
    };
    struct gpu_api *api = NULL;
    struct gpu_slot *slots = NULL;
    struct rt_err err = { 0 };
    uint8_t key[GPU_VISITOR_KEY_LEN];
    const char *secret = NULL, *port_file = NULL, *ip = NULL, *user = NULL;
    uint32_t ttl = 3600, v;
    int cls = GPU_CLASS_USER, sign = 0, o, r;
    char buf[1024];
    struct sigaction sa = { .sa_handler = on_signal };

    gpu_sched_config_default(&scfg);
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_SPACE:
            d.space = optarg;
            break;
        case O_LISTEN:
            acfg.listen = optarg;
            break;
        case O_GPUS:
            gcfg.fake_spec = optarg;
            break;
        case O_BACKEND:
            gcfg.backend = optarg;
            break;
        case O_DEVDIR:
            gcfg.fake_dev_dir = optarg;
            break;
        case O_MAXDUR:
            if (u32_arg("--max-duration", optarg, &scfg.max_duration_s) < 0)
                return 2;
            break;
        case O_DEFDUR:
            if (u32_arg("--default-duration", optarg, &scfg.default_duration_s) < 0)
                return 2;
            break;
        case O_PERIOD:
            if (u32_arg("--quota-period", optarg, &scfg.quota_period_s) < 0)
                return 2;
            break;
        case O_CONC:
            if (u32_arg("--concurrency", optarg, &scfg.space_concurrency) < 0)
                return 2;
            break;
        case O_QMAX:
            if (u32_arg("--queue-max", optarg, &scfg.queue_max) < 0)
                return 2;
            break;
        case O_QTIMEOUT:
            if (u32_arg("--queue-timeout", optarg, &scfg.queue_timeout_s) < 0)
                return 2;
            break;
        case O_PING:
            if (u32_arg("--ping-ms", optarg, &acfg.ping_ms) < 0)
                return 2;
            break;
        case O_TTL:
            if (u32_arg("--ttl", optarg, &ttl) < 0)
                return 2;
            break;
        case O_MAXCONNS:
            if (u32_arg("--max-conns", optarg, &v) < 0)
                return 2;
            acfg.max_conns = v;
            break;
        case O_QUOTA:
            if (parse_quota(optarg, &scfg) < 0) {
                fprintf(stderr,
                        "spaceport-gpud: --quota: expected anonymous=S,user=S,pro=S, "
                        "got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case O_POLICY:
            if (strcmp(optarg, "priority") == 0)
                scfg.policy = GPU_POLICY_PRIORITY;
            else if (strcmp(optarg, "fifo") == 0)
                scfg.policy = GPU_POLICY_FIFO;
            else {
                fprintf(stderr, "spaceport-gpud: --policy: expected priority or fifo\n");
                return 2;
            }
            break;
        case O_SECRET:
            secret = optarg;
            break;
        case O_STRICT:
            acfg.strict_tokens = true;
            break;
        case O_APPCG:
            d.app_cgroup = optarg;
            break;
        case O_CGROUP:
            d.cgroup = optarg;
            break;
        case O_PORTFILE:
            port_file = optarg;
            break;
        case O_LOGLEVEL:
            if ((rt_log_level = rt_log_level_from_name(optarg)) < 0) {
                fprintf(stderr, "spaceport-gpud: --log-level: expected err|warn|info|debug\n");
                return 2;
            }
            break;
        case O_SIGN:
            sign = 1;
            break;
        case O_IP:
            ip = optarg;
            break;
        case O_USER:
            user = optarg;
            break;
        case O_CLASS:
            if ((cls = gpu_class_from_name(optarg)) < 0) {
                fprintf(stderr, "spaceport-gpud: --class: expected anonymous, user or pro\n");
                return 2;
            }
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        case O_VERSION:
            printf("spaceport-gpud %s\n", SPACEPORT_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (secret && read_secret(secret, key, &err) < 0) {
        fprintf(stderr, "spaceport-gpud: %s\n", rt_err_str(&err, buf, sizeof(buf)));
        return 1;
    }
    if (sign) {
        if (!secret || (!ip && !user)) {
            fprintf(stderr, "spaceport-gpud: --sign-token needs --visitor-secret-file and "
                            "--ip or --user\n");
            return 2;
        }
        if (!gpu_visitor_sign(key, ip, user, (enum gpu_class) cls, (uint64_t) time(NULL) + ttl, buf,
                              sizeof(buf))) {
            fprintf(stderr, "spaceport-gpud: token too long\n");
            return 1;
        }
        printf("%s\n", buf);
        return 0;
    }
    if (!d.space) {
        fprintf(stderr, "spaceport-gpud: --space OWNER/NAME is required\n");
        return 2;
    }
    acfg.space = d.space;
    acfg.visitor_key = secret ? key : NULL;
    if (gpu_inventory_load(&gcfg, &d.inv, &err) < 0) {
        fprintf(stderr, "spaceport-gpud: %s\n", rt_err_str(&err, buf, sizeof(buf)));
        return 1;
    }
    if (d.cgroup) {
        struct statfs st;

        if (statfs(d.cgroup, &st) < 0) {
            fprintf(stderr, "spaceport-gpud: --cgroup '%s': %s\n", d.cgroup, strerror(errno));
            gpu_inventory_free(d.inv);
            return 1;
        }
        d.v2 = st.f_type == CGROUP2_SUPER_MAGIC;
    }
    slots = calloc(d.inv->n_units ? d.inv->n_units : 1, sizeof(*slots));
    d.progs = calloc(d.inv->n_units ? d.inv->n_units : 1, sizeof(*d.progs));
    for (size_t i = 0; d.progs && i < d.inv->n_units; i++)
        d.progs[i] = -1;
    if (!slots || !d.progs) {
        free(d.progs);
        gpu_inventory_free(d.inv);
        fprintf(stderr, "spaceport-gpud: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < d.inv->n_units; i++) {
        slots[i].nvidia_index = d.inv->units[i].index;
        snprintf(slots[i].uuid, sizeof(slots[i].uuid), "%s", d.inv->units[i].uuid);
        slots[i].size = d.inv->units[i].mig_gi < 0 ? GPU_SIZE_XLARGE : GPU_SIZE_LARGE;
    }
    if (d.app_cgroup)
        hooks.on_resolve = on_resolve;
    r = gpu_api_new(&acfg, &scfg, slots, d.inv->n_units, &hooks, &api, &err);
    free(slots);
    if (r >= 0 && port_file)
        r = write_port_file(port_file, gpu_api_port(api), &err);
    if (r < 0) {
        fprintf(stderr, "spaceport-gpud: %s\n", rt_err_str(&err, buf, sizeof(buf)));
        gpu_api_free(api);
        free(d.progs);
        gpu_inventory_free(d.inv);
        return 1;
    }
    /* No SA_RESTART: the signal interrupts epoll_wait and the loop sees the flag. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rt_log(RT_LOG_INFO, &logctx, "listening port=%u space=%s units=%zu", gpu_api_port(api), d.space,
           d.inv->n_units);
    r = gpu_api_run(api, &stop, &err);
    if (r < 0)
        fprintf(stderr, "spaceport-gpud: %s\n", rt_err_str(&err, buf, sizeof(buf)));
    gpu_api_free(api);
    for (size_t i = 0; i < d.inv->n_units; i++)
        d.progs[i] = rt_close(d.progs[i]);
    free(d.progs);
    gpu_inventory_free(d.inv);
    return r < 0 ? 1 : 0;
}
