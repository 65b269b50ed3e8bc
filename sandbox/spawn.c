/* Spawning a sandbox: the parent prepares everything (plan, seccomp program, uid range,
 * cgroup), clones the child into fresh namespaces, writes its uid maps, puts it in its
 * cgroups, lets the network hook wire it, then releases it.  The child becomes the
 * sandbox's pid 1: it builds the filesystem, forks the command and stays as a tiny init
 * that reaps zombies and forwards signals.  Failures in the child come back through a
 * close-on-exec pipe as {step, errno, message}; EOF on that pipe means execve worked. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "util.h"
#include "banned.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct sbx {
    pid_t pid;
    int pidfd;
    int status_fd;
    int slot_fd;
    uint32_t uid_base;
    struct sbx_cgroup *cg;
    dev_t deferred[SBX_MAX_GPUS]; /* spec->gpus_deferred: bound, not yet allowed */
    size_t n_deferred;
    bool reaped;
    bool have_exit;
    struct sbx_exit exit;
};

static __thread enum sbx_step last_step;

static const char *const step_names[_SBX_STEP_MAX] = {
    [SBX_STEP_NONE] = "setup",
    [SBX_STEP_SPEC] = "check the spec",
    [SBX_STEP_UIDRANGE] = "reserve a host uid range",
    [SBX_STEP_CGROUP] = "create the cgroup",
    [SBX_STEP_SECCOMP_BUILD] = "build the seccomp filter",
    [SBX_STEP_CLONE] = "create namespaces",
    [SBX_STEP_UIDMAP] = "write uid/gid maps",
    [SBX_STEP_NETNS] = "set up the network",
    [SBX_STEP_SYNC] = "wait for the parent",
    [SBX_STEP_IDS] = "switch to the sandbox's root",
    [SBX_STEP_MOUNT_PRIVATE] = "make mounts private",
    [SBX_STEP_ROOTFS] = "assemble the root",
    [SBX_STEP_BIND] = "bind mount",
    [SBX_STEP_PROC] = "mount /proc",
    [SBX_STEP_DEV] = "populate /dev",
    [SBX_STEP_TMPFS] = "mount tmpfs",
    [SBX_STEP_PIVOT] = "pivot_root",
    [SBX_STEP_HOSTNAME] = "set the hostname",
    [SBX_STEP_LOOPBACK] = "bring up loopback",
    [SBX_STEP_RLIMIT] = "set rlimits",
    [SBX_STEP_INIT] = "start init",
    [SBX_STEP_STDIO] = "set up stdio",
    [SBX_STEP_CHDIR] = "chdir",
    [SBX_STEP_CAPS] = "drop capabilities",
    [SBX_STEP_SETUID] = "switch uid",
    [SBX_STEP_NO_NEW_PRIVS] = "set no_new_privs",
    [SBX_STEP_SECCOMP] = "load seccomp",
    [SBX_STEP_EXEC] = "exec",
};

const char *sbx_step_name(enum sbx_step step)
{
    if (step >= _SBX_STEP_MAX || !step_names[step])
        return "setup";
    return step_names[step];
}

enum sbx_step sbx_last_step(void)
{
    return last_step;
}

static int fail(enum sbx_step step, struct rt_err *err)
{
    last_step = step;
    return rt_err_wrap(err, "%s", sbx_step_name(step));
}

/* --- child ------------------------------------------------------------------------------- */

static _Noreturn void child_fail(struct sbx__child *c, const struct sbx__report *rep)
{
    (void) rt_write_all(c->err_fd, rep, sizeof(*rep));
    _exit(125);
}

static const int forwarded[] = { SIGTERM, SIGINT,   SIGHUP,  SIGQUIT, SIGUSR1,
                                 SIGUSR2, SIGWINCH, SIGCONT, SIGALRM };

/* PATH search without allocation: EACCES anywhere wins over ENOENT, like execvp. */
static void exec_command(struct sbx__child *c, struct sbx__report *rep)
{
    const char *file = c->spec->argv[0];
    char *const *argv = (char *const *) c->spec->argv;
    const char *path = c->env_path + 5, *p;
    bool eacces = false;
    int last = ENOENT;
    char buf[4096];

    if (strchr(file, '/')) {
        (void) execve(file, argv, c->envp);
        sbx__report_set(rep, SBX_STEP_EXEC, errno, "exec '%s'", file);
        return;
    }
    for (p = path; *p;) {
        const char *end = strchrnul(p, ':');
        size_t len = (size_t) (end - p);

        if (len == 0) {
            p = *end ? end + 1 : end;
            continue;
        }
        if (len + strlen(file) + 2 <= sizeof(buf)) {
            (void) snprintf(buf, sizeof(buf), "%.*s/%s", (int) len, p, file);
            (void) execve(buf, argv, c->envp);
            if (errno == EACCES)
                eacces = true;
            else if (errno != ENOENT && errno != ENOTDIR)
                last = errno;
        }
        p = *end ? end + 1 : end;
    }
    sbx__report_set(rep, SBX_STEP_EXEC, eacces ? EACCES : last, "exec '%s'", file);
}

/* Closes every fd above 2 except @a and @b (either may be -1). */
static void close_fds_except(int a, int b)
{
    int keep[2] = { a < b ? a : b, a < b ? b : a };
    unsigned from = 3;

    for (int i = 0; i < 2; i++) {
        if (keep[i] < (int) from)
            continue;
        if (keep[i] > (int) from && syscall(SYS_close_range, from, (unsigned) keep[i] - 1, 0U) < 0)
            for (int fd = (int) from; fd < keep[i]; fd++)
                (void) close(fd);
        from = (unsigned) keep[i] + 1;
    }
    if (syscall(SYS_close_range, from, ~0U, 0U) < 0)
        for (int fd = (int) from; fd < 65536; fd++)
            (void) close(fd);
}

static _Noreturn void run_command(struct sbx__child *c)
{
    struct sbx__report rep = { 0 };
    sigset_t none;
    char cwd[4096];
    int lifted[3];

    /* a fresh process: default dispositions, nothing blocked, whatever the caller had */
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            (void) signal(s, SIG_DFL);
    (void) sigemptyset(&none);
    (void) sigprocmask(SIG_SETMASK, &none, NULL);
    /* its own session: no TIOCSTI into the caller's terminal even without seccomp */
    (void) setsid();
    /* lift the wanted fds above 2 first so dup2 onto 0-2 cannot clobber one another */
    for (int i = 0; i < 3; i++) {
        lifted[i] = -1;
        if (c->stdio[i] >= 0 && (lifted[i] = fcntl(c->stdio[i], F_DUPFD_CLOEXEC, 3)) < 0) {
            sbx__report_set(&rep, SBX_STEP_STDIO, errno, "duplicate fd %d", c->stdio[i]);
            child_fail(c, &rep);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (lifted[i] >= 0 && dup2(lifted[i], i) < 0) {
            sbx__report_set(&rep, SBX_STEP_STDIO, errno, "dup2 onto fd %d", i);
            child_fail(c, &rep);
        }
    }
    /* nothing but 0-2 (and the report pipe, close-on-exec) survives, and that before the
     * chdir: a leaked host directory fd plus "--chdir /proc/self/fd/N" would otherwise
     * start the command with its cwd on the host (CVE-2024-21626) */
    close_fds_except(c->err_fd, -1);
    if (chdir(c->spec->chdir ? c->spec->chdir : "/") < 0) {
        sbx__report_set(&rep, SBX_STEP_CHDIR, errno, "chdir '%s'", c->spec->chdir);
        child_fail(c, &rep);
    }
    if (!getcwd(cwd, sizeof(cwd)) || cwd[0] != '/') {
        sbx__report_set(&rep, SBX_STEP_CHDIR, EPERM, "working directory '%s' is outside the root",
                        c->spec->chdir);
        child_fail(c, &rep);
    }
    if (sbx__drop_privs(c->spec->uid, c->spec->gid, false, &rep) < 0)
        child_fail(c, &rep);
    exec_command(c, &rep);
    child_fail(c, &rep);
}

static int command_main(void *arg)
{
    run_command(arg);
}

/* Arms SIGKILL on the caller's death.  Every change of ids clears the parent-death signal,
 * so it is armed again after each; a caller that died before that shows as a status pipe
 * with no reader. */
static void die_with_parent(const struct sbx__child *c)
{
    struct pollfd p = { .fd = c->status_fd, .events = 0 };

    if (!c->spec->die_with_parent)
        return;
    (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
        _exit(125);
}

/* pid 1 of the sandbox: reaps every orphan, forwards signals to the command, and hands
 * the command's wait status to the parent before leaving (which kills what remains). */
static _Noreturn void run_init(struct sbx__child *c, pid_t cmd, const sigset_t *set)
{
    struct sbx__report rep = { 0 };

    c->err_fd = rt_close(c->err_fd);
    /* the init keeps only the status pipe: no host fd (overlay lowers, the caller's
     * leaks, stdio) stays reachable through it */
    for (int fd = 0; fd < 3; fd++)
        if (fd != c->status_fd && fd != c->mask_src)
            (void) close(fd);
    /* the mask source stays open here: it is the one detached mount, and the last close of
     * it waits for an RCU grace period, which the init can afford after the command runs */
    close_fds_except(c->status_fd, c->mask_src);
    if (sbx__drop_privs(0, 0, true, &rep) < 0)
        _exit(125);
    die_with_parent(c);
    /* nobody inside may ptrace or read the init's memory or /proc files */
    (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(set, &si);

        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            (void) kill(cmd, sig);
            continue;
        }
        for (;;) {
            int status;
            pid_t p = waitpid(-1, &status, WNOHANG);

            if (p <= 0)
                break;
            if (p == cmd) {
                (void) rt_write_all(c->status_fd, &status, sizeof(status));
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            }
        }
    }
}

/* Waits for the parent's go, which carries the overlay's lower trees (if any). */
static int recv_release(struct sbx__child *c)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * (SBX_MAX_LAYERS + 1))];
        struct cmsghdr align;
    } u;
    char b;
    struct iovec iov = { .iov_base = &b, .iov_len = 1 };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)
    };
    ssize_t n;

    do
        n = recvmsg(c->sync_fd, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        return -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            if (nfd > SBX_MAX_LAYERS + 1)
                return -1;
            memcpy(c->lower_fds, CMSG_DATA(cm), nfd * sizeof(int));
            c->n_lower = (int) nfd;
        }
    }
    return c->overlay && c->n_lower == 0 ? -1 : 0;
}

/* The seccomp program, one message on the sync socket. */
static int recv_filter(struct sbx__child *c)
{
    ssize_t n;

    do
        n = recv(c->sync_fd, c->filter_in, sizeof(c->filter_in), 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0 || n % (ssize_t) sizeof(struct sock_filter))
        return -1;
    c->seccomp.filter = c->filter_in;
    c->seccomp.len = (unsigned short) (n / (ssize_t) sizeof(struct sock_filter));
    return 0;
}

static _Noreturn void child_main(struct sbx__child *c)
{
    const struct sbx_spec *spec = c->spec;
    struct sbx__report rep = { 0 };
    sigset_t set;
    struct rlimit rl;
    pid_t cmd;

    die_with_parent(c);
    if (recv_release(c) < 0)
        _exit(125); /* the parent failed or died: it reports */
    if (unshare(CLONE_NEWCGROUP) < 0) {
        sbx__report_set(&rep, SBX_STEP_CLONE, errno, "unshare the cgroup namespace");
        child_fail(c, &rep);
    }
    if (sbx__child_preopen(c, &rep) < 0)
        child_fail(c, &rep);
    /* we are still host root's ids until now: take the mapped root's, and no host groups */
    if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
        sbx__report_set(&rep, SBX_STEP_IDS, errno, "become root of the user namespace");
        child_fail(c, &rep);
    }
    die_with_parent(c);
    if (sbx__child_mounts(c, &rep) < 0)
        child_fail(c, &rep);
    if (sethostname(spec->hostname, strlen(spec->hostname)) < 0) {
        sbx__report_set(&rep, SBX_STEP_HOSTNAME, errno, "sethostname '%s'", spec->hostname);
        child_fail(c, &rep);
    }
    if (spec->net != SBX_NET_HOST && sbx__loopback_up(&rep) < 0)
        child_fail(c, &rep);
    rl.rlim_cur = rl.rlim_max = 0;
    if (setrlimit(RLIMIT_CORE, &rl) < 0) {
        sbx__report_set(&rep, SBX_STEP_RLIMIT, errno, "RLIMIT_CORE");
        child_fail(c, &rep);
    }
    /* never above the caller's own hard limit: raising it needs a privilege we lack here */
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        rl.rlim_max = RLIM_INFINITY;
    rl.rlim_cur = rl.rlim_max = spec->nofile < rl.rlim_max ? spec->nofile : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        sbx__report_set(&rep, SBX_STEP_RLIMIT, errno, "RLIMIT_NOFILE %llu",
                        (unsigned long long) spec->nofile);
        child_fail(c, &rep);
    }
    /* the parent compiled the filter while we built the root */
    if (recv_filter(c) < 0)
        _exit(125); /* the parent failed: it reports */
    c->sync_fd = rt_close(c->sync_fd);
    /* seccomp as late as it can be while still serving both the init and the command */
    if (sbx__lock_down(&c->seccomp, &rep) < 0)
        child_fail(c, &rep);
    (void) sigemptyset(&set);
    (void) sigaddset(&set, SIGCHLD);
    for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
        (void) sigaddset(&set, forwarded[i]);
    (void) sigprocmask(SIG_BLOCK, &set, NULL);
    /* like posix_spawn: the command shares our memory on its own stack until it execs, and
     * we wait meanwhile, so it gets the CPU at once and no page table is copied.  It writes
     * nothing we read (only its own stack and its own fds). */
    cmd = clone(command_main, c->cmd_stack + sizeof(c->cmd_stack), CLONE_VM | CLONE_VFORK | SIGCHLD,
                c);
    if (cmd < 0) {
        sbx__report_set(&rep, SBX_STEP_INIT, errno, "start the command");
        child_fail(c, &rep);
    }
    run_init(c, cmd, &set);
}

/* --- parent ------------------------------------------------------------------------------ */

static int write_proc_file(pid_t pid, const char *name, const char *val, struct rt_err *err)
{
    _cleanup_close_ int fd = -1;
    char path[64];
    int r;

    (void) snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, name);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_err_set(err, errno, "open '%s'", path);
    r = rt_write_all(fd, val, strlen(val));
    if (r < 0)
        return rt_err_set(err, -r, "write '%s'", path);
    return 0;
}

static void child_free(struct sbx__child *c)
{
    if (!c)
        return;
    free(c->seccomp.filter);
    free(c);
}

static void child_freep(struct sbx__child **c)
{
    child_free(*c);
}

static int prepare_env(struct sbx__child *c, const struct sbx_spec *spec)
{
    size_t n = 0;
    bool has_path = false, has_home = false;

    (void) snprintf(c->env_path, sizeof(c->env_path), "PATH=%s", DEFAULT_PATH);
    for (size_t i = 0; i < spec->n_env; i++) {
        if (strncmp(spec->env[i], "PATH=", 5) == 0) {
            has_path = true;
            (void) snprintf(c->env_path, sizeof(c->env_path), "%s", spec->env[i]);
        }
        if (strncmp(spec->env[i], "HOME=", 5) == 0)
            has_home = true;
        c->envp[n++] = (char *) spec->env[i];
    }
    if (!has_path)
        c->envp[n++] = c->env_path;
    if (!has_home) {
        (void) snprintf(c->env_home, sizeof(c->env_home), "HOME=%s",
                        spec->uid == 0 ? "/root" : "/tmp");
        c->envp[n++] = c->env_home;
    }
    c->envp[n] = NULL;
    return 0;
}

/* The overlay's lowers are opened by the child (overlayfs clones each lower mount, which
 * must belong to the child's own mount namespace); here we only check they exist. */
static int prepare_overlay(struct sbx__child *c, const struct sbx_spec *spec, struct rt_err *err)
{
    c->overlay = true;
    c->base_size = spec->upper_size;
    for (size_t i = 0; i <= spec->n_layers; i++) {
        const char *dir = i < spec->n_layers ? spec->layers[i] : spec->rootfs;
        struct stat st;

        if (stat(dir, &st) < 0)
            return rt_err_set(err, errno, "%s '%s'", i < spec->n_layers ? "layer" : "rootfs", dir);
        if (!S_ISDIR(st.st_mode))
            return rt_err_set(err, ENOTDIR, "%s '%s'", i < spec->n_layers ? "layer" : "rootfs",
                              dir);
    }
    return 0;
}

/* The overlay's lowers as detached clones, idmapped onto the sandbox's user namespace
 * when the filesystem allows it: image files owned by host root then appear owned by root
 * inside (host uid BASE), so copy-up into the writable layer works and host ids never show.
 * Without idmapping, a file owned by an unmapped id cannot be copied up (EOVERFLOW). */
static int open_lower_trees(const struct sbx_spec *spec, pid_t pid, int *fds, int *ret_n,
                            struct rt_err *err)
{
    _cleanup_close_ int userns = -1;
    char path[64];
    int n = 0;

    (void) snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
    userns = open(path, O_RDONLY | O_CLOEXEC);
    if (userns < 0)
        return rt_err_set(err, errno, "open '%s'", path);
    for (size_t i = 0; i <= spec->n_layers; i++) {
        const char *dir = i < spec->n_layers ? spec->layers[i] : spec->rootfs;
        struct mount_attr ro = { .attr_set =
                                     MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
        struct mount_attr idmap = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t) userns };
        int t = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);

        if (t < 0) {
            while (n > 0)
                (void) rt_close(fds[--n]);
            return rt_err_set(err, errno, "clone %s '%s'", i < spec->n_layers ? "layer" : "rootfs",
                              dir);
        }
        fds[n++] = t;
        (void) mount_setattr(t, "", AT_EMPTY_PATH, &idmap, sizeof(idmap));
        (void) mount_setattr(t, "", AT_EMPTY_PATH, &ro, sizeof(ro));
    }
    *ret_n = n;
    return 0;
}

static int send_release(int sock, const int *fds, int n, struct rt_err *err)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * (SBX_MAX_LAYERS + 1))];
        struct cmsghdr align;
    } u;
    char b = 'x';
    struct iovec iov = { .iov_base = &b, .iov_len = 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t r;

    if (n > 0) {
        struct cmsghdr *cm;
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t) n);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t) n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t) n);
    }
    do
        r = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r != 1)
        return rt_err_set(err, r < 0 ? errno : EIO, "release the child");
    return 0;
}

static bool want_cgroup(const struct sbx_spec *spec)
{
    return spec->want_cgroup || spec->memory_max || spec->pids_max || spec->cpu_milli ||
           spec->n_gpus;
}

static int setup_cgroup(const struct sbx_spec *spec, struct sbx *box, struct rt_err *err)
{
    static unsigned counter;
    struct sbx_cgroup_host host;
    struct sbx_cgroup_limits lim = {
        .memory_max = spec->memory_max,
        .swap_max = spec->swap_max,
        .pids_max = spec->pids_max,
        .cpu_milli = spec->cpu_milli,
    };
    char name[80];
    int r;

    if ((r = sbx_cgroup_host_detect(NULL, &host, err)) < 0)
        return r;
    if (spec->name)
        (void) snprintf(name, sizeof(name), "%s", spec->name);
    else
        (void) snprintf(name, sizeof(name), "sbx-%d-%u", (int) getpid(),
                        __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    if ((r = sbx_cgroup_create(&host, spec->cgroup_parent, name, &lim, &box->cg, err)) < 0)
        return r;
    for (size_t i = 0; i < spec->n_gpus; i++) {
        struct stat st;
        if (stat(spec->gpus[i], &st) < 0)
            return rt_err_set(err, errno, "device '%s'", spec->gpus[i]);
        /* deferred: the app must never get one (sbx_allow_deferred_gpus) */
        if (spec->gpus_deferred)
            box->deferred[box->n_deferred++] = st.st_rdev;
        else if ((r = sbx_cgroup_allow_device(box->cg, 'c', major(st.st_rdev), minor(st.st_rdev),
                                              err)) < 0)
            return r;
    }
    return 0;
}

static void box_free(struct sbx *box)
{
    if (!box)
        return;
    if (box->pidfd >= 0 && !box->reaped) {
        siginfo_t si;
        (void) syscall(SYS_pidfd_send_signal, box->pidfd, SIGKILL, NULL, 0);
        (void) waitid((idtype_t) P_PIDFD, (id_t) box->pidfd, &si, WEXITED);
    }
    (void) sbx_cgroup_destroy(box->cg, NULL);
    (void) rt_close(box->pidfd);
    (void) rt_close(box->status_fd);
    (void) rt_close(box->slot_fd);
    free(box);
}

static void box_freep(struct sbx **box)
{
    box_free(*box);
}

int sbx_spawn(const struct sbx_spec *spec, struct sbx **ret_box, struct rt_err *err)
{
    _cleanup_(child_freep) struct sbx__child *c = NULL;
    _cleanup_(box_freep) struct sbx *box = NULL;
    _cleanup_close_ int sync_r = -1, sync_w = -1, err_r = -1, err_w = -1, st_r = -1, st_w = -1;
    int pipes[2], pidfd = -1, r, lowers[SBX_MAX_LAYERS + 1], n_lowers = 0;
    unsigned long flags;
    struct sbx__report rep;
    char map[64];
    ssize_t n;
    long pid;

    last_step = SBX_STEP_NONE;
    if ((r = sbx_spec_validate(spec, err)) < 0)
        return fail(SBX_STEP_SPEC, err);
    c = calloc(1, sizeof(*c));
    box = calloc(1, sizeof(*box));
    if (!c || !box) {
        rt_err_set(err, ENOMEM, "allocate");
        return fail(SBX_STEP_SPEC, err);
    }
    box->pidfd = box->status_fd = box->slot_fd = -1;
    c->spec = spec;
    c->sync_fd = c->err_fd = c->status_fd = c->mask_src = -1;
    for (int i = 0; i < 3; i++)
        c->stdio[i] = spec->stdio[i];
    if ((r = sbx__plan_build(spec, &c->plan, err)) < 0)
        return fail(SBX_STEP_ROOTFS, err);
    if (spec->rootfs && (r = prepare_overlay(c, spec, err)) < 0)
        return fail(SBX_STEP_ROOTFS, err);
    prepare_env(c, spec);
    box->uid_base = spec->host_uid_base;
    if (!box->uid_base) {
        box->slot_fd = sbx__uid_slot_acquire(SBX_UID_SLOT_DIR, &box->uid_base, err);
        if (box->slot_fd < 0)
            return fail(SBX_STEP_UIDRANGE, err);
    }
    if (want_cgroup(spec) && (r = setup_cgroup(spec, box, err)) < 0)
        return fail(SBX_STEP_CGROUP, err);

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pipes) < 0)
        goto pipe_fail;
    sync_r = pipes[0], sync_w = pipes[1];
    if (pipe2(pipes, O_CLOEXEC) < 0)
        goto pipe_fail;
    err_r = pipes[0], err_w = pipes[1];
    if (pipe2(pipes, O_CLOEXEC) < 0)
        goto pipe_fail;
    st_r = pipes[0], st_w = pipes[1];

    /* the cgroup namespace comes later, in the child, once it sits in its own cgroup:
     * unshared now, it would be rooted at the caller's group and show host paths */
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD |
            SIGCHLD;
    if (spec->net != SBX_NET_HOST)
        flags |= CLONE_NEWNET;
    /* a raw clone behaves like fork here: the child runs on a copy of this stack */
    pid = syscall(SYS_clone, flags, NULL, &pidfd, NULL, NULL);
    if (pid < 0) {
        rt_err_set(err, errno, "clone");
        return fail(SBX_STEP_CLONE, err);
    }
    if (pid == 0) {
        c->sync_fd = sync_r;
        c->err_fd = err_w;
        c->status_fd = st_w;
        (void) close(sync_w);
        (void) close(err_r);
        (void) close(st_r);
        child_main(c);
    }
    box->pid = (pid_t) pid;
    box->pidfd = pidfd;
    sync_r = rt_close(sync_r);
    err_w = rt_close(err_w);
    st_w = rt_close(st_w);

    /* inside 0..65535 onto this sandbox's own host range: no host id, root least of all */
    (void) snprintf(map, sizeof(map), "0 %u %u\n", box->uid_base, SBX_UID_RANGE);
    if ((r = write_proc_file(box->pid, "uid_map", map, err)) < 0 ||
        (r = write_proc_file(box->pid, "gid_map", map, err)) < 0)
        return fail(SBX_STEP_UIDMAP, err);
    if (box->cg && (r = sbx_cgroup_add_pid(box->cg, box->pid, err)) < 0)
        return fail(SBX_STEP_CGROUP, err);
    if (spec->net == SBX_NET_VETH && (r = spec->on_netns(box->pid, spec->netns_data, err)) < 0)
        return fail(SBX_STEP_NETNS, err);
    if (c->overlay) {
        r = open_lower_trees(spec, box->pid, lowers, &n_lowers, err);
        if (r < 0)
            return fail(SBX_STEP_ROOTFS, err);
    }
    r = send_release(sync_w, lowers, n_lowers, err);
    while (n_lowers > 0)
        (void) rt_close(lowers[--n_lowers]);
    if (r < 0)
        return fail(SBX_STEP_SYNC, err);
    /* compiling the filter takes a fifth of the start time: done while the child builds
     * its root, which takes longer */
    if ((r = sbx__seccomp_build(&c->seccomp, err)) < 0)
        return fail(SBX_STEP_SECCOMP_BUILD, err);
    n = send(sync_w, c->seccomp.filter, c->seccomp.len * sizeof(struct sock_filter), MSG_NOSIGNAL);
    if (n != (ssize_t) (c->seccomp.len * sizeof(struct sock_filter))) {
        rt_err_set(err, n < 0 ? errno : EIO, "send the seccomp filter");
        return fail(SBX_STEP_SYNC, err);
    }
    sync_w = rt_close(sync_w);

    n = rt_read_all(err_r, &rep, sizeof(rep));
    if (n != 0) {
        if (n != (ssize_t) sizeof(rep)) {
            rt_err_set(err, n < 0 ? (int) -n : EIO, "read the child's report");
            return fail(SBX_STEP_SYNC, err);
        }
        rep.msg[sizeof(rep.msg) - 1] = '\0';
        last_step =
            rep.step > 0 && rep.step < _SBX_STEP_MAX ? (enum sbx_step) rep.step : SBX_STEP_NONE;
        /* one line that names the step, then what failed */
        if (strncmp(rep.msg, sbx_step_name(last_step), strlen(sbx_step_name(last_step))) == 0)
            rt_err_set(err, rep.err, "%s", rep.msg);
        else
            rt_err_set(err, rep.err, "%s: %s", sbx_step_name(last_step), rep.msg);
        return -err->code;
    }
    box->status_fd = TAKE_FD(st_r);
    *ret_box = TAKE_PTR(box);
    return 0;

pipe_fail:
    rt_err_set(err, errno, "pipe2");
    return fail(SBX_STEP_CLONE, err);
}

pid_t sbx_pid(const struct sbx *box)
{
    return box->pid;
}

int sbx_pidfd(const struct sbx *box)
{
    return box->pidfd;
}

int sbx_allow_deferred_gpus(struct sbx *box, struct rt_err *err)
{
    if (box->n_deferred == 0)
        return 0;
    if (!box->cg)
        return rt_err_set(err, ENODEV, "the sandbox has no device cgroup");
    return sbx_cgroup_allow_below(box->cg, box->deferred, box->n_deferred, err);
}

struct sbx_cgroup *sbx_cgroup(struct sbx *box)
{
    return box->cg;
}

uint32_t sbx_host_uid_base(const struct sbx *box)
{
    return box->uid_base;
}

int sbx_exit_fd(const struct sbx *box)
{
    return box->status_fd;
}

/* The init writes the command's wait status before it exits, so the answer is known
 * before the kernel has torn the namespaces down; only a killed init is reaped here. */
int sbx_wait(struct sbx *box, int timeout_ms, struct sbx_exit *ret, struct rt_err *err)
{
    struct sbx_exit ex = { 0 };
    siginfo_t si;
    int status;
    ssize_t n;

    if (!box->have_exit) {
        struct pollfd pfd = { .fd = box->status_fd, .events = POLLIN };
        int r;

        do
            r = poll(&pfd, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return rt_err_set(err, errno, "poll the sandbox");
        if (r == 0)
            return rt_err_set(err, ETIMEDOUT, "wait for the sandbox");
        n = rt_read_all(box->status_fd, &status, sizeof(status));
        if (n == (ssize_t) sizeof(status)) {
            if (WIFEXITED(status)) {
                ex.reason = SBX_EXIT_EXITED;
                ex.code = WEXITSTATUS(status);
            } else {
                ex.reason = SBX_EXIT_SIGNALED;
                ex.signal = WTERMSIG(status);
                ex.code = 128 + ex.signal;
            }
        } else {
            /* no status: the init itself died (killed from outside, or by the OOM killer) */
            memset(&si, 0, sizeof(si));
            if (waitid((idtype_t) P_PIDFD, (id_t) box->pidfd, &si, WEXITED) < 0)
                return rt_err_set(err, errno, "wait for the sandbox");
            box->reaped = true;
            if (si.si_code == CLD_EXITED) {
                ex.reason = SBX_EXIT_EXITED;
                ex.code = si.si_status;
            } else {
                ex.reason = SBX_EXIT_KILLED;
                ex.signal = si.si_status;
                ex.code = 128 + ex.signal;
            }
        }
        /* a shell that reports its child's OOM kill as 137 counts as well */
        if ((ex.signal == SIGKILL || ex.code == 128 + SIGKILL) && box->cg) {
            uint64_t kills = 0;
            if (sbx_cgroup_oom_kills(box->cg, &kills, NULL) == 0 && kills > 0)
                ex.reason = SBX_EXIT_OOM;
        }
        box->exit = ex;
        box->have_exit = true;
    }
    *ret = box->exit;
    return 0;
}

int sbx_kill(struct sbx *box, int sig, struct rt_err *err)
{
    if (box->reaped || box->have_exit)
        return rt_err_set(err, ESRCH, "the sandbox has ended");
    if (syscall(SYS_pidfd_send_signal, box->pidfd, sig, NULL, 0) < 0)
        return rt_err_set(err, errno, "signal %d to the sandbox", sig);
    return 0;
}

void sbx_destroy(struct sbx *box)
{
    box_free(box);
}
