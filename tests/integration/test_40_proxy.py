"""spaceproxy against real upstream servers on loopback: routing by host, forwarded and
hop-by-hop headers, keep-alive both ways, chunked bodies, SSE, WebSockets, big streamed
transfers with bounded proxy memory, many Spaces, reload and stop.

The helpers here (upstream server, proxy launcher, raw client) are imported by the other
test_40_* files."""
import base64
import hashlib
import json
import os
import pathlib
import signal
import socket
import socketserver
import struct
import subprocess
import threading
import time
import http.server
import urllib.parse

import pytest
import requests

# ---------------------------------------------------------------------------------------
# helpers



def ip_token_payload(tok):
    """The payload of spaceproxy's X-IP-Token (an HS256 JWT), unverified."""
    import base64
    part = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listening on {port}")


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(payload, opcode=1, mask=True):
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    return buf


def ws_read(sock):
    """Reads one frame; returns (opcode, payload)."""
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(sock, 8))[0]
    key = recv_exact(sock, 4) if b1 & 0x80 else None
    data = recv_exact(sock, n)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data


class Upstream(http.server.BaseHTTPRequestHandler):
    """A small but real HTTP/1.1 app server: echo, chunked, SSE, uploads, downloads,
    WebSocket echo.  Every answer says which server and which TCP connection served it."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, obj, status=200, extra=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _info(self):
        return {
            "server": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "peer_port": self.client_address[1],
        }

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _read_body(self):
        h = hashlib.sha256()
        size = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = n
                while left:
                    d = self.rfile.read(min(left, 1 << 20))
                    h.update(d)
                    size += len(d)
                    left -= len(d)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                d = self.rfile.read(min(left, 1 << 20))
                if not d:
                    break
                h.update(d)
                size += len(d)
                left -= len(d)
        return size, h.hexdigest()

    def do_HEAD(self):
        self._json(self._info())

    def do_POST(self):
        q = urllib.parse.urlparse(self.path)
        if q.path == "/early413":
            # answers before reading the body, like an app with a size limit
            self._json({"error": "too big"}, 413, [("Connection", "close")])
            self.close_connection = True
            return
        size, digest = self._read_body()
        info = self._info()
        info.update(size=size, sha256=digest)
        self._json(info)

    do_PUT = do_POST

    def do_GET(self):
        q = urllib.parse.urlparse(self.path)
        args = dict(urllib.parse.parse_qsl(q.query))
        if q.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(int(args.get("n", 5))):
                time.sleep(float(args.get("gap", 0.2)))
                self._chunk(b"id: %d\ndata: %.6f\n\n" % (i, time.time()))
            self._chunk(b"")
        elif q.path in ("/nocontent", "/notmodified"):
            # as Tornado (Streamlit) answers an upload: no Content-Length, no body
            self.send_response(204 if q.path == "/nocontent" else 304)
            self.end_headers()
        elif q.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(args.get("n", 3))):
                self._chunk(b"piece %d at %.6f\n" % (i, time.time()))
                time.sleep(float(args.get("gap", 0.3)))
            self._chunk(b"")
        elif q.path == "/download":
            size = int(args["size"])
            block = bytes(range(256)) * 4096  # 1 MiB
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            while size:
                n = min(size, len(block))
                self.wfile.write(block[:n])
                size -= n
        elif q.path == "/until-close":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"framed by the close\n")
            self.close_connection = True
        elif q.path == "/slow":
            time.sleep(float(args.get("delay", 1)))
            self._json(self._info())
        elif q.path.startswith("/status/"):
            self._json(self._info(), int(q.path.split("/")[2]))
        elif q.path == "/headers":
            self._json(self._info(), 200, [("X-Frame-Options", "SAMEORIGIN"),
                                           ("Set-Cookie", "app=1; Path=/"),
                                           ("Keep-Alive", "timeout=5"),
                                           ("Connection", "X-Secret"),
                                           ("X-Secret", "hop")])
        elif self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
        else:
            self._json(self._info())

    def _websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        protos = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept(key))
        if protos:
            self.send_header("Sec-WebSocket-Protocol", protos[0])
        self.send_header("Set-Cookie", "ws=1")
        self.end_headers()
        self.wfile.flush()
        sock = self.connection
        # the first message tells the client what the server saw
        sock.sendall(ws_frame(json.dumps(self._info()).encode(), mask=False))
        while True:
            try:
                op, data = ws_read(sock)
            except (EOFError, OSError):
                break
            if op == 8:
                sock.sendall(ws_frame(data, 8, mask=False))
                break
            sock.sendall(ws_frame(data, op, mask=False))
        self.close_connection = True


class UpstreamServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_upstream(name="up"):
    srv = UpstreamServer(("127.0.0.1", 0), Upstream)
    srv.name = name
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.port = srv.server_address[1]
    return srv


class Proxy:
    def __init__(self, bin_dir, tmp_path, routes, extra=None, args=()):
        self.port = free_port()
        self.admin = free_port()
        self.tmp = tmp_path
        self.conf = tmp_path / "proxy.yaml"
        self.log = tmp_path / "proxy.log"
        self.bin = bin_dir / "spaceproxy"
        self.write(routes, extra)
        self.proc = subprocess.Popen([str(self.bin), "--config", str(self.conf), *args],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        wait_port(self.port)

    def write(self, routes, extra=None):
        lines = [f"listen: 127.0.0.1:{self.port}", f"admin_listen: 127.0.0.1:{self.admin}",
                 "workers: 1", f"token_file: {self.tmp / 'no-token'}"]
        for k, v in (extra or {}).items():
            lines.append(f"{k}: {v}")
        lines.append("routes:")
        for host, (port, *more) in routes.items():
            lines.append(f"  - host: {host}")
            lines.append(f"    upstream: 127.0.0.1:{port}")
            for m in more:
                lines.append(f"    {m}")
        if not routes:
            lines[-1] = "routes: []"
        self.conf.write_text("\n".join(lines) + "\n")

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_kb(self, field="VmRSS"):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError("no " + field)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def raw(port, data, timeout=5.0, shut=False):
    """Sends @data on a fresh connection and returns everything until the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        except socket.timeout:
            pass
        return out


def read_response(sock, buf=b""):
    """Reads one HTTP/1.1 response (Content-Length or chunked).  Returns (status, headers
    as a lowercase dict of lists, body, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError(f"closed before a head: {buf!r}")
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    body = b""
    if "content-length" in headers:
        n = int(headers["content-length"][0])
        while len(buf) < n:
            d = sock.recv(65536)
            if not d:
                raise EOFError("short body")
            buf += d
        body, buf = buf[:n], buf[n:]
    elif headers.get("transfer-encoding", [""])[0].lower() == "chunked":
        while True:
            while b"\r\n" not in buf:
                buf += sock.recv(65536)
            line, buf = buf.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            while len(buf) < n + 2:
                buf += sock.recv(65536)
            body += buf[:n]
            buf = buf[n + 2:]
            if n == 0:
                break
    elif status >= 200 and status not in (204, 304):
        while True:
            d = sock.recv(65536)
            if not d:
                break
            buf += d
        body, buf = buf, b""
    return status, headers, body, buf


# ---------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def upstream():
    srv = start_upstream("one")
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def proxy(bin_dir, tmp_path, upstream):
    p = Proxy(bin_dir, tmp_path, {"alice-demo.localhost": (upstream.port,),
                                  "embed.localhost": (upstream.port, "disable_embedding: true",
                                                      "custom_headers: {Cross-Origin-Opener-Policy: same-origin, X-Extra: yes}")})
    yield p
    p.stop()
    assert p.proc.returncode == 0, p.log.read_text()


def get(proxy, path="/echo", host="alice-demo.localhost", session=None, **kw):
    s = session or requests
    headers = {"Host": f"{host}:{proxy.port}"}
    headers.update(kw.pop("headers", {}))
    return s.get(proxy.url(path), headers=headers, timeout=10, **kw)


# ---------------------------------------------------------------------------------------
# routing and headers


def test_routes_by_host_with_forwarded_headers(proxy):
    r = get(proxy, "/echo?q=1", headers={
        "Cookie": "a=1; b=2", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil",
        "X-IP-Token": "forged", "X-Streamlit-User": "forged", "Connection": "keep-alive, X-Hop",
        "X-Hop": "secret", "Keep-Alive": "timeout=1", "TE": "trailers", "Authorization": "Bearer app-own"})
    assert r.status_code == 200
    info = r.json()
    h = {k.lower(): v for k, v in info["headers"]}
    assert info["path"] == "/echo?q=1"
    assert h["host"] == f"alice-demo.localhost:{proxy.port}"           # untouched
    assert h["x-forwarded-host"] == f"alice-demo.localhost:{proxy.port}"  # with the port
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-for"] == "127.0.0.1"                         # the client's claim dropped
    assert h["cookie"] == "a=1; b=2"
    assert h["authorization"] == "Bearer app-own"                      # a public Space's own auth
    assert ip_token_payload(h["x-ip-token"])["ip"] == "127.0.0.1"  # test_41 checks the rest
    for hop in ("x-hop", "keep-alive", "te", "x-streamlit-user"):
        assert hop not in h, hop
    assert [k for k, _ in info["headers"]].count("X-IP-Token") == 1


def test_unknown_host_is_a_clear_404(proxy):
    r = get(proxy, "/", host="nobody-here.localhost")
    assert r.status_code == 404
    assert "no such Space" in r.text
    assert r.headers["Content-Type"].startswith("text/html")


def test_host_is_matched_case_insensitively_without_port(proxy):
    r = get(proxy, "/echo", host="ALICE-Demo.LocalHost")
    assert r.status_code == 200
    assert r.json()["server"] == "one"


def test_response_hop_by_hop_dropped_and_space_headers_applied(proxy):
    r = get(proxy, "/headers")
    assert r.status_code == 200
    assert "X-Secret" not in r.headers and "Keep-Alive" not in r.headers
    assert r.headers["Set-Cookie"] == "app=1; Path=/"
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"  # a route without policy: untouched
    r = get(proxy, "/headers", host="embed.localhost")
    assert r.headers["X-Frame-Options"] == "DENY"        # disable_embedding overrides the app
    assert r.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert r.headers["X-Extra"] == "yes"


# ---------------------------------------------------------------------------------------
# keep-alive, framing


def test_keepalive_both_ways(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        peers = set()
        for i in range(20):
            s.sendall(f"GET /echo?i={i} HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n".encode())
            st, h, body, left = read_response(s)
            assert st == 200 and left == b""
            info = json.loads(body)
            assert info["path"] == f"/echo?i={i}"
            peers.add(info["peer_port"])
    assert len(peers) == 1, "the upstream connection should have been reused"


def test_pipelined_requests_answered_in_order(proxy):
    reqs = b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n" % i
                    for i in range(5))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(reqs)
        buf = b""
        for i in range(5):
            st, h, body, buf = read_response(s, buf)
            assert st == 200
            assert json.loads(body)["path"] == f"/echo?n={i}"


def test_head_request_has_no_body_and_keeps_the_connection(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"HEAD /echo HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        head, rest = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length:" in head
        s.sendall(b"GET /echo?after-head HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n")
        st, h, body, _ = read_response(s, rest)
        assert json.loads(body)["path"] == "/echo?after-head"


@pytest.mark.parametrize("path,status", [("/nocontent", 204), ("/notmodified", 304)])
def test_bodyless_status_completes_at_once_on_keepalive(proxy, path, status):
    """A 204 or 304 has no body whatever its headers say: the next request on the same
    connection is answered at once, not when the upstream's idle timeout closes it."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        t0 = time.monotonic()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n".encode())
        st, h, body, rest = read_response(s)
        assert st == status and body == b""
        s.sendall(b"GET /echo?after HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n")
        st, h, body, _ = read_response(s, rest)
        assert st == 200 and json.loads(body)["path"] == "/echo?after"
        assert time.monotonic() - t0 < 2.0


def test_chunked_response_streams_piece_by_piece(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"GET /chunked?n=3&gap=0.4 HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n")
        buf = b""
        while b"piece 0" not in buf:
            buf += s.recv(4096)
        t_first = time.monotonic()
        while b"0\r\n\r\n" not in buf.split(b"piece 2")[-1] or b"piece 2" not in buf:
            buf += s.recv(4096)
        t_last = time.monotonic()
    assert b"Transfer-Encoding: chunked" in buf
    assert t_last - t_first > 0.6, "pieces should arrive as they are sent, not all at once"


def test_chunked_upload_is_forwarded_intact(proxy):
    parts = [os.urandom(n) for n in (1, 1000, 70000, 5)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: alice-demo.localhost\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + body)
        st, h, resp, _ = read_response(s)
    info = json.loads(resp)
    whole = b"".join(parts)
    assert st == 200 and info["size"] == len(whole)
    assert info["sha256"] == hashlib.sha256(whole).hexdigest()


def test_until_close_response_is_relayed_then_closed(proxy):
    out = raw(proxy.port, b"GET /until-close HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert out.endswith(b"framed by the close\n")
    assert b"Connection: close" in out


def test_expect_100_continue(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: alice-demo.localhost\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        buf = s.recv(4096)
        assert buf.startswith(b"HTTP/1.1 100"), buf
        s.sendall(b"hello")
        _, rest = buf.split(b"\r\n\r\n", 1)
        st, h, body, _ = read_response(s, rest)
        assert st == 200 and json.loads(body)["size"] == 5


def test_upstream_down_gives_502_and_proxy_lives(bin_dir, tmp_path):
    dead = free_port()
    p = Proxy(bin_dir, tmp_path, {"gone.localhost": (dead,)})
    try:
        r = requests.get(p.url("/"), headers={"Host": "gone.localhost"}, timeout=5)
        assert r.status_code == 502
        assert p.alive()
    finally:
        p.stop()


# ---------------------------------------------------------------------------------------
# streaming: SSE and WebSockets


def test_sse_events_arrive_one_by_one(proxy):
    lags = []
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"GET /sse?n=6&gap=0.25 HTTP/1.1\r\nHost: alice-demo.localhost\r\n"
                  b"Accept: text/event-stream\r\n\r\n")
        buf = b""
        seen = 0
        while seen < 6:
            d = s.recv(65536)
            assert d, "stream ended early"
            now = time.time()
            buf += d
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                for line in ev.split(b"\n"):
                    if line.startswith(b"data: "):
                        lags.append(now - float(line[6:]))
                        seen += 1
    assert len(lags) == 6
    # each event reached the client as soon as the app sent it, not batched
    assert max(lags) < 0.1, lags


class BufSock:
    """A socket whose first reads return bytes that came along with the handshake."""

    def __init__(self, sock, pending):
        self.sock, self.pending = sock, pending

    def recv(self, n):
        if self.pending:
            out, self.pending = self.pending[:n], self.pending[n:]
            return out
        return self.sock.recv(n)

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


def ws_connect(port, host, path="/ws", protocols="streamlit, auth-slot, session-42"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: {protocols}\r\nOrigin: http://{host}\r\n"
               f"Cookie: session=abc\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        assert d, buf
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return BufSock(s, rest), key, head.decode("latin-1"), rest


def test_websocket_echo_with_subprotocol(proxy):
    host = f"alice-demo.localhost:{proxy.port}"
    s, key, head, rest = ws_connect(proxy.port, host)
    with s:
        assert head.startswith("HTTP/1.1 101")
        assert f"Sec-WebSocket-Accept: {ws_accept(key)}" in head
        assert "Sec-WebSocket-Protocol: streamlit" in head
        assert "Set-Cookie: ws=1" in head
        op, data = ws_read(s)
        info = json.loads(data)
        h = {k.lower(): v for k, v in info["headers"]}
        assert h["sec-websocket-protocol"] == "streamlit, auth-slot, session-42"
        assert h["host"] == host and h["origin"] == f"http://{host}" and h["cookie"] == "session=abc"
        assert h["upgrade"] == "websocket" and h["connection"].lower() == "upgrade"
        for msg in (b"hello", os.urandom(200), os.urandom(70000)):
            s.sendall(ws_frame(msg, 2))
            assert ws_read(s) == (2, msg)
        s.sendall(ws_frame(b"\x03\xe8", 8))
        assert ws_read(s)[0] == 8


def test_websocket_half_close_propagates(proxy):
    s, key, head, rest = ws_connect(proxy.port, "alice-demo.localhost")
    with s:
        ws_read(s)
        s.sendall(ws_frame(b"bye", 8))
        s.shutdown(socket.SHUT_WR)
        assert ws_read(s) == (8, b"bye")
        s.settimeout(5)
        assert s.recv(10) == b""  # the app closed, and so did the proxy


# ---------------------------------------------------------------------------------------
# big transfers: streamed, memory bounded

BIG = int(os.environ.get("SPACEPORT_PROXY_BIG_MB", "1024")) << 20


def test_big_download_and_upload_stream_with_bounded_memory(proxy):
    # 1 GiB each way (about 3 s here); SPACEPORT_PROXY_BIG_MB sets another size
    base = proxy.rss_kb("VmHWM")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=60) as s:
        s.sendall(b"GET /download?size=%d HTTP/1.1\r\nHost: alice-demo.localhost\r\n\r\n" % BIG)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, rest = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200")
        got = len(rest)
        h = hashlib.sha256(rest)
        while got < BIG:
            d = s.recv(1 << 20)
            assert d
            got += len(d)
            h.update(d)
        block = bytes(range(256)) * 4096
        want = hashlib.sha256()
        for _ in range(BIG >> 20):
            want.update(block)
        assert h.hexdigest() == want.hexdigest()

        block = os.urandom(1 << 20)
        s.sendall(b"PUT /upload HTTP/1.1\r\nHost: alice-demo.localhost\r\nContent-Length: %d\r\n\r\n" % BIG)
        want = hashlib.sha256()
        for _ in range(BIG >> 20):
            s.sendall(block)
            want.update(block)
        st, hd, body, _ = read_response(s)
        info = json.loads(body)
        assert st == 200 and info["size"] == BIG and info["sha256"] == want.hexdigest()
    grown = proxy.rss_kb("VmHWM") - base
    assert grown < 16 * 1024, f"proxy peak memory grew by {grown} KiB for {BIG >> 20} MiB each way"


# ---------------------------------------------------------------------------------------
# many Spaces, reload, stop


def test_many_spaces_by_host(bin_dir, tmp_path):
    ups = [start_upstream(f"u{i}") for i in range(4)]
    routes = {f"owner-space{i}.localhost": (ups[i % 4].port,) for i in range(200)}
    p = Proxy(bin_dir, tmp_path, routes)
    try:
        with requests.Session() as s:
            for i in range(0, 200, 7):
                r = s.get(p.url(f"/echo?i={i}"), headers={"Host": f"owner-space{i}.localhost"}, timeout=5)
                assert r.status_code == 200
                info = r.json()
                assert info["server"] == f"u{i % 4}"
                assert dict(info["headers"])["Host"] == f"owner-space{i}.localhost"
    finally:
        p.stop()
        for u in ups:
            u.shutdown()
            u.server_close()


def test_concurrent_clients_get_their_own_answers(proxy):
    errors = []

    def worker(n):
        try:
            with requests.Session() as s:
                for i in range(30):
                    r = get(proxy, f"/echo?c={n}&i={i}", session=s)
                    if r.json()["path"] != f"/echo?c={n}&i={i}":
                        errors.append((n, i, r.text))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((n, repr(e)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_reload_on_sighup_swaps_routes(bin_dir, tmp_path, upstream):
    other = start_upstream("two")
    p = Proxy(bin_dir, tmp_path, {"a.localhost": (upstream.port,)})
    try:
        assert requests.get(p.url("/echo"), headers={"Host": "b.localhost"}, timeout=5).status_code == 404
        p.write({"a.localhost": (upstream.port,), "b.localhost": (other.port,)})
        p.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = requests.get(p.url("/echo"), headers={"Host": "b.localhost"}, timeout=5)
            if r.status_code == 200:
                break
            time.sleep(0.05)
        assert r.status_code == 200 and r.json()["server"] == "two"
        # a broken config keeps the running one
        p.conf.write_text("routes: [ {host: 1\n")
        p.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert requests.get(p.url("/echo"), headers={"Host": "b.localhost"}, timeout=5).status_code == 200
    finally:
        p.stop()
        other.shutdown()
        other.server_close()


def test_sigterm_drains_an_inflight_request(bin_dir, tmp_path, upstream):
    p = Proxy(bin_dir, tmp_path, {"a.localhost": (upstream.port,)})
    result = {}

    def slow():
        result["r"] = requests.get(p.url("/slow?delay=1"), headers={"Host": "a.localhost"}, timeout=10)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    p.proc.send_signal(signal.SIGTERM)
    t.join()
    assert result["r"].status_code == 200
    assert p.proc.wait(timeout=10) == 0


def test_metrics_on_the_admin_port(proxy):
    get(proxy, "/echo")
    r = requests.get(f"http://127.0.0.1:{proxy.admin}/metrics", timeout=5)
    assert r.status_code == 200
    assert "spaceproxy_requests_total" in r.text
    assert 'spaceproxy_responses_total{code="2xx"}' in r.text
    assert requests.get(f"http://127.0.0.1:{proxy.admin}/healthz", timeout=5).text == "ok\n"


def test_access_log_has_one_line_per_request(proxy):
    get(proxy, "/echo?logme=1")
    time.sleep(0.2)
    lines = [l for l in proxy.log.read_text().splitlines() if "logme=1" in l]
    assert len(lines) == 1
    line = lines[0]
    for field in ("host=alice-demo.localhost", "status=200", "bytes=", "time_ms=", "upstream_ms="):
        assert field in line


# ---------------------------------------------------------------------------------------
# limits and timeouts


def test_per_space_concurrency_limit(bin_dir, tmp_path, upstream):
    p = Proxy(bin_dir, tmp_path, {"a.localhost": (upstream.port,)}, extra={"space_max_concurrency": 2})
    try:
        results = []

        def slow():
            results.append(requests.get(p.url("/slow?delay=1"), headers={"Host": "a.localhost"}, timeout=10))

        threads = [threading.Thread(target=slow) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        r = requests.get(p.url("/echo"), headers={"Host": "a.localhost"}, timeout=5)
        assert r.status_code == 503 and r.headers["Retry-After"]
        for t in threads:
            t.join()
        assert [x.status_code for x in results] == [200, 200]
        assert requests.get(p.url("/echo"), headers={"Host": "a.localhost"}, timeout=5).status_code == 200
    finally:
        p.stop()


def test_idle_timeout_closes_silent_tunnels_but_not_busy_streams(bin_dir, tmp_path, upstream):
    p = Proxy(bin_dir, tmp_path, {"a.localhost": (upstream.port,)}, extra={"idle_timeout": "1s"})
    try:
        # an SSE stream that talks every 0.4 s lives well past the 1 s idle timeout
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
            s.sendall(b"GET /sse?n=6&gap=0.4 HTTP/1.1\r\nHost: a.localhost\r\n\r\n")
            buf = b""
            while buf.count(b"data: ") < 6:
                d = s.recv(65536)
                assert d, "the stream was cut"
                buf += d
        # a WebSocket nobody speaks on is closed after it
        s, key, head, rest = ws_connect(p.port, "a.localhost")
        with s:
            ws_read(s)
            t0 = time.monotonic()
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            assert 0.5 < time.monotonic() - t0 < 3
    finally:
        p.stop()


def test_trusted_tls_proxy_forwarded_headers_are_kept(bin_dir, tmp_path, upstream):
    p = Proxy(bin_dir, tmp_path, {"a.localhost": (upstream.port,)}, extra={"trusted_proxy": "127.0.0.1"})
    try:
        r = requests.get(p.url("/echo"), timeout=5, headers={
            "Host": "a.localhost", "X-Forwarded-For": "198.51.100.1, 203.0.113.9",
            "X-Forwarded-Proto": "https"})
        h = {k.lower(): v for k, v in r.json()["headers"]}
        assert h["x-forwarded-for"] == "198.51.100.1, 203.0.113.9, 127.0.0.1"
        assert h["x-forwarded-proto"] == "https"
        assert h["x-real-ip"] == "203.0.113.9"
        assert ip_token_payload(h["x-ip-token"])["ip"] == "203.0.113.9"
        # a garbage claim is not an address: the peer stays the visitor
        r = requests.get(p.url("/echo"), timeout=5, headers={"Host": "a.localhost", "X-Forwarded-For": "evil"})
        h = {k.lower(): v for k, v in r.json()["headers"]}
        assert h["x-real-ip"] == "127.0.0.1" and h["x-forwarded-for"] == "127.0.0.1"
    finally:
        p.stop()
