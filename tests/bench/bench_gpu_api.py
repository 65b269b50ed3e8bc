#!/usr/bin/env python3
"""ZeroGPU device API figures (make bench): grant latency over HTTP for a free GPU,
from POST /schedule sent to the JSON grant read back (target: p99 under 5 ms), with
bin/spaceport-gpud on loopback.  Three clients: a raw keep-alive socket (the
server's own cost), the spaces package's APIClient on httpx (what a Space pays),
and the whole cycle schedule+allow+release.  Prints figures; never passes or fails
on them."""
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", HERE.parent.parent / "bin"))
GPUD = BIN / "spaceport-gpud"
N = int(os.environ.get("BENCH_GPU_API_N", "5000"))
CG = "/spaces/bench/main"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def show(name, lat_s):
    ms = [x * 1000 for x in lat_s]
    print(f"{name:44s} n={len(ms):6d}  p50 {pct(ms, 50):6.3f} ms  p99 {pct(ms, 99):6.3f} ms"
          f"  max {max(ms):7.3f} ms  mean {statistics.mean(ms):6.3f} ms")


class Conn:
    """HTTP/1.1 keep-alive over one socket; reads exactly one response."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, method, target):
        self.s.sendall(f"{method} {target} HTTP/1.1\r\nHost: gpud\r\n"
                       f"Content-Length: 0\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        n = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(rest) < n:
            rest += self.s.recv(65536)
        self.buf = rest[n:]
        return int(head.split(b" ", 2)[1]), rest[:n]


def token_of(body):
    return body.split(b'"allowToken":"', 1)[1][:32].decode()


def main():
    if not GPUD.is_file():
        sys.exit(f"{GPUD} missing: run make first")
    with tempfile.TemporaryDirectory() as tmp:
        port_file = pathlib.Path(tmp) / "port"
        worker = subprocess.Popen(["sleep", "1000"])
        proc = subprocess.Popen([str(GPUD), "--space", "bench/app", "--gpus", "1xa100:80G",
                                 "--listen", "127.0.0.1:0", "--port-file", str(port_file),
                                 "--quota", "anonymous=0", "--log-level", "warn"])
        try:
            while not port_file.exists():
                assert proc.poll() is None, "spaceport-gpud exited"
                time.sleep(0.01)
            port = int(port_file.read_text())
            print(f"-- spaceport-gpud on 127.0.0.1:{port}, 1 fake GPU, {N} calls each "
                  f"({os.cpu_count()} CPUs)")
            c = Conn(port)
            sched = f"/schedule?cgroupPath={CG}&taskId=1&enableQueue=true&durationSeconds=60"
            for _ in range(200):  # warm up
                _, body = c.call("POST", sched)
                c.call("POST", f"/release?allowToken={token_of(body)}&fail=false")

            grant = []
            for _ in range(N):
                t0 = time.perf_counter()
                st, body = c.call("POST", sched)
                grant.append(time.perf_counter() - t0)
                assert st == 200, body
                c.call("POST", f"/release?allowToken={token_of(body)}&fail=false")
            show("grant, free GPU (raw keep-alive socket)", grant)

            cycle = []
            for _ in range(N):
                t0 = time.perf_counter()
                _, body = c.call("POST", sched)
                tok = token_of(body)
                st, _ = c.call("POST", f"/allow?allowToken={tok}&pid={worker.pid}")
                assert st == 200
                st, _ = c.call("POST", f"/release?allowToken={tok}&fail=false")
                cycle.append(time.perf_counter() - t0)
            show("schedule + allow + release (raw socket)", cycle)

            try:
                import httpx
                from spaces.zero.api import APIClient
            except ImportError as e:
                print(f"(spaces client not installed: {e}; make deps)")
                return
            api = APIClient(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60))
            for _ in range(200):
                res, _ = api.schedule(cgroup_path=CG, task_id=1, duration_seconds=60)
                api.release(res.allowToken)
            lat = []
            for _ in range(N):
                t0 = time.perf_counter()
                res, _ = api.schedule(cgroup_path=CG, task_id=1, duration_seconds=60)
                lat.append(time.perf_counter() - t0)
                api.release(res.allowToken)
            show("grant, free GPU (spaces APIClient, httpx)", lat)
            print("target: p99 under 5 ms")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
            worker.kill()
            worker.wait()


if __name__ == "__main__":
    main()
