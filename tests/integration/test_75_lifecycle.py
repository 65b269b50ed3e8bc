"""Lifecycle through a real runtimed: pushed Spaces built by the build queue run in their
shims, RUNNING only once they answer; run logs stream as SSE; runtimed killed with
SIGKILL while one Space runs and another builds: the running one answers the whole
time, nothing runs twice, the interrupted build is not lost; light sleep (frozen, no
route) and a proxy wake; deep sleep; a hardware change this node cannot give is refused.
Static Spaces keep most of it fast; one Gradio Space (a real pip install) is the build
that runtimed's death interrupts, and then runs; the unit test tests/unit/rtlife covers crashes,
OOM kills, launch timeouts, pause and cgroup limits with Python apps."""
import json
import os
import pathlib
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from shimsocks import shim_sockets
from test_5_support import Runtimed
from test_70_support import db_build, head, make_repo, push

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Spaces run in sandboxes: root")


def runtime(rt, name, token):
    return rt.get(f"/api/spaces/alice/{name}/runtime", token).json()


def wait_stage(rt, name, token, stages, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = runtime(rt, name, token)
        if j["stage"] in stages:
            return j
        time.sleep(0.05)
    raise AssertionError(f"{name}: waited for {stages}, got {j}: {rt.log()[-2000:]}")


def route(rt, name):
    r = rt.get("/api/proxy/routes", rt.proxy)
    for s in r.json()["spaces"]:
        if s["id"] == f"alice/{name}":
            return s
    return None


def awake_upstream(rt, name):
    """The upstream after a proxy wake (light sleep may have frozen it meanwhile)."""
    assert rt.post("/api/proxy/wake", rt.proxy, json={"id": f"alice/{name}"}).status_code == 202
    return route(rt, name)["upstream"]


def fetch(upstream, timeout=3):
    return requests.get(f"http://{upstream}/", timeout=timeout)


def live_shims(rt):
    """(space dir, instance dir) of every shim that answers on its socket."""
    out = []
    run = pathlib.Path(rt.data_dir) / "run"
    for sock in shim_sockets(run):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(sock))
                s.sendall(b"status\n")
                st = json.loads(s.recv(65536))
            if st.get("state") != "exited":
                out.append((sock.parent.parent.name, sock.parent.name))
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def env(bin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("rt75")
    conf = base / "runtimed.yaml"
    conf.write_text("light_sleep_ms: 1500\n")
    rt = Runtimed(bin_dir, base / "data", config=conf).start()
    rt.add_user("alice")
    token = rt.token("alice", "write")
    yield rt, token, base
    rt.stop()
    for sdir, idir in live_shims(rt):  # nothing of ours outlives the module
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(pathlib.Path(rt.data_dir) / "run" / sdir / idir / "shim.sock"))
                s.sendall(b"stop 0\n")
        except OSError:
            pass


def create_and_push(rt, token, base, name, files=None):
    r = rt.create_space("alice", name, token, sdk="static")
    assert r.status_code == 200, r.text
    work = make_repo(base / "w" / name, "hello-static", files)
    push(rt, work, "alice", name, token)
    return head(work)


@pytest.fixture(scope="module")
def web(env):
    rt, token, base = env
    sha = create_and_push(rt, token, base, "web")
    j = wait_stage(rt, "web", token, ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
    assert j["stage"] == "RUNNING", j
    return sha


def test_running_only_once_it_answers(env, web):
    rt, token, _ = env
    j = runtime(rt, "web", token)
    assert j["sha"] == web and j["hardware"]["current"] == "cpu-basic"
    r = fetch(awake_upstream(rt, "web"))
    assert r.status_code == 200 and "Hello" in r.text
    # RUNNING came from a health check that got an answer.
    assert any("alice-web" in e and "answers after" in e for e in rt.log().splitlines())


def test_run_log_streams_as_sse(env, web):
    rt, token, _ = env
    fetch(awake_upstream(rt, "web"))  # http.server logs each request to stderr
    deadline, lines = time.time() + 10, []
    while time.time() < deadline and not any("GET / " in l for l in lines):
        r = rt.get("/api/spaces/alice/web/logs/run?follow=0", token, timeout=10)
        lines = [json.loads(l[6:])["data"] for l in r.text.splitlines() if l.startswith("data: {")]
        time.sleep(0.3)
    assert any("GET / " in l for l in lines), lines


def test_spacectl_logs_follow_shows_new_lines_live(env, web, bin_dir):
    rt, token, _ = env
    envv = {k: v for k, v in os.environ.items() if not k.startswith("SPACEPORT_")}
    envv.update(SPACEPORT_URL=rt.url, SPACEPORT_TOKEN=token)
    p = subprocess.Popen([str(bin_dir / "spacectl"), "logs", "alice/web", "--follow", "--tail", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=envv)
    try:
        time.sleep(0.5)
        marker = f"/live-{time.time_ns()}"
        requests.get(f"http://{awake_upstream(rt, 'web')}{marker}", timeout=3)
        got = []
        t = threading.Thread(target=lambda: got.extend(
            line for line in iter(p.stdout.readline, "") if marker in line and not got), daemon=True)
        t.start()
        deadline = time.time() + 10
        while not got and time.time() < deadline:
            time.sleep(0.05)
        assert got, "the request's log line did not stream"
    finally:
        p.terminate()
        p.wait(timeout=5)


def test_light_sleep_then_a_wake(env, web):
    rt, token, _ = env
    deadline = time.time() + 20
    while time.time() < deadline and route(rt, "web")["upstream"]:
        time.sleep(0.1)
    r = route(rt, "web")
    assert r["upstream"] is None and r["stage"] == "RUNNING", r  # frozen: the proxy must wake
    t0 = time.monotonic()
    w = rt.post("/api/proxy/wake", rt.proxy, json={"id": "alice/web"})
    up = route(rt, "web")["upstream"]
    assert w.status_code == 202 and up
    assert fetch(up).status_code == 200
    print(f"light sleep: wake call, route and first answer in {(time.monotonic() - t0) * 1000:.1f} ms")


def test_kill9_runtimed_while_running_and_building(env, web, bin_dir):
    rt, token, base = env
    up = awake_upstream(rt, "web")
    before = live_shims(rt)
    # A second Space whose build takes a while: a Gradio Space (pip install of gradio).
    r = rt.create_space("alice", "slow", token, sdk="gradio")
    assert r.status_code == 200, r.text
    work = make_repo(base / "w" / "slow", "hello-gradio")
    slow_sha = head(work)
    push(rt, work, "alice", "slow", token)
    deadline = time.time() + 30
    while time.time() < deadline and not (db_build(rt, "slow", slow_sha) or [None, 1])[1] is None:
        time.sleep(0.05)
    time.sleep(1.5)  # into the install
    fails, stop = [], threading.Event()

    def probe():
        while not stop.is_set():
            try:  # the proxy's activity reports, while runtimed is there to take them
                rt.post("/api/proxy/activity", rt.proxy, json={"ids": ["alice/web"]}, timeout=1)
            except requests.RequestException:
                pass
            try:
                if fetch(up, timeout=2).status_code != 200:
                    fails.append("status")
            except requests.RequestException as e:
                fails.append(str(e))
            time.sleep(0.05)

    # Awake (a light sleep may have frozen it meanwhile) before the probes start.
    assert rt.post("/api/proxy/wake", rt.proxy, json={"id": "alice/web"}).status_code == 202
    assert route(rt, "web")["upstream"] == up
    t = threading.Thread(target=probe)
    t.start()
    try:
        time.sleep(0.5)
        row = db_build(rt, "slow", slow_sha)
        assert row and row[1] is None, f"the build of slow is not running: {row}"
        # A third push waits in the queue behind slow's build: it has no build row yet.
        queued_sha = create_and_push(rt, token, base, "queued")
        assert db_build(rt, "queued", queued_sha) is None
        rt.proc.kill()
        rt.proc.wait()
        rt.log_file.close()
        time.sleep(1.5)
        rt.start()
        j = wait_stage(rt, "web", token, ("RUNNING",), timeout=20)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    assert not fails, fails[:5]
    assert j["sha"] == web
    assert route(rt, "web")["upstream"] == up
    after = live_shims(rt)
    assert [s for s in after if s[0] == before[0][0]] == [before[0]], (before, after)
    # The interrupted build is queued again and finishes: never lost.  The Gradio app
    # then runs from its layers (the deps layer is the venv the template names).
    j = wait_stage(rt, "slow", token, ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"), timeout=300)
    assert j["stage"] == "RUNNING", (j, rt.log()[-3000:])
    r = fetch(awake_upstream(rt, "slow"), timeout=30)
    assert r.status_code == 200 and "gradio" in r.text.lower()
    # The push that was only queued in memory is built too.
    j = wait_stage(rt, "queued", token, ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"), timeout=120)
    assert j["stage"] == "RUNNING" and j["sha"] == queued_sha, (j, rt.log()[-3000:])
    spaces = {}
    for sdir, _ in live_shims(rt):
        spaces[sdir] = spaces.get(sdir, 0) + 1
    assert all(n == 1 for n in spaces.values()), spaces


def test_hardware_this_node_cannot_give_is_refused(env, web):
    rt, token, _ = env
    r = rt.post("/api/spaces/alice/web/hardware", token, json={"flavor": "a10g-small"})
    assert r.status_code == 422, r.text
    assert runtime(rt, "web", token)["hardware"]["requested"] == "cpu-basic"


def test_deep_sleep_then_a_visit(env, web):
    rt, token, _ = env
    r = rt.post("/api/spaces/alice/web/sleeptime", token, json={"seconds": 2})
    assert r.status_code == 200, r.text
    j = wait_stage(rt, "web", token, ("SLEEPING",), timeout=20)
    assert route(rt, "web")["upstream"] is None
    # The app outlives its route by the sleep grace (3 s by default), then stops: a
    # wake from here on is a real cold start.
    deadline = time.time() + 30
    while time.time() < deadline and web_instances(rt, web):
        time.sleep(0.1)
    assert not web_instances(rt, web), rt.log()[-2000:]
    assert "sleep grace over: stopping" in rt.log()
    t0 = time.monotonic()
    assert rt.post("/api/proxy/wake", rt.proxy, json={"id": "alice/web"}).status_code == 202
    wait_stage(rt, "web", token, ("RUNNING",), timeout=30)
    up = route(rt, "web")["upstream"]
    assert fetch(up).status_code == 200
    print(f"deep sleep: wake to first answer {(time.monotonic() - t0) * 1000:.0f} ms")
    rt.post("/api/spaces/alice/web/sleeptime", token, json={"seconds": -1})


def builds_of(rt, sha):
    con = sqlite3.connect(f"file:{rt.data_dir}/spaceport.db?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT id, status FROM builds WHERE sha = ?", (sha,)).fetchall()
    finally:
        con.close()


def web_instances(rt, sha):
    """Live instance dirs of the Space whose build is @sha."""
    run, out = pathlib.Path(rt.data_dir) / "run", []
    for sdir, i in live_shims(rt):
        try:
            if json.loads((run / sdir / "space.json").read_text())["sha"] == sha:
                out.append(i)
        except (OSError, ValueError):
            out.append(i)  # going away: still counts until its shim is gone
    return out


def test_restart_and_delete(env, web):
    rt, token, _ = env
    before = web_instances(rt, web)
    assert len(before) == 1, before
    r = rt.post("/api/spaces/alice/web/restart", token)
    assert r.status_code == 200
    deadline = time.time() + 30
    while time.time() < deadline:
        now = web_instances(rt, web)
        if runtime(rt, "web", token)["stage"] == "RUNNING" and len(now) == 1 and now != before:
            break
        time.sleep(0.1)
    assert runtime(rt, "web", token)["stage"] == "RUNNING" and web_instances(rt, web) != before
    assert fetch(awake_upstream(rt, "web")).status_code == 200
    # A factory restart rebuilds the same commit (a build row of its own), then runs it.
    n = len(builds_of(rt, web))
    assert rt.post("/api/spaces/alice/web/restart?factory=true", token).status_code == 200
    deadline = time.time() + 60
    while time.time() < deadline and not (len(builds_of(rt, web)) > n and
                                          runtime(rt, "web", token)["stage"] == "RUNNING"):
        time.sleep(0.1)
    assert len(builds_of(rt, web)) > n and runtime(rt, "web", token)["stage"] == "RUNNING"
    r = rt.delete("/api/repos/delete", token, json={"type": "space", "name": "web",
                                                    "organization": "alice"})
    assert r.status_code == 200, r.text
    deadline = time.time() + 20
    while time.time() < deadline and web_instances(rt, web):
        time.sleep(0.1)
    assert not web_instances(rt, web)


# --- light sleep per Space and per tier ---------------------------------------------------
# The module's node setting is light_sleep_ms: 1500.  A Space's own lightSeconds wins over
# its tier's lightSleepSeconds, which wins over the node's; -1 never.  Frozen is read from
# the kernel: cgroup.events of the Space's sandbox cgroup.


def shim_status(rt, name):
    """The status of the live shim of Space alice/NAME (its sandbox pid, its frozen flag)."""
    run = pathlib.Path(rt.data_dir) / "run"
    row = str(int(rt.get(f"/api/spaces/alice/{name}", rt.admin).json()["_id"], 16))
    for sdir, idir in live_shims(rt):
        if sdir != row:
            continue
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(run / sdir / idir / "shim.sock"))
            s.sendall(b"status\n")
            return json.loads(s.recv(65536))
    return None


def cgroup_frozen(rt, name):
    """Whether the kernel says the cgroup of Space alice/NAME's sandbox is frozen: the v1
    freezer's freezer.state where the host mounts one, else cgroup v2's cgroup.events."""
    st = shim_status(rt, name)
    assert st and st["pid"] > 0, (name, st)
    v2 = None
    for line in pathlib.Path(f"/proc/{st['pid']}/cgroup").read_text().splitlines():
        _, ctrls, rel = line.split(":", 2)
        if "freezer" in ctrls.split(","):
            state = pathlib.Path("/sys/fs/cgroup/freezer" + rel, "freezer.state").read_text()
            return state.strip() == "FROZEN"
        if ctrls == "":
            v2 = rel
    assert v2 is not None, f"no cgroup of pid {st['pid']}"
    root = pathlib.Path("/sys/fs/cgroup/unified")
    if not (root / "cgroup.controllers").exists():
        root = pathlib.Path("/sys/fs/cgroup")
    events = pathlib.Path(str(root) + v2, "cgroup.events").read_text()
    return "frozen 1" in events.splitlines()


def wait_frozen(rt, name, want=True, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cgroup_frozen(rt, name) == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name}: cgroup frozen is not {want}: {rt.log()[-2000:]}")


def set_light(rt, name, token, light, seconds=-1):
    r = rt.post(f"/api/spaces/alice/{name}/sleeptime", token,
                json={"seconds": seconds, "lightSeconds": light})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def light_pair(env):
    """Two running static Spaces on cpu-basic: 'snappy' freezes after 1 s, 'awake' never."""
    rt, token, base = env
    for name in ("snappy", "awake"):
        create_and_push(rt, token, base, name)
    # Before they run, so the node's 1.5 s never applies to 'awake'.
    assert set_light(rt, "awake", token, -1)["lightSleepTime"] is None
    assert set_light(rt, "snappy", token, 1)["lightSleepTime"] == 1
    for name in ("snappy", "awake"):
        j = wait_stage(rt, name, token, ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
        assert j["stage"] == "RUNNING", j
    return rt, token


def test_light_sleep_per_space(light_pair):
    rt, token = light_pair
    awake_up = awake_upstream(rt, "awake")
    t0 = time.monotonic()
    awake_upstream(rt, "snappy")  # both idle from now on
    wait_frozen(rt, "snappy")
    # Well past the node's 1.5 s and snappy's 1 s: 'awake' (-1) still runs and answers.
    while time.monotonic() - t0 < 4:
        time.sleep(0.2)
    assert not cgroup_frozen(rt, "awake")
    assert route(rt, "awake")["upstream"] == awake_up
    assert fetch(awake_up).status_code == 200
    assert route(rt, "snappy")["upstream"] is None
    assert shim_status(rt, "snappy")["frozen"] is True
    # A visit thaws it; the kernel agrees.
    up = awake_upstream(rt, "snappy")
    assert not cgroup_frozen(rt, "snappy")
    assert fetch(up).status_code == 200
    j = runtime(rt, "awake", token)
    assert j["lightSleepTime"] is None and j["gcTimeout"] is None  # seconds: -1 given


def test_light_sleep_change_applies_without_restart(light_pair):
    rt, token = light_pair
    awake_upstream(rt, "awake")
    # null: back to the tier's default (cpu-basic has none: the node's 1.5 s)
    assert set_light(rt, "awake", token, None)["lightSleepTime"] == 1.5
    wait_frozen(rt, "awake")
    assert route(rt, "awake")["upstream"] is None
    set_light(rt, "awake", token, -1)
    awake_upstream(rt, "awake")
    assert not cgroup_frozen(rt, "awake")


def test_light_sleep_tier_default(env):
    rt, token, base = env
    r = rt.post("/api/admin/hardware", rt.admin,
                json={"name": "cpu-nofreeze", "cpus": 1, "memory": 1 << 30,
                      "lightSleepSeconds": -1})
    assert r.status_code == 201, r.text
    assert r.json()["lightSleepSeconds"] == -1
    r = rt.create_space("alice", "tiered", token, sdk="static", hardware="cpu-nofreeze")
    assert r.status_code == 200, r.text
    work = make_repo(base / "w" / "tiered", "hello-static")
    push(rt, work, "alice", "tiered", token)
    j = wait_stage(rt, "tiered", token, ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
    assert j["stage"] == "RUNNING" and j["lightSleepTime"] is None, j
    t0 = time.monotonic()
    up = awake_upstream(rt, "tiered")
    while time.monotonic() - t0 < 4:  # past the node's 1.5 s: the tier's never holds
        time.sleep(0.2)
    assert not cgroup_frozen(rt, "tiered") and route(rt, "tiered")["upstream"] == up
    # The tier's default changes under the running Space: it freezes, no restart.
    r = rt.request("PATCH", "/api/admin/hardware/cpu-nofreeze", rt.admin,
                   json={"lightSleepSeconds": 1})
    assert r.status_code == 200 and r.json()["lightSleepSeconds"] == 1, r.text
    assert runtime(rt, "tiered", token)["lightSleepTime"] == 1
    wait_frozen(rt, "tiered")
    # The Space's own setting beats its tier's.
    set_light(rt, "tiered", token, -1)
    awake_upstream(rt, "tiered")
    assert not cgroup_frozen(rt, "tiered")


# --- deep sleep's grace -------------------------------------------------------------------
# Deep sleep withdraws the route first and stops the app only when sleep_grace_ms is over,
# so a visit the proxy already sent to the old upstream is answered; a wake in the grace
# gives the route back at once, with no restart.


def only_app_pid(rt):
    """The sandbox pid of the one live shim of @rt (a runtimed with one Space)."""
    live = live_shims(rt)
    assert len(live) == 1, live
    sdir, idir = live[0]
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(str(pathlib.Path(rt.data_dir) / "run" / sdir / idir / "shim.sock"))
        s.sendall(b"status\n")
        st = json.loads(s.recv(65536))
    assert st["pid"] > 0, st
    return st["pid"]


@pytest.fixture(scope="module")
def graceful(bin_dir, tmp_path_factory):
    """A runtimed whose grace (60 s) outlasts any slowness of the test, with one running
    static Space 'nap' and no light sleep."""
    base = tmp_path_factory.mktemp("rt75grace")
    conf = base / "runtimed.yaml"
    conf.write_text("light_sleep_ms: -1\nsleep_grace_ms: 60000\n")
    rt = Runtimed(bin_dir, base / "data", config=conf).start()
    rt.add_user("alice")
    token = rt.token("alice", "write")
    create_and_push(rt, token, base, "nap")
    j = wait_stage(rt, "nap", token, ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"))
    assert j["stage"] == "RUNNING", j
    yield rt, token
    rt.stop()
    for sdir, idir in live_shims(rt):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(pathlib.Path(rt.data_dir) / "run" / sdir / idir / "shim.sock"))
                s.sendall(b"stop 0\n")
        except OSError:
            pass


def test_a_wake_in_the_sleep_grace_keeps_the_app(graceful):
    rt, token = graceful
    before = only_app_pid(rt)
    assert rt.post("/api/spaces/alice/nap/sleeptime", token, json={"seconds": 1}).status_code == 200
    wait_stage(rt, "nap", token, ("SLEEPING",), timeout=30)
    assert rt.post("/api/spaces/alice/nap/sleeptime", token, json={"seconds": -1}).status_code == 200
    assert route(rt, "nap")["upstream"] is None  # the route went first...
    assert only_app_pid(rt) == before  # ...and the app runs on in the grace
    t0 = time.monotonic()
    w = rt.post("/api/proxy/wake", rt.proxy, json={"id": "alice/nap"})
    took = (time.monotonic() - t0) * 1000
    assert w.status_code == 202, w.text
    j = w.json()
    assert j["stage"] == "RUNNING" and j["upstream"], j  # usable at once: no table needed
    assert runtime(rt, "nap", token)["stage"] == "RUNNING"
    assert route(rt, "nap")["upstream"] == j["upstream"]
    assert only_app_pid(rt) == before  # no restart
    assert fetch(j["upstream"]).status_code == 200
    assert "woken in its sleep grace" in rt.log()
    print(f"wake in the sleep grace: 202 with the upstream in {took:.1f} ms")


def test_activity_in_the_sleep_grace_keeps_the_app(graceful):
    """A request the proxy sent down its old route is reported as activity: it takes the
    Space back too."""
    rt, token = graceful
    before = only_app_pid(rt)
    assert rt.post("/api/spaces/alice/nap/sleeptime", token, json={"seconds": 1}).status_code == 200
    wait_stage(rt, "nap", token, ("SLEEPING",), timeout=30)
    assert rt.post("/api/spaces/alice/nap/sleeptime", token, json={"seconds": -1}).status_code == 200
    r = rt.post("/api/proxy/activity", rt.proxy, json={"ids": ["alice/nap"]})
    assert r.status_code == 204
    assert runtime(rt, "nap", token)["stage"] == "RUNNING"
    up = route(rt, "nap")["upstream"]
    assert up and fetch(up).status_code == 200
    assert only_app_pid(rt) == before
