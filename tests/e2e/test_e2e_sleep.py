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
    stopped = lambda: sum(1 for l in rt.log().splitlines()  # noqa: E731
                          if f'app="{sup.OWNER}-{name}"' in l and "sleep grace over" in l)
    n = stopped()
    with sup.Step("gradio: idle 2 s to deep sleep (SLEEPING)"):
        assert rt.post(url, stack.token, json={"seconds": 2}).status_code == 200
        sup.wait_stage(rt, name, stack.token, ("SLEEPING",), timeout=60)
    # The app outlives its route by the sleep grace (3 s): visit once it is stopped, so
    # this is a real cold start.  (spaceproxy's activity report, every 10 s, may tell of
    # the last visit only in the grace, which takes the Space back: then it dozes off
    # again 2 s later.)
    with sup.Step("gradio: the sleep grace ends (the app stops)"):
        deadline = time.time() + 60
        while stopped() == n:
            assert time.time() < deadline, rt.log()[-2000:]
            time.sleep(0.1)
    # Never sleep again while the test visits.
    assert rt.post(url, stack.token, json={"seconds": -1}).status_code == 200
    assert sup.runtime(rt, name, stack.token)["stage"] == "SLEEPING"
    # A visitor arrives once spaceproxy's route table shows it asleep.
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


def test_a_visit_just_as_it_falls_asleep(stack, nap):
    """Visits that land just as runtimed puts the Space to deep sleep, at several points of
    the handover (right as runtimed says SLEEPING, then a little later).  runtimed withdraws
    the route first and keeps the app running for its sleep grace (sleep_grace_ms, 3 s by
    default) before it stops it, and spaceproxy hears of the route at once (its routes
    long-poll), so whichever view the proxy has, the visit gets the app (the old route,
    still served) or the waking page (the new one; the wake takes the Space back), never a
    502 from a stopped upstream.  A Space of its own (static: it restarts in a blink), so a
    failure here leaves the others be."""
    rt, name = stack.rt, nap
    url = f"/api/spaces/{sup.OWNER}/{name}/sleeptime"
    seen = []
    for delay in (0, 0, 0.05, 0.2, 0.5):
        # Awake first.  A request that is not a navigation is held until the Space runs,
        # and wakes it; one that still took the old route wakes nothing, so until runtimed
        # says RUNNING (the last round's Space may sleep on after such a visit).
        deadline = time.time() + 60
        while sup.runtime(rt, name, stack.token)["stage"] != "RUNNING":
            awake = stack.proxy.get(sup.OWNER, name, "/")
            assert awake.status_code == 200, (awake.status_code, awake.text[:300])
            assert time.time() < deadline
            time.sleep(0.1)
        time.sleep(1.2)  # idle past the sleep time below
        assert rt.post(url, stack.token, json={"seconds": 1}).status_code == 200
        deadline = time.time() + 20
        while sup.runtime(rt, name, stack.token)["stage"] != "SLEEPING":
            assert time.time() < deadline
        time.sleep(delay)
        r = stack.proxy.get(sup.OWNER, name, "/", headers={"Accept": "text/html"})
        assert rt.post(url, stack.token, json={"seconds": -1}).status_code == 200
        assert (r.status_code == 503 and "waking up" in r.text) or \
            (r.status_code == 200 and "Hello from a static Space" in r.text), \
            (delay, r.status_code, r.headers, r.text[:300],
             sup.proxy_view(stack.proxy, sup.OWNER, name), stack.proxy.log()[-2000:])
        seen.append((delay, r.status_code))
    print("visits as it fell asleep (delay after SLEEPING, status):", seen)
