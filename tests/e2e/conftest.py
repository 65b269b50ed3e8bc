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
