"""The device API on a real NVIDIA GPU (runs only where there is one, as root on
cgroup v2; skipped elsewhere): spaceport-gpud --backend nvml --cgroup; the grant
carries the GPU's real UUID; the allowed worker opens the unit's nodes and runs
nvidia-smi, but nothing else; expiry SIGKILLs it and revokes, after which the same
cgroup cannot open the GPU.  Stdlib only, so it also runs as a plain script on a
lent GPU machine: SPACEPORT_BIN=bin OUT=/tmp python3 tests/integration/test_31_zerogpu_gpu.py
(checked on an H100, cgroup v2: see gpu-sched/README.md)."""
import http.client
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time


def sh(cmd):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    return (r.stdout + r.stderr).strip()


PROBE = r"""
import errno, os, subprocess, sys
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "smi":
        try:
            r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
            print("SMI rc=%d %s" % (r.returncode, (r.stdout + r.stderr).strip().replace("\n", " | ")[:200]), flush=True)
        except OSError as e:
            print("SMI %s" % e, flush=True)
        continue
    try:
        os.close(os.open(cmd, os.O_RDWR))
        print("OPENED", flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno], flush=True)
"""


class Probe:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-c", PROBE], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid

    def ask(self, what):
        self.p.stdin.write(what + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()


def call(port, method, target):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, target)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def run_check(bin_path, OUT):
    base = pathlib.Path("/sys/fs/cgroup") / f"spaceport-gpud-check-{os.getpid()}"
    base.mkdir(exist_ok=True)
    port_file = OUT / "gpud.port"
    log = open(OUT / "gpud.log", "w")
    gpud = subprocess.Popen([str(bin_path / "spaceport-gpud"), "--space", "check/gpu", "--backend", "nvml",
                             "--cgroup", str(base), "--listen", "127.0.0.1:0", "--port-file",
                             str(port_file), "--quota", "anonymous=0"], stdout=log, stderr=log)
    results = {}
    try:
        t = time.time()
        while not port_file.exists():
            if gpud.poll() is not None or time.time() - t > 60:
                raise AssertionError("gpud failed: " + (OUT / "gpud.log").read_text())
            time.sleep(0.05)
        port = int(port_file.read_text())
        print("== gpud up in %.2fs on %d" % (time.time() - t, port))
        st, body = call(port, "POST", "/schedule?cgroupPath=/x&taskId=1&durationSeconds=3")
        grant = json.loads(body)
        print("grant", st, grant)
        smi = sh("nvidia-smi --query-gpu=uuid --format=csv,noheader")
        results["uuid_matches_nvidia_smi"] = grant["nvidiaUUID"] in smi
        w = Probe()
        dev = f"/dev/nvidia{grant['nvidiaIndex']}"
        results["outside_before"] = w.ask(dev)
        st, _ = call(port, "POST", f"/allow?allowToken={grant['allowToken']}&pid={w.pid}")
        results["allow_status"] = st
        unit = base / f"gpu-{grant['nvidiaIndex']}"
        results["worker_in_cgroup"] = str(w.pid) in (unit / "cgroup.procs").read_text().split()
        results["worker_open_gpu"] = w.ask(dev)
        results["worker_open_ctl"] = w.ask("/dev/nvidiactl")
        results["worker_open_null"] = w.ask("/dev/null")
        results["worker_nvidia_smi"] = w.ask("smi")
        t0 = time.time()
        try:
            rc = w.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        results["worker_killed_rc"] = rc
        results["killed_after_s"] = round(time.time() - t0, 2)
        time.sleep(0.2)
        p2 = Probe()
        (unit / "cgroup.procs").write_text(str(p2.pid))
        results["after_revoke_open_gpu"] = p2.ask(dev)
        results["after_revoke_nvidia_smi"] = p2.ask("smi")
        p2.p.kill()
        p2.p.wait()
        # Grant latency over HTTP/1.1 keep-alive, stdlib client.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        lat = []
        for i in range(3000):
            t1 = time.perf_counter()
            c.request("POST", "/schedule?cgroupPath=/x&taskId=1&durationSeconds=60")
            r = c.getresponse()
            b = json.loads(r.read())
            lat.append((time.perf_counter() - t1) * 1000)
            c.request("POST", f"/release?allowToken={b['allowToken']}")
            c.getresponse().read()
        lat.sort()
        results["grant_ms_p50"] = round(lat[len(lat) // 2], 3)
        results["grant_ms_p99"] = round(lat[int(len(lat) * 0.99)], 3)
    finally:
        gpud.send_signal(signal.SIGTERM)
        try:
            results["gpud_exit"] = gpud.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gpud.kill()
        for d in base.glob("gpu-*"):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        try:
            base.rmdir()
        except OSError as e:
            print("rmdir", e)
        print(json.dumps(results, indent=1))
        print("== gpud log\n" + (OUT / "gpud.log").read_text())
        (OUT / "results.json").write_text(json.dumps(results, indent=1))
        return results


def _have_gpu():
    return (os.geteuid() == 0 and os.path.exists("/dev/nvidiactl") and shutil.which("nvidia-smi")
            and subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True,
                               text=True).stdout.strip() == "cgroup2fs")


def test_real_gpu_allow_expire_revoke(tmp_path):
    import pytest
    if not _have_gpu():
        pytest.skip("needs root, an NVIDIA GPU and a cgroup v2 host")
    bin_path = pathlib.Path(os.environ.get("SPACEPORT_BIN",
                                           pathlib.Path(__file__).resolve().parents[2] / "bin"))
    r = run_check(bin_path, tmp_path)
    assert r["uuid_matches_nvidia_smi"] and r["allow_status"] == 200 and r["worker_in_cgroup"]
    assert r["worker_open_gpu"] == "OPENED" and r["worker_open_ctl"] == "OPENED"
    assert r["worker_open_null"] == "EPERM"
    assert r["worker_nvidia_smi"].startswith("SMI rc=0")
    assert r["worker_killed_rc"] == -9
    assert r["after_revoke_open_gpu"] == "EPERM"
    assert r["gpud_exit"] == 0


if __name__ == "__main__":
    run_check(pathlib.Path(os.environ.get("SPACEPORT_BIN", "bin")),
              pathlib.Path(os.environ.get("OUT", "/tmp")))  # prints its results
