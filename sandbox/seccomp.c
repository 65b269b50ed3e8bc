/* The seccomp profile: a deny list built from what Docker's default profile refuses,
 * plus argument filters for clone (no namespace flags), socket (no packet, key, alg or
 * vsock sockets), ioctl (no TIOCSTI/TIOCLINUX terminal injection) and personality.
 * Refused calls fail with EPERM; clone3 fails with ENOSYS so libc falls back to clone,
 * whose flags a filter can read.  Only the native architecture passes: a 32-bit or x32
 * entry kills the process, which closes the socketcall/x32 bypass class. */
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cleanup.h"
#include "internal.h"
#include "util.h"
#include "banned.h"

const char *const sbx__seccomp_denied[] = {
    /* mounts and namespaces: the sandbox's layout is final */
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "setns",
    "unshare",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "move_mount",
    "mount_setattr",
    /* kernel code and state */
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "bpf",
    "perf_event_open",
    "lookup_dcookie",
    "syslog",
    "iopl",
    "ioperm",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "nfsservctl",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vhangup",
    "sethostname",
    "setdomainname",
    /* keyrings are not namespaced */
    "keyctl",
    "add_key",
    "request_key",
    /* race wideners and rarely needed attack surface */
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    /* other processes */
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    /* the host clock */
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "settimeofday",
    "stime",
    NULL,
};

static const unsigned long ns_flags[] = {
    CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET, CLONE_NEWTIME,
};

static const int denied_families[] = { AF_PACKET, AF_KEY, AF_ALG, AF_VSOCK };

/* personality flags that weaken ASLR or W^X (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) */
static const unsigned long bad_personality[] = {
    0x0040000, 0x0080000, 0x0100000, 0x0200000, 0x0400000,
    0x0800000, 0x1000000, 0x2000000, 0x4000000, 0x8000000,
};

static void ctx_releasep(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}

int sbx__seccomp_build(struct sock_fprog *ret, struct rt_err *err)
{
    _cleanup_(ctx_releasep) scmp_filter_ctx ctx = NULL;
    _cleanup_close_ int fd = -1;
    _cleanup_free_ struct sock_filter *insns = NULL;
    const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    struct stat st;
    ssize_t n;
    int r;

    ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return rt_err_set(err, ENOMEM, "seccomp_init");
    if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0)
        return rt_err_set(err, -r, "seccomp: kill on foreign architecture");
    /* no_new_privs is set by us, in the right place */
    if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
        return rt_err_set(err, -r, "seccomp: nnp attribute");
    for (size_t i = 0; sbx__seccomp_denied[i]; i++) {
        int nr = seccomp_syscall_resolve_name(sbx__seccomp_denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not on this architecture */
        r = seccomp_rule_add(ctx, eperm, nr, 0);
        if (r < 0 && r != -EDOM)
            return rt_err_set(err, -r, "seccomp: deny '%s'", sbx__seccomp_denied[i]);
    }
    if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
        return rt_err_set(err, -r, "seccomp: clone3");
    for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++) {
        r = seccomp_rule_add(ctx, eperm, SCMP_SYS(clone), 1,
                             SCMP_A0_64(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
        if (r < 0)
            return rt_err_set(err, -r, "seccomp: clone namespace flag %#lx", ns_flags[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(denied_families); i++) {
        r = seccomp_rule_add(ctx, eperm, SCMP_SYS(socket), 1,
                             SCMP_A0_32(SCMP_CMP_EQ, (uint32_t) denied_families[i]));
        if (r < 0)
            return rt_err_set(err, -r, "seccomp: socket family %d", denied_families[i]);
    }
    /* the kernel reads ioctl's command as 32 bits: mask, or high bits would slip by
     * (CVE-2019-10063) */
    static const unsigned long tty_inject[] = { TIOCSTI, TIOCLINUX };
    for (size_t i = 0; i < ARRAY_SIZE(tty_inject); i++) {
        r = seccomp_rule_add(ctx, eperm, SCMP_SYS(ioctl), 1,
                             SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffUL, tty_inject[i]));
        if (r < 0)
            return rt_err_set(err, -r, "seccomp: ioctl %#lx", tty_inject[i]);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad_personality); i++) {
        r = seccomp_rule_add(ctx, eperm, SCMP_SYS(personality), 1,
                             SCMP_A0_32(SCMP_CMP_MASKED_EQ, (uint32_t) bad_personality[i],
                                        (uint32_t) bad_personality[i]));
        if (r < 0)
            return rt_err_set(err, -r, "seccomp: personality %#lx", bad_personality[i]);
    }

    fd = memfd_create("sbx-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return rt_err_set(err, errno, "seccomp: memfd_create");
    if ((r = seccomp_export_bpf(ctx, fd)) < 0)
        return rt_err_set(err, -r, "seccomp: export");
    if (fstat(fd, &st) < 0)
        return rt_err_set(err, errno, "seccomp: fstat");
    if (st.st_size <= 0 || st.st_size % (off_t) sizeof(struct sock_filter) ||
        st.st_size / (off_t) sizeof(struct sock_filter) > BPF_MAXINSNS)
        return rt_err_set(err, EINVAL, "seccomp: exported program has %lld bytes",
                          (long long) st.st_size);
    insns = malloc((size_t) st.st_size);
    if (!insns)
        return rt_err_set(err, ENOMEM, "seccomp: allocate program");
    if (lseek(fd, 0, SEEK_SET) < 0)
        return rt_err_set(err, errno, "seccomp: lseek");
    n = rt_read_all(fd, insns, (size_t) st.st_size);
    if (n != st.st_size)
        return rt_err_set(err, n < 0 ? (int) -n : EIO, "seccomp: read program back");
    ret->len = (unsigned short) (st.st_size / (off_t) sizeof(struct sock_filter));
    ret->filter = TAKE_PTR(insns);
    return 0;
}
