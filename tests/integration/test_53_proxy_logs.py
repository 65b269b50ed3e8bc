"""The spaceproxy contract (docs/ARCHITECTURE.md) and the SSE log streams."""
import json
import socket
import sqlite3
import time

import pytest
import requests

from test_5_support import Runtimed, assert_error, runtimed_factory, shared_rt, unique  # noqa: F401


@pytest.fixture(scope="module")
def erin(shared_rt):
    shared_rt.add_user("erin")
    tok = shared_rt.token("erin")
    assert shared_rt.create_space("erin", "Open_App", tok).status_code == 200
    assert shared_rt.create_space("erin", "secret", tok, private=True).status_code == 200
    return tok


def route_of(rt, sid):
    routes = rt.get("/api/proxy/routes", rt.proxy).json()["spaces"]
    return next((s for s in routes if s["id"] == sid), None)


def test_routes_shape(shared_rt, erin):
    r = shared_rt.get("/api/proxy/routes", shared_rt.proxy)
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body["generation"], int)
    route = route_of(shared_rt, "erin/Open_App")
    assert route == {"id": "erin/Open_App", "host": "erin-open-app", "stage": "NO_APP_FILE", "private": False,
                     "upstream": None, "custom_headers": {}, "disable_embedding": False}
    assert route_of(shared_rt, "erin/secret")["private"] is True


def test_routes_generation(shared_rt, erin):
    gen = shared_rt.get("/api/proxy/routes", shared_rt.proxy).json()["generation"]
    r = shared_rt.get(f"/api/proxy/routes?since={gen}", shared_rt.proxy)
    assert r.status_code == 304 and r.content == b""
    assert shared_rt.post("/api/spaces/erin/Open_App/pause", erin).status_code == 200
    r = shared_rt.get(f"/api/proxy/routes?since={gen}", shared_rt.proxy)
    assert r.status_code == 200 and r.json()["generation"] > gen
    assert route_of(shared_rt, "erin/Open_App")["stage"] == "PAUSED"
    assert_error(shared_rt.get("/api/proxy/routes?since=x", shared_rt.proxy), 400)
    assert shared_rt.post("/api/spaces/erin/Open_App/restart", erin).status_code == 200


def test_wake(shared_rt, erin):
    r = shared_rt.post("/api/proxy/wake", shared_rt.proxy, json={"id": "erin/Open_App"})
    assert r.status_code == 202 and r.json() == {"stage": "NO_APP_FILE"}
    assert shared_rt.post("/api/spaces/erin/secret/pause", erin).status_code == 200
    r = shared_rt.post("/api/proxy/wake", shared_rt.proxy, json={"id": "erin/secret"})
    assert r.status_code == 409 and r.json()["stage"] == "PAUSED"
    assert_error(shared_rt.post("/api/proxy/wake", shared_rt.proxy, json={"id": "erin/none"}), 404)
    assert_error(shared_rt.post("/api/proxy/wake", shared_rt.proxy, json={"id": "bad"}), 400)
    assert_error(shared_rt.post("/api/proxy/wake", shared_rt.proxy, json={}), 400)
    assert_error(shared_rt.get("/api/proxy/wake", shared_rt.proxy), 405)
    assert shared_rt.post("/api/spaces/erin/secret/restart", erin).status_code == 200


def test_activity(shared_rt, erin):
    r = shared_rt.post("/api/proxy/activity", shared_rt.proxy, json={"ids": ["erin/Open_App", "erin/gone"]})
    assert r.status_code == 204 and r.content == b""
    assert_error(shared_rt.post("/api/proxy/activity", shared_rt.proxy, json={"ids": "erin/Open_App"}), 400)
    assert_error(shared_rt.post("/api/proxy/activity", shared_rt.proxy, json={"ids": [3]}), 400)


def test_check_token(shared_rt, erin):
    shared_rt.add_user("frank")
    frank = shared_rt.token("frank", "read")
    check = lambda sid, tok: shared_rt.post("/api/proxy/check-token", shared_rt.proxy, json={"id": sid, "token": tok})
    # "user"/"class" name the token's user for X-IP-Token (test_41 covers plans)
    erin_ = {"user": "erin", "class": "user"}
    frank_ = {"user": "frank", "class": "user"}
    nobody = {"user": None, "class": None}
    assert check("erin/secret", erin).json() == {"read": True, **erin_}
    assert check("erin/secret", shared_rt.token("erin", "read")).json() == {"read": True, **erin_}
    assert check("erin/secret", frank).json() == {"read": False, **frank_}
    assert check("erin/secret", "sp_" + "a" * 40).json() == {"read": False, **nobody}
    assert check("erin/secret", "").json() == {"read": False, **nobody}
    assert check("erin/secret", shared_rt.proxy).json() == {"read": False, **nobody}
    assert check("erin/Open_App", frank).json() == {"read": True, **frank_}
    assert_error(check("erin/none", erin), 404)
    assert_error(shared_rt.post("/api/proxy/check-token", shared_rt.proxy, json={"id": "erin/secret"}), 400)
    assert_error(shared_rt.post("/api/proxy/check-token", erin, json={"id": "erin/secret", "token": erin}), 403)


# --- logs ------------------------------------------------------------------------------

def add_log_lines(rt, owner, name, kind, lines):
    """Stands in for the builder (a later issue), writing lines where it will."""
    db = sqlite3.connect(rt.data_dir / "spaceport.db", timeout=10)
    with db:
        (sid,) = db.execute("SELECT id FROM spaces WHERE owner = ? AND name = ?", (owner, name)).fetchone()
        for line in lines:
            db.execute("INSERT INTO logs (space_id, kind, ts, line) VALUES (?, ?, ?, ?)",
                       (sid, 0 if kind == "build" else 1, int(time.time() * 1000), line))
    db.close()


class Stream:
    """An SSE stream read straight off a socket, so a test controls every wait."""

    def __init__(self, rt, path, token):
        self.sock = socket.create_connection(("127.0.0.1", rt.port), timeout=10)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed before the headers"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}

    def events(self, n, timeout=10):
        out = []
        deadline = time.time() + timeout
        while len(out) < n and time.time() < deadline:
            while b"\n\n" in self.buf and len(out) < n:
                event, self.buf = self.buf.split(b"\n\n", 1)
                out.append(event.decode())
            if len(out) == n:
                break
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            self.buf += chunk
        return out

    def close(self):
        self.sock.close()


@pytest.fixture
def logs_rt(runtimed_factory):
    return runtimed_factory(config_text="sse_keepalive_ms: 200\nmax_log_streams: 2\n").start()


def test_logs_stream_in_hub_format(logs_rt):
    rt = logs_rt
    assert rt.create_space("admin", "logged").status_code == 200
    add_log_lines(rt, "admin", "logged", "build", ["Step 1/2", "Step 2/2 \"quoted\" ünïcode"])
    add_log_lines(rt, "admin", "logged", "run", ["Running on 0.0.0.0:7860"])
    r = Stream(rt, "/api/spaces/admin/logged/logs/build", rt.admin)
    try:
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = r.events(2)
        lines = [json.loads(e[len("data: "):]) for e in events]
        assert [l["data"] for l in lines] == ["Step 1/2", "Step 2/2 \"quoted\" ünïcode"]
        assert all(l["timestamp"].endswith("Z") for l in lines)
        # Stays open like the Hub's: new lines arrive, keep-alives in between.
        add_log_lines(rt, "admin", "logged", "build", ["Done"])
        more = [e for e in r.events(3) if e != "data:"]
        assert json.loads(more[0][len("data: "):])["data"] == "Done"
    finally:
        r.close()
    r = rt.get("/api/spaces/admin/logged/logs/run?follow=false", rt.admin, timeout=5)
    assert r.status_code == 200
    assert [json.loads(e[6:])["data"] for e in r.text.split("\n\n") if e] == ["Running on 0.0.0.0:7860"]
    r = rt.get("/api/spaces/admin/logged/logs/build?follow=0&tail=1", rt.admin, timeout=5)
    assert [json.loads(e[6:])["data"] for e in r.text.split("\n\n") if e] == ["Done"]


def test_logs_keepalive_and_empty(logs_rt):
    rt = logs_rt
    assert rt.create_space("admin", "quiet").status_code == 200
    r = Stream(rt, "/api/spaces/admin/quiet/logs/run", rt.admin)
    assert r.status == 200
    assert r.events(2, timeout=5) == ["data:", "data:"]
    r.close()
    r = rt.get("/api/spaces/admin/quiet/logs/build?follow=false", rt.admin, timeout=5)
    assert r.status_code == 200 and r.text == ""


def test_logs_errors(logs_rt):
    rt = logs_rt
    assert rt.create_space("admin", "pub").status_code == 200
    rt.add_user("gina")
    gina = rt.token("gina")
    assert_error(rt.get("/api/spaces/admin/pub/logs/build?follow=0"), 401)
    assert_error(rt.get("/api/spaces/admin/pub/logs/build?follow=0", gina), 403)
    assert_error(rt.get("/api/spaces/admin/pub/logs/other", rt.admin), 404)
    assert_error(rt.get("/api/spaces/admin/nope/logs/run", rt.admin), 404)
    assert_error(rt.get("/api/spaces/admin/pub/logs/run?tail=x", rt.admin), 400)
    assert_error(rt.post("/api/spaces/admin/pub/logs/run", rt.admin), 405)


def test_log_streams_end_when_clients_leave(logs_rt):
    rt = logs_rt
    assert rt.create_space("admin", "busy").status_code == 200
    req = (f"GET /api/spaces/admin/busy/logs/run HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: Bearer {rt.admin}\r\n\r\n").encode()
    # max_log_streams is 2: open two, the third is refused clearly.
    socks = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", rt.port))
        s.sendall(req)
        assert b"200 OK" in s.recv(4096)
        socks.append(s)
    assert_error(rt.get("/api/spaces/admin/busy/logs/run", rt.admin, timeout=5), 429)
    # Clients go away; their streams notice at the next keep-alive and free the slots.
    for s in socks:
        s.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        r = rt.get("/api/spaces/admin/busy/logs/run?follow=0", rt.admin, timeout=5)
        if r.status_code == 200:
            break
        time.sleep(0.2)
    assert r.status_code == 200
    # Many short-lived clients in a row never exhaust the workers.
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", rt.port))
        s.sendall(req)
        s.recv(100)
        s.close()
    time.sleep(1)
    assert rt.get("/api/spaces", timeout=5).status_code == 200
    assert rt.get("/api/spaces/admin/busy/logs/run?follow=0", rt.admin, timeout=5).status_code == 200


def test_stop_ends_open_streams(logs_rt):
    rt = logs_rt
    assert rt.create_space("admin", "open").status_code == 200
    r = Stream(rt, "/api/spaces/admin/open/logs/run", rt.admin)
    assert r.status == 200
    t = time.time()
    assert rt.stop() == 0
    assert time.time() - t < 8
    r.close()
