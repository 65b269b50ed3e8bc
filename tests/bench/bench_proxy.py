#!/usr/bin/env python3
"""spaceproxy side by side with nginx and HAProxy, in one run, same pinning, same upstream.

  requests/s at 1, 50 and 256 keep-alive connections on one proxy core (wrk), p50/p99 and
  the p50 added over the direct baseline; memory per idle keep-alive connection; N idle
  WebSockets held (10,000, or as many as the fd limit allows: each one costs the proxy
  two fds); SSE event added latency.

Pinning (2-core machine): wrk, the backends and the helper clients on CPU 0; the proxies
on CPU 1, one worker/thread each (all three run at once; only the one under load is busy,
and the rounds are interleaved so background load on a shared machine spreads evenly).  Loopback only, every run bounded.
Prints figures; never fails on them (make bench).  Environment: BENCH_DURATION (s, 8),
BENCH_REPEAT (1: the median of the repeats is printed), BENCH_IDLE (5000), BENCH_WS
(10000), BENCH_ONLY (comma list of spaceproxy,nginx,haproxy)."""
import asyncio
import os
import pathlib
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin"))
DUR = int(os.environ.get("BENCH_DURATION", "8"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))
IDLE_N = int(os.environ.get("BENCH_IDLE", "5000"))
WS_N = int(os.environ.get("BENCH_WS", "10000"))
ONLY = os.environ.get("BENCH_ONLY", "spaceproxy,nginx,haproxy").split(",")
NCPU = os.cpu_count() or 1
LOAD_CPU, PROXY_CPU = "0", str(min(1, NCPU - 1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing on port {port}")


def pinned(cpu, argv):
    return ["taskset", "-c", cpu, *argv]


def rss_kb(pid):
    """RSS of a process and its children (nginx's master and worker)."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                text=True).stdout.split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


class Proc:
    def __init__(self, argv, cpu, port, **kw):
        self.p = subprocess.Popen(pinned(cpu, argv), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, **kw)
        wait_port(port)
        self.port = port

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


# --- helper servers: an asyncio WebSocket echo and an SSE ticker -----------------------

WS_SERVER = r'''
import asyncio, base64, hashlib, sys, time
G = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
async def handle(r, w):
    head = await r.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split()[1]
    hd = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    if path.startswith("/sse"):
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        await w.drain()
        for i in range(int(path.split("=")[1])):
            await asyncio.sleep(0.02)
            ev = b"data: %d\n\n" % time.time_ns()
            w.write(b"%x\r\n%s\r\n" % (len(ev), ev))
            await w.drain()
        w.write(b"0\r\n\r\n")
        await w.drain()
        w.close()
        return
    acc = base64.b64encode(hashlib.sha1(hd["sec-websocket-key"].encode() + G).digest())
    w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    await w.drain()
    try:
        while True:
            d = await r.read(65536)
            if not d:
                break
            # echo frames unmasked: enough for this test's tiny text frames
            b1 = d[1] & 0x7f
            key, payload = d[2:6], d[6:6 + b1]
            data = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            w.write(bytes([d[0], len(data)]) + data)
            await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
'''


# --- the proxies under test -------------------------------------------------------------

def start_spaceproxy(tmp, port, backend, helper):
    conf = tmp / "spaceproxy.yaml"
    conf.write_text(f"listen: 127.0.0.1:{port}\nworkers: 1\naccess_log: off\n"
                    f"token_file: {tmp}/none\nroutes:\n"
                    f"  - {{host: bench.localhost, upstream: 127.0.0.1:{backend}}}\n"
                    f"  - {{host: helper.localhost, upstream: 127.0.0.1:{helper}}}\n")
    return Proc([str(BIN / "spaceproxy"), "--config", str(conf)], PROXY_CPU, port)


def start_nginx(tmp, port, backend, helper):
    d = tmp / "nginx"
    d.mkdir(exist_ok=True)
    (d / "logs").mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  map $http_upgrade $conn_upgrade {{ default upgrade; '' ''; }}
  upstream be {{ server 127.0.0.1:{backend}; keepalive 64; }}
  upstream helper {{ server 127.0.0.1:{helper}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      set $be be;
      if ($http_host = helper.localhost) {{ set $be helper; }}
      proxy_pass http://$be; proxy_http_version 1.1; proxy_buffering off;
      proxy_set_header Host $http_host; proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $conn_upgrade; proxy_read_timeout 3600s;
      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Host $http_host;
    }}
  }}
}}
""")
    return Proc(["nginx", "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")], PROXY_CPU, port)


def start_haproxy(tmp, port, backend, helper):
    conf = tmp / "haproxy.cfg"
    conf.write_text(f"""
global
  nbthread 1
  maxconn 9960
defaults
  mode http
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-keep-alive 75s
  option http-keep-alive
  option http-no-delay
  option forwardfor
  http-reuse always
frontend f
  bind 127.0.0.1:{port}
  maxconn 9960
  use_backend helper if {{ hdr(host) -i helper.localhost }}
  default_backend be
backend be
  server s1 127.0.0.1:{backend}
backend helper
  server s1 127.0.0.1:{helper}
""")
    return Proc(["haproxy", "-f", str(conf), "-db"], PROXY_CPU, port)


PROXIES = {"spaceproxy": start_spaceproxy, "nginx": start_nginx, "haproxy": start_haproxy}


# --- measurements -----------------------------------------------------------------------

def to_ms(v):
    n = float(re.match(r"[\d.]+", v).group())
    return n / 1000 if v.endswith("us") else n * 1000 if v.endswith("s") and not v.endswith("ms") else n


def wrk(port, conns, host):
    out = subprocess.run(pinned(LOAD_CPU, ["wrk", "-t1", f"-c{conns}", f"-d{DUR}s", "--latency",
                                           "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"]),
                         capture_output=True, text=True, timeout=DUR + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "err": errors.group(0) if errors else ""}


async def hold_idle(port, n, host):
    """Opens n keep-alive connections, one request each, and keeps them open."""
    conns = []
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for i in range(0, n, 200):
        batch = await asyncio.gather(*[asyncio.open_connection("127.0.0.1", port)
                                       for _ in range(min(200, n - i))])
        for r, w in batch:
            w.write(req)
        for r, w in batch:
            await r.readuntil(b"hello world\n")
        conns += batch
    return conns


async def hold_ws(port, n, host):
    conns = []
    req = (f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    failed = []
    for i in range(0, n, 250):
        batch = await asyncio.gather(*[asyncio.open_connection("127.0.0.1", port, limit=4096)
                                       for _ in range(min(250, n - i))])
        for r, w in batch:
            w.write(req)
        for r, w in batch:
            try:
                head = await r.readuntil(b"\r\n\r\n")
                (conns if head.startswith(b"HTTP/1.1 101") else failed).append((r, w))
            except (asyncio.IncompleteReadError, ConnectionError):
                failed.append((r, w))
    # the tunnels still work: one echo on a sample of them
    for r, w in conns[:: max(1, len(conns) // 50)]:
        w.write(b"\x81\x82\x00\x00\x00\x00hi")
        assert (await r.readexactly(4)) == b"\x81\x02hi"
    close_all(failed)
    return conns


def close_all(conns):
    for r, w in conns:
        w.close()


def idle_cost(proc_pid, port, n, host, holder):
    loop = asyncio.new_event_loop()
    time.sleep(0.5)
    before = rss_kb(proc_pid)
    t0 = time.monotonic()
    conns = loop.run_until_complete(holder(port, n, host))
    took = time.monotonic() - t0
    time.sleep(1.0)
    after = rss_kb(proc_pid)
    held = len(conns)
    close_all(conns)
    loop.run_until_complete(asyncio.sleep(0.5))
    loop.close()
    return (after - before) * 1024 / max(held, 1), took, held


async def sse_lags(port, host, n=100):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET /sse?n={n} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    lags = []
    buf = b""
    while len(lags) < n:
        d = await r.read(65536)
        if not d:
            break
        now = time.time_ns()
        buf += d
        for m in re.finditer(rb"data: (\d+)\n\n", buf):
            lags.append((now - int(m.group(1))) / 1e6)
        buf = buf[buf.rfind(b"\n\n") + 2:] if b"\n\n" in buf else buf
    w.close()
    return lags


def sse_run(port, host):
    loop = asyncio.new_event_loop()
    lags = loop.run_until_complete(sse_lags(port, host))
    loop.close()
    lags.sort()
    return statistics.median(lags), lags[int(len(lags) * 0.99) - 1]


def main():
    for tool in ("wrk", "taskset", "nginx", "haproxy"):
        if not shutil.which(tool):
            print(f"bench_proxy: '{tool}' missing (ops/debian-packages.txt lists it); skipped")
            return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # a proxied WebSocket costs the proxy two fds; keep a margin for listeners and pools
    ws_n = min(WS_N, (hard - 200) // 2)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    print(f"# {NCPU} CPUs; load (wrk, backends, clients) on CPU {LOAD_CPU}, proxy on CPU {PROXY_CPU}; "
          f"{DUR}s x {REPEAT} per point; fd limit {hard}")
    be_port, helper_port = free_port(), free_port()
    bdir = tmp / "backend"
    bdir.mkdir()
    (bdir / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {bdir}/nginx.pid; error_log {bdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  client_body_temp_path {bdir}/body; proxy_temp_path {bdir}/proxy;
  fastcgi_temp_path {bdir}/fcgi; uwsgi_temp_path {bdir}/uwsgi; scgi_temp_path {bdir}/scgi;
  server {{ listen 127.0.0.1:{be_port} backlog=4096; location / {{ return 200 "hello world\\n"; }} }} }}
""")
    backend = Proc(["nginx", "-p", str(bdir), "-c", str(bdir / "nginx.conf"), "-e", str(bdir / "error.log")],
                   LOAD_CPU, be_port)
    helper = Proc([sys.executable, "-c", WS_SERVER, str(helper_port)], LOAD_CPU, helper_port)
    results = {"direct": {}}
    procs = {}
    try:
        for name in [n for n in PROXIES if n in ONLY]:
            port = free_port()
            procs[name] = PROXIES[name](tmp, port, be_port, helper_port)
            results[name] = {}
        targets = [("direct", be_port)] + [(n, p.port) for n, p in procs.items()]
        # interleaved: every target runs once per round, so load drifting on this shared
        # machine spreads over all of them instead of landing on one
        for c in (1, 50, 256):
            runs = {name: [] for name, _ in targets}
            for _ in range(REPEAT):
                for name, port in targets:
                    runs[name].append(wrk(port, c, "bench.localhost"))
            for name, rs in runs.items():
                rs.sort(key=lambda r: r["rps"])
                results[name][c] = rs[len(rs) // 2]
        for name, port in targets:
            results[name]["sse"] = sse_run(port if name != "direct" else helper_port,
                                           "helper.localhost")
        for name, p in procs.items():
            res = results[name]
            res["idle"] = idle_cost(p.p.pid, p.port, IDLE_N, "bench.localhost", hold_idle)
            time.sleep(5)  # pooled upstream connections from that test expire
            res["ws"] = idle_cost(p.p.pid, p.port, ws_n, "helper.localhost", hold_ws)
            print(f"# {name}: c=50 {res[50]['rps']:.0f} req/s, {res['ws'][2]} WebSockets held",
                  flush=True)
    finally:
        for p in procs.values():
            p.stop()
        helper.stop()
        backend.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    d = results["direct"]
    print()
    print("| target | c=1 req/s | c=1 p50/p99 ms | c=50 req/s | c=50 p50/p99 ms | c=256 req/s | "
          "c=256 p50/p99 ms | added p50 c=1 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, res in results.items():
        cells = []
        for c in (1, 50, 256):
            r = res[c]
            cells += [f"{r['rps']:.0f}" + (f" ({r['err']})" if r["err"] else ""),
                      f"{r['p50']:.3f} / {r['p99']:.3f}"]
        added = "-" if name == "direct" else f"{(res[1]['p50'] - d[1]['p50']) * 1000:.0f} µs"
        print(f"| {name} | " + " | ".join(cells) + f" | {added} |")
    print()
    print(f"| target | idle keep-alive conn (N={IDLE_N}) | idle WebSocket (N={ws_n}) held | "
          "SSE event p50 / p99 ms | SSE added p50 |")
    print("|---|---|---|---|---|")
    dp50, dp99 = d["sse"]
    print(f"| direct | - | - | {dp50:.3f} / {dp99:.3f} | - |")
    for name, res in results.items():
        if name == "direct":
            continue
        (idle_b, _, _), (ws_b, ws_t, ws_held) = res["idle"], res["ws"]
        p50, p99 = res["sse"]
        print(f"| {name} | {idle_b:.0f} B | {ws_b:.0f} B each, {ws_held} of {ws_n} held (opened in {ws_t:.1f}s) | "
              f"{p50:.3f} / {p99:.3f} | {(p50 - dp50) * 1000:.0f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
