"""A dedicated-GPU Space through a real runtimed on a real NVIDIA GPU (runs only where
NVML loads, as root; skipped elsewhere).  runtimed with gpu_backend: nvml; a tier with one
GPU of the node's first kind; a Space whose app (Python, through a copy of the static
template) runs, inside its sandbox, `nvidia-smi -L`, a small CUDA kernel through the
driver API (ctypes + PTX: no toolkit needed), and torch when the host python has it.
Checked: exactly one GPU listed, the kernel's result, the admin API's holder, and the
unit given back when the Space is deleted.

Stdlib only, so it also runs as a plain script on a lent GPU machine (see
tests/helpers/gpu-runtimed-check.sh, which carries the binaries and libraries):
    SPACEPORT_BIN=bin python3 tests/integration/test_32_gpu_runtimed_real.py
It prints one JSON report and exits 0 when every check passed, 3 when there is no GPU."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # run as a script too
from gpu_real_support import BIN, ROOT, Api, free_port, inventory  # noqa: E402


PROBE = r'''
import ctypes, http.server, json, os, subprocess, sys

PTX = b"""
.version 6.0
.target sm_50
.address_size 64
.visible .entry inc(.param .u64 p, .param .u32 n)
{
    .reg .pred %p<2>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<5>;
    .reg .f32 %f<3>;
    ld.param.u64 %rd1, [p];
    ld.param.u32 %r2, [n];
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ntid.x;
    mov.u32 %r5, %tid.x;
    mad.lo.s32 %r1, %r3, %r4, %r5;
    setp.ge.u32 %p1, %r1, %r2;
    @%p1 bra DONE;
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd2, %rd3;
    ld.global.f32 %f1, [%rd4];
    add.f32 %f2, %f1, 0f3F800000;
    st.global.f32 [%rd4], %f2;
DONE:
    ret;
}
\x00"""

def cuda():
    """Adds 1.0 to 1M floats on the GPU through libcuda's driver API."""
    try:
        cu = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return {"error": "libcuda.so.1: %s" % e}
    def ck(name, *args):
        r = getattr(cu, name)(*args)
        if r != 0:
            raise RuntimeError("%s: CUDA error %d" % (name, r))
    try:
        n = 1 << 20
        count, dev, ctx, mod, fn, dptr = (ctypes.c_int(), ctypes.c_int(), ctypes.c_void_p(),
                                          ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_uint64())
        ck("cuInit", 0)
        ck("cuDeviceGetCount", ctypes.byref(count))
        ck("cuDeviceGet", ctypes.byref(dev), 0)
        name = ctypes.create_string_buffer(128)
        ck("cuDeviceGetName", name, 128, dev)
        ck("cuCtxCreate_v2", ctypes.byref(ctx), 0, dev)
        ck("cuModuleLoadData", ctypes.byref(mod), ctypes.c_char_p(PTX))
        ck("cuModuleGetFunction", ctypes.byref(fn), mod, b"inc")
        host = (ctypes.c_float * n)(*([1.0] * n))
        ck("cuMemAlloc_v2", ctypes.byref(dptr), ctypes.c_size_t(4 * n))
        ck("cuMemcpyHtoD_v2", dptr, host, ctypes.c_size_t(4 * n))
        nn = ctypes.c_uint32(n)
        params = (ctypes.c_void_p * 2)(ctypes.addressof(dptr), ctypes.addressof(nn))
        ck("cuLaunchKernel", fn, n // 256, 1, 1, 256, 1, 1, 0, None, params, None)
        ck("cuCtxSynchronize")
        ck("cuMemcpyDtoH_v2", host, dptr, ctypes.c_size_t(4 * n))
        ok = all(v == 2.0 for v in host)
        ck("cuMemFree_v2", dptr)
        ck("cuCtxDestroy_v2", ctx)
        return {"devices": count.value, "name": name.value.decode(), "kernel_ok": ok}
    except Exception as e:
        return {"error": str(e)}

def torch_check():
    code = ("import torch; a = torch.ones(1024, 1024, device='cuda'); "
            "print(torch.cuda.device_count(), float((a @ a).sum()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:300]}
    count, total = r.stdout.split()
    return {"devices": int(count), "sum": float(total)}

def probe():
    out = {"env": {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")},
           "dev": sorted(d for d in os.listdir("/dev") if d.startswith("nvidia"))}
    try:
        r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
        out["smi"] = {"rc": r.returncode, "out": (r.stdout + r.stderr).strip()}
    except OSError as e:
        out["smi"] = {"rc": -1, "out": str(e)}
    out["cuda"] = cuda()
    out["torch"] = torch_check()
    return out

RESULT = None
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global RESULT
        if self.path == "/probe" and RESULT is None:
            RESULT = probe()
        body = json.dumps(RESULT if self.path == "/probe" else {"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
'''


# A dry run of this script's own plumbing without a GPU: GPU_CHECK_FAKE_DIR=/dev/DIR
# holding the fake nodes of "1xa10g:24G" (test_32_gpu_runtimed.py makes such).  The GPU
# checks then fail, as they must; everything before them is exercised.
FAKE_DIR = os.environ.get("GPU_CHECK_FAKE_DIR")


def run_check(work):
    """Returns (report, failures)."""
    report, failures = {}, []

    def check(cond, what):
        if not cond:
            failures.append(what)

    inv = inventory(FAKE_DIR)
    report["inventory"] = inv
    if inv is None:
        return report, None
    kind = inv["units"][0]["kind"]
    os.environ.pop("http_proxy", None)
    os.environ.pop("HTTP_PROXY", None)
    templates = work / "templates"
    shutil.copytree(ROOT / "templates", templates)
    st = (templates / "static.yaml").read_text()
    run = '  command: [python3, -m, http.server, "${PORT}", --bind, 0.0.0.0, --directory, "${APP_FILE_DIR}"]'
    (templates / "static.yaml").write_text(st.replace(run, '  command: [python3, "${APP_FILE}", "${PORT}"]'))
    conf = work / "runtimed.yaml"
    backend = (f"gpu_backend: fake\ngpu_fake: 1xa10g:24G\ngpu_fake_dev_dir: {FAKE_DIR}\n"
               if FAKE_DIR else "gpu_backend: nvml\n")
    conf.write_text(f"{backend}templates_dir: {templates}\nlight_sleep_ms: -1\n"
                    "metrics_listen: ''\n")
    port = free_port()
    data = work / "data"
    log = open(work / "runtimed.log", "wb")
    rt = subprocess.Popen([str(BIN / "runtimed"), "--config", str(conf), "--data-dir", str(data),
                           "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if (data / "proxy.token").exists():
                try:
                    urllib.request.urlopen(url + "/api/spaces", timeout=1)
                    break
                except OSError:
                    pass
            if rt.poll() is not None:
                raise RuntimeError("runtimed exited: " + (work / "runtimed.log").read_text()[-2000:])
            time.sleep(0.05)
        admin = (data / "admin.token").read_text().strip()
        proxy = (data / "proxy.token").read_text().strip()
        api = Api(url, admin)
        code, body = api("GET", "/api/admin/gpus")
        report["gpus_before"] = body
        check(code == 200 and body["backend"] == ("fake" if FAKE_DIR else "nvml"),
              "GET /api/admin/gpus")
        code, body = api("POST", "/api/admin/hardware",
                         {"name": "real-1", "cpus": 4, "memory": 16 << 30, "gpus": 1, "gpuKind": kind})
        check(code == 201, f"tier: {code} {body}")
        code, body = api("POST", "/api/repos/create", {"type": "space", "organization": "admin",
                                                       "name": "real", "sdk": "static",
                                                       "hardware": "real-1"})
        check(code == 200, f"create: {code} {body}")
        repo = work / "repo"
        repo.mkdir()
        (repo / "README.md").write_text("---\nsdk: static\napp_file: probe.py\n---\n")
        (repo / "probe.py").write_text(PROBE)
        g = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
        for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "probe"],
                     ["push", "-q", f"http://admin:{admin}@127.0.0.1:{port}/spaces/admin/real", "main"]):
            subprocess.run(g + args, check=True, capture_output=True, timeout=120)
        stage = None
        for _ in range(1200):
            _, j = api("GET", "/api/spaces/admin/real/runtime")
            stage = j["stage"]
            if stage in ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR", "CONFIG_ERROR"):
                break
            time.sleep(0.1)
        report["stage"] = stage
        report["error"] = j.get("errorMessage")
        check(stage == "RUNNING", f"stage {stage}: {j.get('errorMessage')}")
        if stage == "RUNNING":
            api("POST", "/api/proxy/wake", {"id": "admin/real"}, token=proxy)
            _, routes = api("GET", "/api/proxy/routes", token=proxy)
            up = next(s["upstream"] for s in routes["spaces"] if s["id"] == "admin/real")
            with urllib.request.urlopen(f"http://{up}/probe", timeout=600) as r:
                p = json.loads(r.read())
            report["probe"] = p
            smi = [l for l in p["smi"]["out"].splitlines() if l.startswith("GPU ")]
            check(p["smi"]["rc"] == 0 and len(smi) == 1, "nvidia-smi -L lists exactly one GPU")
            _, g2 = api("GET", "/api/admin/gpus")
            held = [u for u in g2["units"] if u["holder"] == "admin/real"]
            check(len(held) == 1, "one unit held by admin/real")
            if held:
                check(p["env"]["CUDA_VISIBLE_DEVICES"] == held[0]["uuid"], "CUDA_VISIBLE_DEVICES")
                check(held[0]["uuid"] in (smi[0] if smi else ""), "nvidia-smi shows the held unit")
            check(p["cuda"].get("kernel_ok") is True and p["cuda"].get("devices") == 1,
                  f"CUDA kernel: {p['cuda']}")
            if "error" not in p["torch"]:
                check(p["torch"]["devices"] == 1 and p["torch"]["sum"] == 1024.0 ** 3,
                      f"torch: {p['torch']}")
        code, _ = api("DELETE", "/api/repos/delete", {"type": "space", "organization": "admin",
                                                      "name": "real"})
        for _ in range(300):
            _, g3 = api("GET", "/api/admin/gpus")
            if all(u["holder"] is None for u in g3["units"]):
                break
            time.sleep(0.1)
        check(all(u["holder"] is None for u in g3["units"]), "unit given back at delete")
    finally:
        rt.send_signal(signal.SIGTERM)
        try:
            rt.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rt.kill()
        log.close()
        report["runtimed_log_tail"] = (work / "runtimed.log").read_text(errors="replace")[-3000:]
    return report, failures


def test_dedicated_space_on_a_real_gpu(tmp_path):
    import pytest
    if os.geteuid() != 0:
        pytest.skip("Spaces run in sandboxes: root")
    if inventory(FAKE_DIR) is None:
        pytest.skip("no NVIDIA GPU here")
    report, failures = run_check(tmp_path)
    assert not failures, json.dumps(report, indent=1)[-6000:]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="sp-gpu-rt-") as d:
        os.chmod(d, 0o755)
        report, failures = run_check(pathlib.Path(d))
        report["failures"] = failures
        print(json.dumps(report, indent=1))
        sys.exit(3 if failures is None else (1 if failures else 0))
