"""The static example Space (examples/hello-static: index.html, a stylesheet and a
script) served through spaceproxy with the right content types, and run by Chromium."""
import e2e_support as sup


def test_static_files_have_their_content_types(stack, static_space):
    want = {"/": "text/html", "/index.html": "text/html", "/style.css": "text/css",
            "/app.js": "javascript"}
    for path, ctype in want.items():
        r = stack.proxy.get(sup.OWNER, static_space, path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert ctype in r.headers["Content-Type"], (path, r.headers)
    assert "Hello from a static Space" in stack.proxy.get(sup.OWNER, static_space, "/").text
    r = stack.proxy.get(sup.OWNER, static_space, "/style.css")
    assert "font-family" in r.text
    assert stack.proxy.get(sup.OWNER, static_space, "/no-such-file.txt").status_code == 404


def test_static_in_the_browser(stack, static_space, page):
    from playwright.sync_api import expect

    with sup.Step("chromium: static page with its css and script"):
        resp = page.goto(stack.proxy.url(sup.OWNER, static_space), wait_until="load")
        assert resp.status == 200
        expect(page.get_by_role("heading", name="Hello from a static Space")).to_be_visible()
        expect(page.locator("#note")).to_have_text("The script ran.")
    # The stylesheet applied (sans-serif from style.css, not the browser's serif).
    assert "sans-serif" in page.evaluate("getComputedStyle(document.body).fontFamily")
