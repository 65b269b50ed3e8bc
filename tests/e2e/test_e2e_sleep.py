"""Sleep and wake: the Gradio Space is put to deep sleep (its process stopped); a visit
in the browser shows the "waking up" page at once, then the app, with no manual reload."""
import time

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

    navigations = []
    page.on("framenavigated", lambda f: f == page.main_frame and navigations.append(f.url))
    with sup.Step("chromium: visit a sleeping Space until the app shows (no reload by us)"):
        resp = page.goto(stack.proxy.url(sup.OWNER, name))
        assert resp.status == 503
        assert "is waking up" in page.content()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "wake-waking-up.png"))
        expect(page.get_by_label("Name")).to_be_visible(timeout=180_000)
    assert len(navigations) >= 2, navigations  # the waking page reloaded itself
    assert sup.runtime(rt, name, stack.token)["stage"] == "RUNNING"
    page.get_by_label("Name").fill("sleepy")
    page.get_by_role("button", name="Greet", exact=True).click()
    expect(page.get_by_label("Greeting")).to_have_value("Hello, sleepy!", timeout=30_000)
