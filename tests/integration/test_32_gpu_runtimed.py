"""Dedicated GPUs through a real runtimed on the fake backend (issue #12).

Two fake A10Gs are character devices the test makes under /dev (majors 120/121, the
kernel's LOCAL/EXPERIMENTAL numbers: opening one that the device cgroup allows gives
ENXIO, one it denies gives EPERM).  A Space on a 1-GPU tier runs a probe app (Python,
through a copy of the static template whose run command starts it) that reports what
its sandbox's /dev holds and what opening each node gives.  Checked: exactly its own
GPU node plus nvidiactl/nvidia-uvm inside, the other GPU absent; its device cgroup
allows its node and denies the other's (a process moved into that cgroup from the
host); a second Space gets the other GPU; a third is refused with the allocator's
message; a hardware change gives the unit back; after runtimed is killed with SIGKILL
and started again the holders are rebuilt from the running shims, with no double grant.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest
import requests

from shimsocks import shim_sockets
from test_5_support import Runtimed
from test_70_support import commit, head, make_repo, push

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Spaces run in sandboxes: root")

TIER = "gpu-test-a10g"
NODES = {"nvidia0": (120, 0), "nvidia1": (120, 1), "nvidiactl": (120, 255),
         "nvidia-modeset": (120, 254), "nvidia-uvm": (121, 0), "nvidia-uvm-tools": (121, 1)}

PROBE = r'''
import errno, http.server, json, os, sys
FAKE = %r
def probe():
    out = {"dev": sorted(os.listdir("/dev")), "fake": None, "open": {}, "env": {}}
    if os.path.isdir(FAKE):
        out["fake"] = sorted(os.listdir(FAKE))
    for name in %r:
        p = os.path.join(FAKE, name)
        try:
            os.close(os.open(p, os.O_RDWR))
            out["open"][name] = "ok"
        except OSError as e:
            out["open"][name] = errno.errorcode.get(e.errno, str(e.errno))
    for k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        out["env"][k] = os.environ.get(k)
    return out
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(probe()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
'''


def live_shims(data_dir):
    out = []
    for sock in shim_sockets(pathlib.Path(data_dir) / "run"):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(sock))
                s.sendall(b"status\n")
                st = json.loads(s.recv(65536))
            if st.get("state") != "exited":
                out.append(sock)
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def env(bin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("rt32")
    # Fake nodes must live under /dev: the sandbox binds GPU nodes at their host path
    # and accepts only /dev paths.  A directory of our own, removed at the end.
    fake = pathlib.Path(f"/dev/spaceport-test32-{os.getpid()}")
    fake.mkdir(mode=0o755)
    for name, (major, minor) in NODES.items():
        os.mknod(fake / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(fake / name, 0o666)  # as the driver makes them; mknod took the umask off
    templates = base / "templates"
    shutil.copytree(ROOT / "templates", templates)
    st = (templates / "static.yaml").read_text()
    run = '  command: [python3, -m, http.server, "${PORT}", --bind, 0.0.0.0, --directory, "${APP_FILE_DIR}"]'
    assert run in st
    (templates / "static.yaml").write_text(st.replace(run, '  command: [python3, "${APP_FILE}", "${PORT}"]'))
    conf = base / "runtimed.yaml"
    conf.write_text(f"gpu_backend: fake\ngpu_fake: 2xa10g:24G\ngpu_fake_dev_dir: {fake}\n"
                    f"templates_dir: {templates}\nlight_sleep_ms: -1\n")
    rt = Runtimed(bin_dir, base / "data", config=conf).start()
    r = rt.post("/api/admin/hardware", rt.admin,
                json={"name": TIER, "cpus": 1, "memory": 1 << 30, "gpus": 1, "gpuKind": "a10g"})
    assert r.status_code == 201, r.text
    rt.add_user("alice")
    token = rt.token("alice", "write")
    state = {"rt": rt, "token": token, "base": base, "fake": fake, "conf": conf}
    yield state
    rt = state["rt"]
    rt.stop()
    for sock in live_shims(rt.data_dir):  # nothing of ours outlives the module
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
                s.sendall(b"stop 0\n")
        except OSError:
            pass
    deadline = time.time() + 15
    while live_shims(rt.data_dir) and time.time() < deadline:
        time.sleep(0.2)
    shutil.rmtree(fake, ignore_errors=True)


def runtime(env, name):
    return env["rt"].get(f"/api/spaces/alice/{name}/runtime", env["token"]).json()


def wait_stage(env, name, stages, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = runtime(env, name)
        if j["stage"] in stages:
            return j
        time.sleep(0.1)
    raise AssertionError(f"{name}: waited for {stages}, got {j}: {env['rt'].log()[-3000:]}")


def gpus(env):
    r = env["rt"].get("/api/admin/gpus", env["rt"].admin)
    assert r.status_code == 200, r.text
    return r.json()


def holders(env):
    return {u["uuid"]: u["holder"] for u in gpus(env)["units"]}


def create(env, name, hardware=TIER):
    return env["rt"].create_space("alice", name, env["token"], sdk="static", hardware=hardware)


def push_probe(env, name):
    files = {"README.md": "---\nsdk: static\napp_file: probe.py\n---\n",
             "probe.py": PROBE % (str(env["fake"]), sorted(NODES))}
    work = make_repo(env["base"] / "w" / name, None, files)
    push(env["rt"], work, "alice", name, env["token"])


def probe(env, name):
    rt = env["rt"]
    assert rt.post("/api/proxy/wake", rt.proxy, json={"id": f"alice/{name}"}).status_code == 202
    routes = rt.get("/api/proxy/routes", rt.proxy).json()["spaces"]
    up = next(s["upstream"] for s in routes if s["id"] == f"alice/{name}")
    return requests.get(f"http://{up}/", timeout=10).json()


def app_pid(name):
    """The host pid of the probe app of alice/NAME."""
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
            envb = (p / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"probe.py" in cmd and f"SPACE_ID=alice/{name}".encode() in envb:
            return int(p.name)
    raise AssertionError(f"no probe process for alice/{name}")


def devices_cgroup(pid):
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if "devices" in ctrls.split(","):
            return pathlib.Path("/sys/fs/cgroup/devices") / path.lstrip("/")
    return None


def open_in_cgroup(cg, paths):
    """Opens each path from a process moved into the cgroup @cg: errno names."""
    code = ("import errno, json, os, sys\nout = {}\nfor p in sys.argv[1:]:\n"
            "    try:\n        os.close(os.open(p, os.O_RDWR)); out[p] = 'ok'\n"
            "    except OSError as e:\n        out[p] = errno.errorcode[e.errno]\n"
            "print(json.dumps(out))\n")

    def enter():
        (cg / "cgroup.procs").write_text(str(os.getpid()))

    out = subprocess.run(["python3", "-c", code, *map(str, paths)], preexec_fn=enter,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_inventory_before_any_space(env):
    inv = gpus(env)
    assert inv["backend"] == "fake" and inv["gpus"] == 2
    assert [u["kind"] for u in inv["units"]] == ["a10g", "a10g"]
    assert [u["holder"] for u in inv["units"]] == [None, None]
    assert inv["free"] == {"a10g": 2}
    assert env["rt"].get("/api/admin/gpus", env["token"]).status_code == 403  # admins only


def test_dedicated_space_gets_exactly_its_gpu(env):
    for name in ("g1", "g2", "g3"):  # all accepted: both GPUs are free now
        r = create(env, name)
        assert r.status_code == 200, r.text
    push_probe(env, "g1")
    j = wait_stage(env, "g1", ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
    assert j["stage"] == "RUNNING", j
    held = {u: h for u, h in holders(env).items() if h}
    assert list(held.values()) == ["alice/g1"]
    uuid = next(iter(held))
    unit = next(u for u in gpus(env)["units"] if u["uuid"] == uuid)
    mine = pathlib.Path(unit["nodes"][0]).name
    other = "nvidia1" if mine == "nvidia0" else "nvidia0"

    p = probe(env, "g1")
    # Inside: its GPU and the shared ctl/uvm, nothing else of the driver's.
    assert p["fake"] == sorted([mine, "nvidiactl", "nvidia-uvm"]), p
    assert not [d for d in p["dev"] if d.startswith("nvidia")], p["dev"]
    assert p["open"][mine] == "ENXIO"  # allowed: the device cgroup let the open reach the kernel
    assert p["open"]["nvidiactl"] == "ENXIO" and p["open"]["nvidia-uvm"] == "ENXIO"
    assert p["open"][other] == "ENOENT"  # not there at all
    assert p["env"] == {"CUDA_VISIBLE_DEVICES": uuid, "NVIDIA_VISIBLE_DEVICES": uuid}

    # The device cgroup itself: its node allowed, the other GPU's denied.
    cg = devices_cgroup(app_pid("g1"))
    if cg is None or not (cg / "devices.list").exists():
        pytest.skip("no cgroup v1 devices controller here")
    rules = set((cg / "devices.list").read_text().split("\n"))
    assert f"c 120:{NODES[mine][1]} rw" in rules and f"c 120:{NODES[other][1]} rw" not in rules
    assert "c 120:255 rw" in rules and "c 121:0 rw" in rules
    assert "c 120:254 rw" not in rules and "c 121:1 rw" not in rules  # modeset, uvm-tools
    got = open_in_cgroup(cg, [env["fake"] / mine, env["fake"] / other])
    assert got == {str(env["fake"] / mine): "ENXIO", str(env["fake"] / other): "EPERM"}


def test_second_space_gets_the_other_third_is_refused(env):
    push_probe(env, "g2")
    j = wait_stage(env, "g2", ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
    assert j["stage"] == "RUNNING", j
    h = holders(env)
    assert sorted(h.values()) == ["alice/g1", "alice/g2"]  # two Spaces never share
    p1, p2 = probe(env, "g1"), probe(env, "g2")
    assert p1["env"]["CUDA_VISIBLE_DEVICES"] != p2["env"]["CUDA_VISIBLE_DEVICES"]
    assert set(p1["fake"]) & set(p2["fake"]) == {"nvidiactl", "nvidia-uvm"}

    # A third one was accepted while GPUs were free; its start is refused now.
    push_probe(env, "g3")
    j = wait_stage(env, "g3", ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
    assert j["stage"] == "RUNTIME_ERROR", j
    assert "1 'a10g' gpu(s) wanted, 0 of 2 free" in j["errorMessage"], j
    # And a new Space on that tier is refused at once, with the reason.
    r = create(env, "g4")
    assert r.status_code == 422, r.text
    assert "needs 1 GPU of kind 'a10g' and 0 of this node's 2 are free" in r.text
    assert sorted(holders(env).values(), key=str) == ["alice/g1", "alice/g2"]


def test_stop_gives_the_gpu_back(env):
    rt, token = env["rt"], env["token"]
    r = rt.post("/api/spaces/alice/g1/hardware", token, json={"flavor": "cpu-basic"})
    assert r.status_code == 200, r.text
    deadline = time.time() + 60
    while "alice/g1" in holders(env).values() and time.time() < deadline:
        time.sleep(0.1)
    assert sorted(holders(env).values(), key=str) == [None, "alice/g2"]
    assert gpus(env)["free"] == {"a10g": 1}
    j = wait_stage(env, "g1", ("RUNNING", "RUNTIME_ERROR"))
    assert j["stage"] == "RUNNING", j
    assert probe(env, "g1")["fake"] is None  # on CPU now: no GPU node at all
    # The freed unit goes to the Space that was refused.
    assert rt.post("/api/spaces/alice/g3/restart", token).status_code == 200
    j = wait_stage(env, "g3", ("RUNNING",), timeout=60)
    assert sorted(holders(env).values()) == ["alice/g2", "alice/g3"]


def test_restart_after_sigkill_rebuilds_holders(env, bin_dir):
    before = holders(env)
    rt = env["rt"]
    rt.stop(sig=signal.SIGKILL)
    rt2 = Runtimed(bin_dir, rt.data_dir, config=env["conf"]).start()
    env["rt"] = rt2
    assert holders(env) == before  # the running shims' specs, not a fresh table
    assert "2 gpu unit(s) held by running Spaces" in rt2.log()
    r = create(env, "g5")
    assert r.status_code == 422, r.text  # no double grant
    # Both still run on their own GPU.
    assert probe(env, "g2")["env"]["CUDA_VISIBLE_DEVICES"] != \
        probe(env, "g3")["env"]["CUDA_VISIBLE_DEVICES"]
    # Deleting a Space frees its GPU.
    r = rt2.delete("/api/repos/delete", env["token"], json={"type": "space", "organization": "alice",
                                                         "name": "g2"})
    assert r.status_code == 200, r.text
    deadline = time.time() + 60
    while "alice/g2" in holders(env).values() and time.time() < deadline:
        time.sleep(0.1)
    assert sorted(holders(env).values(), key=str) == [None, "alice/g3"]


def test_new_version_shares_the_spaces_gpu(env):
    """A push to a running GPU Space starts the new version beside the old one: it gets
    the Space's own unit (one holding per Space), not a second one, and never waits for
    a free GPU."""
    before = holders(env)
    uuid = probe(env, "g3")["env"]["CUDA_VISIBLE_DEVICES"]
    work = env["base"] / "w" / "g3"
    commit(work, {"probe.py": PROBE % (str(env["fake"]), sorted(NODES)) + "# v2\n"})
    push(env["rt"], work, "alice", "g3", env["token"])
    sha = head(work)
    deadline = time.time() + 120
    while time.time() < deadline:
        j = runtime(env, "g3")
        if j.get("sha") == sha and j["stage"] == "RUNNING":
            break
        time.sleep(0.1)
    assert j.get("sha") == sha and j["stage"] == "RUNNING", j
    assert holders(env) == before
    assert probe(env, "g3")["env"]["CUDA_VISIBLE_DEVICES"] == uuid


def test_spacectl_gpu_list(env, bin_dir):
    rt = env["rt"]
    e = {k: v for k, v in os.environ.items() if not k.startswith("SPACEPORT_")
         and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    e.update(SPACEPORT_URL=rt.url, SPACEPORT_TOKEN=rt.admin)
    out = subprocess.run([str(bin_dir / "spacectl"), "gpu", "list", "--json"], env=e,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == gpus(env)
    out = subprocess.run([str(bin_dir / "spacectl"), "gpu", "list"], env=e, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "alice/g3" in out.stdout and "a10g" in out.stdout


def test_gpu_stays_held_until_the_sandbox_is_seen_to_end(env, bin_dir):
    """A stop whose shim never answers "exited" (here: the shim was killed, and its
    sandbox, which does not die with it, runs on) keeps the Space's GPU: the sandbox may
    still have it.  Once the sandbox ends, the next supervisor tick gives the unit back
    and removes the instance dir it was kept in (what a restart would rebuild from)."""
    rt = env["rt"]
    assert "alice/g3" in holders(env).values()
    inst = next(st.parent for st in (pathlib.Path(rt.data_dir) / "run").glob("*/*/status.json")
                if json.loads((st.parent / "spec.json").read_text())["id"] == "alice/g3"
                and json.loads(st.read_text())["state"] == "running")
    status = json.loads((inst / "status.json").read_text())
    os.kill(status["shimPid"], signal.SIGKILL)
    sandbox = status["pid"]
    try:
        r = rt.delete("/api/repos/delete", env["token"],
                      json={"type": "space", "organization": "alice", "name": "g3"})
        assert r.status_code == 200, r.text
        deadline = time.time() + 60
        while "was not seen to end" not in rt.log() and time.time() < deadline:
            assert "alice/g3" in holders(env).values(), "given back while its sandbox runs"
            time.sleep(0.2)
        assert "was not seen to end" in rt.log(), rt.log()[-3000:]
        assert pathlib.Path(f"/proc/{sandbox}").exists()  # the sandbox runs on
        time.sleep(1)  # a few ticks
        assert "alice/g3" in holders(env).values()  # so its unit stays held
        assert inst.exists()  # and the dir that says so, for a restart
        # A restart finds the dir, cannot reattach (no shim) and stops the sandbox itself;
        # through all of it the unit is never free while the sandbox lives (the holders
        # are read before the process, so a release seen means the sandbox was gone).
        rt.stop(sig=signal.SIGKILL)
        rt = env["rt"] = Runtimed(bin_dir, rt.data_dir, config=env["conf"]).start()
        for _ in range(20):
            held = "alice/g3" in holders(env).values()
            alive = pathlib.Path(f"/proc/{sandbox}").exists()
            assert held or not alive, "given back while its sandbox runs: " + rt.log()[-3000:]
            time.sleep(0.1)
    finally:
        try:
            os.kill(sandbox, signal.SIGKILL)  # its pid namespace goes with it
        except ProcessLookupError:
            pass  # the restarted runtimed stopped it
    deadline = time.time() + 60
    while "alice/g3" in holders(env).values() and time.time() < deadline:
        time.sleep(0.2)
    assert "alice/g3" not in holders(env).values(), rt.log()[-3000:]
    assert not inst.exists()
