"""Escape and abuse attempts, one per call into the kernel, each inside `spacebox run`.
Each row names the defence that must stop it; the errno is its fingerprint:
EPERM from the seccomp filter or a missing capability, ENOSYS from the clone3 rule,
SIGSYS from the architecture check, EACCES from a non-dumpable init."""
import pytest

SECCOMP = "seccomp filter (EPERM)"
CAPS = "no capabilities in any namespace"
ARCH = "seccomp architecture check (SIGSYS kill)"

ATTEMPTS = [
    # research/sandbox.md 3.2 item 1: mount / umount / new mount API
    ("mount-tmpfs", SECCOMP, ["EPERM"]),
    ("mount-bind", SECCOMP, ["EPERM"]),
    ("mount-proc", SECCOMP, ["EPERM"]),
    ("mount-cgroup", SECCOMP, ["EPERM"]),
    ("umount-mask", SECCOMP, ["EPERM"]),
    ("umount-root", SECCOMP, ["EPERM"]),
    ("fsopen", SECCOMP, ["EPERM"]),
    ("open-tree", SECCOMP, ["EPERM"]),
    # 2: new namespaces
    ("unshare-user", SECCOMP, ["EPERM"]),
    ("unshare-ns-net", SECCOMP, ["EPERM"]),
    ("clone-newuser", "seccomp clone flag filter", ["EPERM"]),
    ("clone3-ns", "seccomp: clone3 answers ENOSYS", ["ENOSYS"]),
    # 3, 4: joining namespaces, pivot_root, chroot
    ("setns", SECCOMP + " / non-dumpable init", ["EPERM", "EACCES"]),
    ("open-init-ns", "non-dumpable init, other uid", ["EACCES", "EPERM"]),
    ("pivot-root", SECCOMP, ["EPERM"]),
    ("chroot", SECCOMP, ["EPERM"]),
    # 5: propagation
    ("propagation", "private mount namespace (no shared or slave mounts)", ["EPERM"]),
    # 6: other processes
    ("ptrace-init", SECCOMP, ["EPERM"]),
    ("process-vm-readv", SECCOMP, ["EPERM"]),
    ("proc-pids", "pid namespace with its own /proc", ["ESRCH"]),
    ("environ-init", "non-dumpable init", ["EACCES"]),
    # 10: kernel code and state
    ("init-module", SECCOMP, ["EPERM"]),
    ("finit-module", SECCOMP, ["EPERM"]),
    ("delete-module", SECCOMP, ["EPERM"]),
    ("kexec-load", SECCOMP, ["EPERM"]),
    ("kexec-file-load", SECCOMP, ["EPERM"]),
    ("reboot", SECCOMP, ["EPERM"]),
    ("swapon", SECCOMP, ["EPERM"]),
    ("acct", SECCOMP, ["EPERM"]),
    ("iopl", SECCOMP, ["EPERM"]),
    # 11: keyrings
    ("keyctl", SECCOMP, ["EPERM"]),
    ("add-key", SECCOMP, ["EPERM"]),
    ("request-key", SECCOMP, ["EPERM"]),
    # 12, 13: bpf, perf, userfaultfd, io_uring, handles
    ("bpf", SECCOMP, ["EPERM"]),
    ("perf-event-open", SECCOMP, ["EPERM"]),
    ("userfaultfd", SECCOMP, ["EPERM"]),
    ("io-uring", SECCOMP, ["EPERM"]),
    ("open-by-handle", SECCOMP, ["EPERM"]),
    # 14: sockets
    ("packet-socket", SECCOMP + " (socket family)", ["EPERM"]),
    ("raw-socket", CAPS + " (CAP_NET_RAW)", ["EPERM"]),
    ("alg-socket", SECCOMP + " (socket family)", ["EPERM"]),
    ("vsock-socket", SECCOMP + " (socket family)", ["EPERM"]),
    ("netlink-addr", CAPS + " (CAP_NET_ADMIN)", ["EPERM"]),
    # 15, 16, 17: foreign ABIs, terminal injection, personality
    ("int80", ARCH, ["EPERM"]),
    ("x32", ARCH, ["EPERM"]),
    ("tiocsti", SECCOMP + " (ioctl, 32-bit compare) and setsid", ["EPERM"]),
    ("personality", SECCOMP + " (personality flags)", ["EPERM"]),
    # 18: devices
    ("mknod", CAPS + " (CAP_MKNOD)", ["EPERM"]),
    ("mknod-char", CAPS + " (CAP_MKNOD)", ["EPERM"]),
    ("dev-list", "minimal /dev", ["ENOENT"]),
    # 29, 30: time and identity
    ("clock-settime", SECCOMP, ["EPERM"]),
    ("settimeofday", SECCOMP, ["EPERM"]),
    ("adjtimex", SECCOMP, ["EPERM"]),
    ("sethostname", SECCOMP, ["EPERM"]),
]


@pytest.mark.parametrize("attempt,defence,errnos", ATTEMPTS, ids=[a[0] for a in ATTEMPTS])
def test_attempt_is_refused(probe, blocked, attempt, defence, errnos):
    res = probe(attempt)
    blocked(res, *errnos)


@pytest.mark.parametrize("attempt", ["unshare-user", "mount-tmpfs", "setns", "mknod",
                                     "clock-settime", "keyctl", "bpf"])
def test_refused_even_as_root_inside(probe, blocked, attempt):
    """--uid 0: root of the user namespace, but no capability and the same filter."""
    res = probe(attempt, opts=["--uid", "0"])
    blocked(res, "EPERM", "EACCES")


def test_ptrace_and_signal_host_process(probe, blocked):
    import os
    pid = str(os.getpid())
    blocked(probe("ptrace-pid", pid), "EPERM")
    blocked(probe("kill-pid", pid), "ESRCH")  # host pids do not exist inside
