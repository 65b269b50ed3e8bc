/* runtimed's side of the shim: start one, talk to it, read what it left behind. */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define START_TIMEOUT_MS 30000
#define COMMAND_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 2000

/* Reads one line from @fd within @timeout_ms.  Returns its length or -errno. */
static ssize_t read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
    uint64_t deadline = rt_now_ns() + (uint64_t) timeout_ms * 1000000ULL;
    size_t len = 0;

    while (len + 1 < cap) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        uint64_t now = rt_now_ns();
        ssize_t n;

        if (now >= deadline)
            return -ETIMEDOUT;
        if (poll(&pfd, 1, (int) ((deadline - now) / 1000000ULL) + 1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        n = read(fd, buf + len, 1);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (n == 0 || buf[len] == '\n')
            break;
        len++;
    }
    buf[len] = '\0';
    return (ssize_t) len;
}

/* The last line the shim wrote to @log_fd (its stderr): why it could not start. */
static void last_log_line(int log_fd, char *buf, size_t cap)
{
    char tail[512];
    off_t end = lseek(log_fd, 0, SEEK_END);
    off_t from = end > (off_t) sizeof(tail) - 1 ? end - (off_t) sizeof(tail) + 1 : 0;
    ssize_t n = end > 0 ? pread(log_fd, tail, (size_t) (end - from), from) : 0;
    char *line;

    buf[0] = '\0';
    if (n <= 0)
        return;
    tail[n] = '\0';
    while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
        tail[--n] = '\0';
    line = strrchr(tail, '\n');
    (void) snprintf(buf, cap, "%s", line ? line + 1 : tail);
}

int rt_shim_start(const char *shim_path, const char *state_dir, struct rt_err *err)
{
    _cleanup_close_ int rd = -1, wr = -1, log_fd = -1;
    char log_path[PATH_MAX], line[1024];
    struct rt_spawn_opts o = { .argv = (const char *const[]){ shim_path, state_dir, NULL } };
    pid_t pid;
    ssize_t n;
    int p[2], r;

    (void) snprintf(log_path, sizeof(log_path), "%s/shim.log", state_dir);
    log_fd = open(log_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (log_fd < 0)
        return rt_err_set(err, errno, "open '%s'", log_path);
    if (pipe2(p, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "create the shim's report pipe");
    rd = p[0];
    wr = p[1];
    o.stdin_fd = -1;
    o.stdout_fd = wr;
    o.stderr_fd = log_fd;
    r = rt_spawn(&o, &pid, err);
    wr = rt_close(wr);
    if (r < 0)
        return r;
    /* The first process only forks the detached shim and exits. */
    r = rt_spawn_wait(pid);
    if (r != 0) {
        last_log_line(log_fd, line, sizeof(line));
        return rt_err_set(err, EIO, "the shim exited with status %d before detaching%s%s", r,
                          line[0] ? ": " : "", line);
    }
    n = read_line(rd, line, sizeof(line), START_TIMEOUT_MS);
    if (n < 0)
        return rt_err_set(err, (int) -n, "wait for the shim to start the sandbox");
    if (strncmp(line, "ok ", 3) == 0)
        return 0;
    if (strncmp(line, "error: ", 7) == 0)
        return rt_err_set(err, EIO, "%s", line + 7);
    return rt_err_set(err, EIO, "the shim said '%s'", n ? line : "nothing");
}

static int parse_status(json_t *o, struct rt_shim_status *ret, struct rt_err *err)
{
    json_t *ex;
    const char *s;

    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(o))
        return rt_err_set(err, EPROTO, "the shim's status is not an object");
    if ((s = json_string_value(json_object_get(o, "error"))))
        return rt_err_set(err, EINVAL, "shim: %s", s);
    (void) snprintf(ret->state, sizeof(ret->state), "%s",
                    (s = json_string_value(json_object_get(o, "state"))) ? s : "");
    (void) snprintf(ret->upstream, sizeof(ret->upstream), "%s",
                    (s = json_string_value(json_object_get(o, "upstream"))) ? s : "");
    ret->pid = (pid_t) json_integer_value(json_object_get(o, "pid"));
    ret->shim_pid = (pid_t) json_integer_value(json_object_get(o, "shimPid"));
    ret->frozen = json_is_true(json_object_get(o, "frozen"));
    if ((ex = json_object_get(o, "exit"))) {
        (void) snprintf(ret->reason, sizeof(ret->reason), "%s",
                        (s = json_string_value(json_object_get(ex, "reason"))) ? s : "");
        ret->code = (int) json_integer_value(json_object_get(ex, "code"));
        ret->signal = (int) json_integer_value(json_object_get(ex, "signal"));
    }
    return 0;
}

int rt_shim_command(const char *state_dir, const char *cmd, struct rt_shim_status *ret,
                    struct rt_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    _cleanup_close_ int fd = -1;
    char line[4096], req[256];
    json_error_t jerr;
    json_t *o;
    ssize_t n;
    int r;

    if ((size_t) snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/shim.sock", state_dir) >=
        sizeof(sa.sun_path))
        return rt_err_set(err, ENAMETOOLONG, "socket path under '%s'", state_dir);
    /* Non-blocking: a stopped or stuck shim whose listen queue is full would otherwise
     * hold the supervisor in connect() for good (AF_UNIX answers EAGAIN instead). */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return rt_err_set(err, errno, "create a socket");
    for (uint64_t deadline = rt_now_ns() + CONNECT_TIMEOUT_MS * 1000000ULL;;) {
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
            break;
        if (errno != EAGAIN)
            return rt_err_set(err, errno, "connect to the shim at '%s'", sa.sun_path);
        if (rt_now_ns() >= deadline)
            return rt_err_set(err, EAGAIN,
                              "the shim at '%s' takes no connections (stopped or stuck?)",
                              sa.sun_path);
        (void) nanosleep(&(struct timespec){ .tv_nsec = 10000000L }, NULL);
    }
    n = snprintf(req, sizeof(req), "%s\n", cmd);
    if (send(fd, req, (size_t) n, MSG_NOSIGNAL) != n)
        return rt_err_set(err, errno ? errno : EIO, "send '%s' to the shim", cmd);
    n = read_line(fd, line, sizeof(line), COMMAND_TIMEOUT_MS);
    if (n <= 0)
        return rt_err_set(err, n < 0 ? (int) -n : ECONNRESET, "read the shim's answer");
    o = json_loads(line, 0, &jerr);
    if (!o)
        return rt_err_set(err, EPROTO, "the shim answered '%s'", line);
    r = parse_status(o, ret, err);
    json_decref(o);
    return r;
}

int rt_shim_read_status(const char *state_dir, struct rt_shim_status *ret, struct rt_err *err)
{
    char path[PATH_MAX];
    json_error_t jerr;
    json_t *o;
    int r;

    (void) snprintf(path, sizeof(path), "%s/status.json", state_dir);
    o = json_load_file(path, 0, &jerr);
    if (!o)
        return rt_err_set(err, access(path, F_OK) == 0 ? EPROTO : ENOENT, "read '%s': %s", path,
                          jerr.text);
    r = parse_status(o, ret, err);
    json_decref(o);
    return r;
}
