"""Fuzz-style: malformed JSON, wrong types, huge bodies, odd paths, unicode names and raw
garbage at every endpoint.  Every answer is a clear 4xx (or a success), never a 5xx, and
the daemon stays up."""
import itertools
import json
import random
import socket

import pytest
import requests

from test_5_support import shared_rt  # noqa: F401

SPACE = "/api/spaces/admin/fuzz"

# (method, path, fields the endpoint reads)
ENDPOINTS = [
    ("GET", "/api/whoami-v2", []),
    ("POST", "/api/repos/create", ["type", "name", "organization", "sdk", "private", "visibility", "hardware",
                                   "sleepTimeSeconds", "secrets", "variables"]),
    ("DELETE", "/api/repos/delete", ["type", "name", "organization"]),
    ("GET", "/api/spaces", []),
    ("GET", "/api/spaces/hardware", []),
    ("GET", SPACE, []),
    ("GET", SPACE + "/runtime", []),
    ("POST", SPACE + "/hardware", ["flavor", "sleepTimeSeconds"]),
    ("POST", SPACE + "/sleeptime", ["seconds"]),
    ("POST", SPACE + "/pause", []),
    ("POST", SPACE + "/restart", []),
    ("GET", SPACE + "/secrets", []),
    ("POST", SPACE + "/secrets", ["key", "value", "description"]),
    ("DELETE", SPACE + "/secrets", ["key"]),
    ("GET", SPACE + "/variables", []),
    ("POST", SPACE + "/variables", ["key", "value", "description"]),
    ("DELETE", SPACE + "/variables", ["key"]),
    ("PUT", SPACE + "/settings", ["private", "visibility"]),
    ("POST", SPACE + "/duplicate", ["repository", "private", "hardware", "sleepTimeSeconds", "secrets", "variables"]),
    ("GET", SPACE + "/logs/build?follow=0", []),
    ("GET", SPACE + "/logs/run?follow=0", []),
    ("GET", "/api/admin/users", []),
    ("POST", "/api/admin/users", ["name", "admin"]),
    ("DELETE", "/api/admin/users/nobody", []),
    ("GET", "/api/admin/tokens", []),
    ("POST", "/api/admin/tokens", ["user", "role", "spaces", "name"]),
    ("DELETE", "/api/admin/tokens/0000", []),
    ("POST", "/api/admin/hardware", ["name", "cpus", "memory", "disk", "gpus", "gpuKind", "zero", "prettyName"]),
    ("DELETE", "/api/admin/hardware/nothing", []),
    ("GET", "/api/proxy/routes", []),
    ("POST", "/api/proxy/wake", ["id"]),
    ("POST", "/api/proxy/activity", ["ids"]),
    ("POST", "/api/proxy/check-token", ["id", "token"]),
]

MALFORMED = [b"{", b"}", b"[]", b"null", b"\"text\"", b"42", b"{\"a\":", b"{'a': 1}", b"\xff\xfe\x00",
             b"{\"a\": 1, \"a\": 2}", b"[" * 5000 + b"]" * 5000, b"{\"k\": \"\\ud800\"}", b"\x00" * 100,
             b"{\"name\": \"x\"} trailing", b" " * 1000]

WEIRD_VALUES = [None, 0, -1, 2**63, 1.5, float("1e308"), True, False, "", " ", "x" * 5000, "\u0000",
                "../../etc/passwd", "ünïcödé", "😀", "a/b", "/", [], [1, "a", None], {}, {"key": 1},
                [{"key": "K"}], [{"key": 1, "value": 2}], [{"key": "K", "value": "v" * 70000}]]


def check(r, what):
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body.get("error"), str) and body["error"], f"{what}: {r.text[:300]}"


@pytest.fixture(scope="module")
def fuzz_space(shared_rt):
    r = shared_rt.create_space("admin", "fuzz")
    assert r.status_code == 200, r.text
    return shared_rt


def send(rt, method, path, token, **kw):
    try:
        return rt.request(method, path, token, timeout=10, **kw)
    except requests.RequestException as e:  # the daemon closing a connection is fine
        return e


@pytest.mark.parametrize("method,path,fields", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_malformed_bodies(fuzz_space, method, path, fields):
    rt = fuzz_space
    for body in MALFORMED:
        for token in (rt.admin, None):
            r = send(rt, method, path, token, data=body, headers={"Content-Type": "application/json"})
            if isinstance(r, Exception):
                continue
            check(r, f"{method} {path} {body[:20]!r}")
            if fields and token and r.status_code != 404:
                assert r.status_code == 400, f"{method} {path} {body[:20]!r}: {r.status_code} {r.text}"
    assert rt.alive()


@pytest.mark.parametrize("method,path,fields", [e for e in ENDPOINTS if e[2]], ids=[f"{m} {p}" for m, p, f in ENDPOINTS if f])
def test_wrong_types(fuzz_space, method, path, fields):
    rt = fuzz_space
    rng = random.Random(path)
    good = {"type": "space", "name": "fz", "organization": "admin", "sdk": "gradio", "flavor": "cpu-basic",
            "seconds": 60, "key": "K", "value": "v", "user": "admin", "role": "read", "id": "admin/fuzz",
            "ids": ["admin/fuzz"], "token": "sp_x", "cpus": 1, "memory": 1 << 30, "repository": "admin/fz2"}
    for field, value in itertools.product(fields, WEIRD_VALUES):
        body = {f: good[f] for f in fields if f in good}
        body[field] = value
        r = send(rt, method, path, rt.admin, json=body)
        if isinstance(r, Exception):
            continue
        check(r, f"{method} {path} {field}={str(value)[:40]}")
    # Random mixes of fields and values.
    for _ in range(60):
        body = {f: rng.choice(WEIRD_VALUES) for f in rng.sample(fields, rng.randint(1, len(fields)))}
        r = send(rt, method, path, rt.admin, json=body)
        if not isinstance(r, Exception):
            check(r, f"{method} {path} {json.dumps(body)[:80]}")
    assert rt.alive()
    assert rt.get(SPACE + "/runtime").status_code == 200


@pytest.mark.parametrize("method,path,fields", [e for e in ENDPOINTS if e[2]], ids=[f"{m} {p}" for m, p, f in ENDPOINTS if f])
def test_huge_bodies(fuzz_space, method, path, fields):
    rt = fuzz_space
    big = b"{\"name\": \"" + b"a" * (2 << 20) + b"\"}"
    r = send(rt, method, path, rt.admin, data=big)
    if not isinstance(r, Exception):
        assert r.status_code == 413, f"{method} {path}: {r.status_code}"
        check(r, path)

    def chunks():  # no Content-Length: the limit still holds
        for _ in range(40):
            yield b" " * 65536

    r = send(rt, method, path, rt.admin, data=chunks())
    if not isinstance(r, Exception):
        assert r.status_code == 413, f"{method} {path} chunked: {r.status_code}"
    assert rt.get("/api/spaces").status_code == 200


ODD_PATHS = ["/api/spaces/%00/x", "/api/spaces/a%2Fb/c", "/api/spaces/../../etc/passwd", "/api/spaces/ä/b",
             "/api/spaces/admin/fuzz/" + "x" * 5000, "/api/" + "a/" * 50, "/api/spaces/admin/fuzz/logs",
             "/api/spaces/admin/fuzz/logs/build/extra", "/api/spaces/%ZZ/x", "/api/spaces/admin/fuzz?%00=%00",
             "/api/spaces?limit=%00", "/api/spaces?author=" + "é" * 500, "/api/spaces?search=%FF%FE",
             "/api/spaces/😀/😀", "/api/spaces/admin/fuzz/runtime?factory=" + "1" * 1000,
             "/api/admin/users/" + "z" * 2000, "/api/admin/tokens/%00", "/api/proxy/" + "q" * 300, "/api/%"]


@pytest.mark.parametrize("path", ODD_PATHS)
def test_odd_paths(fuzz_space, path):
    rt = fuzz_space
    for method in ("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"):
        r = send(rt, method, path, rt.admin, data=b"{}")
        if isinstance(r, Exception) or method == "HEAD":
            continue
        assert r.status_code < 500, f"{method} {path}: {r.status_code}"
    assert rt.get(SPACE).status_code == 200


@pytest.mark.parametrize("name", ["ünïcode", "名前", "😀", "a\u200bb", "x" * 97, "con\nsole", "a%2Fb", "-", ".", "..",
                                  "a\tb", "\u0000", "ok.name_1"])
def test_unicode_and_odd_names(fuzz_space, name):
    rt = fuzz_space
    r = rt.create_space("admin", name)
    if name == "ok.name_1":
        assert r.status_code == 200
        return
    assert r.status_code == 400, f"{name!r}: {r.status_code} {r.text}"
    check(r, repr(name))
    r = rt.post("/api/admin/users", rt.admin, json={"name": name})
    assert r.status_code == 400
    r = rt.post("/api/admin/tokens", rt.admin, json={"user": "admin", "role": "read", "spaces": [f"admin/{name}"]})
    assert r.status_code == 400


RAW = [b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /api/spaces HTTP/1.1\r\n" + b"X: y\r\n" * 2000 + b"\r\n",
       b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
       b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
       b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na",
       b"POST /api/repos/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
       b"GET /api/spaces HTTP/1.1\r\nHost: " + b"h" * 10000 + b"\r\n\r\n",
       b"GET /api/whoami-v2 HTTP/1.1\r\nAuthorization: Bearer " + b"\xff" * 300 + b"\r\n\r\n",
       b"GET /api/whoami-v2 HTTP/1.1\r\nAuthorization: Bearer\r\n\r\n"]


def test_raw_garbage(fuzz_space):
    rt = fuzz_space
    for payload in RAW:
        s = socket.create_connection(("127.0.0.1", rt.port), timeout=5)
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            data = b""
        finally:
            s.close()
        if data.startswith(b"HTTP/1."):
            status = int(data.split()[1])
            assert status < 500, f"{payload[:60]!r}: {data[:200]!r}"
    assert rt.alive()
    assert rt.get(SPACE + "/runtime").status_code == 200
    # Idle connections hold a worker each (civetweb is thread-per-connection), but
    # fewer than the pool do not wedge the API.
    idle = [socket.create_connection(("127.0.0.1", rt.port)) for _ in range(8)]
    assert rt.get("/api/spaces", timeout=10).status_code == 200
    for s in idle:
        s.close()
