"""The Streamlit example Space (examples/hello-streamlit: a button, a text input and a
file uploader), pushed with git, built from PyPI at its README's sdk_version, and used
in headless Chromium through spaceproxy: the page talks to the app over its WebSocket."""
import pytest

import e2e_support as sup
from conftest import ARTIFACTS


@pytest.fixture(scope="module")
def streamlit_space(stack):
    sup.create_push_run(stack.rt, stack.token, stack.work, "streamlit", "hello-streamlit",
                        "streamlit")
    return "streamlit"


def test_streamlit_in_the_browser(stack, streamlit_space, page):
    from playwright.sync_api import expect

    w = sup.Watch(page)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    with sup.Step("chromium: streamlit page loads, websocket up"):
        resp = page.goto(stack.proxy.url(sup.OWNER, streamlit_space), wait_until="load")
        assert resp.status == 200
        # Streamlit draws the script's output only once its WebSocket is connected.
        w.check(expect(page.get_by_role("heading", name="Hello Streamlit")).to_be_visible, timeout=60_000)
        w.check(expect(page.get_by_text("Clicked 0 times")).to_be_visible, timeout=30_000)
        w.check(expect(page.get_by_label("Your name")).to_be_visible, timeout=30_000)
        w.check(expect(page.get_by_text("A text file")).to_be_visible, timeout=30_000)
    streams = [ws for ws in sockets if "/_stcore/stream" in ws.url]
    assert streams, [ws.url for ws in sockets]
    assert streams[0].url.startswith(f"ws://{stack.proxy.host(sup.OWNER, streamlit_space)}/")
    assert not streams[0].is_closed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "streamlit-loaded.png"))

    with sup.Step("chromium: streamlit button click changes the page"):
        page.get_by_role("button", name="Click me").click()
        expect(page.get_by_text("Clicked 1 times")).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Click me").click()
        expect(page.get_by_text("Clicked 2 times")).to_be_visible(timeout=30_000)

    with sup.Step("chromium: streamlit text input"):
        box = page.get_by_label("Your name")
        box.fill("Ada Lovelace")
        box.press("Enter")
        expect(page.get_by_text("Hello, Ada Lovelace!")).to_be_visible(timeout=30_000)

    content = "spaceport e2e upload\nsecond line: 42\n"
    with sup.Step("chromium: streamlit file upload shows its content"):
        page.locator("input[type=file]").set_input_files(
            files=[{"name": "note.txt", "mimeType": "text/plain", "buffer": content.encode()}])
        expect(page.locator("code").filter(has_text="second line: 42")).to_be_visible(
            timeout=30_000)
    code = page.locator("code").filter(has_text="spaceport e2e upload").inner_text()
    assert "spaceport e2e upload" in code and "second line: 42" in code, code
    # The clicks survived the upload's rerun: one session over one live WebSocket.
    expect(page.get_by_text("Clicked 2 times")).to_be_visible()
    assert not streams[0].is_closed()



def test_streamlit_upload_then_the_next_request_is_prompt(stack, streamlit_space, page):
    import time

    from playwright.sync_api import expect

    page.goto(stack.proxy.url(sup.OWNER, streamlit_space))
    expect(page.get_by_text("A text file")).to_be_visible(timeout=60_000)
    with page.expect_response(lambda r: "/_stcore/upload_file/" in r.url and
                              r.request.method == "PUT", timeout=30_000) as info:
        page.locator("input[type=file]").set_input_files(
            files=[{"name": "n.txt", "mimeType": "text/plain", "buffer": b"prompt\n"}])
    assert info.value.status == 204
    t0 = time.monotonic()
    ms = page.evaluate("""async () => { const t = performance.now();
        await Promise.all([1, 2, 3, 4, 5, 6].map(i => fetch('/_stcore/health?i=' + i,
            {cache: 'no-store'})));
        return performance.now() - t; }""")
    took = time.monotonic() - t0
    assert took < 2.0, f"six GETs after the upload's 204 took {ms:.0f} ms in the page"
