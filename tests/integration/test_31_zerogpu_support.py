"""Support for the ZeroGPU device API tests (test_31_zerogpu*.py); no tests live here:
start bin/spaceport-gpud on a free loopback port, sign visitor tokens the way Spaceport
does (an independent Python implementation of the format in gpu-sched/devapi.h),
talk raw HTTP, and load the REAL `spaces` client with gradio stubbed.

The stub: spaces/zero/client.py imports gradio for its toasts and request context
(gr.Error, gr.Info, gr.Request, gradio.context.LocalContext ...).  Gradio itself is
not installed for the tests, so only those names are provided; every line of the
client that talks to the device API (spaces/zero/api.py: httpx, pydantic) is real.
"""
import base64
import hashlib
import hmac
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import types
from contextvars import ContextVar

CGROUP_PATH = "/spaces/alice-demo/main"


class Gpud:
    def __init__(self, bin_dir, tmp_path, *args, space="alice/demo", gpus="1xa100:80G"):
        self.tmp = tmp_path
        self.port_file = tmp_path / "gpud.port"
        self.log_path = tmp_path / "gpud.log"
        if self.port_file.exists():
            self.port_file.unlink()
        self.logf = open(self.log_path, "wb")
        argv = [str(bin_dir / "spaceport-gpud"), "--space", space, "--gpus", gpus,
                "--listen", "127.0.0.1:0", "--port-file", str(self.port_file), *args]
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not self.port_file.exists():
            assert self.proc.poll() is None, f"gpud exited {self.proc.returncode}: {self.log()}"
            assert time.time() < deadline, "gpud did not start"
            time.sleep(0.01)
        self.port = int(self.port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text, timeout=5):
        deadline = time.time() + timeout
        while text not in self.log():
            assert time.time() < deadline, f"{text!r} not in gpud log:\n{self.log()}"
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=10)
        self.logf.close()
        return rc


def visitor_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"spaceport-visitor-v1", hashlib.sha256).digest()


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(key: bytes, **payload) -> str:
    payload.setdefault("exp", int(time.time()) + 600)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def proxy_v1(key: bytes, ip: str, t=None) -> str:
    """The previous spaceproxy's X-IP-Token (now a JWT, proxy/auth.c): runtimed still takes it."""
    msg = f"v1;ip={ip};t={int(time.time()) if t is None else t}"
    return msg + ";sig=" + hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def raw(port, data: bytes, timeout=3.0) -> bytes:
    """Sends @data and reads until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
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


def status_of(resp: bytes) -> int:
    assert resp.startswith(b"HTTP/1.1 "), resp[:200]
    return int(resp.split(b" ", 2)[1])


class SSE:
    """A raw event-stream reader that keeps the HTTP chunk boundaries."""

    def __init__(self, port, query, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.sendall(f"POST /schedule?{query} HTTP/1.1\r\nHost: gpud\r\n"
                          f"Content-Length: 0\r\n\r\n".encode())
        self.f = self.sock.makefile("rb")
        self.status = int(self.f.readline().split()[1])
        self.headers = {}
        while (line := self.f.readline()) not in (b"\r\n", b""):
            k, v = line.decode().split(":", 1)
            self.headers[k.strip().lower()] = v.strip()

    def chunk(self) -> bytes:
        """One HTTP chunk's payload (b'' for the last chunk)."""
        size = int(self.f.readline().strip(), 16)
        data = self.f.read(size)
        assert self.f.read(2) == b"\r\n"
        return data

    def close(self):
        self.f.close()
        self.sock.close()


_GRADIO_NAMES = ("gradio", "gradio.context", "gradio.helpers", "gradio.queueing")


def load_spaces_client(url, cgroup_file: pathlib.Path):
    """Imports the real spaces.zero.client with gradio stubbed; returns (client, api, gr)."""
    gr = types.ModuleType("gradio")
    gr.__version__ = "5.20.0"
    gr.toasts = []

    class Error(Exception):
        def __init__(self, message="", title=None, print_exception=True):
            super().__init__(message)
            self.message, self.title = message, title

    def toast(level):
        class Toast:
            def __init__(self, message="", title=None):
                gr.toasts.append((level, title, str(message)))
        return Toast

    class Headers(dict):
        pass

    class Request:
        def __init__(self, headers=None):
            self.headers = Headers(headers or {})

    class Blocks:
        def launch(self, *a, **k):
            pass

    gr.Error, gr.Request, gr.Blocks = Error, Request, Blocks
    gr.Info, gr.Warning, gr.Success = toast("info"), toast("warning"), toast("success")
    ctx = types.ModuleType("gradio.context")

    class LocalContext:
        event_id = ContextVar("event_id")
        in_event_listener = ContextVar("in_event_listener")
        progress = ContextVar("progress")
        blocks = ContextVar("blocks")

    class Context:
        root_block = None

    ctx.LocalContext, ctx.Context = LocalContext, Context
    helpers = types.ModuleType("gradio.helpers")
    helpers.Progress = type("Progress", (), {})
    helpers.TrackedIterable = type("TrackedIterable", (), {})
    queueing = types.ModuleType("gradio.queueing")
    queueing.Queue = type("Queue", (), {})
    unload_spaces_client()
    sys.modules.update({"gradio": gr, "gradio.context": ctx, "gradio.helpers": helpers,
                        "gradio.queueing": queueing})
    from spaces.config import Config
    from spaces.zero import api, client

    # What a ZeroGPU Space's environment says (SPACES_ZERO_DEVICE_API_URL and the
    # cgroup file the client reads its devices cgroup from).
    cgroup_file.write_text(f"12:devices:{CGROUP_PATH}\n0::/user.slice\n")
    Config.zero_device_api_url = url
    Config.zerogpu_proc_self_cgroup_path = str(cgroup_file)
    return client, api, gr


def unload_spaces_client():
    for name in list(sys.modules):
        if name in _GRADIO_NAMES or name == "spaces" or name.startswith("spaces."):
            del sys.modules[name]


def api_client(url):
    """The spaces package's own APIClient, as client.api_client() builds it."""
    import httpx
    from spaces.zero.api import APIClient
    return APIClient(httpx.Client(base_url=url, timeout=60, verify=False))


def sleeper():
    """A real process to stand in for a ZeroGPU worker."""
    return subprocess.Popen(["sleep", "1000"])


def alive(proc) -> bool:
    return proc.poll() is None


def wait_dead(proc, timeout=5.0):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def cleanup_proc(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def python():
    return sys.executable


def env_with(**kw):
    e = dict(os.environ)
    e.update(kw)
    return e
