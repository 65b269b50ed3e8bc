"""The device API under hostile or broken input: a clear 4xx each time, never a
crash, and the server keeps serving (bin/spaceport-gpud on loopback).  Also the
connection bounds (slow clients, too many connections) and, as root on a host with
the cgroup v1 devices controller, /allow enforced with a real devices cgroup."""
import base64
import hashlib
import hmac
import json
import os
import pathlib
import socket
import stat
import subprocess
import sys
import time
import uuid

import pytest

from test_31_zerogpu_support import (CGROUP_PATH, Gpud, api_client, cleanup_proc, raw,
                                     sleeper, status_of, visitor_key, wait_dead)

Q = f"cgroupPath={CGROUP_PATH}"


@pytest.fixture
def gpud(bin_dir, tmp_path):
    g = Gpud(bin_dir, tmp_path, "--max-conns", "16")
    yield g
    assert g.stop() == 0, g.log()


def req(line: str, headers: str = "Host: gpud\r\nConnection: close\r\n", body=b"") -> bytes:
    return line.encode() + b"\r\n" + headers.encode() + b"\r\n" + body


CASES = [
    # (request bytes, expected status)
    (b"GARBAGE\r\n\r\n", 400),
    (b"POST /schedule HTTP/9.9\r\n\r\n", 400),
    (b"POST /schedule?" + Q.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /schedule HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
    (b"POST /sch\x00edule HTTP/1.1\r\n\r\n", 400),
    (req("POST /schedule HTTP/1.1"), 400),  # no cgroupPath
    (req(f"POST /schedule?{Q}&enableQueue=yes HTTP/1.1"), 400),
    (req(f"POST /schedule?{Q}&durationSeconds=-1 HTTP/1.1"), 400),
    (req(f"POST /schedule?{Q}&durationSeconds=1e3 HTTP/1.1"), 400),
    (req(f"POST /schedule?{Q}&durationSeconds=99999999999999999999999 HTTP/1.1"), 400),
    (req(f"POST /schedule?{Q}&taskId=abc HTTP/1.1"), 400),
    (req(f"POST /schedule?{Q}&gpuSize=huge HTTP/1.1"), 400),
    (req(f"POST /schedule?{Q}&{Q} HTTP/1.1"), 400),  # duplicate parameter
    (req(f"POST /schedule?{Q}%zz HTTP/1.1"), 400),    # bad escape
    (req(f"POST /schedule?{Q}%00 HTTP/1.1"), 400),    # NUL smuggled in
    (req("POST /schedule?" + "&".join(f"k{i}=v" for i in range(40)) + " HTTP/1.1"), 400),
    (req("POST /allow?allowToken=abc HTTP/1.1"), 400),  # no pid
    (req("POST /allow?allowToken=abc&pid=1 HTTP/1.1"), 400),
    (req("POST /allow?allowToken=abc&pid=-5 HTTP/1.1"), 400),
    (req("POST /allow?allowToken=abc&pid=99999999999 HTTP/1.1"), 400),
    (req("POST /allow?pid=1234 HTTP/1.1"), 400),  # no token
    (req("POST /allow?allowToken=nope&pid=1234 HTTP/1.1"), 404),
    (req("POST /release?allowToken=nope&fail=maybe HTTP/1.1"), 400),
    (req("POST /release?allowToken=nope&fail=true HTTP/1.1"), 404),
    (req("POST /release HTTP/1.1"), 400),
    (req("GET /schedule HTTP/1.1"), 405),
    (req("POST /queue-size HTTP/1.1"), 405),
    (req("GET /nope HTTP/1.1"), 404),
    (req("GET /../../etc/passwd HTTP/1.1"), 404),
    (req("GET /queue-size HTTP/1.1", "Host: x\r\nConnection: close\r\nX-Big: " + "a" * 9000 +
         "\r\n"), 431),
    (req("GET /queue-size?" + "a" * 5000 + " HTTP/1.1"), 414),
    (req("POST /startup-report HTTP/1.1", "Host: x\r\nConnection: close\r\n"
         "Content-Length: 10000\r\n", b"x" * 10000), 413),
]


def test_malformed_requests_get_4xx(gpud):
    for data, want in CASES:
        resp = raw(gpud.port, data)
        assert resp, f"no answer to {data[:80]!r}"
        assert status_of(resp) == want, (data[:100], resp[:200])
        body = resp.split(b"\r\n\r\n", 1)[1]
        assert body.startswith(b"{\"detail\":\""), body
    assert gpud.proc.poll() is None
    assert api_client(gpud.url).get_queue_size() == 0


def test_keep_alive_and_pipelining(gpud):
    two = (b"GET /queue-size HTTP/1.1\r\nHost: x\r\n\r\n"
           b"POST /startup-report HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
           b"GET /queue-size HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = raw(gpud.port, two)
    assert resp.count(b"HTTP/1.1 200 OK") == 3, resp
    # HTTP/1.0 closes after one answer.
    resp = raw(gpud.port, b"GET /queue-size HTTP/1.0\r\n\r\n")
    assert status_of(resp) == 200 and resp.endswith(b"0")


def test_byte_by_byte_request(gpud):
    with socket.create_connection(("127.0.0.1", gpud.port), timeout=5) as s:
        for b in req(f"POST /schedule?{Q}&durationSeconds=5 HTTP/1.1"):
            s.sendall(bytes([b]))
        out = b""
        while (d := s.recv(4096)):
            out += d
    assert status_of(out) == 200 and b"allowToken" in out


def test_connection_bound_and_slow_clients(bin_dir, tmp_path):
    g = Gpud(bin_dir, tmp_path, "--max-conns", "4")
    try:
        socks = [socket.create_connection(("127.0.0.1", g.port)) for _ in range(4)]
        for s in socks:
            s.sendall(b"GET /queue-size HTTP/1.1\r\n")  # never finished
        time.sleep(0.2)
        # A fifth is closed at once rather than queued behind the slow ones.
        with socket.create_connection(("127.0.0.1", g.port), timeout=3) as s5:
            try:
                s5.sendall(b"GET /queue-size HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s5.recv(100) == b""
            except ConnectionResetError:
                pass
        for s in socks:
            s.close()
        time.sleep(0.2)
        assert api_client(g.url).get_queue_size() == 0  # slots came back
    finally:
        assert g.stop() == 0, g.log()


def test_sigterm_with_open_streams_exits_cleanly(bin_dir, tmp_path):
    g = Gpud(bin_dir, tmp_path)
    c = api_client(g.url)
    c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=30)
    s = socket.create_connection(("127.0.0.1", g.port))
    s.sendall(req(f"POST /schedule?{Q}&durationSeconds=5 HTTP/1.1", "Host: x\r\n"))
    assert b"text/event-stream" in s.recv(4096)
    assert g.stop() == 0
    s.close()


PROBE = """
import errno, os, sys
for line in sys.stdin:
    try:
        os.close(os.open(line.strip(), os.O_RDWR))
        print("OPENED", flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno], flush=True)
"""


class Probe:
    """A worker stand-in that opens device nodes on request: ENXIO means the devices
    cgroup let the open through (fake majors have no driver), EPERM that it refused."""

    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-c", PROBE], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid

    def open(self, path):
        self.p.stdin.write(f"{path}\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def done(self):
        cleanup_proc(self.p)


def _cgroup_roots():
    roots = []
    if os.geteuid() != 0:
        return roots
    if (pathlib.Path("/sys/fs/cgroup/devices") / "devices.allow").exists():
        roots.append(pytest.param("/sys/fs/cgroup/devices", id="v1"))
    for r in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(f"{r}/cgroup.procs") and os.statvfs(r) and \
                subprocess.run(["stat", "-fc", "%T", r], capture_output=True,
                               text=True).stdout.strip() == "cgroup2fs":
            roots.append(pytest.param(r, id="v2"))
            break
    return roots or [pytest.param(None, id="none")]


@pytest.mark.parametrize("root", _cgroup_roots())
def test_allow_enforced_by_a_devices_cgroup_and_expiry_revokes(bin_dir, tmp_path, root):
    if root is None:
        pytest.skip("needs root and a devices cgroup (v1 controller or cgroup2)")
    base = pathlib.Path(root) / f"spaceport-gpud-test-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    nodes = tmp_path / "dev"
    nodes.mkdir()
    for i in range(2):  # the fake backend's numbers: GPU i is 120:i
        os.mknod(nodes / f"nvidia{i}", 0o600 | stat.S_IFCHR, os.makedev(120, i))
    w = Probe()
    probe2 = None
    g = Gpud(bin_dir, tmp_path, "--cgroup", str(base), gpus="2xa10g:24G")
    try:
        c = api_client(g.url)
        assert w.open(nodes / "nvidia0") == "ENXIO"  # outside: no rule stops it
        res, _ = c.schedule(cgroup_path=CGROUP_PATH, task_id=1, duration_seconds=2)
        assert c.allow(res.allowToken, w.pid) == 200
        unit = base / f"gpu-{res.nvidiaIndex}"
        assert str(w.pid) in (unit / "cgroup.procs").read_text().split()
        mine, other = res.nvidiaIndex, 1 - res.nvidiaIndex
        assert w.open(nodes / f"nvidia{mine}") == "ENXIO", "the leased unit must open"
        assert w.open(nodes / f"nvidia{other}") == "EPERM", "another unit must not"
        assert w.open("/dev/null") == "EPERM", "nothing else either"
        if (unit / "devices.list").exists():
            rules = (unit / "devices.list").read_text().split("\n")
            assert f"c 120:{mine} rw" in rules and "c 120:255 rw" in rules, rules
            assert "a *:* rwm" not in rules
        assert wait_dead(w.p, 5) == -9
        g.wait_log(f"pid={w.pid} nvidiaIndex={mine} why=expired")
        # Revoked: a process put back into that cgroup cannot open the unit any more.
        probe2 = Probe()
        (unit / "cgroup.procs").write_text(str(probe2.pid))
        assert probe2.open(nodes / f"nvidia{mine}") == "EPERM"
    finally:
        assert g.stop() == 0, g.log()
        w.done()
        if probe2:
            probe2.done()
        for d in sorted(base.glob("gpu-*")):
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
        base.rmdir()


def test_gpud_command_line(bin_dir, tmp_path):
    gpud = str(bin_dir / "spaceport-gpud")
    out = subprocess.run([gpud, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("spaceport-gpud ")
    out = subprocess.run([gpud, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("usage:")
    for argv, needle in ([["--no-such-option"], "--no-such-option"],
                         [[], "--space"],
                         [["--space", "a/b", "--quota", "gold=5"], "--quota"],
                         [["--space", "a/b", "--ping-ms", "soon"], "--ping-ms"],
                         [["--space", "a/b", "--listen", "nowhere"], "nowhere"],
                         [["--space", "a/b", "--gpus", "3xzz"], "zz"]):
        out = subprocess.run([gpud, *argv], capture_output=True, text=True, timeout=10)
        assert out.returncode in (1, 2), (argv, out)
        assert needle in out.stderr, (argv, out.stderr)


def test_sign_token_verifies_in_python_and_in_the_server(bin_dir, tmp_path):
    secret = tmp_path / "proxy.token"
    secret.write_text("s3cret\n")
    out = subprocess.run([str(bin_dir / "spaceport-gpud"), "--sign-token", "--visitor-secret-file",
                          str(secret), "--user", "zoe", "--class", "pro", "--ttl", "60"],
                         capture_output=True, text=True, timeout=10, check=True)
    tok = out.stdout.strip()
    head, body, sig = tok.split(".")
    key = visitor_key(b"s3cret")
    want = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(sig + "==") == want
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    assert payload["user"] == "zoe" and payload["class"] == "pro"
    assert 0 < payload["exp"] - time.time() <= 60
    g = Gpud(bin_dir, tmp_path, "--visitor-secret-file", str(secret))
    try:
        _, meta = api_client(g.url).schedule(cgroup_path=CGROUP_PATH, token=tok, duration_seconds=5)
        assert meta.auth == "pro"
    finally:
        assert g.stop() == 0
