"""Support for the end-to-end suite: one runtimed and one spaceproxy started from the
built binaries on a temp data dir, exactly as a new user starts them, and the steps a
user takes (create, git push, wait for RUNNING).  No tests live here."""
import os
import pathlib
import subprocess
import sys
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from test_5_support import Runtimed, free_port  # noqa: E402
from test_70_support import git, head, make_repo, push  # noqa: E402,F401

OWNER = "alice"
# Every step's duration, printed at the end of the session (the issue asks for them).
TIMINGS = []
PROXIES = []  # the started spaceproxy (one per session)


class Step:
    """with Step("what"): ... records how long a user-visible step took."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0
        TIMINGS.append((self.what, self.seconds, exc[0] is None))
        return False


class Proxy:
    """One spaceproxy in front of @rt, on its own loopback port."""

    def __init__(self, bin_dir, rt, log_dir):
        self.port = free_port()
        self.rt = rt
        self.log_path = pathlib.Path(log_dir) / f"spaceproxy-{self.port}.log"
        self.argv = [str(pathlib.Path(bin_dir) / "spaceproxy"), "--listen",
                     f"127.0.0.1:{self.port}", "--runtimed", rt.url,
                     "--token-file", str(rt.data_dir / "proxy.token")]
        self.proc = None

    def start(self, timeout=10):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.log_file, stderr=self.log_file)
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"spaceproxy exited: {self.log()}"
            try:
                requests.get(f"http://127.0.0.1:{self.port}/", timeout=1,
                             headers={"Host": f"nobody-here.localhost:{self.port}"})
                PROXIES.append(self)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("spaceproxy did not answer: " + self.log())


    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log_file.close()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def host(self, owner, name):
        """The Space's host name, as a browser reaches it: OWNER-NAME.localhost:PORT."""
        return f"{owner}-{name}.localhost:{self.port}".lower()

    def url(self, owner, name):
        return f"http://{self.host(owner, name)}/"

    def get(self, owner, name, path="/", **kw):
        """A request through the proxy by Host header alone (no name resolution)."""
        headers = {"Host": self.host(owner, name)}
        headers.update(kw.pop("headers", {}))
        kw.setdefault("timeout", 30)
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, **kw)


def runtime(rt, name, token, owner=OWNER):
    r = rt.get(f"/api/spaces/{owner}/{name}/runtime", token)
    assert r.status_code == 200, r.text
    return r.json()


def wait_stage(rt, name, token, stages, timeout=300, owner=OWNER):
    """Polls the API (as a user would) until the Space reaches one of @stages."""
    deadline = time.time() + timeout
    j = None
    while time.time() < deadline:
        j = runtime(rt, name, token, owner)
        if j["stage"] in stages:
            return j
        time.sleep(0.1)
    raise AssertionError(f"{owner}/{name}: waited for {stages}, last {j}: {rt.log()[-3000:]}")


def build_log_tail(rt, owner, name, token):
    r = rt.get(f"/api/spaces/{owner}/{name}/logs/build?follow=0", token, timeout=30)
    return r.text[-4000:]


def create_push_run(rt, token, work_root, name, example, sdk, files=None, private=False,
                    timeout=600):
    """Creates @name, pushes @example (plus @files) with real git, waits for RUNNING.
    Returns the pushed commit."""
    with Step(f"create {OWNER}/{name}"):
        r = rt.create_space(OWNER, name, token, sdk=sdk, private=private)
        assert r.status_code == 200, r.text
    work = make_repo(pathlib.Path(work_root) / name, example, files)
    with Step(f"git push {OWNER}/{name}"):
        push(rt, work, OWNER, name, token)
    with Step(f"{OWNER}/{name}: push to RUNNING (build and start)"):
        deadline = time.time() + timeout
        while True:
            j = runtime(rt, name, token)
            # (NO_APP_FILE until the push is recorded: not an error here)
            if j["stage"] in ("BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR"):
                raise AssertionError(f"{name}: {j}\n{build_log_tail(rt, OWNER, name, token)}")
            if j["stage"] == "RUNNING" and j.get("sha") == head(work):
                break
            assert time.time() < deadline, f"{name}: not RUNNING: {j}: {rt.log()[-3000:]}"
            time.sleep(0.2)
    wait_proxied(rt, name, token)
    return head(work)


PROXY_POLL_S = 1.0  # spaceproxy's poll_interval default (proxy/README.md)


def wait_proxied(rt, name, token, owner=OWNER):
    """spaceproxy learns routes by polling runtimed every poll_interval, so for up to one
    poll after RUNNING it may still answer from its old view (404 for a Space it has not
    seen yet, a 503 stage page for one it saw before its first build).  Waits for that,
    holding the proxy to its contract: served within two poll intervals."""
    proxy = PROXIES[-1] if PROXIES else None
    if proxy is None:
        return
    with Step(f"{owner}/{name}: RUNNING to first answer through spaceproxy"):
        t0 = time.monotonic()
        while True:
            r = proxy.get(owner, name, "/", headers={"Authorization": f"Bearer {token}"})
            if r.status_code == 200:
                break
            assert time.monotonic() - t0 < 2 * PROXY_POLL_S + 0.5, \
                f"{owner}/{name} RUNNING but spaceproxy answers {r.status_code}: " \
                f"{r.text[:300]} {proxy.log()[-2000:]}"
            time.sleep(0.05)


def proxy_view(proxy, owner, name, token=None):
    """spaceproxy's own view of a Space (its /.spaceport/status endpoint)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = proxy.get(owner, name, "/.spaceport/status", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def report_timings():
    lines = ["", "end-to-end step timings:"]
    for what, secs, ok in TIMINGS:
        lines.append(f"  {secs:8.2f} s  {what}{'' if ok else '  (raised: failed or expected to fail)'}")
    return "\n".join(lines)


def in_env(**kw):
    return dict(os.environ, **kw)


class Watch:
    """What a page asked for and never got (or got an error for): the evidence to print
    when a browser step times out."""

    def __init__(self, page):
        self.pending, self.failed, self.bad = {}, [], []
        t0 = time.monotonic()
        page.on("request", lambda r: self.pending.__setitem__(id(r), (
            r.method, r.url, round(time.monotonic() - t0, 2))))
        page.on("requestfinished", lambda r: self.pending.pop(id(r), None))
        page.on("requestfailed", lambda r: (self.pending.pop(id(r), None), self.failed.append(
            (r.method, r.url, r.failure))))
        page.on("response", lambda r: r.status >= 400 and self.bad.append((r.status, r.url)))

    def report(self):
        return (f"requests never answered (method, url, started at s): "
                f"{list(self.pending.values())}\nfailed: {self.failed}\n4xx/5xx: {self.bad}")

    def check(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.report()}") from None
