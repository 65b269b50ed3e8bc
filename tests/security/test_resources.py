"""Resource abuse: each bomb runs inside `spacebox run` and is held inside the sandbox."""
import os
import select
import shutil
import subprocess
import time

import pytest

V1 = "/sys/fs/cgroup"


def cgroup_dirs(name):
    """Every directory of the sandbox's group that exists on any hierarchy."""
    found = []
    for ctl in ("memory", "pids", "cpu", "freezer", "devices", "unified", ""):
        p = os.path.join(V1, ctl, "spaceport", name)  # "": a pure cgroup v2 host
        if os.path.isdir(p):
            found.append(p)
    return found


def test_fork_bomb_held_by_pids_limit(spacebox, probe_dir):
    p = subprocess.Popen([spacebox, "run", "--pids", "64", "--name", "t-forkbomb", "--ro-bind",
                          f"{probe_dir}:/probe", "--", "/probe/sbxprobe", "forkbomb"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([p.stdout], [], [], 30)
        assert ready, "the fork bomb never reported"
        line = p.stdout.readline()
        assert line.startswith("INFO forked"), line
        forked = int(line.split()[2])
        assert 0 < forked < 64
        # while the bomb holds every pid it may have, the host still starts processes fast
        t0 = time.monotonic()
        subprocess.run(["true"], check=True, timeout=10)
        assert time.monotonic() - t0 < 1.0
        out, err = p.communicate(timeout=30)
        assert "BLOCKED EAGAIN" in out, out + err
    finally:
        p.kill()
        p.wait()
    assert cgroup_dirs("t-forkbomb") == []


def test_memory_bomb_killed_inside_and_reported(probe):
    res = probe("memhog", "512", opts=["--memory", "64M", "--name", "t-memhog"], timeout=60)
    assert res.rc == 137, (res.out, res.err)
    assert "out of memory" in res.err and "OOM" in res.err
    assert cgroup_dirs("t-memhog") == []


def test_memory_limit_is_set_on_v1_controllers(spacebox):
    """The cgroup exists while the sandbox runs, with the limits written (this host keeps
    memory, pids and cpu on cgroup v1)."""
    p = subprocess.Popen([spacebox, "run", "--memory", "96M", "--pids", "50", "--cpus", "0.5",
                          "--name", "t-limits", "--", "sleep", "3"])
    try:
        for _ in range(100):
            if cgroup_dirs("t-limits"):
                break
            time.sleep(0.02)
        mem = os.path.join(V1, "memory", "spaceport", "t-limits")
        if not os.path.isdir(mem):
            pytest.skip("memory controller not on v1 here")
        time.sleep(0.2)
        assert open(f"{mem}/memory.limit_in_bytes").read().strip() == str(96 << 20)
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            assert open(f"{mem}/memory.memsw.limit_in_bytes").read().strip() == str(96 << 20)
        pids = os.path.join(V1, "pids", "spaceport", "t-limits")
        assert open(f"{pids}/pids.max").read().strip() == "50"
        cpu = os.path.join(V1, "cpu", "spaceport", "t-limits")
        assert open(f"{cpu}/cpu.cfs_quota_us").read().strip() == "50000"
        procs = open(f"{mem}/cgroup.procs").read().split()
        assert len(procs) == 2  # the init and sleep
        dev = os.path.join(V1, "devices", "spaceport", "t-limits")
        if os.path.isdir(dev):
            allowed = open(f"{dev}/devices.list").read()
            assert "a *:* rwm" not in allowed and "c 1:3 rwm" in allowed
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert p.returncode == 128 + 15
    assert cgroup_dirs("t-limits") == []


def test_fill_default_writable_layer(probe, blocked):
    res = probe("fill", "/tmp/big", opts=["--upper-size", "16M"])
    blocked(res, "ENOSPC")
    assert int(res.info("wrote")) <= 16 << 20


def test_fill_root_is_read_only(probe, blocked):
    blocked(probe("fill", "/big"), "EROFS")


@pytest.fixture
def rootfs(tmp_path, probe_dir):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    shutil.copy2(probe_dir / "sbxprobe", root / "bin" / "sbxprobe")
    os.chmod(tmp_path, 0o755)
    os.chmod(root, 0o755)
    os.chmod(root / "bin", 0o755)
    os.chmod(root / "tmp", 0o1777)
    return root


def test_fill_overlay_writable_layer(box, blocked, rootfs):
    res = box("/bin/sbxprobe", "fill", "/tmp/big", opts=["--rootfs", str(rootfs),
                                                          "--upper-size", "16M"])
    blocked(res, "ENOSPC")
    assert int(res.info("wrote")) <= 16 << 20
    assert list((rootfs / "tmp").iterdir()) == []  # the image itself is untouched


def test_timeout_kills_the_sandbox(box):
    t0 = time.monotonic()
    res = box("sleep", "30", opts=["--timeout", "0.5"])
    assert time.monotonic() - t0 < 5
    assert res.rc == 137 and "timed out" in res.err


def test_cpu_hog_is_throttled(spacebox):
    """--cpus 0.05: a busy loop gets a twentieth of a CPU (cpu.stat shows throttling)."""
    name = f"t-cpu-{os.getpid()}"
    p = subprocess.Popen([spacebox, "run", "--cpus", "0.05", "--name", name, "--", "sh", "-c",
                          "while :; do :; done"])
    try:
        cpu = os.path.join(V1, "cpu", "spaceport", name)
        for _ in range(100):
            if os.path.isdir(cpu):
                break
            time.sleep(0.02)
        if not os.path.isdir(cpu):
            pytest.skip("cpu controller not on v1 here")
        assert open(f"{cpu}/cpu.cfs_quota_us").read().strip() == "5000"
        # it wants a whole CPU and may use 5 ms of each 100 ms: periods end throttled (give a
        # loaded machine up to 5 s to run it that much)
        for _ in range(50):
            time.sleep(0.1)
            stat = dict(line.split() for line in open(f"{cpu}/cpu.stat"))
            if int(stat["nr_throttled"]) >= 3:
                break
        assert int(stat["nr_throttled"]) >= 3, stat
    finally:
        p.kill()
        p.wait(timeout=30)


def test_dev_shm_is_bounded(box):
    res = box("df", "-k", "/dev/shm")
    assert int(res.out.splitlines()[-1].split()[1]) == 64 * 1024


def test_open_file_limit(box):
    code = ("import os\nn = 0\ntry:\n    while True:\n        os.open('/dev/null', os.O_RDONLY)\n"
            "        n += 1\nexcept OSError as e:\n    print(n, e.errno)\n")
    res = box("python3", "-c", code, opts=["--nofile", "64"])
    n, err = res.out.split()
    assert int(n) <= 64 and int(err) == 24  # EMFILE


def test_ipc_namespace_hides_host_segments(box):
    """SysV IPC is per namespace: a host shared-memory segment is not visible inside."""
    if not shutil.which("ipcmk"):
        pytest.skip("ipcmk missing")
    out = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True).stdout
    shmid = out.strip().split()[-1]
    try:
        res = box("cat", "/proc/sysvipc/shm")
        ids = [line.split()[1] for line in res.out.splitlines()[1:]]
        assert shmid not in ids and ids == [], res.out
    finally:
        subprocess.run(["ipcrm", "-m", shmid], check=False)


def test_shm_fill_is_charged_to_the_sandbox(probe):
    """/dev/shm pages count against the memory limit: filling it under --memory 32M ends
    in an OOM kill inside (or ENOSPC), never in host memory pressure."""
    res = probe("fill", "/dev/shm/big", opts=["--memory", "32M"], timeout=60)
    assert res.rc == 137 or "BLOCKED" in res.out, (res.rc, res.out, res.err)
    if res.rc == 137:
        assert "out of memory" in res.err
    else:
        assert int(res.info("wrote")) <= 64 << 20
