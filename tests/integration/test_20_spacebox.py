"""spacebox run: the CLI contract of DESIGN.md (options, exit statuses, error lines)."""
import os
import signal
import socket
import subprocess
import time

import pytest


@pytest.fixture(scope="module")
def sb(bin_dir):
    if os.geteuid() != 0:
        pytest.skip("spacebox needs root on the host")
    return str(bin_dir / "spacebox")


def run(sb, *args, timeout=60, **kw):
    return subprocess.run([sb, "run", *args], capture_output=True, text=True, timeout=timeout,
                          **kw)


def test_exit_status_is_the_commands(sb):
    assert run(sb, "--", "true").returncode == 0
    assert run(sb, "--", "sh", "-c", "exit 42").returncode == 42


def test_killed_by_signal_is_128_plus_n(sb):
    assert run(sb, "--", "sh", "-c", "kill -USR1 $$").returncode == 128 + signal.SIGUSR1


def test_not_found_is_127_and_not_executable_is_126(sb):
    r = run(sb, "--", "no-such-command-xyz")
    assert r.returncode == 127
    assert r.stderr.count("\n") == 1 and "no-such-command-xyz" in r.stderr
    r = run(sb, "--", "/etc/passwd")
    assert r.returncode == 126 and "Permission denied" in r.stderr


def test_setup_failure_is_125_with_one_line(sb):
    r = run(sb, "--rootfs", "/nonexistent-rootfs", "--", "true")
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1
    assert "rootfs '/nonexistent-rootfs'" in r.stderr and "No such file" in r.stderr
    r = run(sb, "--chdir", "/nonexistent", "--", "true")
    assert r.returncode == 125 and "chdir '/nonexistent'" in r.stderr


def test_usage_errors_exit_2(sb):
    r = run(sb, "--no-such-option", "--", "true")
    assert r.returncode == 2 and "--no-such-option" in r.stderr
    r = run(sb, "--memory", "lots", "--", "true")
    assert r.returncode == 2 and "--memory" in r.stderr
    r = run(sb)
    assert r.returncode == 2 and "no command" in r.stderr
    r = run(sb, "--bind", "relative:/x", "--", "true")
    assert r.returncode == 2 and "absolute" in r.stderr


def test_bind_is_writable_and_ro_bind_is_not(sb, tmp_path):
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(rw, 0o777)
    os.chmod(ro, 0o755)
    (ro / "f").write_text("read me\n")
    r = run(sb, "--bind", f"{rw}:/data", "--ro-bind", f"{ro}:/input", "--",
            "sh", "-c", "cat /input/f; echo out > /data/out; echo x > /input/g")
    assert "read me" in r.stdout
    assert (rw / "out").read_text() == "out\n"
    assert "Read-only file system" in r.stderr
    assert not (ro / "g").exists()
    # the file belongs to the sandbox's unprivileged host uid, never to host root
    assert (rw / "out").stat().st_uid >= 65536


def test_tmpfs_chdir_env_uid_hostname(sb):
    r = run(sb, "--tmpfs", "/work", "--chdir", "/work", "--env", "GREETING=hi", "--uid", "4242",
            "--hostname", "box1", "--", "sh", "-c",
            "touch f && pwd && echo $GREETING && id -u && id -g && hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["/work", "hi", "4242", "4242", "box1"]


def test_net_host_shares_the_host_network(sb):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)"
        assert run(sb, "--net", "host", "--", "python3", "-c", code).returncode == 0
        assert run(sb, "--", "python3", "-c", code).returncode != 0  # default: own loopback
    finally:
        srv.close()


def test_rootfs_with_layer_and_writable_upper(sb, tmp_path):
    root = tmp_path / "root"
    layer = tmp_path / "layer"
    for d in (root / "usr", root / "tmp", layer / "app"):
        d.mkdir(parents=True)
    (layer / "app" / "hello.txt").write_text("from the layer\n")
    for p in (tmp_path, root, root / "usr", layer, layer / "app"):
        os.chmod(p, 0o755)
    os.chmod(root / "tmp", 0o1777)
    os.symlink("usr/bin", root / "bin")
    os.symlink("usr/lib", root / "lib")
    os.symlink("usr/lib64", root / "lib64")
    r = run(sb, "--rootfs", str(root), "--layer", str(layer), "--ro-bind", "/usr:/usr", "--",
            "sh", "-c", "cat /app/hello.txt; echo t > /tmp/t && cat /tmp/t; "
                        "echo x > /app/x 2>/dev/null || echo denied; stat -c %u /app")
    assert r.returncode == 0, r.stderr
    # image files owned by host root show as root inside (idmapped), so user 1000 may not
    # write to /app, but may write to the world-writable /tmp
    assert r.stdout.split() == ["from", "the", "layer", "t", "denied", "0"]
    r = run(sb, "--uid", "0", "--rootfs", str(root), "--layer", str(layer), "--ro-bind",
            "/usr:/usr", "--", "sh", "-c", "echo new > /app/new.txt && cat /app/new.txt")
    assert r.returncode == 0 and r.stdout == "new\n", r.stderr
    assert not (layer / "app" / "new.txt").exists()  # writes land in the upper layer only


def test_gpu_device_is_bound_and_allowed(sb):
    dev = "/dev/net/tun"  # any character device works; no GPU on the test machine
    if not os.path.exists(dev):
        pytest.skip(f"{dev} missing")
    st = os.stat(dev)
    r = run(sb, "--gpu", dev, "--name", "t-gpu", "--", "sh", "-c",
            f"stat -c '%F %t:%T' {dev}; cat /proc/self/cgroup >/dev/null")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == f"{os.major(st.st_rdev):x}:{os.minor(st.st_rdev):x}"


def test_signals_are_forwarded(sb):
    p = subprocess.Popen([sb, "run", "--", "sleep", "30"])
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 128 + signal.SIGTERM


def test_timeout(sb):
    t0 = time.monotonic()
    r = run(sb, "--timeout", "0.3", "--", "sleep", "30")
    assert r.returncode == 137 and "timed out" in r.stderr
    assert time.monotonic() - t0 < 5


def test_stdin_and_stdout_pass_through(sb):
    r = subprocess.run([sb, "run", "--", "tr", "a-z", "A-Z"], input="spaceport\n",
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "SPACEPORT\n"


def test_sandbox_dies_with_spacebox(sb):
    """SIGKILL to spacebox (no chance to forward anything) still ends the sandbox."""
    marker = "31.4159"
    p = subprocess.Popen([sb, "run", "--", "sleep", marker])
    time.sleep(0.3)
    p.kill()
    p.wait(timeout=10)
    for _ in range(100):
        left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True,
                              text=True).stdout.split()
        if not left:
            break
        time.sleep(0.05)
    assert left == []
