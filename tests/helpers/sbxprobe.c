/* sbxprobe: runs one escape or abuse attempt from inside a sandbox and says how it went.
 *
 *   sbxprobe ATTEMPT [ARG...]
 *
 * Prints one line: "BLOCKED <ERRNO> <detail>" (exit 0) when the attempt failed, or
 * "ESCAPED <detail>" (exit 1) when it worked; "INFO ..." lines carry facts for the test.
 * Built static so it runs in any root.  NEVER run it outside a sandbox: as host root some
 * attempts would change this machine. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/rtnetlink.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static int blocked(int err, const char *what)
{
    const char *name = strerrorname_np(err);
    printf("BLOCKED %s %s\n", name ? name : "E?", what);
    return 0;
}

static int escaped(const char *what)
{
    printf("ESCAPED %s\n", what);
    return 1;
}

/* A syscall attempt: -1 with errno means blocked. */
static int check(long r, const char *what)
{
    if (r < 0)
        return blocked(errno, what);
    return escaped(what);
}

/* --- mounts and namespaces ---------------------------------------------------------------- */

static int a_mount_tmpfs(void)
{
    return check(mount("none", "/tmp", "tmpfs", 0, NULL), "mount tmpfs on /tmp");
}
static int a_mount_bind(void)
{
    return check(mount("/usr", "/tmp", NULL, MS_BIND, NULL), "bind mount /usr on /tmp");
}
static int a_mount_proc(void)
{
    return check(mount("proc", "/tmp", "proc", 0, NULL), "mount a new proc");
}
static int a_mount_cgroup(void)
{
    return check(mount("cgroup", "/tmp", "cgroup", 0, "memory"),
                 "mount cgroup v1 memory (release_agent, CVE-2022-0492)");
}
static int a_umount_mask(void)
{
    return check(umount2("/proc/keys", MNT_DETACH), "unmount the /proc/keys mask");
}
static int a_umount_root(void)
{
    return check(umount2("/", MNT_DETACH), "unmount /");
}
static int a_fsopen(void)
{
    return check(syscall(SYS_fsopen, "tmpfs", 0), "fsopen tmpfs");
}
static int a_open_tree(void)
{
    return check(syscall(SYS_open_tree, AT_FDCWD, "/usr", 1 /* OPEN_TREE_CLONE */),
                 "open_tree clone of /usr");
}
static int a_unshare_user(void)
{
    return check(unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)");
}
static int a_unshare_ns_net(void)
{
    return check(unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare(CLONE_NEWNS|CLONE_NEWNET)");
}
static int a_clone_newuser(void)
{
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
    if (r == 0)
        _exit(0);
    if (r > 0) {
        waitpid((pid_t) r, NULL, 0);
        return escaped("clone(CLONE_NEWUSER)");
    }
    return blocked(errno, "clone(CLONE_NEWUSER)");
}
static int a_clone3_ns(void)
{
    struct clone_args args = { .flags = CLONE_NEWUSER | CLONE_NEWNS, .exit_signal = SIGCHLD };
    long r = syscall(SYS_clone3, &args, sizeof(args));
    if (r == 0)
        _exit(0);
    if (r > 0) {
        waitpid((pid_t) r, NULL, 0);
        return escaped("clone3 with namespace flags");
    }
    return blocked(errno, "clone3 with namespace flags");
}
static int a_setns(void)
{
    int fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return blocked(errno, "open a namespace file");
    return check(setns(fd, 0), "setns into /proc/1/ns/mnt");
}
static int a_open_init_ns(void)
{
    return check(open("/proc/1/ns/net", O_RDONLY | O_CLOEXEC), "open /proc/1/ns/net");
}
static int a_pivot_root(void)
{
    return check(syscall(SYS_pivot_root, "/tmp", "/tmp"), "pivot_root");
}
static int a_chroot(void)
{
    return check(chroot("/tmp"), "chroot (the classic chroot+fchdir escape starts here)");
}
/* Mount events must not flow either way: no mount may be shared or a slave. */
static int a_propagation(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    if (!f)
        return blocked(errno, "read mountinfo");
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, " shared:") || strstr(line, " master:")) {
            fclose(f);
            return escaped(line);
        }
    }
    fclose(f);
    return blocked(EPERM, "every mount is private");
}

/* --- processes ----------------------------------------------------------------------------- */

static int a_ptrace_init(void)
{
    return check(ptrace(PTRACE_ATTACH, 1, NULL, NULL), "ptrace attach to the sandbox init");
}
static int a_ptrace_pid(const char *arg)
{
    pid_t pid = arg ? (pid_t) strtol(arg, NULL, 10) : 1;
    return check(ptrace(PTRACE_ATTACH, pid, NULL, NULL), "ptrace attach to a host pid");
}
static int a_process_vm_readv(void)
{
    char buf[8];
    struct iovec l = { buf, sizeof(buf) }, r = { (void *) 0x400000, sizeof(buf) };
    return check(process_vm_readv(1, &l, 1, &r, 1, 0), "process_vm_readv of pid 1");
}
static int a_kill_pid(const char *arg)
{
    pid_t pid = arg ? (pid_t) strtol(arg, NULL, 10) : 1;
    return check(kill(pid, 0), "signal a host pid");
}
static int a_proc_pids(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    if (!d)
        return blocked(errno, "open /proc");
    while ((e = readdir(d)))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
            n++;
    closedir(d);
    printf("INFO pids %d\n", n);
    return n <= 3 ? blocked(ESRCH, "/proc shows only the sandbox's processes")
                  : escaped("/proc shows more than the sandbox");
}

/* --- host files ---------------------------------------------------------------------------- */

static int try_read(const char *path, const char *what)
{
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0)
        return blocked(errno, what);
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n <= 0)
        return blocked(n < 0 ? errno : ENODATA, what);
    return escaped(what);
}
static int a_read(const char *arg)
{
    return try_read(arg, arg);
}
static int a_read_via_proc_root(const char *arg)
{
    char p[4096];
    snprintf(p, sizeof(p), "/proc/1/root%s", arg);
    if (try_read(p, "read through /proc/1/root") == 1)
        return 1;
    snprintf(p, sizeof(p), "/proc/self/root/../../..%s", arg);
    return try_read(p, "read through /proc/self/root/..");
}
static int a_read_via_symlink(const char *arg)
{
    unlink("/tmp/sbxprobe-link");
    if (symlink(arg, "/tmp/sbxprobe-link") < 0)
        return blocked(errno, "create symlink");
    return try_read("/tmp/sbxprobe-link", "read a host path through a symlink");
}
static int a_environ_init(void)
{
    return try_read("/proc/1/environ", "read /proc/1/environ");
}
static int a_write(const char *arg)
{
    int fd = open(arg, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return blocked(errno, arg);
    if (write(fd, "1", 1) < 0) {
        int e = errno;
        close(fd);
        return blocked(e, arg);
    }
    close(fd);
    return escaped(arg);
}
/* CVE-2019-5736: reopen the runtime's binary (our init's exe) for writing. */
static int a_overwrite_exe(void)
{
    int fd = open("/proc/1/exe", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return escaped("opened /proc/1/exe (the runtime binary) for writing");
    }
    if (errno != EACCES && errno != EPERM && errno != ETXTBSY && errno != EROFS)
        printf("INFO /proc/1/exe: %s\n", strerror(errno));
    int e = errno;
    fd = open("/proc/self/exe", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return escaped("opened /proc/self/exe for writing");
    }
    return blocked(e, "open /proc/1/exe and /proc/self/exe for writing");
}
/* CVE-2024-21626: any fd beyond 0-2, or a cwd outside the root. */
static int a_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char cwd[4096];
    int extra = 0;
    if (!d)
        return blocked(errno, "list fds");
    while ((e = readdir(d))) {
        int fd = (int) strtol(e->d_name, NULL, 10);
        char link[512], path[64];
        ssize_t n;
        if (e->d_name[0] == '.' || fd == dirfd(d))
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof(link) - 1);
        link[n > 0 ? n : 0] = '\0';
        printf("INFO fd %d %s\n", fd, link);
        if (fd > 2)
            extra++;
    }
    closedir(d);
    if (!getcwd(cwd, sizeof(cwd)) || cwd[0] != '/')
        return escaped("cwd is outside the root");
    printf("INFO cwd %s\n", cwd);
    return extra ? escaped("an fd beyond 0-2 reached the command")
                 : blocked(EBADF, "only fds 0-2 are open");
}
static int a_ids(void)
{
    printf("INFO uid %d euid %d gid %d egid %d\n", (int) getuid(), (int) geteuid(), (int) getgid(),
           (int) getegid());
    return geteuid() == 0 ? escaped("euid 0") : blocked(EPERM, "not root");
}

/* --- kernel attack surface ----------------------------------------------------------------- */

static int a_init_module(void)
{
    static char img[64];
    return check(syscall(SYS_init_module, img, sizeof(img), ""), "init_module");
}
static int a_finit_module(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return check(syscall(SYS_finit_module, fd, "", 0), "finit_module");
}
static int a_delete_module(void)
{
    return check(syscall(SYS_delete_module, "ext4", O_NONBLOCK), "delete_module");
}
static int a_kexec_load(void)
{
    return check(syscall(SYS_kexec_load, 0, 0, NULL, 0), "kexec_load");
}
static int a_kexec_file_load(void)
{
    return check(syscall(SYS_kexec_file_load, -1, -1, 0, "", 2 /* NOINITRD */), "kexec_file_load");
}
static int a_reboot(void)
{
    /* CAD_OFF only toggles ctrl-alt-del handling: harmless even if it worked */
    return check(reboot(RB_DISABLE_CAD), "reboot(RB_DISABLE_CAD)");
}
static int a_swapon(void)
{
    return check(syscall(SYS_swapon, "/tmp/none", 0), "swapon");
}
static int a_acct(void)
{
    return check(acct(NULL), "acct");
}
static int a_iopl(void)
{
    return check(syscall(SYS_iopl, 3), "iopl(3)");
}
static int a_keyctl(void)
{
    return check(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
                 "keyctl get session keyring");
}
static int a_add_key(void)
{
    return check(syscall(SYS_add_key, "user", "sbx", "x", 1, KEY_SPEC_PROCESS_KEYRING), "add_key");
}
static int a_request_key(void)
{
    return check(syscall(SYS_request_key, "user", "sbx", NULL, 0), "request_key");
}
static int a_bpf(void)
{
    struct bpf_insn prog[] = {
        { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0 },
        { .code = BPF_JMP | BPF_EXIT },
    };
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insn_cnt = 2;
    attr.insns = (uint64_t) (uintptr_t) prog;
    attr.license = (uint64_t) (uintptr_t) "GPL";
    return check(syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr)), "bpf(BPF_PROG_LOAD)");
}
static int a_perf_event_open(void)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof(attr);
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.exclude_kernel = 1;
    return check(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0), "perf_event_open");
}
static int a_userfaultfd(void)
{
    if (syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY) >= 0)
        return escaped("userfaultfd(UFFD_USER_MODE_ONLY)");
    return check(syscall(SYS_userfaultfd, O_CLOEXEC), "userfaultfd");
}
static int a_io_uring(void)
{
    char params[120];
    memset(params, 0, sizeof(params));
    return check(syscall(SYS_io_uring_setup, 4, params), "io_uring_setup");
}
static int a_open_by_handle(void)
{
    char h[64];
    memset(h, 0, sizeof(h));
    return check(syscall(SYS_open_by_handle_at, AT_FDCWD, h, O_RDONLY), "open_by_handle_at");
}

/* --- sockets ------------------------------------------------------------------------------- */

static int a_socket(int domain, int type, int proto, const char *what)
{
    return check(socket(domain, type | SOCK_CLOEXEC, proto), what);
}
static int a_packet(void)
{
    return a_socket(AF_PACKET, SOCK_RAW, htons(3 /* ETH_P_ALL */), "AF_PACKET raw socket");
}
static int a_raw(void)
{
    return a_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP, "AF_INET raw socket");
}
static int a_alg(void)
{
    return a_socket(AF_ALG, SOCK_SEQPACKET, 0, "AF_ALG socket");
}
static int a_vsock(void)
{
    return a_socket(AF_VSOCK, SOCK_STREAM, 0, "AF_VSOCK socket");
}
/* RTM_NEWADDR on lo: needs CAP_NET_ADMIN over the netns. */
static int a_netlink_addr(void)
{
    struct {
        struct nlmsghdr nh;
        struct ifaddrmsg ifa;
        struct rtattr rta;
        uint32_t addr;
    } req;
    char buf[512];
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0)
        return blocked(errno, "netlink socket");
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = sizeof(req);
    req.nh.nlmsg_type = RTM_NEWADDR;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    req.ifa.ifa_family = AF_INET;
    req.ifa.ifa_prefixlen = 32;
    req.ifa.ifa_index = 1;
    req.rta.rta_type = IFA_LOCAL;
    req.rta.rta_len = RTA_LENGTH(4);
    req.addr = htonl(0x0a0a0a0a);
    if (send(s, &req, sizeof(req), 0) < 0)
        return blocked(errno, "netlink send");
    ssize_t n = recv(s, buf, sizeof(buf), 0);
    close(s);
    if (n >= (ssize_t) (sizeof(struct nlmsghdr) + sizeof(struct nlmsgerr))) {
        struct nlmsgerr *e = NLMSG_DATA((struct nlmsghdr *) buf);
        if (e->error < 0)
            return blocked(-e->error, "RTM_NEWADDR on lo");
    }
    return escaped("RTM_NEWADDR on lo");
}
static int a_connect(const char *arg)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_port = htons((uint16_t) strtol(arg ? arg : "1", NULL, 10));
    if (s < 0)
        return blocked(errno, "socket");
    return check(connect(s, (struct sockaddr *) &sa, sizeof(sa)), "connect to 127.0.0.1");
}

/* --- architectures, terminals, personality ----------------------------------------------- */

static int in_child_expect_sigsys(void (*fn)(void), const char *what)
{
    int status;
    pid_t p = fork();
    if (p == 0) {
        fn();
        _exit(0);
    }
    if (p < 0 || waitpid(p, &status, 0) < 0)
        return blocked(errno, "fork");
    if (WIFSIGNALED(status))
        return blocked(EPERM, WTERMSIG(status) == SIGSYS ? "killed by SIGSYS" : what);
    return escaped(what);
}
static void int80(void)
{
    long ret;
    /* 20 is getpid on i386 */
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    (void) ret;
}
static void x32(void)
{
    syscall(0x40000000 | SYS_getpid);
}
static int a_int80(void)
{
    return in_child_expect_sigsys(int80, "32-bit int 0x80 syscall ran");
}
static int a_x32(void)
{
    return in_child_expect_sigsys(x32, "x32 syscall ran");
}
static int a_tiocsti(void)
{
    char c = 'x';
    if (ioctl(0, TIOCSTI, &c) == 0)
        return escaped("TIOCSTI");
    int e = errno;
    /* CVE-2019-10063: the same command with high bits set */
    if (syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c) == 0)
        return escaped("TIOCSTI with high bits");
    return blocked(e, "ioctl TIOCSTI");
}
static int a_personality(void)
{
    if (personality(READ_IMPLIES_EXEC) != -1 && personality(0xffffffff) & READ_IMPLIES_EXEC)
        return escaped("personality(READ_IMPLIES_EXEC)");
    int e = errno;
    if (personality(ADDR_NO_RANDOMIZE) != -1 && personality(0xffffffff) & ADDR_NO_RANDOMIZE)
        return escaped("personality(ADDR_NO_RANDOMIZE)");
    return blocked(e, "personality(READ_IMPLIES_EXEC|ADDR_NO_RANDOMIZE)");
}

/* --- devices ------------------------------------------------------------------------------- */

static int a_mknod(void)
{
    return check(mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)), "mknod block device 8:0");
}
static int a_mknod_char(void)
{
    return check(mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1)), "mknod /dev/mem 1:1");
}
static int a_dev_list(void)
{
    static const char *const ok[] = { "null", "zero", "full", "random", "urandom", "tty",    "ptmx",
                                      "pts",  "shm",  "fd",   "stdin",  "stdout",  "stderr", NULL };
    DIR *d = opendir("/dev");
    struct dirent *e;
    int bad = 0;
    if (!d)
        return blocked(errno, "open /dev");
    while ((e = readdir(d))) {
        int known = e->d_name[0] == '.';
        for (int i = 0; ok[i] && !known; i++)
            known = strcmp(ok[i], e->d_name) == 0;
        if (!known) {
            printf("INFO unexpected /dev/%s\n", e->d_name);
            bad++;
        }
    }
    closedir(d);
    return bad ? escaped("unexpected device nodes") : blocked(ENOENT, "only the minimal /dev");
}

/* --- time and identity --------------------------------------------------------------------- */

static int a_clock_settime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return check(clock_settime(CLOCK_REALTIME, &ts), "clock_settime(CLOCK_REALTIME)");
}
static int a_settimeofday(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return check(settimeofday(&tv, NULL), "settimeofday");
}
static int a_adjtimex(void)
{
    struct timex tx = { .modes = ADJ_SETOFFSET | ADJ_NANO };
    return check(adjtimex(&tx), "adjtimex(ADJ_SETOFFSET)");
}
static int a_sethostname(void)
{
    return check(sethostname("escaped", 7), "sethostname");
}

/* --- resources ----------------------------------------------------------------------------- */

static int a_forkbomb(void)
{
    static pid_t kids[4096];
    int n = 0, e;

    for (;;) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0)
            break;
        kids[n++] = p;
        if (n == 4096) {
            e = 0;
            break;
        }
    }
    e = n == 4096 ? 0 : errno;
    printf("INFO forked %d\n", n);
    fflush(stdout);
    sleep(1); /* hold the pids while the host checks it is still responsive */
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    return e ? blocked(e, "fork") : escaped("forked 4096 processes");
}
static int a_memhog(const char *arg)
{
    long mb = arg ? strtol(arg, NULL, 10) : 256;
    for (long i = 0; i < mb; i++) {
        char *p = malloc(1 << 20);
        if (!p)
            return blocked(ENOMEM, "malloc");
        memset(p, 1, 1 << 20);
    }
    return escaped("allocated it all");
}
static int a_fill(const char *arg)
{
    static char block[1 << 16];
    int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    unsigned long long total = 0;
    if (fd < 0)
        return blocked(errno, arg);
    memset(block, 'x', sizeof(block));
    for (;;) {
        ssize_t n = write(fd, block, sizeof(block));
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            printf("INFO wrote %llu\n", total);
            close(fd);
            unlink(arg);
            return blocked(e, "fill the writable layer");
        }
        total += (unsigned long long) n;
        if (total > (8ULL << 30))
            return escaped("wrote 8G");
    }
}
static int a_status(void)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "re");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4) || !strncmp(line, "Cap", 3) ||
            !strncmp(line, "NoNewPrivs:", 11) || !strncmp(line, "Seccomp:", 8))
            printf("INFO %s", line);
    if (f)
        fclose(f);
    f = fopen("/proc/1/status", "re");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "Name:", 5))
            printf("INFO init %s", line);
    if (f)
        fclose(f);
    printf("INFO pid %d ppid %d\n", (int) getpid(), (int) getppid());
    gethostname(line, sizeof(line));
    printf("INFO hostname %s\n", line);
    return 0;
}

struct attempt {
    const char *name;
    int (*fn0)(void);
    int (*fn1)(const char *);
};

static const struct attempt attempts[] = {
    { "mount-tmpfs", a_mount_tmpfs, NULL },
    { "mount-bind", a_mount_bind, NULL },
    { "mount-proc", a_mount_proc, NULL },
    { "mount-cgroup", a_mount_cgroup, NULL },
    { "umount-mask", a_umount_mask, NULL },
    { "umount-root", a_umount_root, NULL },
    { "fsopen", a_fsopen, NULL },
    { "open-tree", a_open_tree, NULL },
    { "unshare-user", a_unshare_user, NULL },
    { "unshare-ns-net", a_unshare_ns_net, NULL },
    { "clone-newuser", a_clone_newuser, NULL },
    { "clone3-ns", a_clone3_ns, NULL },
    { "setns", a_setns, NULL },
    { "open-init-ns", a_open_init_ns, NULL },
    { "pivot-root", a_pivot_root, NULL },
    { "chroot", a_chroot, NULL },
    { "propagation", a_propagation, NULL },
    { "ptrace-init", a_ptrace_init, NULL },
    { "ptrace-pid", NULL, a_ptrace_pid },
    { "process-vm-readv", a_process_vm_readv, NULL },
    { "kill-pid", NULL, a_kill_pid },
    { "proc-pids", a_proc_pids, NULL },
    { "read", NULL, a_read },
    { "read-proc-root", NULL, a_read_via_proc_root },
    { "read-symlink", NULL, a_read_via_symlink },
    { "environ-init", a_environ_init, NULL },
    { "write", NULL, a_write },
    { "overwrite-exe", a_overwrite_exe, NULL },
    { "fds", a_fds, NULL },
    { "ids", a_ids, NULL },
    { "init-module", a_init_module, NULL },
    { "finit-module", a_finit_module, NULL },
    { "delete-module", a_delete_module, NULL },
    { "kexec-load", a_kexec_load, NULL },
    { "kexec-file-load", a_kexec_file_load, NULL },
    { "reboot", a_reboot, NULL },
    { "swapon", a_swapon, NULL },
    { "acct", a_acct, NULL },
    { "iopl", a_iopl, NULL },
    { "keyctl", a_keyctl, NULL },
    { "add-key", a_add_key, NULL },
    { "request-key", a_request_key, NULL },
    { "bpf", a_bpf, NULL },
    { "perf-event-open", a_perf_event_open, NULL },
    { "userfaultfd", a_userfaultfd, NULL },
    { "io-uring", a_io_uring, NULL },
    { "open-by-handle", a_open_by_handle, NULL },
    { "packet-socket", a_packet, NULL },
    { "raw-socket", a_raw, NULL },
    { "alg-socket", a_alg, NULL },
    { "vsock-socket", a_vsock, NULL },
    { "netlink-addr", a_netlink_addr, NULL },
    { "connect", NULL, a_connect },
    { "int80", a_int80, NULL },
    { "x32", a_x32, NULL },
    { "tiocsti", a_tiocsti, NULL },
    { "personality", a_personality, NULL },
    { "mknod", a_mknod, NULL },
    { "mknod-char", a_mknod_char, NULL },
    { "dev-list", a_dev_list, NULL },
    { "clock-settime", a_clock_settime, NULL },
    { "settimeofday", a_settimeofday, NULL },
    { "adjtimex", a_adjtimex, NULL },
    { "sethostname", a_sethostname, NULL },
    { "forkbomb", a_forkbomb, NULL },
    { "memhog", NULL, a_memhog },
    { "fill", NULL, a_fill },
    { "status", a_status, NULL },
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: sbxprobe ATTEMPT [ARG]\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        if (strcmp(attempts[i].name, argv[1]) != 0)
            continue;
        return attempts[i].fn0 ? attempts[i].fn0() : attempts[i].fn1(argc > 2 ? argv[2] : NULL);
    }
    fprintf(stderr, "sbxprobe: unknown attempt '%s'\n", argv[1]);
    return 2;
}
