/* Unit tests for the seccomp profile, loaded for real in a forked child.  Every call made
 * under the filter uses arguments that would fail harmlessly without it (a missing mount
 * point, a bad reboot magic, a closed fd), so a broken filter shows up as the wrong errno
 * and never as a change to this machine. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "sandbox/internal.h"

struct outcome {
    long ret;
    int err;
};

enum {
    T_UNSHARE,
    T_MOUNT,
    T_CLONE3,
    T_CLONE_NS,
    T_PACKET,
    T_INET,
    T_TIOCSTI,
    T_TIOCSTI_HIGH,
    T_PERSONALITY,
    T_PERSONALITY_OK,
    T_KEYCTL,
    T_REBOOT,
    T_CLOCK,
    T_GETPID,
    T_FORK,
    T_MAX,
};

static void run_checks(struct outcome *o)
{
#define TRY(i, expr)                                                                               \
    do {                                                                                           \
        errno = 0;                                                                                 \
        o[i].ret = (long) (expr);                                                                  \
        o[i].err = errno;                                                                          \
    } while (0)
    struct timespec ts = { 0, 0 };
    char c = 'x';
    pid_t p;

    TRY(T_UNSHARE, unshare(CLONE_NEWUSER));
    TRY(T_MOUNT, mount("none", "/nonexistent-sbx-unit", "tmpfs", 0, NULL));
    TRY(T_CLONE3, syscall(SYS_clone3, NULL, 0));
    TRY(T_CLONE_NS, syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, NULL));
    if (o[T_CLONE_NS].ret == 0)
        _exit(0);
    TRY(T_PACKET, socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
    TRY(T_INET, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    TRY(T_TIOCSTI, ioctl(-1, TIOCSTI, &c));
    TRY(T_TIOCSTI_HIGH, syscall(SYS_ioctl, -1, 0x100000000UL | TIOCSTI, &c));
    TRY(T_PERSONALITY, personality(READ_IMPLIES_EXEC));
    TRY(T_PERSONALITY_OK, personality(PER_LINUX));
    TRY(T_KEYCTL, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    TRY(T_REBOOT, syscall(SYS_reboot, 0, 0, 0, NULL));
    TRY(T_CLOCK, clock_settime(CLOCK_MONOTONIC, &ts));
    TRY(T_GETPID, getpid());
    p = fork();
    if (p == 0)
        _exit(0);
    TRY(T_FORK, p > 0 ? waitpid(p, NULL, 0) : -1);
#undef TRY
}

/* Forks, loads the profile with no_new_privs, runs @fn, and returns its wait status;
 * @o (shared through a pipe) receives the outcomes. */
static int under_filter(const struct sock_fprog *prog, void (*fn)(struct outcome *),
                        struct outcome *o)
{
    int fds[2], status = -1;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        struct outcome local[T_MAX];
        memset(local, 0, sizeof(local));
        close(fds[0]);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
            _exit(99);
        fn(local);
        (void) !write(fds[1], local, sizeof(local));
        _exit(0);
    }
    close(fds[1]);
    if (o)
        (void) !read(fds[0], o, sizeof(struct outcome) * T_MAX);
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, &status, 0);
    return status;
}

static void x32_call(struct outcome *o)
{
    (void) o;
    syscall(0x40000000 | SYS_getpid);
}

static void i386_call(struct outcome *o)
{
    long ret;
    (void) o;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
}

int main(void)
{
    struct sock_fprog prog = { 0 };
    struct rt_err err = { 0 };
    struct outcome o[T_MAX];
    int st;

    tap_start();
    is_int(sbx__seccomp_build(&prog, &err), 0, "profile compiles");
    ok(prog.len > 10 && prog.filter, "a BPF program of %u instructions", prog.len);
    ok(sbx__seccomp_denied[0] != NULL, "the deny list is exported");

    memset(o, 0, sizeof(o));
    st = under_filter(&prog, run_checks, o);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ran under the filter (status %d)", st);
    is_int(o[T_UNSHARE].err, EPERM, "unshare(CLONE_NEWUSER): EPERM");
    is_int(o[T_MOUNT].err, EPERM, "mount: EPERM (ENOENT without the filter)");
    is_int(o[T_CLONE3].err, ENOSYS, "clone3: ENOSYS so libc falls back to clone");
    is_int(o[T_CLONE_NS].err, EPERM, "clone with CLONE_NEWNET: EPERM");
    is_int(o[T_PACKET].err, EPERM, "AF_PACKET socket: EPERM");
    ok(o[T_INET].ret >= 0, "an AF_INET stream socket is allowed");
    is_int(o[T_TIOCSTI].err, EPERM, "TIOCSTI: EPERM (EBADF without the filter)");
    is_int(o[T_TIOCSTI_HIGH].err, EPERM, "TIOCSTI with high bits set: EPERM (CVE-2019-10063)");
    is_int(o[T_PERSONALITY].err, EPERM, "personality(READ_IMPLIES_EXEC): EPERM");
    ok(o[T_PERSONALITY_OK].ret >= 0, "personality(PER_LINUX) is allowed");
    is_int(o[T_KEYCTL].err, EPERM, "keyctl: EPERM");
    is_int(o[T_REBOOT].err, EPERM, "reboot: EPERM (EINVAL without the filter)");
    is_int(o[T_CLOCK].err, EPERM, "clock_settime: EPERM (EINVAL without the filter)");
    ok(o[T_GETPID].ret > 0, "getpid works");
    ok(o[T_FORK].ret > 0, "plain fork (clone without namespace flags) works");

    st = under_filter(&prog, x32_call, NULL);
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "x32 syscall kills the process (status %d)", st);
    st = under_filter(&prog, i386_call, NULL);
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "int 0x80 kills the process (status %d)", st);

    free(prog.filter);
    return tap_done();
}
