"""End-to-end fixtures: Debian's Chromium, headless, driven by Playwright.

Playwright runs Debian's /usr/bin/chromium (never a browser it downloads itself), with
the flags that keep it off the network: this machine reaches nothing but loopback.
Screenshots go to tests/artifacts/ so a person can look at what the tests saw."""
import pathlib

import pytest

ARTIFACTS = pathlib.Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI; the page under test is our own
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    ctx.close()


# --- the product as a new user starts it (shared by every e2e test) ----------------------
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402

import e2e_support as sup  # noqa: E402
from shimsocks import shim_sockets  # noqa: E402


def _stop_shims(data_dir):
    """Shims outlive runtimed by design: stop every one this session started."""
    for sock in shim_sockets(pathlib.Path(data_dir, "run")):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(sock))
                s.sendall(b"stop 0\n")
                s.recv(65536)
        except OSError:
            pass


@pytest.fixture(scope="session")
def stack(bin_dir, tmp_path_factory):
    """runtimed on a temp data dir and spaceproxy in front of it, started the way the
    issue and README start them; a user alice with a write token."""
    if os.geteuid() != 0:
        pytest.skip("Spaces run in sandboxes: root")
    base = tmp_path_factory.mktemp("e2e")
    with sup.Step("start runtimed and spaceproxy"):
        rt = sup.Runtimed(bin_dir, base / "data").start()
        px = sup.Proxy(bin_dir, rt, base).start()
    rt.add_user(sup.OWNER)
    token = rt.token(sup.OWNER, "write")

    class Stack:
        pass

    s = Stack()
    s.rt, s.proxy, s.token, s.work = rt, px, token, base / "work"
    yield s
    px.stop()
    rt.stop()
    _stop_shims(rt.data_dir)
    # The daemons' logs beside the screenshots, for whoever reads a failure.
    ARTIFACTS.mkdir(exist_ok=True)
    for log in (rt.log_path, px.log_path):
        if log.exists():
            (ARTIFACTS / f"e2e-{log.name.split('-')[0]}.log").write_bytes(log.read_bytes())


@pytest.fixture(scope="session")
def gradio_space(stack):
    """examples/hello-gradio pushed with git as alice/gradio and RUNNING."""
    sup.create_push_run(stack.rt, stack.token, stack.work, "gradio", "hello-gradio", "gradio")
    return "gradio"


@pytest.fixture(scope="session")
def static_space(stack):
    sup.create_push_run(stack.rt, stack.token, stack.work, "static", "hello-static", "static")
    return "static"


def pytest_terminal_summary(terminalreporter):
    if sup.TIMINGS:
        text = sup.report_timings()
        terminalreporter.write_line(text)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "e2e-timings.txt").write_text(text.strip() + "\n")
        (ARTIFACTS / "e2e-timings.json").write_text(json.dumps(
            [{"step": w, "seconds": round(t, 3), "ok": ok} for w, t, ok in sup.TIMINGS], indent=1))
