"""ZeroGPU through a real runtimed on a real NVIDIA GPU (runs only where NVML loads, as
root; skipped elsewhere).  runtimed with gpu_backend: nvml and zero_gpus: 1 (the first
GPU: its kind), a static Space on a zero tier of that kind, and a client that speaks the
device API as the `spaces` package does (http.client, stdlib only) from a process of the
Space: it joins the Space's network and pid namespaces and its device cgroup (the mount
namespace stays the host's, as in test_33, so the worker sees the host's nvidia-smi and
python).  Checked:

- POST /schedule grants the GPU's real UUID (as GET /api/admin/gpus lists it);
- the app's main process cannot open /dev/nvidia0 (EPERM);
- a forked worker, after POST /allow with its pid, opens it, sees exactly that GPU in
  `nvidia-smi -L` and, when the host python has torch, runs a CUDA matmul; /release;
- a worker holding a 5 s lease runs past its deadline and is SIGKILLed at it, after
  which a process left in the worker's cgroup (its child) cannot open the GPU;
- the lease list and the visitor's quota (/api/spaces/zero-gpu/quota) add up.

Stdlib only, so it runs as a plain script on a lent GPU machine (tests/helpers/
device-check.sh carries the binaries and libraries):
    SPACEPORT_BIN=bin python3 tests/integration/test_34_zerogpu_runtimed_real.py
It prints one JSON report (timings included) and exits 0 when every check passed, 1 when
one failed, 3 when there is no GPU.  SPACEPORT_TEST34_FAKE=1 runs the same plumbing over
the fake backend (test_33's nodes: opening the leased node is ENXIO, there is no
nvidia-smi or torch step), to check everything but the GPU itself here."""
import base64
import ctypes
import errno
import hashlib
import hmac
import http.client
import json
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # run as a script too
from gpu_real_support import BIN, ROOT, Api, free_port, inventory  # noqa: E402

FAKE = os.environ.get("SPACEPORT_TEST34_FAKE") == "1"
PORT = 7911  # RT_GPUZERO_PORT: the device API inside every zero Space
LEASE_S = 5  # the lease that must end at its deadline
PROBE_S = 90  # the lease nvidia-smi and torch run in (2 CPUs: torch's import is slow)
VISITOR_IP = "203.0.113.34"  # the visitor the calls are charged to (anonymous: 120 s a day)


# --- inside the Space (the client) ------------------------------------------------------


def out(**kw):
    print(json.dumps(kw), flush=True)


def open_errno(path):
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        return 0
    except OSError as e:
        return e.errno


def devapi(method, path):
    """One device API call as the spaces client makes it: (status, JSON or None, seconds)."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    try:
        c.request(method, path, body=b"" if method == "POST" else None)
        r = c.getresponse()
        text = r.read().decode()
    finally:
        c.close()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = text
    return r.status, body, time.monotonic() - t0


def schedule(duration, task, token):
    cg = pathlib.Path("/proc/self/cgroup").read_text().splitlines()[0].split(":", 2)[2]
    q = urllib.parse.urlencode({"cgroupPath": cg, "taskId": task, "enableQueue": "false",
                                "durationSeconds": duration, "token": token})
    return devapi("POST", "/schedule?" + q)


def gpu_probe(uuid):
    """nvidia-smi -L and a torch matmul, as the worker (its children share its cgroup)."""
    res = {}
    try:
        r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
        res["smi"] = {"rc": r.returncode, "out": (r.stdout + r.stderr).strip()[-2000:]}
    except (OSError, subprocess.TimeoutExpired) as e:
        res["smi"] = {"rc": -1, "out": str(e)}
    code = ("import torch, time; t = time.monotonic(); a = torch.ones(1024, 1024, device='cuda'); "
            "s = float((a @ a).sum()); torch.cuda.synchronize(); "
            "print(torch.cuda.device_count(), s, time.monotonic() - t)")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=uuid)  # as the client sets it
    t0 = time.monotonic()
    # This worker runs in the host's mount namespace (for the host's python and torch),
    # so its /proc is the host's while its pid namespace is the Space's (getpid() names
    # another process there: libcuda fails with error 304), and its /dev has nodes a
    # Space's lacks (the MIG caps).  Give it the Space's view, as its sandbox would: a
    # private mount namespace with a /proc of its own pid namespace and the caps hidden.
    argv = [sys.executable, "-c", code]
    if shutil.which("unshare"):
        hide = ("mount -t tmpfs -o size=4k,mode=755 none /dev/nvidia-caps && "
                if os.path.isdir("/dev/nvidia-caps") else "")
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                "mount -t proc proc /proc && " + hide + "exec \"$0\" \"$@\"", *argv]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=PROBE_S - 10)
    if r.returncode != 0 and "No module named 'torch'" in r.stderr:
        res["torch"] = {"skipped": "no torch in " + sys.executable}
    elif r.returncode != 0:
        res["torch"] = {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:300]}
    else:
        n, s, t = r.stdout.split()
        res["torch"] = {"devices": int(n), "sum": float(s), "cuda_s": round(float(t), 3),
                        "total_s": round(time.monotonic() - t0, 3)}
    return res


def fork_worker(token, node, uuid, mode):
    """A forked worker as the client forks one: POST /allow with its own pid, open the
    unit's node, then "probe" (nvidia-smi, torch) and wait, or "linger": fork a child that
    stays in the worker's cgroup, then sleep until killed.  Returns (pid, report, fd of
    the lingering child's report)."""
    r, w = os.pipe()
    lr, lw = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(lr)
        try:
            status, body, secs = devapi("POST", f"/allow?allowToken={token}&pid={os.getpid()}")
            fd = -1
            rep = {"allow": status, "allow_s": round(secs, 4)}
            if mode == "linger" and os.fork() == 0:
                # its child, in its cgroup: waits for the worker's death (and a moment for
                # runtimed to revoke the unit), then tries the node
                parent = os.getppid()
                end = time.monotonic() + 40
                while os.getppid() == parent and time.monotonic() < end:
                    time.sleep(0.01)
                orphaned = os.getppid() != parent
                time.sleep(0.5)
                os.write(lw, (json.dumps({"orphaned": orphaned, "open": open_errno(node)})
                              + "\n").encode())
                os._exit(0)
            try:
                fd = os.open(node, os.O_RDWR | os.O_CLOEXEC)  # held until the worker ends
                rep["open"] = 0
            except OSError as e:
                rep["open"] = e.errno
            if mode == "probe" and status == 200 and not FAKE:
                rep.update(gpu_probe(uuid))
            os.close(lw)
            os.write(w, (json.dumps(rep) + "\n").encode())
            time.sleep(60)
            if fd >= 0:
                os.close(fd)
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(w, (json.dumps({"error": repr(e)}) + "\n").encode())
        os._exit(0)
    os.close(w)
    os.close(lw)
    with os.fdopen(r) as f:
        rep = json.loads(f.readline() or "{}")
    return pid, rep, lr


def reap(pid):
    if pid > 1:  # never a broad signal: this pid is our own child, in the Space's pid ns
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def client(node, token):
    """The client's steps; one JSON line each, waiting for a line on stdin where the
    host looks at runtimed's side."""
    out(startup=devapi("POST", "/startup-report")[0], cgroup=pathlib.Path(
        "/proc/self/cgroup").read_text().strip(), pid=os.getpid())
    # 1: a lease long enough for nvidia-smi and torch, released.
    status, g, secs = schedule(PROBE_S, 1, token)
    if status != 200:
        out(error=f"schedule: {status} {g}")
        return
    main_open = open_errno(node)  # the app's own process: denied
    t_allow = time.monotonic()
    pid, rep, lfd = fork_worker(g["allowToken"], node, g["nvidiaUUID"], "probe")
    os.close(lfd)
    out(step="probe", grant=g, grant_s=round(secs, 4), main_open=main_open, worker=rep,
        worker_s=round(time.monotonic() - t_allow, 3))
    sys.stdin.readline()
    rel = devapi("POST", f"/release?allowToken={g['allowToken']}&fail=false")[0]
    reap(pid)
    out(step="released", release=rel, again=devapi(
        "POST", f"/release?allowToken={g['allowToken']}&fail=false")[0])
    # 2: a LEASE_S lease whose worker outlives it.
    status, g, secs = schedule(LEASE_S, 2, token)
    t_grant = time.time()
    if status != 200:
        out(error=f"schedule: {status} {g}")
        return
    pid, rep, lfd = fork_worker(g["allowToken"], node, g["nvidiaUUID"], "linger")
    out(step="linger", grant=g, grant_s=round(secs, 4), worker=rep, t_grant=t_grant)
    _, st = os.waitpid(pid, 0)
    t_dead = time.time()
    ready, _, _ = select.select([lfd], [], [], 45)
    line = os.read(lfd, 4096).decode() if ready else ""
    os.close(lfd)
    out(step="expired", t_dead=t_dead, after_grant=round(t_dead - t_grant, 3),
        signal=os.WTERMSIG(st) if os.WIFSIGNALED(st) else None,
        lingerer=json.loads(line) if line.strip() else {"gone": True},
        release=devapi("POST", f"/release?allowToken={g['allowToken']}&fail=false")[0])


def in_space(sandbox_pid, cgdir, node, token):
    """Becomes a process of the Space (its device cgroup, network and pid namespaces),
    then forks the client: the pid namespace applies to children only."""
    libc = ctypes.CDLL(None, use_errno=True)
    pathlib.Path(cgdir, "cgroup.procs").write_text("0")
    for ns, flag in (("net", 0x40000000), ("pid", 0x20000000)):
        fd = os.open(f"/proc/{sandbox_pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        if libc.setns(fd, flag) != 0:
            sys.exit(f"setns {ns}: {os.strerror(ctypes.get_errno())}")
        os.close(fd)
    child = os.fork()
    if child == 0:
        code = 0
        try:
            client(node, token)
        except BaseException as e:  # noqa: BLE001 - reported to the host
            out(error=repr(e))
            code = 1
        sys.stdout.flush()
        os._exit(code)
    _, st = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(st))


# --- on the host --------------------------------------------------------------------------


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def visitor_token(proxy_secret, ip):
    """A visitor JWT signed as spaceproxy signs one (test_31_zerogpu_support.jwt)."""
    key = hmac.new(proxy_secret.encode(), b"spaceport-visitor-v1", hashlib.sha256).digest()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"ip": ip, "exp": int(time.time()) + 600}).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def fake_nodes(d):
    """gpu_fake_mknod()'s nodes for 1xa10g (majors 120/121, which no driver takes)."""
    d.mkdir()
    (d / "nvidia-caps").mkdir()
    for name, maj, mnr in (("nvidiactl", 120, 255), ("nvidia-modeset", 120, 254),
                           ("nvidia-uvm", 121, 0), ("nvidia-uvm-tools", 121, 1),
                           ("nvidia0", 120, 0)):
        os.mknod(d / name, 0o600 | 0o020000, os.makedev(maj, mnr))


def cgroup_roots():
    """(v1 devices mount, cgroup2 mount), as runtimed's zcg_roots() finds them."""
    v1 = v2 = None
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        mnt, (fstype, _, opts) = pre.split()[4], post.split()[:3]
        if fstype == "cgroup2" and not v2:
            v2 = mnt
        if fstype == "cgroup" and "devices" in opts.split(","):
            v1 = mnt
    return v1, v2


def device_cgroup(pid):
    """The directory of @pid's device cgroup: its v1 devices group, else its cgroup2 one."""
    v1, v2 = cgroup_roots()
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hid, ctl, path = line.split(":", 2)
        if v1 and "devices" in ctl.split(","):
            return pathlib.Path(v1 + path)
        if not v1 and hid == "0" and ctl == "" and v2:
            return pathlib.Path(v2 + path)
    raise RuntimeError(f"pid {pid} has no device cgroup")


def sandbox_pid(data, space):
    """The sandbox init of @space's running instance, from its shim's status.json."""
    for st in sorted((data / "run").glob("*/*/status.json")):
        j = json.loads(st.read_text())
        if json.loads((st.parent / "spec.json").read_text())["id"] == space and \
                j.get("state") == "running":
            return j["pid"]
    raise RuntimeError(f"no running instance of {space}")


def run_check(work):
    """Returns (report, failures); failures None when there is no GPU."""
    report, failures = {"fake": FAKE}, []

    def check(cond, what):
        if not cond:
            failures.append(what)
        return cond

    fake_dir = None
    if FAKE:
        fake_dir = pathlib.Path(f"/dev/spaceport-test34-{os.getpid()}")
        fake_nodes(fake_dir)
    rt = log = None
    try:
        inv = inventory(fake_dir)
        report["inventory"] = inv
        if inv is None:
            return report, None
        unit0 = inv["units"][0]
        kind, uuid = unit0["kind"], unit0["uuid"]
        node = str(fake_dir / "nvidia0") if FAKE else "/dev/nvidia0"
        if not FAKE:
            r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
            report["host_smi"] = r.stdout.strip()
            check(uuid in r.stdout, "the inventory's first UUID is in the host's nvidia-smi -L")
        for k in ("http_proxy", "HTTP_PROXY"):
            os.environ.pop(k, None)
        conf = work / "runtimed.yaml"
        backend = (f"gpu_backend: fake\ngpu_fake: 1xa10g:24G\ngpu_fake_dev_dir: {fake_dir}\n"
                   if FAKE else "gpu_backend: nvml\n")
        conf.write_text(f"{backend}zero_gpus: 1\nzero_gpu_kind: {kind}\n"
                        f"templates_dir: {ROOT / 'templates'}\nlight_sleep_ms: -1\n"
                        "metrics_listen: ''\n")
        port, data = free_port(), work / "data"
        url = f"http://127.0.0.1:{port}"
        log = open(work / "runtimed.log", "wb")
        t0 = time.monotonic()
        rt = subprocess.Popen([str(BIN / "runtimed"), "--config", str(conf), "--data-dir",
                               str(data), "--listen", f"127.0.0.1:{port}"], stdout=log,
                              stderr=log)
        for _ in range(400):
            if rt.poll() is not None:
                raise RuntimeError("runtimed exited: " +
                                   (work / "runtimed.log").read_text()[-2000:])
            if (data / "proxy.token").exists():
                try:
                    urllib.request.urlopen(url + "/api/spaces", timeout=1)
                    break
                except OSError:
                    pass
            time.sleep(0.05)
        admin = (data / "admin.token").read_text().strip()
        proxy = (data / "proxy.token").read_text().strip()
        api = Api(url, admin)
        _, gpus = api("GET", "/api/admin/gpus")
        report["gpus"] = gpus
        pool = [u for u in gpus["units"] if u["holder"] == "@zerogpu"]
        check(len(pool) == 1 and pool[0]["uuid"] == uuid, "the pool is the first GPU")
        # Zero tiers take the node's pool whatever their gpuKind (rt_tiers_check_node);
        # one of the GPU's own kind keeps the listing honest.
        tier = f"zero-{kind}"
        code, body = api("POST", "/api/admin/hardware", {"name": tier, "cpus": 2,
                                                         "memory": 8 << 30, "zero": True,
                                                         "gpuKind": kind})
        check(code in (201, 409), f"tier {tier}: {code} {body}")
        code, body = api("POST", "/api/repos/create", {"type": "space", "organization": "admin",
                                                       "name": "zero", "sdk": "static",
                                                       "hardware": tier})
        check(code == 200, f"create: {code} {body}")
        repo = work / "repo"
        repo.mkdir()
        (repo / "README.md").write_text("---\nsdk: static\n---\n")
        (repo / "index.html").write_text("<p>zero</p>\n")
        g = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
        for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "zero"],
                     ["push", "-q", f"http://admin:{admin}@127.0.0.1:{port}/spaces/admin/zero",
                      "main"]):
            subprocess.run(g + args, check=True, capture_output=True, timeout=120)
        stage, j = None, {}
        for _ in range(1200):
            _, j = api("GET", "/api/spaces/admin/zero/runtime")
            stage = j["stage"]
            if stage in ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR", "CONFIG_ERROR"):
                break
            time.sleep(0.1)
        report["stage"], report["start_s"] = stage, round(time.monotonic() - t0, 2)
        if not check(stage == "RUNNING", f"stage {stage}: {j.get('errorMessage')}"):
            return report, failures
        spid = sandbox_pid(data, "admin/zero")
        cgdir = device_cgroup(spid)
        report["space_cgroup"] = str(cgdir)
        token = visitor_token(proxy, VISITOR_IP)
        client_check(api, report, check, spid, cgdir, node, token, uuid)
        code, q = api("GET", "/api/spaces/zero-gpu/quota?space=admin/zero",
                      headers={"X-IP-Token": token})
        report["quota"] = q
        if check(code == 200, f"quota: {code} {q}"):
            check(q["identity"] == f"ip:{VISITOR_IP}" and q["class"] == "anonymous",
                  f"quota identity {q}")
            used = 120 - q["left"]
            report["quota_used_s"] = used
            # lease 1 (released: its actual time, as charged) and lease 2 (to its
            # deadline): at least LEASE_S, at most both declared durations
            check(LEASE_S <= used <= LEASE_S + PROBE_S and q["space"]["leases"] == [],
                  f"quota used {used} s")
        code, body = api("DELETE", "/api/repos/delete", {"type": "space",
                                                         "organization": "admin",
                                                         "name": "zero"})
        check(code == 200, f"delete: {code} {body}")
    finally:
        if rt is not None:
            rt.send_signal(signal.SIGTERM)
            try:
                rt.wait(timeout=20)
            except subprocess.TimeoutExpired:
                rt.kill()
                rt.wait()
            log.close()
            report["runtimed_log_tail"] = (work / "runtimed.log").read_text(
                errors="replace")[-2500:]
        if fake_dir:
            for p in sorted(fake_dir.rglob("*"), reverse=True):
                p.rmdir() if p.is_dir() else p.unlink()
            fake_dir.rmdir()
    return report, failures


def client_check(api, report, check, spid, cgdir, node, token, uuid):
    """Runs the client in the Space and checks each step against runtimed's side."""
    p = subprocess.Popen([sys.executable, str(pathlib.Path(__file__).resolve()), "--in-space",
                          str(spid), str(cgdir), node, token], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    steps = report["client"] = []

    def step():
        ready, _, _ = select.select([p.stdout], [], [], 240)
        line = p.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError("the client stopped: " + (p.stderr.read() if p.poll() is not None
                                                         else "timed out"))
        j = json.loads(line)
        steps.append(j)
        if "error" in j:
            raise RuntimeError("client: " + j["error"])
        return j

    try:
        j = step()
        check(j["startup"] == 200, f"startup-report {j['startup']}")
        j = step()  # lease 1: granted, allowed, probed
        g, w = j["grant"], j["worker"]
        report["grant_latency_ms"] = round(j["grant_s"] * 1000, 2)
        report["allow_latency_ms"] = round(w.get("allow_s", 0) * 1000, 2)
        check(g["nvidiaIndex"] == 0 and g["nvidiaUUID"] == uuid, f"grant {g}")
        check(j["main_open"] == errno.EPERM, f"the app's process opens the GPU: {j['main_open']}")
        check(w.get("allow") == 200, f"allow: {w}")
        check(w.get("open") == (errno.ENXIO if FAKE else 0), f"the worker's open: {w}")
        if not FAKE:
            smi = w.get("smi", {})
            gpus = [l for l in smi.get("out", "").splitlines() if l.startswith("GPU ")]
            check(smi.get("rc") == 0 and len(gpus) == 1 and uuid in gpus[0],
                  f"worker's nvidia-smi -L: exactly the leased GPU: {smi}")
            t = w.get("torch", {})
            if "skipped" not in t:
                check(t.get("devices") == 1 and t.get("sum") == 1024.0 ** 3, f"torch: {t}")
        _, leases = api("GET", "/api/admin/gpu-leases")
        report["leases_held"] = leases
        ls = leases.get("leases", [])
        check(len(ls) == 1 and ls[0]["space"] == "admin/zero" and ls[0]["unit"] == uuid and
              ls[0]["pid"] > 0 and ls[0]["identity"] == f"ip:{VISITOR_IP}", f"leases {leases}")
        p.stdin.write("\n")
        p.stdin.flush()
        j = step()
        check(j["release"] == 200 and j["again"] == 404, f"release {j}")
        j = step()  # lease 2: its worker is allowed and lingers
        t_seen = time.time()
        _, leases = api("GET", "/api/admin/gpu-leases")
        deadline = None
        for lease in leases.get("leases", []):
            deadline = time.time() + lease["deadlineInMs"] / 1000
        w = j["worker"]
        check(w.get("allow") == 200 and w.get("open") == (errno.ENXIO if FAKE else 0),
              f"lease 2 worker {w}")
        report["grant2_latency_ms"] = round(j["grant_s"] * 1000, 2)
        j = step()  # the worker's end
        check(j["signal"] == signal.SIGKILL, f"the worker ended by {j['signal']}, not SIGKILL")
        check(LEASE_S - 0.5 <= j["after_grant"] < LEASE_S + 10,
              f"killed {j['after_grant']} s after the grant")
        report["kill_after_grant_s"] = j["after_grant"]
        if deadline is not None and t_seen < deadline:
            report["kill_after_deadline_ms"] = round((j["t_dead"] - deadline) * 1000, 1)
        lg = j["lingerer"]
        report["lingerer"] = lg
        # its child may have opened the GPU (its fds outlive any deny): it dies too
        check(lg.get("gone"), f"a process left in the expired worker's cgroup lives on: {lg}")
        check(j["release"] == 404, f"release after the deadline: {j['release']}")
        _, leases = api("GET", "/api/admin/gpu-leases")
        report["leases_after"] = leases
        st = leases.get("stats", {})
        check(leases.get("leases") == [] and st.get("expired") == 1 and st.get("grants") == 2,
              f"leases after {leases}")
        code = p.wait(timeout=30)
        check(code == 0, f"client exit {code}: {p.stderr.read()[-1000:]}")
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_zerogpu_space_on_a_real_gpu(tmp_path):
    import pytest
    if os.geteuid() != 0:
        pytest.skip("Spaces run in sandboxes: root")
    if not FAKE and inventory() is None:
        pytest.skip("no NVIDIA GPU here")
    os.chmod(tmp_path, 0o755)
    report, failures = run_check(tmp_path)
    assert failures == [], json.dumps(report, indent=1)[-6000:]


def test_zerogpu_space_plumbing_on_the_fake_backend(tmp_path, monkeypatch):
    """Everything but the driver, in every run: the same check over fake nodes."""
    import pytest
    if os.geteuid() != 0:
        pytest.skip("Spaces run in sandboxes: root")
    monkeypatch.setenv("SPACEPORT_TEST34_FAKE", "1")  # the in-Space client reads it too
    monkeypatch.setitem(globals(), "FAKE", True)
    os.chmod(tmp_path, 0o755)
    report, failures = run_check(tmp_path)
    assert failures == [], json.dumps(report, indent=1)[-6000:]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--in-space"]:
        in_space(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    if os.geteuid() != 0:
        sys.exit("test_34: run as root (Spaces run in sandboxes)")
    with tempfile.TemporaryDirectory(prefix="sp-zero-rt-") as d:
        os.chmod(d, 0o755)
        t_start = time.monotonic()
        report, failures = run_check(pathlib.Path(d))
        report["failures"] = failures
        report["total_s"] = round(time.monotonic() - t_start, 2)
        # the long parts first, so the figures and failures end the output
        long = ("inventory", "gpus", "runtimed_log_tail", "leases_held", "leases_after", "client")
        print(json.dumps({**{k: report[k] for k in long if k in report},
                          **{k: v for k, v in report.items() if k not in long}}, indent=1))
        sys.exit(3 if failures is None else (1 if failures else 0))
