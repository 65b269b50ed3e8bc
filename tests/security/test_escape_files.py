"""Reaching host files, the runtime's binary or host fds from inside: each attempt runs in
`spacebox run` and must fail."""
import hashlib
import os
import shutil

import pytest


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "host-secret.txt"
    p.write_text("TOPSECRET\n")
    p.chmod(0o644)
    return str(p)


def test_host_file_not_in_view(probe, blocked, secret):
    blocked(probe("read", secret), "ENOENT")
    blocked(probe("read", "/etc/shadow"), "ENOENT")  # minimal /etc: no passwd databases
    blocked(probe("read", "/work/main/Makefile"), "ENOENT")


def test_host_file_through_proc_root(probe, blocked, secret):
    # /proc/1/root is the init's (our own) root, and the init is not dumpable
    blocked(probe("read-proc-root", secret), "EACCES", "ENOENT")
    blocked(probe("read-proc-root", secret, opts=["--uid", "0"]), "EACCES", "ENOENT")


def test_host_file_through_symlink(probe, blocked, secret):
    # a symlink resolves inside the pivoted root
    blocked(probe("read-symlink", secret), "ENOENT")


def test_init_environ_not_readable(probe, blocked):
    blocked(probe("environ-init", opts=["--uid", "0"]), "EACCES")


@pytest.mark.parametrize("path,errnos", [
    ("/proc/sys/kernel/hostname", ["EROFS", "EACCES"]),
    ("/proc/sys/vm/drop_caches", ["EROFS", "EACCES"]),
    ("/proc/sysrq-trigger", ["ENOENT", "EROFS"]),  # masked (absent on kernels without sysrq)
    ("/sys/kernel/uevent_helper", ["EROFS", "ENOENT", "EACCES"]),
    ("/sys/class/net/lo/mtu", ["EROFS", "EACCES", "ENOENT"]),
    ("/sys/fs/cgroup/memory/release_agent", ["ENOENT"]),  # no cgroupfs inside
    ("/proc/keys", ["EROFS", "EACCES"]),
])
def test_kernel_files_not_writable(probe, blocked, path, errnos):
    blocked(probe("write", path), *errnos)
    blocked(probe("write", path, opts=["--uid", "0"]), *errnos)
    blocked(probe("write", path, opts=["--sys", "--uid", "0"]), *errnos)  # with a real /sys


@pytest.mark.parametrize("path", ["/proc/keys", "/proc/timer_list", "/proc/kallsyms",
                                  "/proc/interrupts"])
def test_masked_proc_files_read_empty(probe, blocked, path):
    blocked(probe("read", path), "ENODATA", "ENOENT")


def test_sys_firmware_masked(box):
    res = box("ls", "-A", "/sys/firmware", opts=["--sys"])
    assert res.rc == 0 and res.out.strip() == ""


def test_overwrite_runtime_binary(probe, blocked, spacebox):
    """CVE-2019-5736: the init inside is our own binary; /proc/1/exe must not open for
    writing, not even as root inside."""
    before = hashlib.sha256(open(spacebox, "rb").read()).hexdigest()
    blocked(probe("overwrite-exe"), "EACCES", "ETXTBSY", "EPERM")
    blocked(probe("overwrite-exe", opts=["--uid", "0"]), "EACCES", "ETXTBSY", "EPERM")
    assert hashlib.sha256(open(spacebox, "rb").read()).hexdigest() == before


def test_leaked_host_fds_do_not_reach_the_command(probe, blocked, secret):
    """CVE-2024-21626: fds the caller leaks (a host directory, a secret file) are closed."""
    dfd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    ffd = os.open(secret, os.O_RDONLY)
    try:
        res = probe("fds", pass_fds=(dfd, ffd))
        blocked(res, "EBADF")
        assert res.info("cwd") == "/"
    finally:
        os.close(dfd)
        os.close(ffd)


def test_leaked_fd_as_working_directory(box, tmp_path):
    """The runc variant: cwd set to /proc/self/fd/N of a leaked host directory."""
    dfd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        res = box("pwd", opts=["--chdir", f"/proc/self/fd/{dfd}"], pass_fds=(dfd,))
        assert res.rc == 125, res.out
        assert "chdir" in res.err
    finally:
        os.close(dfd)


def test_setuid_binary_gives_no_root(probe_dir, box, blocked, tmp_path):
    d = tmp_path / "suid"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    shutil.copy2(probe_dir / "sbxprobe", d / "sbxprobe")
    os.chown(d / "sbxprobe", 0, 0)
    os.chmod(d / "sbxprobe", 0o4755)
    res = box("/suid/sbxprobe", "ids", opts=["--ro-bind", f"{d}:/suid"])
    blocked(res, "EPERM")
    assert res.info("uid") == "1000 euid 1000 gid 1000 egid 1000"


def test_malicious_rootfs_symlinks_stay_inside(spacebox, probe_dir, tmp_path):
    """An image whose /dev, /etc and /tmp are symlinks to host paths: the sandbox builds
    inside its own root and writes nothing to the host (CVE-2026-41579 class)."""
    import subprocess
    root = tmp_path / "evil"
    victim = tmp_path / "victim"
    victim.mkdir()
    (root / "bin").mkdir(parents=True)
    shutil.copy2(probe_dir / "sbxprobe", root / "bin" / "sbxprobe")
    os.symlink(str(victim), root / "dev")
    os.symlink(str(victim), root / "proc")
    os.symlink("../../../../" + str(victim), root / "sys")
    for p in (tmp_path, root, root / "bin"):
        os.chmod(p, 0o755)
    res = subprocess.run([spacebox, "run", "--rootfs", str(root), "--", "/bin/sbxprobe", "ids"],
                         capture_output=True, text=True, timeout=30)
    assert list(victim.iterdir()) == [], "the sandbox created files outside its root"
    # the links resolve inside the root, where they dangle: the sandbox refuses to start
    assert res.returncode == 125, res.stdout
    assert res.stderr.startswith("spacebox: mount /proc:"), res.stderr


@pytest.mark.parametrize("dev", ["/dev/mem", "/dev/kmem", "/dev/kmsg", "/dev/sda", "/dev/vda",
                                 "/dev/port", "/dev/nvidia0", "/dev/net/tun"])
def test_host_device_nodes_absent(probe, blocked, dev):
    blocked(probe("read", dev), "ENOENT")


def test_sys_powercap_masked(box):
    """RAPL energy counters are a power side channel: the directory reads empty."""
    res = box("sh", "-c", "ls -A /sys/devices/virtual/powercap 2>/dev/null | wc -l",
              opts=["--sys"])
    assert res.rc == 0 and res.out.strip() == "0", res.out


def test_host_mounts_made_later_do_not_propagate_in(spacebox, tmp_path):
    """The host mounts something inside a directory the sandbox has bound: with private
    propagation the sandbox keeps seeing the old directory."""
    import subprocess
    import time
    d = tmp_path / "shared"
    (d / "sub").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    os.chmod(d / "sub", 0o755)
    p = subprocess.Popen([spacebox, "run", "--ro-bind", f"{d}:/d", "--", "sh", "-c",
                          "sleep 1; ls -A /d/sub; echo end"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "none", str(d / "sub")])
    try:
        assert mounted.returncode == 0
        (d / "sub" / "marker").write_text("host\n")
        out, _ = p.communicate(timeout=30)
        assert out.split() == ["end"], out
    finally:
        subprocess.run(["umount", str(d / "sub")])
        p.kill()
