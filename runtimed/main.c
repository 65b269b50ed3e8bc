/* runtimed: the Spaceport control plane.  Wiring only: settings, the data dir and its
 * lock, the store, the API, and a signal loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "builder.h"
#include "backup.h"
#include "bootstrap.h"
#include "cleanup.h"
#include "config.h"
#include "error.h"
#include "gpunode.h"
#include "gpuzero.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "resolv.h"
#include "runspec.h"
#include "store.h"
#include "tiers.h"
#include "util.h"
#include "version.h"
#include "banned.h"

static const struct rt_log_ctx main_ctx = { .app = NULL, .action = "runtimed" };
static const char *restore_file; /* --restore: fill a fresh data dir, then exit */

static void usage(FILE *out)
{
    fprintf(out, "usage: runtimed [--config FILE] [--data-dir DIR] [--listen ADDR:PORT]\n"
                 "                [--help] [--version]\n"
                 "\n"
                 "The Spaceport control plane: API, git, builds, lifecycle.\n"
                 "\n"
                 "  --config FILE       YAML settings (see ops/runtimed.conf.example)\n"
                 "  --data-dir DIR      state, tokens and logs (default /var/lib/spaceport)\n"
                 "  --listen ADDR:PORT  API address (default 127.0.0.1:8080)\n"
                 "  --print-config-example  every setting, documented, with its default\n"
                 "  --restore FILE      fill the fresh data dir from a backup (spacectl admin\n"
                 "                      backup), then exit; see docs/backup.md\n"
                 "\n"
                 "On first start runtimed creates the user 'admin' and writes its token to\n"
                 "DIR/admin.token (mode 0600).\n");
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct rt_config *c)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "data-dir", required_argument, NULL, 'd' },
        { "listen", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "print-config-example", no_argument, NULL, 'E' },
        { "restore", required_argument, NULL, 'R' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *data_dir = NULL, *listen = NULL;
    struct rt_err err = { 0 };
    char buf[RT_ERR_MSG_MAX + 64];
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("runtimed %s\n", SPACEPORT_VERSION);
            return 0;
        case 'R':
            restore_file = optarg;
            break;
        case 'E': /* ops/runtimed.conf.example, from the parser's own table */
            return rt_config_print_example(stdout) < 0 || fflush(stdout) != 0 ? 1 : 0;
        case ':':
            fprintf(stderr, "runtimed: option '%s' needs a value (see --help)\n", argv[optind - 1]);
            return 2;
        default:
            if (optopt)
                fprintf(stderr,
                        "runtimed: option '-%c' is unknown or lacks its value (see --help)\n",
                        optopt);
            else
                fprintf(stderr, "runtimed: unknown option '%s' or missing value (see --help)\n",
                        argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "runtimed: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (config && rt_config_load(c, config, &err) < 0) {
        fprintf(stderr, "runtimed: %s\n", rt_err_str(&err, buf, sizeof(buf)));
        return 1;
    }
    if (data_dir) {
        if (strlen(data_dir) >= sizeof(c->data_dir) || !*data_dir) {
            fprintf(stderr, "runtimed: --data-dir: empty or too long\n");
            return 2;
        }
        (void) snprintf(c->data_dir, sizeof(c->data_dir), "%s", data_dir);
    }
    if (listen) {
        if (strlen(listen) >= sizeof(c->listen) || rt_config_check_listen(listen, &err) < 0) {
            fprintf(stderr, "runtimed: --listen: %s\n", err.msg[0] ? err.msg : "too long");
            return 2;
        }
        (void) snprintf(c->listen, sizeof(c->listen), "%s", listen);
    }
    return -1;
}

/* Takes DATA_DIR/runtimed.lock for as long as the returned fd stays open, so a second
 * runtimed on the same data dir is refused. */
static int lock_data_dir(const char *dir, struct rt_err *err)
{
    _cleanup_close_ int fd = -1;
    char path[600], pid[32] = "";

    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return rt_err_set(err, errno, "create data dir '%s'", dir);
    (void) snprintf(path, sizeof(path), "%s/runtimed.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            ssize_t n = rt_read_all(fd, pid, sizeof(pid) - 1);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            return rt_err_set(err, EBUSY, "data dir '%s' is in use by another runtimed (pid %s)",
                              dir, pid[0] ? pid : "unknown");
        }
        return rt_err_set(err, errno, "lock '%s'", path);
    }
    (void) snprintf(pid, sizeof(pid), "%ld\n", (long) getpid());
    if (ftruncate(fd, 0) < 0 || rt_write_all(fd, pid, strlen(pid)) < 0)
        return rt_err_set(err, errno, "write '%s'", path);
    return TAKE_FD(fd);
}

static int signals_fd(struct rt_err *err)
{
    sigset_t set;
    int fd;

    (void) signal(SIGPIPE, SIG_IGN);
    (void) sigemptyset(&set);
    (void) sigaddset(&set, SIGTERM);
    (void) sigaddset(&set, SIGINT);
    (void) sigaddset(&set, SIGHUP);
    /* Blocked before the workers start, so they inherit the mask and only the main
     * loop sees these signals. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return rt_err_set(err, errno, "block signals");
    fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0)
        return rt_err_set(err, errno, "signalfd");
    return fd;
}

/* The resolvers Spaces with egress get (resolv.h): a bad egress_resolvers stops the start;
 * none usable is one warning, since every Space's name lookups will then fail. */
static int pick_resolvers(struct rt_config *c, struct rt_err *err)
{
    struct rt_resolvers rs;
    int r = rt_resolv_host(c->egress_resolvers, &rs, err);

    if (r < 0)
        return r;
    c->space_nameservers[0] = '\0';
    for (size_t i = 0; i < rs.n; i++) {
        size_t n = strlen(c->space_nameservers);
        (void) snprintf(c->space_nameservers + n, sizeof(c->space_nameservers) - n, "%s%s",
                        i ? " " : "", rs.addr[i]);
    }
    if (rs.n)
        rt_log(RT_LOG_INFO, &main_ctx, "Spaces with egress resolve names through %s",
               c->space_nameservers);
    else
        rt_log(rt_runspec_host_forwards() ? RT_LOG_WARN : RT_LOG_INFO, &main_ctx,
               "Spaces get no DNS resolver: /etc/resolv.conf names no public one (%zu "
               "private or loopback dropped: a Space reaches public addresses only); set "
               "egress_resolvers in runtimed.conf (e.g. egress_resolvers: \"1.1.1.1 9.9.9.9\")",
               rs.n_dropped);
    return 0;
}

static int run(struct rt_config *c, struct rt_err *err)
{
    _cleanup_close_ int lock_fd = -1, sig_fd = -1;
    struct rt_api api = { .cfg = c };
    struct rt_metrics_server *metrics = NULL;
    char db[600];
    bool first = false;
    int r;

    if ((r = pick_resolvers(c, err)) < 0)
        return r;
    lock_fd = lock_data_dir(c->data_dir, err);
    if (lock_fd < 0)
        return lock_fd;
    (void) snprintf(db, sizeof(db), "%s/spaceport.db", c->data_dir);
    r = rt_store_open(db, &api.st, err);
    if (r < 0)
        return r;
    r = rt_bootstrap(api.st, c->data_dir, &first, err);
    if (r < 0)
        goto out;
    if (first)
        rt_log(RT_LOG_INFO, &main_ctx,
               "first start: created user 'admin'; its token is in %s/admin.token (mode 0600)",
               c->data_dir);
    {
        /* auto finds no driver on most nodes: that is "no GPUs", not an error */
        struct rt_gpunode_config gc = {
            .backend = c->gpu_backend,
            .fake_spec = c->gpu_fake,
            .fake_dev_dir = c->gpu_fake_dev_dir,
            .zero_gpus = (unsigned) c->zero_gpus,
            .zero_kind = c->zero_gpu_kind,
        };
        r = rt_gpunode_new(&gc, &api.gpus, err);
        if (r < 0) {
            rt_err_wrap(err, "gpus (gpu_backend %s)", c->gpu_backend);
            goto out;
        }
    }
    api.node_gpus = (int) rt_gpunode_inventory(api.gpus)->n_units;
    rt_metrics_node_gpus(api.node_gpus);
    sig_fd = r = signals_fd(err);
    if (r < 0)
        goto out;
    /* ZeroGPU: the device API of zero Spaces, over the pool (none when zero_gpus is 0).
     * Before the lifecycle: its first tick may start a zero Space (after a reboot). */
    r = rt_gpuzero_for_node(api.gpus, c->data_dir, &api.zero, err);
    if (r < 0)
        goto out;
    /* Before the API: the Spaces that ran on are reattached before anyone asks. */
    r = rt_lifecycle_start_gpus(c, api.st, api.gpus, api.zero, &api.lc, err);
    if (r < 0)
        goto out;
    /* Before the API, so the first push finds the queue; builds a previous runtimed left
     * unfinished are queued again. */
    r = rt_builder_start(c, api.st, api.lc, &api.builder, err);
    if (r < 0)
        goto out;
    rt_lifecycle_set_builder(api.lc, api.builder); /* factory restarts queue builds */
    r = rt_api_start(&api, err);
    if (r < 0)
        goto out;
    /* Metrics are not worth an outage: a port taken only costs the scrapes. */
    if (c->metrics_listen[0] &&
        rt_metrics_serve_start(c->metrics_listen, api.st, &metrics, err) < 0)
        rt_log(RT_LOG_ERR, &main_ctx, "no /metrics: %s", err->msg);
    else if (metrics)
        rt_log(RT_LOG_INFO, &main_ctx, "metrics on http://%s/metrics", c->metrics_listen);
    rt_log(RT_LOG_INFO, &main_ctx,
           "listening on http://%s, data dir %s, schema v%d, %d GPU unit%s (%s)", c->listen,
           c->data_dir, rt_store_schema_version(api.st), api.node_gpus,
           api.node_gpus == 1 ? "" : "s", rt_gpunode_inventory(api.gpus)->backend);

    for (;;) {
        struct signalfd_siginfo si;
        struct pollfd pfd = { .fd = sig_fd, .events = POLLIN };

        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            r = rt_err_set(err, errno, "poll");
            break;
        }
        if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
            continue;
        if (si.ssi_signo == SIGHUP) {
            rt_log(RT_LOG_INFO, &main_ctx, "SIGHUP: nothing to reload yet, ignoring");
            continue;
        }
        rt_log(RT_LOG_INFO, &main_ctx, "%s: stopping", strsignal((int) si.ssi_signo));
        r = 0;
        break;
    }
    rt_metrics_serve_stop(metrics);
    rt_api_stop(&api);
out:
    rt_builder_stop(api.builder); /* a running build stays unfinished: queued at next start */
    rt_lifecycle_stop(api.lc);    /* the Spaces keep running */
    rt_gpuzero_free(api.zero);    /* after the supervisor: it calls in; workers live on */
    rt_gpunode_free(api.gpus);    /* their holdings are rebuilt from their specs */
    rt_store_close(api.st);
    return r;
}

int main(int argc, char **argv)
{
    struct rt_config c;
    struct rt_err err = { 0 };
    char buf[RT_ERR_MSG_MAX + 64];
    int r;

    rt_config_defaults(&c);
    r = parse_args(argc, argv, &c);
    if (r >= 0)
        return r;
    rt_log_level = c.log_level;
    rt_log_json = c.log_json;
    if (restore_file) {
        _cleanup_close_ int lock_fd = lock_data_dir(c.data_dir, &err);
        if (lock_fd < 0 || rt_backup_restore(c.data_dir, restore_file, &err) < 0) {
            rt_log(RT_LOG_ERR, &main_ctx, "restore: %s", rt_err_str(&err, buf, sizeof(buf)));
            return 1;
        }
        rt_log(RT_LOG_INFO, &main_ctx, "restored %s into %s", restore_file, c.data_dir);
        return 0;
    }
    r = run(&c, &err);
    if (r < 0) {
        rt_log(RT_LOG_ERR, &main_ctx, "%s", rt_err_str(&err, buf, sizeof(buf)));
        return 1;
    }
    rt_log(RT_LOG_INFO, &main_ctx, "stopped");
    return 0;
}
