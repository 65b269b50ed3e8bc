"""Stdlib-only helpers shared by the real-GPU checks (test_32_gpu_runtimed_real.py,
test_34_zerogpu_runtimed_real.py), which also run as plain scripts on a lent GPU
machine that has no test venv.  No tests live here."""
import json
import os
import pathlib
import socket
import subprocess
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin")).resolve()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_args(fake_dir=None):
    """gpu-sim's inventory flags: NVML, or one fake A10G over the nodes in @fake_dir."""
    if fake_dir:
        return ["--backend", "fake", "--fake", "1xa10g:24G", "--dev-dir", str(fake_dir)]
    return ["--backend", "nvml"]


def inventory(fake_dir=None):
    """The inventory the backend sees, or None when there is no GPU."""
    try:
        r = subprocess.run([str(BIN / "gpu-sim"), "--inventory", *backend_args(fake_dir)],
                           capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    if r.returncode != 0:
        return None
    inv = json.loads(r.stdout)
    return inv if inv["units"] else None


class Api:
    """runtimed's API with a token: api(METHOD, PATH, body) -> (status, JSON or text)."""

    def __init__(self, url, token):
        self.url, self.token = url, token

    def __call__(self, method, path, body=None, token=None, headers=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
