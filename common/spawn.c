#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"
#include "banned.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum spawn_step { STEP_DEVNULL = 1, STEP_DUP, STEP_CHDIR, STEP_EXEC };

struct child_failure {
    int step;
    int errnum;
};

static const char *step_name(int step)
{
    switch (step) {
    case STEP_DEVNULL:
        return "open /dev/null";
    case STEP_DUP:
        return "set up stdio";
    case STEP_CHDIR:
        return "chdir";
    default:
        return "exec";
    }
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void __attribute__((noreturn)) child(const struct rt_spawn_opts *o, int report_fd)
{
    struct child_failure f = { 0, 0 };
    int fds[3] = { o->stdin_fd, o->stdout_fd, o->stderr_fd };
    int lifted[3];
    sigset_t none;

    /* Undo what the parent's signal handling may have set up. */
    sigemptyset(&none);
    (void) sigprocmask(SIG_SETMASK, &none, NULL);

    /* Lift the wanted fds above 2 first so that dup2 onto 0-2 cannot clobber one another. */
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0) {
            fds[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
            if (fds[i] < 0) {
                f.step = STEP_DEVNULL;
                goto fail;
            }
        }
        lifted[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (lifted[i] < 0) {
            f.step = STEP_DUP;
            goto fail;
        }
    }
    for (int i = 0; i < 3; i++)
        if (dup2(lifted[i], i) < 0) { /* dup2 clears CLOEXEC on exactly 0-2 */
            f.step = STEP_DUP;
            goto fail;
        }
    /* Everything else stays behind at exec, whoever opened it and however. */
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        for (int fd = 3; fd < 1024; fd++)
            if (fd != report_fd)
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (o->cwd && chdir(o->cwd) < 0) {
        f.step = STEP_CHDIR;
        goto fail;
    }
    if (o->envp)
        execvpe(o->argv[0], (char *const *) o->argv, (char *const *) o->envp);
    else
        execvp(o->argv[0], (char *const *) o->argv);
    f.step = STEP_EXEC;
fail:
    f.errnum = errno;
    (void) !write(report_fd, &f, sizeof(f));
    _exit(127);
}

int rt_spawn(const struct rt_spawn_opts *o, pid_t *ret_pid, struct rt_err *err)
{
    _cleanup_close_ int rd = -1, wr = -1;
    struct child_failure f;
    int p[2];
    pid_t pid;
    ssize_t n;

    if (pipe2(p, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "create the exec report pipe");
    rd = p[0];
    wr = p[1];
    pid = fork();
    if (pid < 0)
        return rt_err_set(err, errno, "fork for '%s'", o->argv[0]);
    if (pid == 0)
        child(o, wr);
    wr = rt_close(wr);
    do
        n = read(rd, &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t) sizeof(f)) {
        (void) rt_spawn_wait(pid);
        return rt_err_set(err, f.errnum, "%s '%s'", step_name(f.step), o->argv[0]);
    }
    *ret_pid = pid; /* 0 bytes: execve succeeded and closed the pipe */
    return 0;
}

int rt_spawn_wait(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* Where one output pipe of a captured child goes: a fixed buffer (truncating), or a
 * growing one up to @max bytes (the rest is drained and dropped, @truncated set). */
struct sink {
    char *buf;
    size_t len, cap, max;
    bool grow, truncated, nomem;
};

/* Reads what is there from @fd into @s.  Returns 0 at EOF, 1 when more may come. */
static int drain(int fd, struct sink *s)
{
    char scratch[16384];
    ssize_t n = read(fd, scratch, sizeof(scratch));
    size_t take;

    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0)
        return 0;
    if (!s->buf && !s->grow)
        return 1;
    take = (size_t) n;
    if (s->len + take > s->max) {
        take = s->max - s->len;
        s->truncated = true;
    }
    if (s->grow && s->len + take + 1 > s->cap) {
        size_t ncap = s->cap ? s->cap : 4096;
        char *nb;
        while (ncap < s->len + take + 1)
            ncap *= 2;
        nb = realloc(s->buf, ncap);
        if (!nb) {
            s->nomem = true;
            return 1;
        }
        s->buf = nb;
        s->cap = ncap;
    }
    memcpy(s->buf + s->len, scratch, take);
    s->len += take;
    s->buf[s->len] = '\0';
    return 1;
}

static int run_collect(const char *const *argv, const char *cwd, struct sink *out,
                       struct sink *errs, struct rt_err *err)
{
    _cleanup_close_ int out_rd = -1, out_wr = -1, err_rd = -1, err_wr = -1;
    struct rt_spawn_opts o = { .argv = argv, .cwd = cwd, .stdin_fd = -1 };
    int p[2], q[2], r;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "create pipes for '%s'", argv[0]);
    out_rd = p[0];
    out_wr = p[1];
    if (pipe2(q, O_CLOEXEC) < 0)
        return rt_err_set(err, errno, "create pipes for '%s'", argv[0]);
    err_rd = q[0];
    err_wr = q[1];
    o.stdout_fd = out_wr;
    o.stderr_fd = err_wr;
    r = rt_spawn(&o, &pid, err);
    if (r < 0)
        return r;
    out_wr = rt_close(out_wr);
    err_wr = rt_close(err_wr);
    /* Read both pipes together: a child that fills one while we wait on the other
     * would deadlock. */
    while (out_rd >= 0 || err_rd >= 0) {
        struct pollfd pfd[2] = { { .fd = out_rd, .events = POLLIN },
                                 { .fd = err_rd, .events = POLLIN } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents && !drain(out_rd, out))
            out_rd = rt_close(out_rd);
        if (pfd[1].revents && !drain(err_rd, errs))
            err_rd = rt_close(err_rd);
    }
    r = rt_spawn_wait(pid);
    if (r < 0)
        return rt_err_set(err, -r, "wait for '%s'", argv[0]);
    if (out->nomem)
        return rt_err_set(err, ENOMEM, "collect the output of '%s'", argv[0]);
    return r;
}

int rt_run_capture(const char *const *argv, const char *cwd, char *out, size_t cap, char *errbuf,
                   size_t errcap, struct rt_err *err)
{
    struct sink o = { .buf = cap ? out : NULL, .cap = cap, .max = cap ? cap - 1 : 0 };
    struct sink e = { .buf = errcap ? errbuf : NULL,
                      .cap = errcap,
                      .max = errcap ? errcap - 1 : 0 };

    if (cap)
        out[0] = '\0';
    if (errcap)
        errbuf[0] = '\0';
    return run_collect(argv, cwd, &o, &e, err);
}

int rt_run_output(const char *const *argv, const char *cwd, size_t max, char **ret_out,
                  size_t *ret_len, char *errbuf, size_t errcap, struct rt_err *err)
{
    struct sink o = { .grow = true, .max = max };
    struct sink e = { .buf = errcap ? errbuf : NULL,
                      .cap = errcap,
                      .max = errcap ? errcap - 1 : 0 };
    int r;

    if (errcap)
        errbuf[0] = '\0';
    r = run_collect(argv, cwd, &o, &e, err);
    if (r >= 0 && o.truncated) {
        free(o.buf);
        return rt_err_set(err, EFBIG, "output of '%s' exceeds %zu bytes", argv[0], max);
    }
    if (r < 0) {
        free(o.buf);
        return r;
    }
    if (!o.buf) {
        o.buf = calloc(1, 1);
        if (!o.buf)
            return rt_err_set(err, ENOMEM, "collect the output of '%s'", argv[0]);
    }
    *ret_out = o.buf;
    *ret_len = o.len;
    return r;
}
