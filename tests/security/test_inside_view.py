"""What a command sees from inside the sandbox: an unprivileged user with nothing to
escalate with, under a tiny init, in its own namespaces."""
import os
import re
import socket


def test_identity_caps_nnp_seccomp(probe):
    res = probe("status")
    assert res.rc == 0, res.err
    assert res.info("Uid:").split() == ["1000"] * 4
    assert res.info("Gid:").split() == ["1000"] * 4
    for cap in ("CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"):
        assert int(res.info(cap), 16) == 0, f"{cap} {res.info(cap)}"
    assert res.info("NoNewPrivs:") == "1"
    assert res.info("Seccomp:") == "2"  # filter mode


def test_pid1_is_the_sandbox_init(probe):
    res = probe("status")
    assert res.info("pid") == "2 ppid 1", res.out  # the command is the init's only child
    assert res.info("init Name:") == "spacebox"


def test_uid_zero_inside_still_has_no_capabilities(probe):
    res = probe("status", opts=["--uid", "0"])
    assert res.info("Uid:").split() == ["0"] * 4
    assert int(res.info("CapEff:"), 16) == 0 and int(res.info("CapBnd:"), 16) == 0
    assert res.info("NoNewPrivs:") == "1"


def test_host_ids_never_appear(box):
    """Inside ids map onto an unprivileged host range: host root is not mapped at all."""
    res = box("cat", "/proc/self/uid_map", "/proc/self/gid_map")
    assert res.rc == 0, res.err
    rows = [line.split() for line in res.out.splitlines()]
    assert len(rows) == 2
    for inside, host, count in rows:
        assert inside == "0" and count == "65536"
        assert int(host) >= 65536, "a host uid below 65536 is mapped"


def test_two_sandboxes_get_different_host_ranges(box, spacebox):
    import subprocess
    a = subprocess.Popen([spacebox, "run", "--", "sh", "-c", "cat /proc/self/uid_map; sleep 1"],
                         stdout=subprocess.PIPE, text=True)
    b = box("cat", "/proc/self/uid_map")
    out_a, _ = a.communicate(timeout=30)
    assert out_a.split()[1] != b.out.split()[1]


def test_hostname_is_private_and_host_unchanged(box):
    before = socket.gethostname()
    res = box("hostname", opts=["--hostname", "space-demo"])
    assert res.out.strip() == "space-demo"
    assert socket.gethostname() == before


def test_only_loopback_by_default(box):
    res = box("cat", "/proc/net/dev")
    ifaces = [line.split(":")[0].strip() for line in res.out.splitlines()[2:]]
    assert ifaces == ["lo"], res.out


def test_environment_starts_clean(box, monkeypatch):
    monkeypatch.setenv("SPACEPORT_SECRET_TOKEN", "hunter2")
    res = box("env", opts=["--env", "A=1"], env=os.environ)
    keys = sorted(line.split("=", 1)[0] for line in res.out.splitlines())
    assert keys == ["A", "HOME", "PATH"], res.out


def test_no_host_cgroup_paths_visible(box):
    res = box("cat", "/proc/self/cgroup", opts=["--memory", "64M", "--pids", "64"])
    for line in res.out.splitlines():
        assert line.split(":", 2)[2] == "/", res.out


def test_rlimits(box):
    res = box("sh", "-c", "ulimit -c; ulimit -n", opts=["--nofile", "512"])
    assert res.out.split() == ["0", "512"]


def test_root_is_read_only_and_tmp_is_bounded(box):
    res = box("sh", "-c", "touch /x 2>&1; df -k /tmp | tail -1", opts=["--upper-size", "32M"])
    assert "Read-only file system" in res.out
    size_kb = int(res.out.splitlines()[-1].split()[1])
    assert size_kb == 32 * 1024


def test_writable_mounts_are_nosuid_and_nodev(box):
    """Every mount the command can write to is nosuid; all but device nodes and devpts are
    nodev too; and the root itself is read-only."""
    res = box("cat", "/proc/self/mountinfo")
    assert res.rc == 0, res.err
    writable = 0
    for line in res.out.splitlines():
        fields = line.split()
        mnt, opts = fields[4], fields[5].split(",")
        if mnt == "/":
            assert "ro" in opts, line
        if "rw" not in opts:
            continue
        writable += 1
        assert "nosuid" in opts, line
        device = mnt in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                         "/dev/tty", "/dev/pts")
        if not device:
            assert "nodev" in opts, line
    assert writable >= 3  # /tmp, /dev/shm, the device nodes at least
