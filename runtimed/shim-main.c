/* spaceport-shim: owns one running Space's sandbox (see shim.h for the state directory
 * it keeps).  Started by runtimed, detaches into its own session, and lives exactly as
 * long as the sandbox. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "sandbox/net.h"
#include "sandbox/sandbox.h"
#include "shim-spec.h"
#include "shim.h"
#include "util.h"
#include "version.h"
#include "banned.h"

#define MAX_CLIENTS 16
#define LINE_MAX_BYTES 8192

struct client {
    int fd;
    bool watch;
    char buf[256];
    size_t len;
};

struct shim {
    const char *dir;
    struct rt_shim_spec spec;
    struct sbx *box;
    struct sbx_net_conf net_conf;
    struct sbx_net_link link;
    bool has_link;
    int log_fd;
    uint64_t log_size;
    int out_fd; /* the sandbox's stdout and stderr */
    int listen_fd;
    int sig_fd;
    struct client clients[MAX_CLIENTS];
    char line[LINE_MAX_BYTES];
    size_t line_len;
    bool frozen;
    uint64_t kill_at_ns; /* SIGKILL deadline after a stop, 0: none */
    char started_at[40];
    char ended_at[40];
    struct sbx_exit exit;
    bool exited;
};

static void iso_now(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;

    (void) gettimeofday(&tv, NULL);
    (void) gmtime_r(&tv.tv_sec, &tm);
    (void) snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    (long) (tv.tv_usec / 1000));
}

static const char *reason_name(enum sbx_exit_reason r)
{
    switch (r) {
    case SBX_EXIT_EXITED:
        return "exited";
    case SBX_EXIT_SIGNALED:
        return "signaled";
    case SBX_EXIT_OOM:
        return "oom";
    default:
        return "killed";
    }
}

static json_t *status_json(const struct shim *s)
{
    char upstream[64] = "";
    json_t *o;

    if (s->has_link && s->spec.port)
        (void) snprintf(upstream, sizeof(upstream), "%s:%u", s->link.space_ip, s->spec.port);
    o = json_pack("{s:s, s:I, s:I, s:s, s:s, s:b}", "state", s->exited ? "exited" : "running",
                  "pid", (json_int_t) (s->box ? sbx_pid(s->box) : 0), "shimPid",
                  (json_int_t) getpid(), "upstream", upstream, "startedAt", s->started_at, "frozen",
                  s->frozen);
    if (o && s->exited) {
        (void) json_object_set_new(o, "endedAt", json_string(s->ended_at));
        (void) json_object_set_new(o, "exit",
                                   json_pack("{s:s, s:i, s:i}", "reason",
                                             reason_name(s->exit.reason), "code", s->exit.code,
                                             "signal", s->exit.signal));
    }
    return o;
}

/* status.json is replaced, never rewritten in place: a reader sees one whole version. */
static void write_status(const struct shim *s)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    json_t *o = status_json(s);

    if (!o)
        return;
    (void) snprintf(tmp, sizeof(tmp), "%s/status.json.tmp", s->dir);
    (void) snprintf(path, sizeof(path), "%s/status.json", s->dir);
    if (json_dump_file(o, tmp, JSON_COMPACT) == 0)
        (void) rename(tmp, path);
    json_decref(o);
}

/* --- the run log -------------------------------------------------------------------------- */

static void open_log(struct shim *s)
{
    char path[PATH_MAX];
    struct stat st;

    (void) snprintf(path, sizeof(path), "%s/run.log", s->dir);
    s->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
    s->log_size = (s->log_fd >= 0 && fstat(s->log_fd, &st) == 0) ? (uint64_t) st.st_size : 0;
}

static void log_line(struct shim *s, const char *line)
{
    char ts[40];
    json_t *o;
    char *text;

    if (s->log_fd < 0)
        return;
    if (s->log_size > RT_SHIM_LOG_MAX) {
        char path[PATH_MAX], old[PATH_MAX + 8];
        (void) snprintf(path, sizeof(path), "%s/run.log", s->dir);
        (void) snprintf(old, sizeof(old), "%s.1", path);
        (void) rename(path, old);
        s->log_fd = rt_close(s->log_fd);
        open_log(s);
        if (s->log_fd < 0)
            return;
    }
    iso_now(ts, sizeof(ts));
    /* Apps print anything: invalid UTF-8 must not lose the line. */
    o = json_pack("{s:s, s:s%}", "timestamp", ts, "data", line, strlen(line));
    if (!o)
        o = json_pack("{s:s, s:s}", "timestamp", ts, "data", "[unprintable line]");
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text) {
        size_t n = strlen(text);
        text[n] = '\n';
        (void) rt_write_all(s->log_fd, text, n + 1);
        s->log_size += n + 1;
    }
    free(text);
    json_decref(o);
}

static void on_output(struct shim *s, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n' || s->line_len + 1 >= sizeof(s->line)) {
            s->line[s->line_len] = '\0';
            log_line(s, s->line);
            s->line_len = 0;
            if (c == '\n')
                continue;
        }
        s->line[s->line_len++] = c;
    }
}

static void drain_output(struct shim *s)
{
    char buf[16384];
    ssize_t n;

    while (s->out_fd >= 0 && (n = read(s->out_fd, buf, sizeof(buf))) > 0)
        on_output(s, buf, (size_t) n);
    if (s->line_len) {
        s->line[s->line_len] = '\0';
        log_line(s, s->line);
        s->line_len = 0;
    }
}

/* --- the control socket ------------------------------------------------------------------- */

static int open_socket(struct shim *s, struct rt_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if ((size_t) snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/shim.sock", s->dir) >=
        sizeof(sa.sun_path))
        return rt_err_set(err, ENAMETOOLONG, "socket path under '%s'", s->dir);
    (void) unlink(sa.sun_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return rt_err_set(err, errno, "create the control socket");
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || chmod(sa.sun_path, 0600) < 0 ||
        listen(fd, 8) < 0) {
        int e = errno;
        (void) rt_close(fd);
        return rt_err_set(err, e, "listen on '%s'", sa.sun_path);
    }
    s->listen_fd = fd;
    return 0;
}

static void reply(struct client *c, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

    if (text) {
        size_t n = strlen(text);
        text[n] = '\n';
        /* A client that does not read its answers loses them, not the shim. */
        (void) !send(c->fd, text, n + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    free(text);
    json_decref(o);
}

static void reply_error(struct client *c, const char *msg)
{
    reply(c, json_pack("{s:s}", "error", msg));
}

static void handle_command(struct shim *s, struct client *c, const char *cmd)
{
    struct rt_err err = { 0 };

    if (strcmp(cmd, "status") == 0) {
        reply(c, status_json(s));
    } else if (strncmp(cmd, "stop", 4) == 0 && (cmd[4] == '\0' || cmd[4] == ' ')) {
        uint64_t grace = 10;
        if (cmd[4] == ' ' && rt_parse_u64(cmd + 5, &grace) < 0) {
            reply_error(c, "usage: stop [SECONDS]");
            return;
        }
        if (!s->exited) {
            if (s->frozen) /* a frozen app cannot act on SIGTERM */
                (void) sbx_cgroup_freeze(sbx_cgroup(s->box), false, &err);
            s->frozen = false;
            (void) sbx_kill(s->box, grace ? SIGTERM : SIGKILL, &err);
            s->kill_at_ns = rt_now_ns() + grace * 1000000000ULL;
        }
        reply(c, status_json(s));
    } else if (strcmp(cmd, "freeze") == 0 || strcmp(cmd, "thaw") == 0) {
        bool freeze = cmd[0] == 'f';
        struct sbx_cgroup *cg = s->box ? sbx_cgroup(s->box) : NULL;
        if (!cg || s->exited) {
            reply_error(c, "the sandbox is not running");
            return;
        }
        if (sbx_cgroup_freeze(cg, freeze, &err) < 0) {
            char msg[RT_ERR_MSG_MAX + 64];
            reply_error(c, rt_err_str(&err, msg, sizeof(msg)));
            return;
        }
        s->frozen = freeze;
        write_status(s);
        reply(c, status_json(s));
    } else if (strcmp(cmd, "allow-gpus") == 0) {
        /* ZeroGPU on cgroup v2 (spec gpusDeferred): runtimed moved the app into a child
         * group that denies the pool; the sandbox's own program may now allow it for the
         * workers' groups.  libsandbox refuses while a process is left in the group. */
        if (!s->box || s->exited) {
            reply_error(c, "the sandbox is not running");
            return;
        }
        if (sbx_allow_deferred_gpus(s->box, &err) < 0) {
            char msg[RT_ERR_MSG_MAX + 64];
            reply_error(c, rt_err_str(&err, msg, sizeof(msg)));
            return;
        }
        reply(c, status_json(s));
    } else if (strcmp(cmd, "watch") == 0) {
        c->watch = true;
        reply(c, status_json(s));
    } else {
        reply_error(c, "unknown command (status, stop [SECONDS], freeze, thaw, allow-gpus, watch)");
    }
}

static void on_client(struct shim *s, struct client *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
    char *nl;

    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        c->fd = rt_close(c->fd);
        return;
    }
    c->len += (size_t) n;
    c->buf[c->len] = '\0';
    while ((nl = strchr(c->buf, '\n'))) {
        *nl = '\0';
        handle_command(s, c, c->buf);
        c->len -= (size_t) (nl + 1 - c->buf);
        memmove(c->buf, nl + 1, c->len + 1);
    }
    if (c->len >= sizeof(c->buf) - 1) {
        reply_error(c, "command too long");
        c->fd = rt_close(c->fd);
    }
}

static void on_accept(struct shim *s)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (s->clients[i].fd < 0) {
            s->clients[i] = (struct client){ .fd = fd };
            return;
        }
    (void) rt_close(fd); /* full: the caller retries */
}

/* --- start and run -------------------------------------------------------------------------- */

static int on_netns(pid_t pid, void *data, struct rt_err *err)
{
    struct shim *s = data;
    int r = sbx_net_attach(&s->net_conf, pid, s->spec.egress, &s->link, err);

    if (r == 0)
        s->has_link = true;
    return r;
}

static int start(struct shim *s, struct rt_err *err)
{
    char path[PATH_MAX];
    int p[2], r;

    (void) snprintf(path, sizeof(path), "%s/spec.json", s->dir);
    if ((r = rt_shim_spec_load(path, &s->spec, err)) < 0)
        return r;
    open_log(s);
    if ((r = open_socket(s, err)) < 0)
        return r;
    if (pipe2(p, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "create the output pipe");
    s->out_fd = p[0];
    sbx_net_conf_init(&s->net_conf);
    if (s->spec.sbx.net == SBX_NET_VETH) {
        s->spec.sbx.on_netns = on_netns;
        s->spec.sbx.netns_data = s;
    }
    if ((r = sbx_spec_validate(&s->spec.sbx, err)) < 0)
        return r;
    s->spec.sbx.stdio[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s->spec.sbx.stdio[1] = p[1];
    s->spec.sbx.stdio[2] = p[1];
    r = sbx_spawn(&s->spec.sbx, &s->box, err);
    (void) rt_close(p[1]);
    (void) rt_close(s->spec.sbx.stdio[0]);
    if (r < 0)
        return r;
    iso_now(s->started_at, sizeof(s->started_at));
    write_status(s);
    return 0;
}

static void finish(struct shim *s)
{
    struct rt_err err = { 0 };

    drain_output(s);
    s->exited = true;
    iso_now(s->ended_at, sizeof(s->ended_at));
    write_status(s);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (s->clients[i].fd >= 0 && s->clients[i].watch) {
            json_t *o = status_json(s);
            (void) json_object_set_new(o, "event", json_string("exit"));
            reply(&s->clients[i], o);
        }
    if (s->has_link)
        (void) sbx_net_detach(&s->net_conf, &s->link, &err);
    {
        char sock[PATH_MAX];
        /* No socket means no shim: runtimed's discovery after a restart relies on it. */
        (void) snprintf(sock, sizeof(sock), "%s/shim.sock", s->dir);
        (void) unlink(sock);
    }
    sbx_destroy(s->box);
    s->box = NULL;
}

static int run(struct shim *s)
{
    struct pollfd pfd[4 + MAX_CLIENTS];
    struct rt_err err = { 0 };

    for (;;) {
        int n = 0, timeout = -1;

        pfd[n++] = (struct pollfd){ .fd = sbx_pidfd(s->box), .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = s->out_fd, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
        for (int i = 0; i < MAX_CLIENTS; i++)
            pfd[n++] = (struct pollfd){ .fd = s->clients[i].fd, .events = POLLIN };
        if (s->kill_at_ns) {
            uint64_t now = rt_now_ns();
            timeout = now >= s->kill_at_ns ? 0 : (int) ((s->kill_at_ns - now) / 1000000ULL) + 1;
        }
        if (poll(pfd, (nfds_t) n, timeout) < 0 && errno != EINTR)
            return 1;
        if (s->kill_at_ns && rt_now_ns() >= s->kill_at_ns) {
            (void) sbx_kill(s->box, SIGKILL, &err);
            s->kill_at_ns = 0;
        }
        if (pfd[1].revents) {
            char buf[16384];
            ssize_t r = read(s->out_fd, buf, sizeof(buf));
            if (r > 0)
                on_output(s, buf, (size_t) r);
            else if (r == 0)
                s->out_fd = rt_close(s->out_fd);
        }
        if (pfd[2].revents)
            on_accept(s);
        if (pfd[3].revents) {
            struct signalfd_siginfo si;
            if (read(s->sig_fd, &si, sizeof(si)) == (ssize_t) sizeof(si) && !s->kill_at_ns) {
                /* Told to stop: the app gets SIGTERM and 10 s, like a stop command. */
                (void) sbx_kill(s->box, SIGTERM, &err);
                s->kill_at_ns = rt_now_ns() + 10ULL * 1000000000ULL;
            }
        }
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (pfd[4 + i].revents && s->clients[i].fd >= 0)
                on_client(s, &s->clients[i]);
        if (pfd[0].revents && sbx_wait(s->box, 0, &s->exit, &err) == 0) {
            finish(s);
            return 0;
        }
    }
}

static void usage(FILE *out)
{
    fprintf(out, "usage: spaceport-shim [--foreground] STATE_DIR\n\n"
                 "Runs the Space described by STATE_DIR/spec.json in a sandbox and keeps its\n"
                 "logs and exit status in STATE_DIR. Started by runtimed; prints 'ok PID' or\n"
                 "'error: MESSAGE' on stdout once the sandbox runs or failed, then detaches.\n");
}

int main(int argc, char **argv)
{
    static struct shim s;
    struct rt_err err = { 0 };
    bool foreground = false;
    const char *dir = NULL;
    sigset_t mask;
    char msg[RT_ERR_MSG_MAX + 64];
    int devnull;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("spaceport-shim %s\n", SPACEPORT_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--foreground") == 0) {
            foreground = true;
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "spaceport-shim: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir || dir[0] != '/') {
        fprintf(stderr, "spaceport-shim: STATE_DIR must be an absolute path (see --help)\n");
        return 2;
    }
    if (!foreground) {
        /* Detach: a session of our own, and a parent (runtimed) that can die freely. */
        pid_t pid = fork();
        if (pid < 0) {
            printf("error: fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid > 0)
            return 0;
        (void) setsid();
    }
    s.dir = dir;
    s.log_fd = s.out_fd = s.listen_fd = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        s.clients[i].fd = -1;
    (void) signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    (void) sigprocmask(SIG_BLOCK, &mask, NULL);
    s.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    if (start(&s, &err) < 0) {
        printf("error: %s\n", rt_err_str(&err, msg, sizeof(msg)));
        fflush(stdout);
        return 1;
    }
    {
        char path[PATH_MAX], pid[32];
        int fd;
        (void) snprintf(path, sizeof(path), "%s/shim.pid", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0) {
            (void) snprintf(pid, sizeof(pid), "%d\n", (int) getpid());
            (void) rt_write_all(fd, pid, strlen(pid));
            (void) rt_close(fd);
        }
    }
    printf("ok %d\n", (int) sbx_pid(s.box));
    fflush(stdout);
    /* The starter's pipe closes now: it returns once it read the line above. */
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0 && !foreground) {
        (void) dup2(devnull, STDIN_FILENO);
        (void) dup2(devnull, STDOUT_FILENO);
    }
    if (devnull >= 0)
        (void) rt_close(devnull);
    return run(&s);
}
