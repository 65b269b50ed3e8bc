"""Sleep and wake: the Gradio Space is put to deep sleep (its process stopped); a visit
in the browser shows the "waking up" page at once, then the app, with no manual reload."""
import time

import pytest

import e2e_support as sup
from conftest import ARTIFACTS


def test_deep_sleep_then_a_visit_wakes_it(stack, gradio_space, page):
    from playwright.sync_api import expect

    rt, name = stack.rt, gradio_space
    url = f"/api/spaces/{sup.OWNER}/{name}/sleeptime"
    with sup.Step("gradio: idle 2 s to deep sleep (SLEEPING)"):
        assert rt.post(url, stack.token, json={"seconds": 2}).status_code == 200
        sup.wait_stage(rt, name, stack.token, ("SLEEPING",), timeout=60)
    # Never sleep again while the test visits.
    assert rt.post(url, stack.token, json={"seconds": -1}).status_code == 200
    assert sup.runtime(rt, name, stack.token)["stage"] == "SLEEPING"
    # A visitor arrives once spaceproxy's route table (polled each second) shows it asleep.
    with sup.Step("spaceproxy sees SLEEPING"):
        deadline = time.time() + 3 * sup.PROXY_POLL_S
        while sup.proxy_view(stack.proxy, sup.OWNER, name)["stage"] != "SLEEPING":
            assert time.time() < deadline, sup.proxy_view(stack.proxy, sup.OWNER, name)
            time.sleep(0.05)
    assert sup.runtime(rt, name, stack.token)["stage"] == "SLEEPING"  # the status did not wake it

    w = sup.Watch(page)
    navigations = []
    page.on("framenavigated", lambda f: f == page.main_frame and navigations.append(f.url))
    with sup.Step("chromium: visit a sleeping Space until the app shows (no reload by us)"):
        resp = page.goto(stack.proxy.url(sup.OWNER, name))
        assert resp.status == 503
        assert "is waking up" in page.content()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "wake-waking-up.png"))
        w.check(expect(page.get_by_label("Name")).to_be_visible, timeout=180_000)
    assert len(navigations) >= 2, navigations  # the waking page reloaded itself
    assert sup.runtime(rt, name, stack.token)["stage"] == "RUNNING"
    page.get_by_label("Name").fill("sleepy")
    page.get_by_role("button", name="Greet", exact=True).click()
    expect(page.get_by_label("Greeting")).to_have_value("Hello, sleepy!", timeout=30_000)


@pytest.fixture
def nap(stack):
    sup.create_push_run(stack.rt, stack.token, stack.work, "nap", "hello-static", "static")
    return "nap"


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "spaceproxy gap: for up to one route poll (1 s) after a Space goes to deep sleep, "
    "spaceproxy still dials its old upstream IP:PORT, which is gone (the pool's unreachable "
    "route makes the connect fail at once, so the visitor gets a 502), no wake is asked "
    "for, and the Space stays SLEEPING.  Expected: the waking page (or the app)"))
def test_a_visit_just_as_it_falls_asleep(stack, nap):
    """The visit lands between runtimed stopping the Space and spaceproxy's next route poll
    (proved by the proxy's own status, read after the visit, still saying ready).  A Space
    of its own (static: it restarts in a blink), so a failure here leaves the others be."""
    rt, name = stack.rt, nap
    url = f"/api/spaces/{sup.OWNER}/{name}/sleeptime"
    for _ in range(8):
        sup.wait_stage(rt, name, stack.token, ("RUNNING",), timeout=60)
        sup.wait_proxied(rt, name, stack.token)
        time.sleep(1.2)  # idle past the sleep time below
        assert rt.post(url, stack.token, json={"seconds": 1}).status_code == 200
        deadline = time.time() + 20
        while sup.runtime(rt, name, stack.token)["stage"] != "SLEEPING":
            assert time.time() < deadline
        r = stack.proxy.get(sup.OWNER, name, "/", headers={"Accept": "text/html"})
        stale = sup.proxy_view(stack.proxy, sup.OWNER, name)["ready"]
        assert rt.post(url, stack.token, json={"seconds": -1}).status_code == 200
        if stale:
            break
        # The proxy polled in between: no race this time; wake it and try again.
        stack.proxy.get(sup.OWNER, name, "/")
    else:
        pytest.fail("never caught spaceproxy between a sleep and its next route poll")
    time.sleep(2 * sup.PROXY_POLL_S)
    later = stack.proxy.get(sup.OWNER, name, "/", headers={"Accept": "text/html"})
    assert (r.status_code == 503 and "waking up" in r.text) or \
        (r.status_code == 200 and "Hello from a static Space" in r.text), \
        (r.status_code, r.headers, r.text[:300], "two polls later:", later.status_code,
         later.headers, sup.proxy_view(stack.proxy, sup.OWNER, name))
    sup.wait_stage(rt, name, stack.token, ("RUNNING",), timeout=30)
