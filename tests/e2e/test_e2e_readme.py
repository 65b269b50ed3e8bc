"""README's "Your first Space", as a new user follows it: `make run` (on its own data
dir), the README's shell block run verbatim in a fresh HOME, then the URL the README
names opened in Chromium: type a name, press Greet, see the answer.  make run listens on
the fixed ports 8080 and 8000: they must be free."""
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

import e2e_support as sup
from conftest import ARTIFACTS, _stop_shims

README = sup.ROOT / "README.md"


def section():
    text = README.read_text()
    m = re.search(r"^## Your first Space\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README has no 'Your first Space' section"
    return m.group(1)


def shell_block(sec):
    blocks = re.findall(r"```sh\n(.*?)```", sec, re.S)
    assert len(blocks) == 1, blocks
    return blocks[0]


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("make run starts sandboxes: root")
    for port in (8080, 8000):
        assert port_free(port), f"127.0.0.1:{port} is taken: stop what holds it (make run?)"
    base = tmp_path_factory.mktemp("readme")
    data = base / "data"
    env = dict(os.environ, SPACEPORT_DATA_DIR=str(data))
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # a user's terminal, not make test's
        env.pop(k, None)
    log = open(base / "make-run.log", "wb")
    with sup.Step("README: make run until both daemons answer"):
        proc = subprocess.Popen(["make", "run"], cwd=sup.ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, (base / "make-run.log").read_text()
            try:
                requests.get("http://127.0.0.1:8080/api/spaces", timeout=1)
                requests.get("http://127.0.0.1:8000/", timeout=1)
                break
            except requests.ConnectionError:
                assert time.time() < deadline, (base / "make-run.log").read_text()
                time.sleep(0.1)
    yield base, env
    # Ctrl-C, as the README's make run expects; the whole group we started.
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()
    _stop_shims(data)


def test_readme_first_space(make_run, browser):
    from playwright.sync_api import expect

    base, env = make_run
    sec = section()
    script = shell_block(sec)
    urls = re.findall(r"<(http://[^>]+)>", sec)
    assert urls == ["http://admin-hello.localhost:8000/"], urls
    home = base / "home"
    home.mkdir()
    # A fresh HOME: no git identity or credentials beyond what the README gives.
    env = dict(env, HOME=str(home), GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    for k in ("SPACEPORT_TOKEN", "SPACEPORT_URL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
              "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        env.pop(k, None)
    with sup.Step("README: the shell block (create, git push, wait for RUNNING)"):
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=sup.ROOT,
                           env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}\n{(base / 'make-run.log').read_text()[-3000:]}"

    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        w = sup.Watch(page)
        with sup.Step("README: open the URL in Chromium, greet"):
            # Up to one spaceproxy route poll behind the API's RUNNING.
            deadline = time.time() + 5
            while page.goto(urls[0]).status != 200:
                assert time.time() < deadline, page.content()[:500]
                time.sleep(0.2)
            w.check(expect(page.get_by_label("Name")).to_be_visible, timeout=60_000)
            page.get_by_label("Name").fill("new user")
            page.get_by_role("button", name="Greet", exact=True).click()
            expect(page.get_by_label("Greeting")).to_have_value("Hello, new user!", timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "readme-first-space.png"))
    finally:
        ctx.close()
