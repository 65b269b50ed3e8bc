"""ZeroGPU through a real runtimed: a Space on the zero-a10g tier runs in its sandbox over
a fake one-GPU pool (gpu_backend fake, nodes on the LOCAL/EXPERIMENTAL majors 120-122
made by the test: opening an allowed one is ENXIO, a denied one EPERM), and the REAL
`spaces` client (0.51.3, the test venv's) drives the device API runtimed serves inside
that Space's network namespace.

Where the client runs: the Space itself is a static one (python's http.server, no build)
so the module stays fast; the client runs as a process OF that Space instead of being
pip-installed into it: zerogpu_in_space.py is started inside the Space's network and pid
namespaces and its devices cgroup (the mount namespace stays the host's, for the test
venv).  That is all the device API can see of a caller: its listener is only reachable
in that network namespace, and /allow's pid is looked up among the Space's processes.

One Space serves the whole module; a second, plain Space shows the API is not
reachable from another Space, and the host shows it is not reachable from outside."""
import contextlib
import errno
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from test_5_support import Runtimed
from test_31_zerogpu_support import jwt, visitor_key
from test_70_support import make_repo, push

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Spaces run in sandboxes: root")

PORT = 7911  # RT_GPUZERO_PORT: the same inside every zero Space
HERE = pathlib.Path(__file__).parent


def fake_nodes(d: pathlib.Path):
    """gpu_fake_mknod()'s nodes for 1xa10g: majors 120/121, which no driver takes."""
    d.mkdir()
    (d / "nvidia-caps").mkdir()
    for name, maj, mnr in (("nvidiactl", 120, 255), ("nvidia-modeset", 120, 254),
                           ("nvidia-uvm", 121, 0), ("nvidia-uvm-tools", 121, 1),
                           ("nvidia0", 120, 0)):
        os.mknod(d / name, 0o600 | 0o020000, os.makedev(maj, mnr))
        # crw-rw-rw- like the driver's: only the device cgroup stands between an app
        # (uid 1000 in its user namespace) and the node
        os.chmod(d / name, 0o666)


def wait_stage(rt, name, token, stages, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = rt.get(f"/api/spaces/alice/{name}/runtime", token).json()
        if j["stage"] in stages:
            return j
        time.sleep(0.1)
    raise AssertionError(f"{name}: waited for {stages}, got {j}: {rt.log()[-3000:]}")


def sandbox_pid(rt, name):
    """The sandbox init of alice/NAME's running instance, from its shim's status.json."""
    for st in sorted((pathlib.Path(rt.data_dir) / "run").glob("*/*/status.json")):
        spec = json.loads((st.parent / "spec.json").read_text())
        j = json.loads(st.read_text())
        if spec["id"] == f"alice/{name}" and j.get("state") == "running":
            return j["pid"]
    raise AssertionError(f"no running instance of alice/{name}")


def devices_cgroup(pid):
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctl, path = line.split(":", 2)
        if "devices" in ctl.split(","):
            return pathlib.Path("/sys/fs/cgroup/devices" + path)
    pytest.skip("no cgroup v1 devices controller here")


class Space:
    def __init__(self, rt, name):
        self.rt, self.name = rt, name
        self.refresh()

    def refresh(self):
        self.pid = sandbox_pid(self.rt, self.name)
        self.devcg = devices_cgroup(self.pid)

    def argv(self, *cmd):
        """@cmd as a process of the Space: its devices cgroup, network and pid namespaces."""
        return ["sh", "-c", f'echo 0 > "$0/cgroup.procs" && exec "$@"', str(self.devcg),
                "nsenter", f"--net=/proc/{self.pid}/ns/net", f"--pid=/proc/{self.pid}/ns/pid",
                "--", *cmd]

    def client(self, scenario, *args, timeout=60):
        p = subprocess.run(self.argv(sys.executable, str(HERE / "zerogpu_in_space.py"), scenario,
                                     *args), capture_output=True, text=True, timeout=timeout)
        assert p.returncode == 0, f"{p.stdout}\n{p.stderr}\n{self.rt.log()[-2000:]}"
        return [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]


@pytest.fixture(scope="module")
def env(bin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("rt33")
    dev = pathlib.Path(f"/dev/spaceport-test33-{os.getpid()}")
    fake_nodes(dev)
    conf = base / "runtimed.yaml"
    conf.write_text(f"gpu_backend: fake\ngpu_fake: 1xa10g:24G\ngpu_fake_dev_dir: {dev}\n"
                    "zero_gpus: 1\nlight_sleep_ms: -1\n")
    rt = Runtimed(bin_dir, base / "data", config=conf).start()
    try:
        rt.add_user("alice")
        token = rt.token("alice", "write")
        for name, hw in (("zero", "zero-a10g"), ("plain", "cpu-basic")):
            r = rt.create_space("alice", name, token, sdk="static", hardware=hw)
            assert r.status_code == 200, r.text
            work = make_repo(base / "w" / name, "hello-static")
            push(rt, work, "alice", name, token)
        for name in ("zero", "plain"):
            j = wait_stage(rt, name, token, ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
            assert j["stage"] == "RUNNING", (j, rt.log()[-3000:])
        yield rt, token, dev
    finally:
        for name in ("zero", "plain"):
            rt.delete(f"/api/repos/delete", rt.admin, json={"type": "space",
                                                             "name": f"alice/{name}"})
        deadline = time.time() + 20
        while time.time() < deadline and any(
                json.loads(p.read_text()).get("state") == "running"
                for p in (pathlib.Path(rt.data_dir) / "run").glob("*/*/status.json")):
            time.sleep(0.2)
        rt.stop()
        for p in sorted(dev.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        dev.rmdir()


@pytest.fixture(scope="module")
def zero(env):
    rt, _, _ = env
    return Space(rt, "zero")


@pytest.fixture
def node(env):
    return str(env[2] / "nvidia0")


def test_zero_space_environment(env, zero):
    rt, _, dev = env
    # The app (the sandbox init's descendants) sees the device API's address and the
    # fake-device variables the client emulates CUDA with.
    envs = []
    for p in [zero.pid, *map(int, pathlib.Path(f"/proc/{zero.pid}/task/{zero.pid}/children")
                             .read_text().split())]:
        envs.append(dict(kv.split("=", 1) for kv in
                         pathlib.Path(f"/proc/{p}/environ").read_text().split("\0") if "=" in kv))
    e = next(e for e in envs if "SPACES_ZERO_GPU" in e)
    assert e["SPACES_ZERO_GPU"] == "true"
    assert e["SPACES_ZERO_DEVICE_API_URL"] == f"http://127.0.0.1:{PORT}"
    assert e["ZEROGPU_CUDA_DEVICE_NAME"] == "Fake a10g"
    assert int(e["ZEROGPU_CUDA_TOTAL_MEMORY"]) == 24 * 2**30
    # The pool's nodes are bound in, and denied to the sandbox's own processes.
    assert f"c 120:0" not in (zero.devcg / "devices.list").read_text()


def test_not_reachable_from_the_host_or_another_space(env, zero):
    rt, _, _ = env
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    plain = Space(rt, "plain")
    probe = ("import socket,sys\ntry:\n socket.create_connection(('127.0.0.1', %d), 2)\n"
             " print('connected')\nexcept ConnectionRefusedError:\n print('refused')" % PORT)
    p = subprocess.run(plain.argv(sys.executable, "-c", probe), capture_output=True, text=True,
                       timeout=30)
    assert p.stdout.strip() == "refused", p.stdout + p.stderr
    p = subprocess.run(zero.argv(sys.executable, "-c", probe), capture_output=True, text=True,
                       timeout=30)
    assert p.stdout.strip() == "connected", p.stdout + p.stderr


def test_grant_allow_release_from_inside(zero, node):
    grant, rel, foreign = zero.client("grant", node)
    assert grant["index"] == 0 and grant["uuid"].startswith("GPU-fa4e")
    assert grant["main_open"] == errno.EPERM, grant  # the app's process: denied
    assert grant["worker"] == {"allowed": True, "open": errno.ENXIO}, grant  # allowed
    assert rel == {"release": 200, "again": 404}
    # Not a pid of this Space: refused, and the lease goes back (the call cannot run).
    assert foreign == {"foreign": 403, "release2": 404}


def test_worker_past_its_deadline_is_killed(zero, node):
    (r,) = zero.client("expire", node)
    assert r["worker"] == {"allowed": True, "open": errno.ENXIO}
    assert r["signal"] == 9 and 1.5 <= r["after"] < 15, r
    assert r["release"] == 404  # the lease ended at its deadline


def test_crashed_worker_gives_the_lease_back(zero, node):
    (r,) = zero.client("crash", node)
    assert r["worker"]["allowed"] and r["back"] and r["release"] == 204, r


def test_queue_streams_one_event_per_chunk(zero, node):
    q, rel = zero.client("queue", node)
    assert q["head"] == {"status": 200, "reason": "node"}
    events = [c for c in q["chunks"] if not c.startswith("event: ping")]
    assert len(events) == 1 and events[0].startswith("event: succeeded\ndata: {"), q
    assert all(c.endswith("\n\n") and c.count("event:") == 1 for c in q["chunks"]), q
    assert q["queue"] == 0 and rel == {"release": 204}


def test_quota_429_with_left_and_wait(env, zero, node):
    rt, _, _ = env
    token = jwt(visitor_key(rt.proxy.encode()), ip="203.0.113.9")
    first, second = zero.client("quota", node, token)
    assert first == {"first": "ScheduleResponse", "auth": None, "release": 204}
    assert second["second"] == "QuotaInfos" and 118 <= second["left"] <= 120, second
    assert 86000 <= second["wait"] <= 86400, second


def test_leases_are_listed_for_admins_and_the_quota_for_users(env, zero, node, bin_dir):
    rt, token, _ = env
    p = subprocess.Popen(zero.argv(sys.executable, str(HERE / "zerogpu_in_space.py"), "hold",
                                   node), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        held = json.loads(p.stdout.readline())
        assert held["worker"]["allowed"], held
        j = rt.get("/api/admin/gpu-leases", rt.admin).json()
        assert j["pool"] == 1 and len(j["leases"]) == 1 and j["queue"] == [], j
        lease = j["leases"][0]
        assert lease["space"] == "alice/zero" and lease["unit"].startswith("GPU-fa4e")
        assert 0 < lease["deadlineInMs"] <= 30000 and lease["pid"] > 0, lease
        assert rt.get("/api/admin/gpu-leases", token).status_code == 403
        env_ = {k: v for k, v in os.environ.items() if not k.startswith("SPACEPORT_")}
        env_.update(SPACEPORT_URL=rt.url, SPACEPORT_TOKEN=rt.admin)
        out = subprocess.run([str(bin_dir / "spacectl"), "gpu", "leases"], capture_output=True,
                             text=True, env=env_, timeout=30)
        assert out.returncode == 0 and "alice/zero" in out.stdout, out
        q = rt.get("/api/spaces/zero-gpu/quota?space=alice/zero", token).json()
        assert q["identity"] == "user:alice" and q["class"] == "user" and q["left"] == 300, q
        assert len(q["space"]["leases"]) == 1 and q["space"]["queue"] == [], q
        p.stdin.write("\n")
        p.stdin.flush()
        assert json.loads(p.stdout.readline()) == {"release": 200}
    finally:
        p.kill()
        p.communicate()  # reaps it and closes its pipes


def test_listener_comes_back_after_a_runtimed_restart(env, zero, node):
    """A restart ends every lease: a worker that held a unit is killed when its Space is
    reattached (the new scheduler may give the unit to anyone), and the listener is back
    on the same port."""
    rt, _, _ = env
    group = pathlib.Path(f"{zero.devcg}.gpu-0")
    p = subprocess.Popen(zero.argv(sys.executable, str(HERE / "zerogpu_in_space.py"), "hold",
                                   node), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert json.loads(p.stdout.readline())["worker"]["allowed"]
        (worker,) = map(int, (group / "cgroup.procs").read_text().split())
        rt.stop()
        assert pathlib.Path(f"/proc/{worker}").exists()  # Spaces outlive runtimed
        rt.start()
        deadline = time.time() + 10
        while time.time() < deadline and "device API back" not in rt.log():
            time.sleep(0.1)
        assert "device API back" in rt.log(), rt.log()[-2000:]
        deadline = time.time() + 5
        while time.time() < deadline and group.exists():
            time.sleep(0.05)
        assert not group.exists(), "the old worker's group is gone"
        status = pathlib.Path(f"/proc/{worker}/status")
        assert not status.exists() or "State:\tZ" in status.read_text(), "and it is killed"

        p.stdin.write("\n")
        p.stdin.flush()
        assert json.loads(p.stdout.readline()) == {"release": 404}  # a lease of the old one
    finally:
        p.kill()
        p.communicate()  # reaps it and closes its pipes
    zero.refresh()
    grant, rel, _ = zero.client("grant", node)
    assert grant["worker"] == {"allowed": True, "open": errno.ENXIO}, grant
    assert rel["release"] == 200


def test_space_quota_shows_holders_only_to_the_owner(env, zero, node):
    """?space= is the per-Space part of the quota: any reader of the Space gets counts and
    their own queue position; who holds or waits (visitor identities) and worker pids
    only its owner or an admin; a private Space is 404 to whoever cannot read it."""
    rt, token, _ = env
    rt.add_user("bob")
    bob = rt.token("bob", "write")
    r = rt.create_space("alice", "secret", token, sdk="static", private=True)
    assert r.status_code == 200, r.text
    p = subprocess.Popen(zero.argv(sys.executable, str(HERE / "zerogpu_in_space.py"), "hold",
                                   node), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert json.loads(p.stdout.readline())["worker"]["allowed"]
        url = "/api/spaces/zero-gpu/quota?space=alice/zero"
        for who in (None, bob):
            r = rt.get(url, who)
            assert r.status_code == 200, r.text
            sp = r.json()["space"]
            assert sp == {"id": "alice/zero", "leaseCount": 1, "queueLength": 0,
                          "position": 0}, sp
        for who in (token, rt.admin):
            sp = rt.get(url, who).json()["space"]
            assert sp["leaseCount"] == 1 and len(sp["leases"]) == 1 and sp["queue"] == [], sp
            assert sp["leases"][0]["pid"] > 0 and sp["leases"][0]["identity"], sp
        # private: 404 to anyone but its owner (and admins), like the rest of the API
        url = "/api/spaces/zero-gpu/quota?space=alice/secret"
        for who in (None, bob):
            r = rt.get(url, who)
            assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound", r.text
            assert r.text == rt.get("/api/spaces/zero-gpu/quota?space=alice/nope", who).text
        for who in (token, rt.admin):
            r = rt.get(url, who)
            assert r.status_code == 200 and r.json()["space"]["leases"] == [], r.text
        # the caller's own quota needs no Space
        assert rt.get("/api/spaces/zero-gpu/quota", bob).json()["identity"] == "user:bob"
        p.stdin.write("\n")
        p.stdin.flush()
        assert json.loads(p.stdout.readline()) == {"release": 200}
    finally:
        p.kill()
        p.communicate()
        rt.delete("/api/repos/delete", rt.admin, json={"type": "space", "name": "alice/secret"})


# The static SDK runs `python3 -m http.server PORT ...` in the app's folder, which comes
# first on sys.path: this package shadows the standard one, so opening the pool's node is
# the very first thing the app does, long before runtimed can isolate it.
EARLY_SERVER = """import os, socket, sys
try:
    os.close(os.open(%r, os.O_RDWR))
    e = 0
except OSError as x:
    e = x.errno
print("open-errno=%%d" %% e, flush=True)
body = b"%%d\\n" %% e
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
while True:
    c, _ = s.accept()
    try:
        c.settimeout(5)
        c.recv(65536)
        c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: %%d\\r\\n\\r\\n" %% len(body) + body)
    except OSError:
        pass
    finally:
        c.close()
"""


@contextlib.contextmanager
def starved(pid):
    """@pid (runtimed) and what it starts meanwhile (its shims) at 5% of a CPU (v1 cpu
    controller; nothing when absent): a shim then takes seconds to spawn its sandbox,
    time enough to catch runtimed waiting for it."""
    root = pathlib.Path("/sys/fs/cgroup/cpu")
    home = None
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctl, path = line.split(":", 2)
        if "cpu" in ctl.split(","):
            home = root / path.lstrip("/")
    if home is None or not (root / "cpu.cfs_quota_us").exists():
        yield
        return
    slow = root / f"spaceport-test33-slow-{os.getpid()}"
    slow.mkdir()
    try:
        (slow / "cpu.cfs_period_us").write_text("100000")
        (slow / "cpu.cfs_quota_us").write_text("5000")
        (slow / "cgroup.procs").write_text(str(pid))
        yield
    finally:
        for _ in range(100):
            pids = (slow / "cgroup.procs").read_text().split()
            if not pids:
                break
            for p in pids:
                with contextlib.suppress(OSError):  # gone meanwhile
                    (home / "cgroup.procs").write_text(p)
        slow.rmdir()


def early_spec(rt):
    for p in (pathlib.Path(rt.data_dir) / "run").glob("*/*/spec.json"):
        with contextlib.suppress(ValueError):  # being written
            if json.loads(p.read_text())["id"] == "alice/early":
                return json.loads(p.read_text())
    return None


def early_log(rt):
    for p in (pathlib.Path(rt.data_dir) / "run").glob("*/*/run.log"):
        text = p.read_text()
        if json.loads((p.parent / "spec.json").read_text())["id"] == "alice/early" and \
                "open-errno=" in text:
            return text
    return ""


def test_app_cannot_open_the_pool_before_it_is_isolated(env, node, tmp_path):
    """Issue #12: the sandbox binds the pool's nodes but its device cgroup never allows
    them (spec gpusDeferred), so an app that opens one at once, before runtimed isolates
    it, is refused (EPERM) instead of keeping a GPU fd outside any lease (ENXIO here)."""
    rt, token, _ = env
    r = rt.create_space("alice", "early", token, sdk="static", hardware="zero-a10g")
    assert r.status_code == 200, r.text
    try:
        work = make_repo(tmp_path / "early", "hello-static",
                         {"http/__init__.py": "", "http/server.py": EARLY_SERVER % node})
        # The app would lose the race here (runtimed isolates it within a few ms, python
        # takes longer to start), so a test of the window would show nothing: runtimed is
        # stopped once it wrote the spec, while its slowed shim spawns the sandbox, and
        # goes on once the app made its first open.  Whoever wins, the app must be refused.
        with starved(rt.proc.pid):
            push(rt, work, "alice", "early", token)
            deadline = time.time() + 120
            while time.time() < deadline and not early_spec(rt):
                time.sleep(0.01)
            os.kill(rt.proc.pid, signal.SIGSTOP)
            try:
                deadline = time.time() + 20
                while time.time() < deadline and not early_log(rt):
                    time.sleep(0.02)
            finally:
                os.kill(rt.proc.pid, signal.SIGCONT)
        logs = early_log(rt)
        assert "open-errno=%d" % errno.EPERM in logs, (logs, rt.log()[-3000:])
        j = wait_stage(rt, "early", token, ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
        assert j["stage"] == "RUNNING", (j, rt.log()[-3000:])
        pid = sandbox_pid(rt, "early")
        spec = early_spec(rt)
        assert spec["gpusDeferred"] is True and node in spec["gpus"], spec
        # never allowed in the sandbox's own group, before or after the isolation
        assert "c 120:0" not in (devices_cgroup(pid) / "devices.list").read_text()
        # nor by the shim's allow-gpus: v2 only (its app then sits in a child group)
        sock = next(p.parent / "shim.sock" for p in
                    (pathlib.Path(rt.data_dir) / "run").glob("*/*/spec.json")
                    if json.loads(p.read_text())["id"] == "alice/early")
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(10)
            c.connect(str(sock))
            c.sendall(b"allow-gpus\n")
            answer = json.loads(c.makefile().readline())
        assert "v2 only" in answer.get("error", ""), answer
        assert "c 120:0" not in (devices_cgroup(pid) / "devices.list").read_text()
    finally:
        rt.delete("/api/repos/delete", rt.admin, json={"type": "space", "name": "alice/early"})
