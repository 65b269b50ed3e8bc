"""Support for the runtimed suites (test_5*.py): start a real runtimed on a free loopback
port with its own data dir, and talk to it over HTTP.  No tests live here."""
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest
import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Runtimed:
    """One runtimed process.  .url, .data_dir, .admin (token), .proxy (token), .log()."""

    def __init__(self, bin_dir, data_dir, config=None, extra_args=()):
        self.bin = pathlib.Path(bin_dir) / "runtimed"
        self.data_dir = pathlib.Path(data_dir)
        self.config = config
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = self.data_dir.parent / f"runtimed-{self.port}.log"

    def argv(self):
        argv = [str(self.bin), "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}"]
        if self.config:
            argv += ["--config", str(self.config)]
        return argv + self.extra_args

    def start(self, timeout=10):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log_file, stderr=self.log_file)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"runtimed exited {self.proc.returncode}: {self.log()}")
            try:
                requests.get(self.url + "/api/spaces", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        else:
            raise AssertionError("runtimed did not answer: " + self.log())
        self.admin = (self.data_dir / "admin.token").read_text().strip()
        self.proxy = (self.data_dir / "proxy.token").read_text().strip()
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("runtimed did not stop on SIGTERM")
        if self.proc:
            self.log_file.close()
        return self.proc.returncode if self.proc else None

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- HTTP -------------------------------------------------------------------------
    def request(self, method, path, token=None, **kw):
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        kw.setdefault("timeout", 10)
        return requests.request(method, self.url + path, headers=headers, **kw)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token, **kw)

    def post(self, path, token=None, **kw):
        return self.request("POST", path, token, **kw)

    def delete(self, path, token=None, **kw):
        return self.request("DELETE", path, token, **kw)

    # --- shortcuts, as the admin unless told -------------------------------------------
    def create_space(self, owner, name, token=None, **fields):
        body = {"type": "space", "organization": owner, "name": name, "sdk": "gradio"}
        body.update(fields)
        return self.post("/api/repos/create", token or self.admin, json=body)

    def add_user(self, name, admin=False):
        r = self.post("/api/admin/users", self.admin, json={"name": name, "admin": admin})
        assert r.status_code == 201, r.text
        return r.json()

    def token(self, user, role="write", spaces=None, name=None):
        body = {"user": user, "role": role}
        if spaces is not None:
            body["spaces"] = spaces
        if name is not None:
            body["name"] = name
        r = self.post("/api/admin/tokens", self.admin, json=body)
        assert r.status_code == 201, r.text
        return r.json()["token"]


def assert_error(r, status, contains=None):
    """A clear JSON error with the expected status."""
    assert r.status_code == status, f"{r.status_code} {r.text}"
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    if contains:
        assert contains.lower() in body["error"].lower(), body["error"]
    return body["error"]


@pytest.fixture
def runtimed_factory(bin_dir, tmp_path):
    started = []

    def make(data_dir=None, config_text=None, extra_args=()):
        config = None
        if config_text is not None:
            config = tmp_path / f"runtimed-{len(started)}.yaml"
            config.write_text(config_text)
        d = Runtimed(bin_dir, data_dir or (tmp_path / "data"), config, extra_args)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def rt(runtimed_factory):
    """A started runtimed with a fresh data dir."""
    return runtimed_factory().start()


@pytest.fixture(scope="module")
def shared_rt(bin_dir, tmp_path_factory):
    """One runtimed for a whole module (stopping civetweb takes two seconds)."""
    d = Runtimed(bin_dir, tmp_path_factory.mktemp("rt") / "data").start()
    yield d
    assert d.alive(), "runtimed died during the module: " + d.log()[-2000:]
    d.stop()


_counter = [0]


def unique(prefix="s"):
    _counter[0] += 1
    return f"{prefix}{os.getpid()}x{_counter[0]}"
