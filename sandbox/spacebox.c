/* spacebox: run a command in a Spaceport sandbox (the CLI over libsandbox). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "sandbox.h"
#include "util.h"
#include "version.h"
#include "banned.h"

#define EXIT_SETUP 125
#define EXIT_NOEXEC 126
#define EXIT_NOTFOUND 127

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: spacebox run [OPTIONS] -- CMD [ARG...]\n"
        "       spacebox --help | --version\n"
        "\n"
        "Run CMD in a Spaceport sandbox: fresh user (uid 1000 inside), pid, mount, uts,\n"
        "ipc, cgroup and network namespaces, no capabilities, no_new_privs, seccomp.\n"
        "\n"
        "options:\n"
        "  --rootfs DIR        root (read-only lower of an overlay with a bounded writable\n"
        "                      upper); default: the host's /usr, /bin, /lib*, /sbin and a\n"
        "                      minimal /etc, read-only, with a writable /tmp\n"
        "  --layer DIR         an extra read-only layer above --rootfs (repeatable, top first)\n"
        "  --bind SRC:DST      bind host SRC read-write at DST\n"
        "  --ro-bind SRC:DST   bind host SRC read-only at DST\n"
        "  --tmpfs DST         a fresh tmpfs at DST\n"
        "  --chdir DIR         working directory inside (default /)\n"
        "  --env K=V           set an environment variable (the environment starts empty)\n"
        "  --uid N             uid inside (default 1000); --gid N likewise\n"
        "  --hostname NAME     hostname inside (default sandbox)\n"
        "  --memory SIZE       memory limit (e.g. 512M); --swap SIZE swap on top (default 0)\n"
        "  --pids N            process limit\n"
        "  --cpus X            CPU limit (e.g. 0.5)\n"
        "  --net MODE          none (loopback only, default), host, veth (a private\n"
        "                      link reachable from the host only, through bin/spacenet),\n"
        "                      or veth-egress (that link plus filtered egress)\n"
        "  --gpu DEV           bind device node DEV and allow it (repeatable)\n"
        "  --timeout SECONDS   kill the sandbox after SECONDS\n"
        "  --upper-size SIZE   bound on the writable layer (default 512M)\n"
        "  --nofile N          open file limit (default 4096)\n"
        "  --name NAME         cgroup name (default sbx-PID-N)\n"
        "  --sys               a read-only /sys (implied by --gpu; not with --net host)\n"
        "\n"
        "exit status: the command's; 128+N when killed by signal N; 125 when the sandbox\n"
        "could not be set up; 126 when CMD is not executable; 127 when it is not found.\n");
}

enum {
    OPT_ROOTFS = 256,
    OPT_LAYER,
    OPT_BIND,
    OPT_RO_BIND,
    OPT_TMPFS,
    OPT_CHDIR,
    OPT_ENV,
    OPT_UID,
    OPT_GID,
    OPT_HOSTNAME,
    OPT_MEMORY,
    OPT_SWAP,
    OPT_PIDS,
    OPT_CPUS,
    OPT_NET,
    OPT_GPU,
    OPT_TIMEOUT,
    OPT_UPPER_SIZE,
    OPT_NOFILE,
    OPT_NAME,
    OPT_SYS,
    OPT_HELP,
};

static const struct option run_options[] = {
    { "rootfs", required_argument, NULL, OPT_ROOTFS },
    { "layer", required_argument, NULL, OPT_LAYER },
    { "bind", required_argument, NULL, OPT_BIND },
    { "ro-bind", required_argument, NULL, OPT_RO_BIND },
    { "tmpfs", required_argument, NULL, OPT_TMPFS },
    { "chdir", required_argument, NULL, OPT_CHDIR },
    { "env", required_argument, NULL, OPT_ENV },
    { "uid", required_argument, NULL, OPT_UID },
    { "gid", required_argument, NULL, OPT_GID },
    { "hostname", required_argument, NULL, OPT_HOSTNAME },
    { "memory", required_argument, NULL, OPT_MEMORY },
    { "swap", required_argument, NULL, OPT_SWAP },
    { "pids", required_argument, NULL, OPT_PIDS },
    { "cpus", required_argument, NULL, OPT_CPUS },
    { "net", required_argument, NULL, OPT_NET },
    { "gpu", required_argument, NULL, OPT_GPU },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "upper-size", required_argument, NULL, OPT_UPPER_SIZE },
    { "nofile", required_argument, NULL, OPT_NOFILE },
    { "name", required_argument, NULL, OPT_NAME },
    { "sys", no_argument, NULL, OPT_SYS },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static int bad_value(const char *opt, const char *val, const char *what)
{
    fprintf(stderr, "spacebox: %s '%s': %s\n", opt, val, what);
    return 2;
}

extern char **environ;

/* --net veth: sbxnet (sandbox/net.h) gives the init's fresh netns its Space link before the
 * init runs anything.  spacebox runs it as the sibling tool "spacenet attach PID" rather
 * than linking it, so that the common loopback-only start does not load libnl and
 * libnftables (loading them costs more than the whole sandbox setup).  The veth pair dies
 * with the sandbox's network namespace. */
static int attach_veth(pid_t pid, void *data, struct rt_err *err)
{
    char self[4096], tool[4200], pidbuf[16];
    _cleanup_close_ int errp_r = -1, errp_w = -1;
    int pipes[2], status, child_errno = 0;
    sigset_t none;
    ssize_t n;
    pid_t child;

    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        return rt_err_set(err, errno, "find spacebox's own path");
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    (void) snprintf(tool, sizeof(tool), "%s/spacenet", self);
    (void) snprintf(pidbuf, sizeof(pidbuf), "%d", (int) pid);
    char *argv[] = { tool, (char *) "attach", pidbuf, (char *) data, NULL };

    if (pipe2(pipes, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "pipe2");
    errp_r = pipes[0];
    errp_w = pipes[1];
    (void) sigemptyset(&none);
    child = fork();
    if (child < 0)
        return rt_err_set(err, errno, "fork");
    if (child == 0) {
        /* its report goes to stderr: the command's stdout stays the command's */
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(2, 1) >= 0)
            (void) execve(tool, argv, environ);
        child_errno = errno;
        (void) !write(errp_w, &child_errno, sizeof(child_errno));
        _exit(127);
    }
    errp_w = rt_close(errp_w);
    n = rt_read_all(errp_r, &child_errno, sizeof(child_errno));
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return rt_err_set(err, errno, "wait for '%s'", tool);
    if (n == (ssize_t) sizeof(child_errno))
        return rt_err_set(err, child_errno, "veth networking needs '%s'", tool);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return rt_err_set(err, EIO, "'%s attach %d' failed (status %d)", tool, (int) pid,
                          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}

/* Parses the options of "run" into @spec; returns 0, or the exit status to use. */
static int parse_run(int argc, char **argv, struct sbx_spec *spec, double *timeout)
{
    struct rt_err err = { 0 };
    uint64_t v;
    gid_t gid = (gid_t) -1;
    int opt;

    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+h", run_options, NULL)) != -1) {
        const char *name = argv[optind - 1];

        switch (opt) {
        case OPT_ROOTFS:
            spec->rootfs = optarg;
            break;
        case OPT_LAYER:
            if (spec->n_layers >= SBX_MAX_LAYERS)
                return bad_value("--layer", optarg, "too many layers");
            spec->layers[spec->n_layers++] = optarg;
            break;
        case OPT_BIND:
        case OPT_RO_BIND:
        case OPT_TMPFS:
            if (sbx_spec_add_mount(spec,
                                   opt == OPT_BIND      ? SBX_MOUNT_BIND
                                   : opt == OPT_RO_BIND ? SBX_MOUNT_RO_BIND
                                                        : SBX_MOUNT_TMPFS,
                                   optarg, &err) < 0)
                return bad_value(name, optarg, err.msg);
            break;
        case OPT_CHDIR:
            spec->chdir = optarg;
            break;
        case OPT_ENV:
            if (sbx_spec_add_env(spec, optarg, &err) < 0)
                return bad_value("--env", optarg, err.msg);
            break;
        case OPT_UID:
        case OPT_GID:
            if (rt_parse_u64(optarg, &v) < 0 || v > 65535)
                return bad_value(opt == OPT_UID ? "--uid" : "--gid", optarg,
                                 "expected a number in 0..65535");
            if (opt == OPT_UID)
                spec->uid = (uid_t) v;
            else
                gid = (gid_t) v;
            break;
        case OPT_HOSTNAME:
            spec->hostname = optarg;
            break;
        case OPT_MEMORY:
        case OPT_SWAP:
        case OPT_UPPER_SIZE:
            if (rt_parse_size(optarg, &v) < 0)
                return bad_value(opt == OPT_MEMORY ? "--memory"
                                 : opt == OPT_SWAP ? "--swap"
                                                   : "--upper-size",
                                 optarg, "expected a size such as 512M or 2G");
            if (opt == OPT_MEMORY)
                spec->memory_max = v;
            else if (opt == OPT_SWAP)
                spec->swap_max = v;
            else
                spec->upper_size = v;
            break;
        case OPT_PIDS:
        case OPT_NOFILE:
            if (rt_parse_u64(optarg, &v) < 0 || v == 0)
                return bad_value(opt == OPT_PIDS ? "--pids" : "--nofile", optarg,
                                 "expected a positive number");
            if (opt == OPT_PIDS)
                spec->pids_max = v;
            else
                spec->nofile = v;
            break;
        case OPT_CPUS: {
            char *end;
            double x = strtod(optarg, &end);
            if (*end || !(x > 0) || x > 4096)
                return bad_value("--cpus", optarg, "expected a number of CPUs such as 0.5");
            spec->cpu_milli = (uint32_t) (x * 1000 + 0.5);
            if (!spec->cpu_milli)
                spec->cpu_milli = 1;
            break;
        }
        case OPT_NET:
            if (strcmp(optarg, "none") == 0)
                spec->net = SBX_NET_NONE;
            else if (strcmp(optarg, "host") == 0)
                spec->net = SBX_NET_HOST;
            else if (strcmp(optarg, "veth") == 0 || strcmp(optarg, "veth-egress") == 0) {
                spec->net = SBX_NET_VETH;
                spec->on_netns = attach_veth;
                spec->netns_data = strcmp(optarg, "veth") == 0 ? NULL : (char *) "--egress";
            } else
                return bad_value("--net", optarg, "expected none, host, veth or veth-egress");
            break;
        case OPT_GPU:
            if (spec->n_gpus >= SBX_MAX_GPUS)
                return bad_value("--gpu", optarg, "too many devices");
            spec->gpus[spec->n_gpus++] = optarg;
            break;
        case OPT_TIMEOUT: {
            char *end;
            double x = strtod(optarg, &end);
            if (*end || !(x > 0) || x > 1e7)
                return bad_value("--timeout", optarg, "expected a positive number of seconds");
            *timeout = x;
            break;
        }
        case OPT_NAME:
            spec->name = optarg;
            break;
        case OPT_SYS:
            spec->sysfs = true;
            break;
        case OPT_HELP:
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            fprintf(stderr, "spacebox: option '%s' needs a value\n", name);
            return 2;
        default:
            fprintf(stderr, "spacebox: unknown option '%s' (see --help)\n", name);
            return 2;
        }
    }
    spec->gid = gid == (gid_t) -1 ? spec->uid : gid;
    if (optind >= argc) {
        fprintf(stderr, "spacebox: no command given (spacebox run [OPTIONS] -- CMD [ARG...])\n");
        return 2;
    }
    spec->argv = (const char *const *) argv + optind;
    return 0;
}

static int setup_failed(struct rt_err *err)
{
    enum sbx_step step = sbx_last_step();
    char buf[700];

    fprintf(stderr, "spacebox: %s\n", rt_err_str(err, buf, sizeof(buf)));
    if (step == SBX_STEP_EXEC)
        return err->code == ENOENT || err->code == ENOTDIR ? EXIT_NOTFOUND : EXIT_NOEXEC;
    return EXIT_SETUP;
}

static int run(int argc, char **argv)
{
    struct sbx_spec spec;
    struct rt_err err = { 0 };
    struct sbx *box = NULL;
    struct sbx_exit ex;
    double timeout = 0;
    uint64_t deadline = 0;
    bool timed_out = false;
    _cleanup_close_ int sfd = -1;
    sigset_t set;
    int r;

    sbx_spec_init(&spec);
    if ((r = parse_run(argc, argv, &spec, &timeout)) != 0)
        return r;
    /* signals for the command arrive through a signalfd and are forwarded to its init */
    (void) sigemptyset(&set);
    for (int s = 1; s < 32; s++)
        if (s == SIGTERM || s == SIGINT || s == SIGHUP || s == SIGQUIT || s == SIGUSR1 ||
            s == SIGUSR2 || s == SIGWINCH)
            (void) sigaddset(&set, s);
    (void) sigprocmask(SIG_BLOCK, &set, NULL);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        fprintf(stderr, "spacebox: signalfd: %s\n", strerror(errno));
        return EXIT_SETUP;
    }
    if (sbx_spawn(&spec, &box, &err) < 0)
        return setup_failed(&err);
    if (timeout > 0)
        deadline = rt_now_ns() + (uint64_t) (timeout * 1e9);
    for (;;) {
        struct pollfd pfd[2] = { { .fd = sbx_exit_fd(box), .events = POLLIN },
                                 { .fd = sfd, .events = POLLIN } };
        int wait_ms = -1;

        if (deadline && !timed_out) {
            uint64_t now = rt_now_ns();
            wait_ms = now >= deadline ? 0 : (int) ((deadline - now + 999999) / 1000000);
        }
        r = poll(pfd, 2, wait_ms);
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "spacebox: poll: %s\n", strerror(errno));
            break;
        }
        if (r == 0 && deadline && !timed_out) {
            timed_out = true;
            (void) sbx_kill(box, SIGKILL, NULL);
            continue;
        }
        if (r > 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
                (void) sbx_kill(box, (int) si.ssi_signo, NULL);
        }
        if (r > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
            break;
    }
    if (sbx_wait(box, -1, &ex, &err) < 0) {
        char buf[700];
        fprintf(stderr, "spacebox: %s\n", rt_err_str(&err, buf, sizeof(buf)));
        sbx_destroy(box);
        return EXIT_SETUP;
    }
    if (timed_out)
        fprintf(stderr, "spacebox: timed out after %g seconds; the sandbox was killed\n", timeout);
    else if (ex.reason == SBX_EXIT_OOM)
        fprintf(stderr, "spacebox: out of memory: the command was killed by the OOM killer "
                        "(memory limit reached)\n");
    /* without a cgroup to remove there is nothing to wait for: the kernel finishes tearing
     * the namespaces down after we leave (bwrap leaves the same way) */
    if (sbx_cgroup(box))
        sbx_destroy(box);
    return ex.code;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return run(argc - 1, argv + 1);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("spacebox %s\n", SPACEPORT_VERSION);
            return 0;
        }
        fprintf(stderr, "spacebox: unknown option or command '%s' (see --help)\n", argv[i]);
        return 2;
    }
    usage(stderr);
    return 2;
}
