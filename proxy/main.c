/* spaceproxy: the Spaceport data plane.  Wiring only: options, config, the loops (one
 * per worker thread), the runtimed feed thread, and signals (SIGHUP reloads the config
 * file, SIGTERM/SIGINT drain and stop). */
#include "proxy.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "version.h"
#include "banned.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spaceproxy [--config FILE] [--listen ADDR:PORT] [--domain DOMAIN]\n"
            "                  [--runtimed URL] [--token-file FILE] [--admin ADDR:PORT]\n"
            "                  [--workers N] [--access-log off|stderr|FILE] [--help] [--version]\n"
            "\n"
            "the Spaceport data plane: routes browser traffic to Spaces by host\n"
            "(OWNER-NAME.DOMAIN), streams requests and responses, tunnels WebSockets,\n"
            "wakes sleeping Spaces and guards private ones.\n"
            "\n"
            "  --config FILE      YAML config (listen, domain, runtimed, routes, limits)\n"
            "  --listen ADDR:PORT where visitors connect (default 127.0.0.1:8000)\n"
            "  --domain DOMAIN    Spaces live at OWNER-NAME.DOMAIN (default localhost)\n"
            "  --runtimed URL     runtimed's API, for routes, wake and tokens (default: none)\n"
            "  --token-file FILE  the proxy token runtimed wrote\n"
            "                     (default /var/lib/spaceport/proxy.token)\n"
            "  --admin ADDR:PORT  metrics (Prometheus) and health endpoint (default: off)\n"
            "  --workers N        event loops, one per core (default: online CPUs)\n");
}

static int read_token_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    bool got;

    buf[0] = '\0';
    if (!f)
        return -1;
    got = fgets(buf, (int) cap, f) != NULL;
    fclose(f);
    if (!got)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int reload(void)
{
    struct px_config next;
    struct rt_err err = { 0 };
    char msg[700];

    if (!px_g.config_path)
        return 0;
    px_config_defaults(&next);
    if (px_config_load(&next, px_g.config_path, &err) < 0) {
        rt_log(RT_LOG_ERR, NULL, "reload: %s, keeping the running config",
               rt_err_str(&err, msg, sizeof(msg)));
        px_config_done(&next);
        return -1;
    }
    /* Routes change at once; listeners and loop sizes need a restart. */
    pthread_mutex_lock(&px_g.table_lock);
    struct px_route_conf *old = px_g.cfg.routes;
    size_t nold = px_g.cfg.nroutes;
    px_g.cfg.routes = next.routes;
    px_g.cfg.nroutes = next.nroutes;
    next.routes = old;
    next.nroutes = nold;
    pthread_mutex_unlock(&px_g.table_lock);
    px_config_done(&next);
    if (px_global_rebuild(&err) < 0) {
        rt_log(RT_LOG_ERR, NULL, "reload: %s", rt_err_str(&err, msg, sizeof(msg)));
        return -1;
    }
    rt_log(RT_LOG_INFO, NULL, "reloaded '%s'", px_g.config_path);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "config", required_argument, NULL, 'c' },
        { "listen", required_argument, NULL, 'l' },
        { "domain", required_argument, NULL, 'd' },
        { "runtimed", required_argument, NULL, 'r' },
        { "token-file", required_argument, NULL, 't' },
        { "admin", required_argument, NULL, 'a' },
        { "workers", required_argument, NULL, 'w' },
        { "access-log", required_argument, NULL, 'L' },
        { NULL, 0, NULL, 0 },
    };
    struct {
        const char *key, *val;
    } cli[16];
    unsigned ncli = 0;
    struct rt_err err = { 0 };
    char msg[700], token[512];
    int c, ret = 1;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("spaceproxy %s\n", SPACEPORT_VERSION);
            return 0;
        case 'c':
            px_g.config_path = optarg;
            continue;
        case 'l':
            key = "listen";
            break;
        case 'd':
            key = "domain";
            break;
        case 'r':
            key = "runtimed";
            break;
        case 't':
            key = "token_file";
            break;
        case 'a':
            key = "admin_listen";
            break;
        case 'w':
            key = "workers";
            break;
        case 'L':
            key = "access_log";
            break;
        case ':':
            fprintf(stderr, "spaceproxy: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "spaceproxy: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
        if (ncli < ARRAY_SIZE(cli))
            cli[ncli++] = (typeof(cli[0])){ key, optarg };
    }
    if (optind < argc) {
        fprintf(stderr, "spaceproxy: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }

    px_config_defaults(&px_g.cfg);
    if (px_g.config_path && px_config_load(&px_g.cfg, px_g.config_path, &err) < 0) {
        fprintf(stderr, "spaceproxy: %s\n", rt_err_str(&err, msg, sizeof(msg)));
        return 1;
    }
    for (unsigned i = 0; i < ncli; i++)
        if (px__config_set(&px_g.cfg, cli[i].key, cli[i].val, &err) < 0) {
            fprintf(stderr, "spaceproxy: %s\n", rt_err_str(&err, msg, sizeof(msg)));
            return 2;
        }
    if (px_g.cfg.runtimed && !*px_g.cfg.runtimed) {
        free(px_g.cfg.runtimed);
        px_g.cfg.runtimed = NULL;
    }
    if (px_g.cfg.max_header_size > px_bufsize)
        px_bufsize = (uint32_t) px_g.cfg.max_header_size;

    /* A few fds per connection: raise the soft limit to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* threads inherit it; main waits for them */

    px_auth_init(read_token_file(px_g.cfg.token_file, token, sizeof(token)) == 0 ? token : NULL);
    memset(token, 0, sizeof(token));
    if (px_global_rebuild(&err) < 0) {
        fprintf(stderr, "spaceproxy: %s\n", rt_err_str(&err, msg, sizeof(msg)));
        goto out;
    }
    px_g.nloops = px_g.cfg.workers ? px_g.cfg.workers : (unsigned) sysconf(_SC_NPROCESSORS_ONLN);
    if (px_g.nloops == 0)
        px_g.nloops = 1;
    px_g.loops = calloc(px_g.nloops, sizeof(*px_g.loops));
    if (!px_g.loops)
        goto out;
    for (unsigned i = 0; i < px_g.nloops; i++)
        if (px_loop_new(i, &px_g.loops[i], &err) < 0) {
            fprintf(stderr, "spaceproxy: %s\n", rt_err_str(&err, msg, sizeof(msg)));
            px_g.nloops = i;
            goto out;
        }
    if (px_feed_start(&err) < 0) {
        fprintf(stderr, "spaceproxy: %s\n", rt_err_str(&err, msg, sizeof(msg)));
        goto out;
    }
    unsigned started = 0;
    for (; started < px_g.nloops; started++)
        if (pthread_create(&px_g.loops[started]->thread, NULL, px_loop_main, px_g.loops[started]) !=
            0)
            break;
    rt_log(RT_LOG_INFO, NULL, "listening on %s for *.%s (%u loops%s%s)", px_g.cfg.listen,
           px_g.cfg.domain, started, px_g.cfg.runtimed ? ", routes from " : "",
           px_g.cfg.runtimed ? px_g.cfg.runtimed : "");
    ret = started == px_g.nloops ? 0 : 1;
    if (ret)
        atomic_store(&px_g.stopping, true);
    while (!atomic_load(&px_g.stopping)) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP)
            (void) reload();
        else
            atomic_store(&px_g.stopping, true);
    }
    px_global_kick();
    for (unsigned i = 0; i < started; i++)
        pthread_join(px_g.loops[i]->thread, NULL);
    px_feed_stop();
out:
    for (unsigned i = 0; px_g.loops && i < px_g.nloops; i++)
        px_loop_free(px_g.loops[i]);
    free(px_g.loops);
    px_table_unref(px_g.table);
    px_feed_free_spaces(px_g.feed, px_g.nfeed);
    px_auth_done();
    px_config_done(&px_g.cfg);
    return ret;
}
