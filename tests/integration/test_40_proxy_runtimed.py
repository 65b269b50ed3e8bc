"""spaceproxy with the real runtimed: routes from GET /api/proxy/routes, private Spaces
through check-token and the sign-in cookie, wake on visit, activity, and serving on
while runtimed is killed.

Until the lifecycle supervisor starts Spaces, the tests stand in for it the way
test_53 does for the builder: they write a Space's stage and upstream into runtimed's
database and bump the route generation, exactly what the supervisor will do."""
import os
import pathlib
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from test_40_proxy import free_port, start_upstream, wait_port
from test_5_support import Runtimed


def set_running(rt, owner, name, upstream_port, stage="RUNNING"):
    db = sqlite3.connect(rt.data_dir / "spaceport.db", timeout=10)
    with db:
        up = f"127.0.0.1:{upstream_port}" if upstream_port else ""
        db.execute("UPDATE spaces SET stage = ?, upstream = ? WHERE owner = ? AND name = ?",
                   (stage, up, owner, name))
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    db.close()


def events(rt, owner, name, kind):
    db = sqlite3.connect(rt.data_dir / "spaceport.db", timeout=10)
    rows = db.execute("SELECT e.kind FROM events e JOIN spaces s ON s.id = e.space_id "
                      "WHERE s.owner = ? AND s.name = ? AND e.kind = ?", (owner, name, kind)).fetchall()
    db.close()
    return len(rows)


def last_activity(rt, owner, name):
    db = sqlite3.connect(rt.data_dir / "spaceport.db", timeout=10)
    (v,) = db.execute("SELECT last_activity FROM spaces WHERE owner = ? AND name = ?", (owner, name)).fetchone()
    db.close()
    return v


class Stack:
    pass


def start_proxy(bin_dir, rt, tmp_path, conf, workers=1):
    """spaceproxy in front of @rt with the config file @conf: (process, Stack with .port)."""
    st = Stack()
    st.port = free_port()
    p = subprocess.Popen(
        [str(bin_dir / "spaceproxy"), "--listen", f"127.0.0.1:{st.port}", "--runtimed", rt.url,
         "--token-file", str(rt.data_dir / "proxy.token"), "--workers", str(workers),
         "--config", str(conf)], stderr=open(tmp_path / "proxy.log", "wb"))
    wait_port(st.port)
    return p, st


def wait_serving(st, label, timeout=10):
    """Until the proxy's table routes @label (its first poll, or a change)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and get(st, label).status_code != 200:
        time.sleep(0.05)
    return get(st, label).status_code == 200


@pytest.fixture
def stack(bin_dir, tmp_path):
    st = Stack()
    st.rt = Runtimed(bin_dir, tmp_path / "data").start()
    rt = st.rt
    rt.add_user("alice")
    rt.add_user("bob")
    st.alice = rt.token("alice", "read")
    st.bob = rt.token("bob", "read")
    for name, private in (("open", False), ("secret", True), ("secret2", True), ("sleepy", False)):
        assert rt.create_space("alice", name, private=private).status_code == 200
    st.up = start_upstream("space")
    set_running(rt, "alice", "open", st.up.port)
    set_running(rt, "alice", "secret", st.up.port)
    set_running(rt, "alice", "secret2", st.up.port)
    set_running(rt, "alice", "sleepy", None, stage="SLEEPING")
    st.proxy, started = start_proxy(bin_dir, rt, tmp_path, write_conf(tmp_path), workers=2)
    st.port = started.port
    st.log = tmp_path / "proxy.log"
    wait_serving(st, "alice-open")  # the first poll fills the table
    yield st
    st.proxy.send_signal(signal.SIGTERM)
    st.proxy.wait(timeout=15)
    if st.rt.alive():
        st.rt.stop()
    st.up.shutdown()
    st.up.server_close()


def write_conf(tmp_path):
    p = tmp_path / "proxy-rt.yaml"
    p.write_text("poll_interval: 200ms\nwake_timeout: 3s\nactivity_interval: 300ms\n")
    return p


def get(st, label, path="/echo", **kw):
    headers = {"Host": f"{label}.localhost:{st.port}"}
    headers.update(kw.pop("headers", {}))
    kw.setdefault("allow_redirects", False)
    return requests.get(f"http://127.0.0.1:{st.port}{path}", headers=headers, timeout=10, **kw)


def test_routes_come_from_runtimed(stack):
    r = get(stack, "alice-open")
    assert r.status_code == 200 and r.json()["server"] == "space"
    assert get(stack, "alice-nothing").status_code == 404


def test_private_space_needs_a_token_that_can_read_it(stack):
    nobody = get(stack, "alice-nothing")
    anon = get(stack, "alice-secret")
    assert anon.status_code == 404
    assert anon.text == nobody.text  # nothing tells a private Space from no Space
    assert get(stack, "alice-secret", headers={"Authorization": f"Bearer {stack.bob}"}).status_code == 404
    assert get(stack, "alice-secret", headers={"Authorization": "Bearer sp_bogus"}).status_code == 404
    r = get(stack, "alice-secret", headers={"Authorization": f"Bearer {stack.alice}"})
    assert r.status_code == 200
    seen = {k.lower(): v for k, v in r.json()["headers"]}
    assert "authorization" not in seen  # the platform credential stays with the platform
    # gradio_client's token=... comes as X-HF-Authorization, as the Hub's Space hosts take it
    hf = {"X-HF-Authorization": f"Bearer {stack.bob}"}
    assert get(stack, "alice-secret", headers=hf).status_code == 404
    r = get(stack, "alice-secret", headers={"X-HF-Authorization": f"Bearer {stack.alice}"})
    assert r.status_code == 200
    assert "x-hf-authorization" not in {k.lower() for k, _ in r.json()["headers"]}


def test_visitor_identity_is_signed_with_the_proxy_token(stack):
    from test_41_proxy_visitor import verify_ip_token
    r = get(stack, "alice-open", headers={"X-IP-Token": "forged"})
    seen = {k.lower(): v for k, v in r.json()["headers"]}
    pl = verify_ip_token(seen["x-ip-token"], stack.rt.data_dir / "proxy.token")
    assert pl["ip"] == "127.0.0.1" and pl["class"] == "anonymous" and "user" not in pl
    assert abs(pl["exp"] - 3600 - time.time()) < 5


def test_signin_cookie_is_scoped_to_one_space(stack):
    r = requests.post(f"http://127.0.0.1:{stack.port}/.spaceport/signin",
                      headers={"Host": f"alice-secret.localhost:{stack.port}"},
                      data={"token": stack.alice}, allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Domain" not in cookie
    value = cookie.split(";")[0]
    ok = get(stack, "alice-secret", headers={"Cookie": f"theme=dark; {value}"})
    assert ok.status_code == 200
    seen = {k.lower(): v for k, v in ok.json()["headers"]}
    assert seen["cookie"] == "theme=dark"  # our cookie is not the Space's business
    # the same cookie presented to another private Space of the same owner: nothing
    assert get(stack, "alice-secret2", headers={"Cookie": value}).status_code == 404
    # a tampered one: nothing
    assert get(stack, "alice-secret", headers={"Cookie": value[:-1] + ("0" if value[-1] != "0" else "1")}).status_code == 404
    bad = requests.post(f"http://127.0.0.1:{stack.port}/.spaceport/signin",
                        headers={"Host": f"alice-secret.localhost:{stack.port}"},
                        data={"token": stack.bob}, allow_redirects=False, timeout=10)
    assert bad.status_code == 403 and "Set-Cookie" not in bad.headers


def test_running_spaces_keep_answering_after_kill_9_of_runtimed(stack):
    assert get(stack, "alice-secret", headers={"Authorization": f"Bearer {stack.alice}"}).status_code == 200
    stack.rt.proc.send_signal(signal.SIGKILL)
    stack.rt.proc.wait()
    time.sleep(0.6)  # a few failed polls
    for _ in range(5):
        assert get(stack, "alice-open").status_code == 200
        assert get(stack, "alice-secret", headers={"Authorization": f"Bearer {stack.alice}"}).status_code == 200
        assert get(stack, "alice-secret").status_code == 404
    # and runtimed coming back is picked up again
    stack.rt.start()
    set_running(stack.rt, "alice", "open", None, stage="STOPPED")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and get(stack, "alice-open", headers={"Accept": "text/html"}).status_code == 200:
        time.sleep(0.1)
    assert get(stack, "alice-open", headers={"Accept": "text/html"}).status_code == 503


def test_browser_visit_to_a_sleeping_space_gets_the_waking_page(stack):
    t0 = time.monotonic()
    r = get(stack, "alice-sleepy", "/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert time.monotonic() - t0 < 1
    assert r.status_code == 503
    assert "waking up" in r.text and "/.spaceport/status" in r.text
    assert r.headers["Retry-After"] and r.headers["Refresh"]
    s = get(stack, "alice-sleepy", "/.spaceport/status")
    assert s.json() == {"stage": "SLEEPING", "ready": False}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and events(stack.rt, "alice", "sleepy", "wake") == 0:
        time.sleep(0.05)
    assert events(stack.rt, "alice", "sleepy", "wake") >= 1


def test_api_request_is_held_until_the_space_wakes(stack):
    result = {}

    def call():
        result["r"] = get(stack, "alice-sleepy", "/echo?held=1")

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and events(stack.rt, "alice", "sleepy", "wake") == 0:
        time.sleep(0.05)
    assert events(stack.rt, "alice", "sleepy", "wake") >= 1
    time.sleep(0.3)
    assert t.is_alive(), "the request should be held, not answered"
    set_running(stack.rt, "alice", "sleepy", stack.up.port)  # what the supervisor does
    t.join(10)
    assert result["r"].status_code == 200
    assert result["r"].json()["path"] == "/echo?held=1"
    assert get(stack, "alice-sleepy", "/.spaceport/status").json() == {"stage": "RUNNING", "ready": True}


def test_held_request_gets_503_when_the_space_does_not_wake(stack):
    t0 = time.monotonic()
    r = get(stack, "alice-sleepy", "/echo")
    took = time.monotonic() - t0
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert 2.5 < took < 6


def test_activity_is_reported(stack):
    before = last_activity(stack.rt, "alice", "open")
    time.sleep(0.05)
    get(stack, "alice-open")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and last_activity(stack.rt, "alice", "open") == before:
        time.sleep(0.1)
    assert last_activity(stack.rt, "alice", "open") > before


def test_paused_space_gets_a_page_naming_its_stage(stack):
    owner_token = stack.rt.token("alice", "write")
    r = stack.rt.post("/api/spaces/alice/open/pause", owner_token)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and get(stack, "alice-open").status_code == 200:
        time.sleep(0.1)
    r = get(stack, "alice-open", "/", headers={"Accept": "text/html"})
    assert r.status_code == 503 and "PAUSED" in r.text
    assert events(stack.rt, "alice", "open", "wake") == 0  # a paused Space is not woken


def test_runtimed_unreachable_at_start_leaves_config_routes_working(bin_dir, tmp_path):
    up = start_upstream("cfg")
    port = free_port()
    conf = tmp_path / "p.yaml"
    conf.write_text(f"listen: 127.0.0.1:{port}\nworkers: 1\nruntimed: http://127.0.0.1:{free_port()}\n"
                    f"token_file: {tmp_path}/missing\nroutes:\n"
                    f"  - {{host: ops.localhost, upstream: 127.0.0.1:{up.port}}}\n")
    p = subprocess.Popen([str(bin_dir / "spaceproxy"), "--config", str(conf)],
                                       stderr=open(tmp_path / "log", "wb"))
    try:
        wait_port(port)
        for _ in range(3):
            r = requests.get(f"http://127.0.0.1:{port}/echo", headers={"Host": "ops.localhost"}, timeout=5)
            assert r.status_code == 200
            r = requests.get(f"http://127.0.0.1:{port}/", headers={"Host": "alice-x.localhost"}, timeout=5)
            assert r.status_code == 404
            time.sleep(0.5)
        assert p.poll() is None
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
        up.shutdown()
        up.server_close()


def routes_call(rt, timeout=40, **params):
    return rt.get("/api/proxy/routes", rt.proxy, params=params, timeout=timeout)


def test_routes_long_poll_answers_a_change_at_once_and_304_after_the_wait(stack):
    rt = stack.rt
    gen = routes_call(rt).json()["generation"]
    # Nothing changes: held for the whole wait, then 304.
    t0 = time.monotonic()
    r = routes_call(rt, since=gen, wait=1)
    held = time.monotonic() - t0
    assert r.status_code == 304 and held >= 0.9, (r.status_code, held)
    # A change made through runtimed's API while the request waits: answered with the
    # new table (not a 304 at the end of the 20 s wait).
    result = {}

    def poll():
        t = time.monotonic()
        result["r"] = routes_call(rt, since=gen, wait=20)
        result["t"] = time.monotonic() - t

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    assert th.is_alive(), "the long-poll should be held while nothing changes"
    owner_token = rt.token("alice", "write")
    assert rt.post("/api/spaces/alice/open/sleeptime", owner_token,
                   json={"seconds": 3600}).status_code == 200
    th.join(25)
    r = result["r"]
    assert r.status_code == 200 and r.json()["generation"] > gen, r.status_code
    print(f"long-poll: answered {result['t'] - 0.5:.3f} s after the change (wait was 20 s)")
    # A stale generation is answered at once; no wait param is today's plain poll.
    assert routes_call(rt, since=gen, wait=20, timeout=5).status_code == 200
    new = r.json()["generation"]
    assert routes_call(rt, since=new, timeout=5).status_code == 304
    assert routes_call(rt, since=new, wait="soon").status_code == 400


def test_proxy_learns_a_change_by_long_poll_not_by_its_poll_interval(bin_dir, tmp_path):
    """A proxy whose plain poll would come only every 60 s still sees a Space paused
    within moments: runtimed answers its held routes request at the change."""
    rt = Runtimed(bin_dir, tmp_path / "data").start()
    up = start_upstream("space")
    conf = tmp_path / "slow-poll.yaml"
    conf.write_text("poll_interval: 60s\nwake_timeout: 3s\nactivity_interval: 300ms\n")
    p, st = start_proxy(bin_dir, rt, tmp_path, conf)
    try:
        rt.add_user("alice")
        assert rt.create_space("alice", "open").status_code == 200
        set_running(rt, "alice", "open", up.port)
        wait_serving(st, "alice-open")
        assert get(st, "alice-open").status_code == 200
        owner = rt.token("alice", "write")
        t0 = time.monotonic()
        assert rt.post("/api/spaces/alice/open/pause", owner).status_code == 200
        while time.monotonic() - t0 < 20 and get(st, "alice-open").status_code == 200:
            time.sleep(0.02)
        took = time.monotonic() - t0
        r = get(st, "alice-open", "/", headers={"Accept": "text/html"})
        assert r.status_code == 503 and "PAUSED" in r.text, (r.status_code, took)
        print(f"pause seen by the proxy {took * 1000:.0f} ms after the API call (poll_interval 60 s)")
        # runtimed restarted: the proxy serves on meanwhile, then reconnects and follows.
        rt.stop()
        assert get(st, "alice-open", "/", headers={"Accept": "text/html"}).status_code == 503
        rt.start()
        db = sqlite3.connect(rt.data_dir / "spaceport.db", timeout=10)
        with db:  # unpaused and running, as the supervisor would leave it
            db.execute("UPDATE spaces SET paused = 0 WHERE owner = 'alice' AND name = 'open'")
        db.close()
        set_running(rt, "alice", "open", up.port)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and get(st, "alice-open").status_code != 200:
            time.sleep(0.05)
        assert get(st, "alice-open").status_code == 200, (
            routes_call(rt).json(), get(st, "alice-open", "/.spaceport/status").text,
            [l for l in (tmp_path / "proxy.log").read_text().splitlines() if "access" not in l])
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
        if rt.alive():
            rt.stop()
        up.shutdown()
        up.server_close()


def test_a_request_in_flight_when_its_route_goes_is_reported_at_once(bin_dir, tmp_path):
    """Light sleep freezes a Space and withdraws its route in one step; a request the
    proxy had already sent there waits on a frozen app until runtimed hears of activity
    and thaws it.  The proxy reports such a request as soon as the route goes, not at its
    next activity_interval (60 s here)."""
    rt = Runtimed(bin_dir, tmp_path / "data").start()
    up = start_upstream("space")
    conf = tmp_path / "slow-activity.yaml"
    conf.write_text("poll_interval: 200ms\nwake_timeout: 3s\nactivity_interval: 60s\n")
    p, st = start_proxy(bin_dir, rt, tmp_path, conf)
    try:
        rt.add_user("alice")
        assert rt.create_space("alice", "open").status_code == 200
        set_running(rt, "alice", "open", up.port)
        wait_serving(st, "alice-open")
        before = last_activity(rt, "alice", "open")
        result = {}
        th = threading.Thread(target=lambda: result.update(r=get(st, "alice-open", "/slow?delay=4")))
        th.start()
        time.sleep(0.5)  # in flight at the upstream
        set_running(rt, "alice", "open", None)  # what a freeze does to the route
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline and last_activity(rt, "alice", "open") == before:
            time.sleep(0.05)
        assert last_activity(rt, "alice", "open") > before, "no activity report until the 60 s tick"
        th.join(10)
        assert result["r"].status_code == 200
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
        if rt.alive():
            rt.stop()
        up.shutdown()
        up.server_close()


def test_sockets_to_runtimed_are_close_on_exec(stack):
    """libcurl's sockets (the route long-poll is open right now) are born close-on-exec
    like every other fd of spaceproxy's (CURLOPT_OPENSOCKETFUNCTION).  TCP ones: the
    AF_UNIX pair libcurl 7.88 makes inside each handle's multi (its wakeup) is out of
    that callback's reach."""
    assert get(stack, "alice-open").status_code == 200  # the jobs thread's too (activity)
    time.sleep(0.5)
    pid = stack.proxy.pid
    inet = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        inet |= {line.split()[9] for line in pathlib.Path(table).read_text().splitlines()[1:]}
    socks = []
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            if not target.startswith("socket:") or target[8:-1] not in inet:
                continue
            flags = next(l for l in (pathlib.Path(f"/proc/{pid}/fdinfo") / fd.name)
                         .read_text().splitlines() if l.startswith("flags:"))
        except (FileNotFoundError, StopIteration):
            continue  # closed meanwhile
        socks.append((fd.name, int(flags.split()[1], 8)))
    assert len(socks) >= 3, socks  # listener(s), and at least the long-poll to runtimed
    leaky = [fd for fd, flags in socks if not flags & os.O_CLOEXEC]
    assert not leaky, f"fds without O_CLOEXEC: {leaky} of {socks}"
