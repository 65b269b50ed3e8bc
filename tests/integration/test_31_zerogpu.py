"""The ZeroGPU device API (gpu-sched/devapi*.c) driven by the REAL `spaces` client:
spaces.zero.client's schedule/allow/release and spaces.zero.api's APIClient (httpx,
pydantic), against bin/spaceport-gpud with a fake GPU on loopback.  Workers are real
processes (`sleep`, or a forked Python child calling client.allow())."""
import os
import threading
import time
from datetime import timedelta

import pytest

from test_31_zerogpu_support import (CGROUP_PATH, SSE, Gpud, api_client, cleanup_proc,
                                     jwt, load_spaces_client, proxy_v1, sleeper,
                                     unload_spaces_client, visitor_key, wait_dead)

SECRET = b"proxy-token-for-tests"
KEY = visitor_key(SECRET)


@pytest.fixture
def gpud_factory(bin_dir, tmp_path):
    started = []
    secret = tmp_path / "proxy.token"
    secret.write_bytes(SECRET + b"\n")

    def start(*args, **kw):
        sub = tmp_path / f"gpud{len(started)}"
        sub.mkdir()
        g = Gpud(bin_dir, sub, "--visitor-secret-file", str(secret), *args, **kw)
        started.append(g)
        return g

    yield start
    for g in started:
        rc = g.stop()
        assert rc == 0, f"gpud exited {rc}:\n{g.log()}"


@pytest.fixture
def workers():
    procs = []

    def spawn():
        p = sleeper()
        procs.append(p)
        return p

    yield spawn
    for p in procs:
        cleanup_proc(p)


@pytest.fixture
def spaces_client(tmp_path):
    loaded = {}

    def load(url):
        client, api, gr = load_spaces_client(url, tmp_path / "proc-self-cgroup")
        loaded.update(client=client, api=api, gr=gr)
        return client, api, gr

    yield load
    unload_spaces_client()


def test_startup_report_and_queue_size(gpud_factory, spaces_client):
    g = gpud_factory()
    client, api, gr = spaces_client(g.url)
    client.startup_report()  # raises unless 200
    g.wait_log("startup-report space=alice/demo")
    assert api_client(g.url).get_queue_size() == 0


def test_grant_allow_release_with_the_real_client(gpud_factory, spaces_client, workers):
    g = gpud_factory("--max-duration", "120")
    client, api, gr = spaces_client(g.url)
    res = client.schedule(task_id=1234, request=None, duration=timedelta(seconds=30))
    assert isinstance(res, api.ScheduleResponse)
    assert res.idle is False and res.nvidiaIndex == 0
    assert res.nvidiaUUID.startswith("GPU-") and len(res.allowToken) == 32

    # The worker: a forked child that calls the client's own allow() with its pid,
    # as spaces' Worker does on its first task, then waits to be told to stop.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            client.allow(res.allowToken)
            os.write(w, b"ok")
            time.sleep(1000)
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(w, repr(e).encode()[:200])
        finally:
            os._exit(0)  # never return into pytest
    os.close(w)
    try:
        assert os.read(r, 256) == b"ok"
        g.wait_log(f"allow lease=1 pid={pid} nvidiaIndex=0")
        with _no_warnings():
            client.release(res.allowToken)  # 200: the worker was used
        # Released cleanly, same Space, worker alive: the next grant is idle on the
        # same unit, so the client reuses the worker it forked.
        res2 = client.schedule(task_id=1234, request=None, duration=timedelta(seconds=30))
        assert res2.idle is True and res2.nvidiaIndex == 0
        assert res2.allowToken != res.allowToken
        client.release(res2.allowToken, fail=False)
        # An idle grant runs on the kept worker, so its release says "used" too.
        res3 = client.schedule(task_id=1, request=None, duration=timedelta(seconds=5))
        assert res3.idle is True
        assert api_client(g.url).release(res3.allowToken) == 200
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)


class _no_warnings:
    def __enter__(self):
        import gc
        import warnings
        # Garbage made before the window (an unclosed socket the client dropped) must
        # not warn inside it, whenever the collector happens to run.
        gc.collect()
        self.cm = warnings.catch_warnings(record=True)
        self.rec = self.cm.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self.cm.__exit__(*exc)
        assert not [str(w.message) for w in self.rec]


def test_release_statuses(gpud_factory, spaces_client, workers):
    g = gpud_factory()
    client, api, gr = spaces_client(g.url)
    c = api_client(g.url)
    res, meta = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=10)
    assert c.release(res.allowToken) == 204  # never allowed: not used
    assert c.release(res.allowToken) == 404  # gone
    res, meta = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=10)
    w = workers()
    assert c.allow(res.allowToken, w.pid) == 200
    assert c.allow("0" * 32, w.pid) == 404
    assert c.release(res.allowToken, fail=False) == 200


def test_quota_429_left_and_wait(gpud_factory, spaces_client):
    g = gpud_factory("--quota", "anonymous=100,user=300,pro=2400", "--max-duration", "300")
    client, api, gr = spaces_client(g.url)
    c = api_client(g.url)
    token = jwt(KEY, ip="203.0.113.7")
    res, meta = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, token=token, duration_seconds=60)
    assert isinstance(res, api.ScheduleResponse) and meta.auth is None
    time.sleep(1.0)
    assert c.release(res.allowToken) == 204
    # Charged the ~1 s actually used, not the 60 declared: 98 or 99 s are left.
    res, meta = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, token=token, duration_seconds=120)
    assert isinstance(res, api.QuotaInfos)
    assert res.left in (98, 99), res
    wait = res.wait.total_seconds()
    assert 86400 - 10 < wait <= 86400, wait
    # The real client turns it into its user-facing message.
    req = gr.Request({"x-ip-token": token, "x-gradio-user": "app"})
    with pytest.raises(gr.Error) as e:
        client.schedule(task_id=1, request=req, duration=timedelta(seconds=120))
    assert f"(120s requested vs. {res.left}s left)" in e.value.message
    assert "Try again in 23:59:" in e.value.message
    # Another visitor has a quota of its own.
    other = jwt(KEY, ip="198.51.100.1")
    res2 = client.schedule(task_id=1, request=gr.Request({"x-ip-token": other}),
                           duration=timedelta(seconds=100))
    assert isinstance(res2, api.ScheduleResponse)
    assert c.release(res2.allowToken) == 204


def test_too_long_and_space_pays_without_token(gpud_factory, spaces_client):
    g = gpud_factory("--quota", "anonymous=50", "--max-duration", "120")
    client, api, gr = spaces_client(g.url)
    c = api_client(g.url)
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=121)
    assert isinstance(res, api.QuotaInfos) and res.wait.total_seconds() == -1
    with pytest.raises(gr.Error) as e:
        client.schedule(task_id=1, request=None, duration=timedelta(seconds=200))
    assert "larger than the maximum allowed" in e.value.message
    # No token: the Space itself pays, and the client says so.
    with pytest.raises(gr.Error) as e:
        client.schedule(task_id=1, request=None, duration=timedelta(seconds=60))
    assert "Space app has reached its GPU limit" in e.value.message


def test_visitor_tokens_set_class_and_identity(gpud_factory, spaces_client):
    g = gpud_factory("--quota", "anonymous=10,user=300,pro=2400")
    client, api, gr = spaces_client(g.url)
    c = api_client(g.url)
    cases = [
        (jwt(KEY, user="bob", **{"class": "pro"}), "pro"),
        (jwt(KEY, user="carol"), "regular"),
        (jwt(KEY, ip="192.0.2.5"), None),
        (proxy_v1(KEY, "192.0.2.6"), None),   # spaceproxy's header as it is today
        (jwt(b"x" * 32, user="mallory", **{"class": "pro"}), None),  # wrong key: anonymous
        (jwt(KEY, user="eve", exp=int(time.time()) - 5), None),      # expired: anonymous
        ("not-a-token", None),
    ]
    for token, auth in cases:
        res, meta = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, token=token,
                               duration_seconds=5)
        assert isinstance(res, api.ScheduleResponse), (token, res)
        assert meta.auth == auth, token
        assert c.release(res.allowToken) == 204
    # Forged tokens are billed to the caller's address: while one holds 8 s of the
    # 10 s anonymous quota of 127.0.0.1 (reserved while it runs), another forged
    # token cannot take 8 s more; a genuine visitor still can.
    held, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, token="bogus", duration_seconds=8)
    assert isinstance(held, api.ScheduleResponse)
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=2, token=jwt(b"k" * 32, ip="10.9.9.9"),
                        duration_seconds=8, enable_queue=False)
    assert isinstance(res, api.QuotaInfos) and res.left in (1, 2), res  # ms used before
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=3, token=jwt(KEY, ip="10.9.9.9"),
                        duration_seconds=8, enable_queue=False)
    assert res == 503  # quota fine; only the single unit is busy
    assert c.release(held.allowToken) == 204


def test_strict_tokens_401(gpud_factory, spaces_client):
    g = gpud_factory("--strict-tokens")
    client, api, gr = spaces_client(g.url)
    with pytest.raises(gr.Error) as e:
        client.schedule(task_id=1, request=gr.Request({"x-ip-token": "v1;ip=1.2.3.4;t=1;sig=00"}),
                        duration=timedelta(seconds=5))
    assert "Expired ZeroGPU proxy token" in e.value.message
    ok = jwt(KEY, user="dan")
    res = client.schedule(task_id=1, request=gr.Request({"x-ip-token": ok}),
                          duration=timedelta(seconds=5))
    assert res.nvidiaIndex == 0


def test_none_free_503_and_unknown_cgroup_404(gpud_factory, spaces_client):
    g = gpud_factory("--app-cgroup", CGROUP_PATH)
    client, api, gr = spaces_client(g.url)
    c = api_client(g.url)
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    assert isinstance(res, api.ScheduleResponse)
    status, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=2, duration_seconds=30,
                           enable_queue=False)
    assert status == 503
    status, _ = c.schedule(cgroup_path="/spaces/someone-else/main", task_id=2)
    assert status == 404


def test_queue_sse_one_event_per_chunk(gpud_factory):
    g = gpud_factory("--ping-ms", "150")
    c = api_client(g.url)
    first, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    sse = SSE(g.port, f"cgroupPath={CGROUP_PATH}&taskId=2&enableQueue=true&durationSeconds=20")
    try:
        assert sse.status == 200
        assert sse.headers["content-type"] == "text/event-stream"
        assert sse.headers["x-queuing-reason"] == "node"
        assert "x-authenticated" not in sse.headers
        assert c.get_queue_size() == 1
        t0 = time.monotonic()
        for _ in range(3):
            assert sse.chunk() == b"event: ping\n\n"
        assert time.monotonic() - t0 >= 0.3  # paced by --ping-ms, not a burst
        c.release(first.allowToken)
        ev = sse.chunk()
        head, data, empty = ev.split(b"\n", 2)
        assert head == b"event: succeeded" and data.startswith(b"data: {") and empty == b"\n"
        # Same Space, released cleanly: idle, the client may reuse its worker.
        assert b'"nvidiaIndex":0' in data and b'"idle":true' in data
        assert sse.chunk() == b""  # the stream ends with the grant
        assert c.get_queue_size() == 0
    finally:
        sse.close()


def test_queue_with_the_real_client_stream(gpud_factory, spaces_client):
    g = gpud_factory("--ping-ms", "100")
    client, api, gr = spaces_client(g.url)
    c = api_client(g.url)
    first, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    threading.Timer(0.5, lambda: c.release(first.allowToken)).start()
    # client.schedule parses each network chunk as one event: pings then succeeded.
    res = client.schedule(task_id=2, request=None, duration=timedelta(seconds=10))
    assert isinstance(res, api.ScheduleResponse) and res.nvidiaIndex == 0
    assert ("info", "ZeroGPU queue", "Waiting for a GPU to become available") in gr.toasts
    assert ("success", "ZeroGPU queue", "Successfully acquired a GPU") in gr.toasts


def test_queue_timeout_sends_failed(gpud_factory, spaces_client):
    g = gpud_factory("--queue-timeout", "1", "--ping-ms", "300")
    client, api, gr = spaces_client(g.url)
    c = api_client(g.url)
    c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    with pytest.raises(gr.Error) as e:
        client.schedule(task_id=2, request=None, duration=timedelta(seconds=10))
    assert "No GPU was available after 60s" in e.value.message


def test_concurrency_reason_header(gpud_factory):
    g = gpud_factory("--concurrency", "1", gpus="2xa10g:24G")
    c = api_client(g.url)
    c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    sse = SSE(g.port, f"cgroupPath={CGROUP_PATH}&taskId=2&durationSeconds=5")
    try:
        assert sse.headers["x-queuing-reason"] == "concurrency"
    finally:
        sse.close()


def test_client_leaving_the_queue_cancels(gpud_factory):
    g = gpud_factory()
    c = api_client(g.url)
    c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    sse = SSE(g.port, f"cgroupPath={CGROUP_PATH}&taskId=2&durationSeconds=5")
    assert c.get_queue_size() == 1
    sse.close()
    deadline = time.time() + 3
    while c.get_queue_size() != 0:
        assert time.time() < deadline
        time.sleep(0.02)


def test_deadline_kills_the_worker_and_revokes(gpud_factory, workers):
    g = gpud_factory("--quota", "anonymous=100")
    c = api_client(g.url)
    token = jwt(KEY, ip="203.0.113.9")
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, token=token, duration_seconds=1)
    w = workers()
    assert c.allow(res.allowToken, w.pid) == 200
    t0 = time.monotonic()
    assert wait_dead(w, 5) == -9, "the worker outlived its deadline"
    took = time.monotonic() - t0
    assert 0.7 < took < 2.0, took
    g.wait_log(f"revoke lease=1 pid={w.pid} nvidiaIndex=0 why=expired")
    assert c.release(res.allowToken, fail=True) == 404  # what the client sees after
    # The unit is back; the expired lease was charged its full 1 s, nothing more.
    res2, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, token=token, duration_seconds=99)
    assert isinstance(res2, type(res)) and res2.idle is False


def test_reused_worker_is_killed_at_the_deadline_too(gpud_factory, workers):
    g = gpud_factory()
    c = api_client(g.url)
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    w = workers()
    assert c.allow(res.allowToken, w.pid) == 200
    assert c.release(res.allowToken) == 200
    # Idle grant: the client reuses the worker without a new /allow.
    res2, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=1)
    assert res2.idle is True
    assert wait_dead(w, 5) == -9
    g.wait_log(f"pid={w.pid} nvidiaIndex=0 why=expired")


def test_crashed_worker_gives_the_lease_back(gpud_factory, workers):
    g = gpud_factory("--ping-ms", "5000")
    c = api_client(g.url)
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=60)
    w = workers()
    assert c.allow(res.allowToken, w.pid) == 200
    sse = SSE(g.port, f"cgroupPath={CGROUP_PATH}&taskId=2&durationSeconds=5")
    try:
        t0 = time.monotonic()
        w.kill()
        w.wait()
        ev = sse.chunk()
        assert ev.startswith(b"event: succeeded\ndata: "), ev
        assert time.monotonic() - t0 < 1.0
        g.wait_log(f"revoke lease=1 pid={w.pid} nvidiaIndex=0 why=died")
        # A worker that died is not reused: the new grant is not idle.
        assert b'"idle":false' in ev
    finally:
        sse.close()
    assert c.release(res.allowToken, fail=True) == 404


def test_failed_release_then_grant_evicts_the_kept_worker(gpud_factory, workers):
    g = gpud_factory()
    c = api_client(g.url)
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    w = workers()
    assert c.allow(res.allowToken, w.pid) == 200
    assert c.release(res.allowToken, fail=True) == 200
    assert w.poll() is None  # the client keeps its worker after a failure
    res2, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    assert res2.idle is False
    # It still holds the device open: it must be gone before the grant is used.
    assert wait_dead(w, 2) == -9
    g.wait_log(f"revoke lease=1 pid={w.pid} nvidiaIndex=0 why=evicted")


def test_allow_of_a_dead_pid_is_refused_and_frees_the_unit(gpud_factory, workers):
    g = gpud_factory()
    c = api_client(g.url)
    res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    w = workers()
    w.kill()
    w.wait()
    assert c.allow(res.allowToken, w.pid) == 400
    res2, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    assert res2.nvidiaIndex == 0
