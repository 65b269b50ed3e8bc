#!/usr/bin/env python3
"""Wake latency of a Gradio Space to its first byte, through spaceproxy and runtimed:
from light sleep (its cgroup frozen; target under 50 ms) and from deep sleep (stopped;
target within 300 ms of the app's own cold start, which runtimed logs as "answers after
N ms" from a running sandbox to the first answered health check).

The Space is examples/hello-gradio, pushed and built by runtimed (pip install of
gradio); the data dir is kept in BENCH_WAKE_DATA (default /var/tmp/spaceport-bench-wake)
so the layer is built once and reused.  Prints figures; never fails on them (make
bench).  Needs root.  Environment: BENCH_WAKE_ROUNDS (5)."""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin"))
DATA = pathlib.Path(os.environ.get("BENCH_WAKE_DATA", "/var/tmp/spaceport-bench-wake"))
ROUNDS = int(os.environ.get("BENCH_WAKE_ROUNDS", "5"))
# Longer than the proxy's wake throttle (one wake call per Space per 3 s), or a visit
# right after the previous wake's freeze would not ask for a wake at all.
LIGHT_MS = 4000
# Deep sleep withdraws the route, then stops the app after this grace (a wake in it
# resumes without a restart): the deep rounds visit only once the app is stopped.
GRACE_MS = 1000
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests"))  # shimsocks, which test_70_support uses
from test_5_support import Runtimed, free_port  # noqa: E402
from test_70_support import head, make_repo, push  # noqa: E402


def ttfb(port, host):
    """ms from connect to the first byte of the answer to GET / through the proxy."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                  .encode())
        first = s.recv(1)
        t = (time.perf_counter() - t0) * 1000
        buf = first
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    status = buf.split(b" ", 2)[1] if buf.startswith(b"HTTP/") else b"?"
    return t, status.decode()


def direct_ttfb(upstream):
    t0 = time.perf_counter()
    with socket.create_connection(tuple(upstream.rsplit(":", 1)), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.recv(1)
        return (time.perf_counter() - t0) * 1000


def route(rt, sid):
    for s in rt.get("/api/proxy/routes", rt.proxy).json()["spaces"]:
        if s["id"] == sid:
            return s
    return None


def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise SystemExit(f"bench_wake: timed out waiting for {what}")


def wait_stopped(rt, sid, token):
    """Deep sleep with the app stopped: SLEEPING, then the end of the sleep grace."""
    n = rt.log().count("sleep grace over")
    wait(lambda: rt.get(f"/api/spaces/{sid}/runtime", token).json()["stage"] in
         ("SLEEPING", "STOPPED"), 60, "deep sleep")
    wait(lambda: rt.log().count("sleep grace over") > n, 30, "the end of the sleep grace")


def main():
    if os.geteuid() != 0:
        print("bench_wake: needs root (sandboxes); skipped")
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    conf = DATA / "runtimed.yaml"
    conf.write_text(f"light_sleep_ms: {LIGHT_MS}\nsleep_grace_ms: {GRACE_MS}\n")
    rt = Runtimed(BIN, DATA / "data", config=conf).start(timeout=30)
    proxy = None
    try:
        if not any(u["name"] == "alice" for u in rt.get("/api/admin/users", rt.admin).json()):
            rt.add_user("alice")
        token = rt.token("alice", "write")
        sid, host_label = "alice/hello-gradio", "alice-hello-gradio"
        if rt.get(f"/api/spaces/{sid}", token).status_code == 404:
            rt.create_space("alice", "hello-gradio", token, sdk="gradio")
            work = make_repo(DATA / "work", "hello-gradio")
            t0 = time.time()
            push(rt, work, "alice", "hello-gradio", token)
            print(f"pushed {head(work)[:12]}; building (pip install gradio)...", flush=True)
        else:
            t0 = time.time()
            rt.post(f"/api/spaces/{sid}/sleeptime", token, json={"seconds": -1})
            rt.post(f"/api/spaces/{sid}/restart", token)  # the last run paused it
        stage = wait(lambda: (lambda j: j["stage"] if j["stage"] in
                              ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR") else None)(
            rt.get(f"/api/spaces/{sid}/runtime", token).json()), 900, "RUNNING")
        if stage != "RUNNING":
            print(rt.get(f"/api/spaces/{sid}/runtime", token).json())
            return 1
        print(f"RUNNING after {time.time() - t0:.1f} s")

        port = free_port()
        pconf = DATA / "proxy.yaml"
        pconf.write_text("poll_interval: 200ms\nwake_timeout: 120s\nactivity_interval: 300ms\n")
        proxy = subprocess.Popen(
            [str(BIN / "spaceproxy"), "--listen", f"127.0.0.1:{port}", "--runtimed", rt.url,
             "--token-file", str(rt.data_dir / "proxy.token"), "--workers", "1",
             "--config", str(pconf)], stderr=open(DATA / "proxy.log", "wb"))
        host = f"{host_label}.localhost:{port}"
        def routed():
            try:
                return ttfb(port, host)[1] == "200"
            except OSError:
                return False
        wait(routed, 30, "the proxy to route")

        light = []
        for _ in range(ROUNDS):
            wait(lambda: route(rt, sid)["upstream"] is None, 30, "light sleep")
            time.sleep(0.3)  # let the proxy's table catch up: it must ask for a wake
            t, status = ttfb(port, host)
            light.append(t)
            print(f"  light sleep -> first byte: {t:7.1f} ms ({status}) through spaceproxy",
                  flush=True)
        # The lifecycle's own part: runtimed's wake call (thaw inline) and the app's answer.
        direct = []
        for _ in range(ROUNDS):
            wait(lambda: route(rt, sid)["upstream"] is None, 30, "light sleep")
            t0 = time.perf_counter()
            rt.post("/api/proxy/wake", rt.proxy, json={"id": sid})
            up = route(rt, sid)["upstream"]
            direct.append((time.perf_counter() - t0) * 1000 + direct_ttfb(up))
            print(f"  light sleep -> wake call + routes + first byte direct: {direct[-1]:6.1f} ms",
                  flush=True)

        rt.post(f"/api/spaces/{sid}/sleeptime", token, json={"seconds": 3})
        deep, cold = [], []
        for _ in range(max(2, ROUNDS // 2)):
            wait_stopped(rt, sid, token)
            time.sleep(0.3)
            n_before = len(re.findall(r"alice-hello-gradio.*answers after (\d+) ms", rt.log()))
            t, status = ttfb(port, host)
            deep.append(t)
            starts = wait(lambda: (lambda v: v if len(v) > n_before else None)(
                re.findall(r"alice-hello-gradio.*answers after (\d+) ms", rt.log())), 10,
                "the start's log line")
            cold.append(float(starts[-1]))
            print(f"  deep sleep  -> first byte: {t:7.1f} ms ({status}); app cold start "
                  f"{cold[-1]:.0f} ms; overhead {t - cold[-1]:.0f} ms", flush=True)
        # The lifecycle's own part: runtimed's wake call to RUNNING, then the first byte.
        deep_direct = []
        for _ in range(max(2, ROUNDS // 2)):
            wait_stopped(rt, sid, token)
            n_before = len(re.findall(r"alice-hello-gradio.*answers after (\d+) ms", rt.log()))
            t0 = time.perf_counter()
            rt.post("/api/proxy/wake", rt.proxy, json={"id": sid})
            wait(lambda: rt.get(f"/api/spaces/{sid}/runtime", token).json()["stage"] == "RUNNING",
                 120, "RUNNING")
            d = (time.perf_counter() - t0) * 1000 + direct_ttfb(route(rt, sid)["upstream"])
            starts = re.findall(r"alice-hello-gradio.*answers after (\d+) ms", rt.log())
            sandbox = re.findall(r"alice-hello-gradio.*the sandbox took (\d+) ms", rt.log())
            deep_direct.append(d - float(starts[-1]) if len(starts) > n_before else float("nan"))
            print(f"  deep sleep  -> wake call, RUNNING, first byte direct: {d:7.1f} ms; app cold "
                  f"start {starts[-1]} ms; sandbox start {sandbox[-1] if sandbox else '?'} ms; "
                  f"overhead {deep_direct[-1]:.0f} ms", flush=True)
        rt.post(f"/api/spaces/{sid}/sleeptime", token, json={"seconds": -1})

        print(f"light sleep wake, first byte through spaceproxy: median "
              f"{statistics.median(light):.1f} ms, min {min(light):.1f}, max {max(light):.1f} "
              f"(target < 50 ms); runtimed's wake + first byte direct: median "
              f"{statistics.median(direct):.1f} ms")
        over = [d - c for d, c in zip(deep, cold)]
        print(f"deep sleep wake, first byte: median {statistics.median(deep):.0f} ms; the app's "
              f"cold start median {statistics.median(cold):.0f} ms; overhead median "
              f"{statistics.median(over):.0f} ms through spaceproxy, {statistics.median(deep_direct):.0f} ms "
              f"direct (target < 300 ms)")
        return 0
    finally:
        if proxy:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(timeout=15)
        # Pause the Space: a bench leaves nothing running (the next run restarts it).
        try:
            rt.post("/api/spaces/alice/hello-gradio/pause", rt.admin)
            time.sleep(1)
        except requests.RequestException:
            pass
        rt.stop()


if __name__ == "__main__":
    sys.exit(main())
