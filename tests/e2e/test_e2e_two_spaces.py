"""Two Spaces at once: each host name reaches its own Space, the two served side by side
(concurrent requests), and an unknown host reaches none."""
import concurrent.futures

import e2e_support as sup


def test_each_host_reaches_its_own_space(stack, gradio_space, static_space):
    assert sup.runtime(stack.rt, gradio_space, stack.token)["stage"] == "RUNNING"
    assert sup.runtime(stack.rt, static_space, stack.token)["stage"] == "RUNNING"

    def fetch(name):
        r = stack.proxy.get(sup.OWNER, name, "/")
        return name, r.status_code, r.text

    with sup.Step("two Spaces: 40 concurrent page loads by host name"):
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            results = list(ex.map(fetch, [gradio_space, static_space] * 20))
    for name, status, text in results:
        assert status == 200, (name, status, text[:300])
        if name == gradio_space:
            assert "gradio" in text.lower() and "Hello from a static Space" not in text
        else:
            assert "Hello from a static Space" in text and "gradio_config" not in text
    r = stack.proxy.get(sup.OWNER, "nothing-here", "/")
    assert r.status_code == 404 and "no such Space" in r.text


def test_two_spaces_in_two_tabs(stack, gradio_space, static_space, browser):
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        a, b = ctx.new_page(), ctx.new_page()
        w = sup.Watch(a)
        a.goto(stack.proxy.url(sup.OWNER, gradio_space))
        b.goto(stack.proxy.url(sup.OWNER, static_space))
        w.check(expect(a.get_by_label("Name")).to_be_visible, timeout=60_000)
        expect(b.locator("#note")).to_have_text("The script ran.")
        assert a.title() == "Hello Gradio" and b.title() == "Hello Static"
    finally:
        ctx.close()
