"""A private Gradio Space: a visitor without a token is offered the sign-in page (and
nothing of the Space); with a token (the sign-in form, or an Authorization header) the
browser gets the app; gradio_client works with the token and fails without it."""
import pytest
from gradio_client import handle_file

import e2e_support as sup
from conftest import ARTIFACTS

APP = (sup.ROOT / "examples" / "hello-gradio" / "app.py").read_text()


@pytest.fixture(scope="module")
def secret(stack):
    # Same README and requirements as the example: the built deps layer is reused.
    sup.create_push_run(stack.rt, stack.token, stack.work, "secret", "hello-gradio", "gradio",
                        files={"app.py": APP.replace('f"Hello, {name}!"',
                                                     'f"Hello from the private Space, {name}!"')},
                        private=True)
    reader = stack.rt.token(sup.OWNER, "read", spaces=[f"{sup.OWNER}/secret"])
    stack.rt.add_user("bob")
    return "secret", reader, stack.rt.token("bob", "write")


def test_without_a_token_nothing_of_the_space(stack, secret):
    name, _, bob = secret
    for headers in ({}, {"Authorization": f"Bearer {bob}"}, {"Authorization": "Bearer nope"}):
        r = stack.proxy.get(sup.OWNER, name, "/", headers=dict(headers, Accept="text/html"))
        assert r.status_code == 404, (headers, r.status_code)
        assert "Hello from the private Space" not in r.text and "gradio" not in r.text.lower()
        assert 'href="/.spaceport/signin"' in r.text
    r = stack.proxy.get(sup.OWNER, name, "/config")
    assert r.status_code == 404


def test_browser_signs_in_and_gets_the_app(stack, secret, page):
    from playwright.sync_api import expect

    name, reader, bob = secret
    w = sup.Watch(page)
    with sup.Step("chromium: private Space without a token"):
        resp = page.goto(stack.proxy.url(sup.OWNER, name))
        assert resp.status == 404
        page.get_by_role("link", name="sign in").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        token_box = page.get_by_label("Access token")
        expect(token_box).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "private-signin.png"))
    # Another user's token is refused, clearly.
    token_box.fill(bob)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("That token cannot open a Space here.")).to_be_visible()
    with sup.Step("chromium: sign in with a read token, the app opens"):
        page.get_by_label("Access token").fill(reader)
        page.get_by_role("button", name="Sign in").click()
        w.check(expect(page.get_by_label("Name")).to_be_visible, timeout=60_000)
    assert page.url == stack.proxy.url(sup.OWNER, name)
    page.get_by_label("Name").fill("Ada")
    page.get_by_role("button", name="Greet", exact=True).click()
    expect(page.get_by_label("Greeting")).to_have_value("Hello from the private Space, Ada!",
                                                        timeout=30_000)


def test_browser_with_an_authorization_header(stack, secret, browser):
    from playwright.sync_api import expect

    name, reader, _ = secret
    ctx = browser.new_context(extra_http_headers={"Authorization": f"Bearer {reader}"})
    try:
        pg = ctx.new_page()
        w = sup.Watch(pg)
        assert pg.goto(stack.proxy.url(sup.OWNER, name)).status == 200
        w.check(expect(pg.get_by_label("Name")).to_be_visible, timeout=60_000)
    finally:
        ctx.close()


def use_private_space(c, tmp_path):
    assert c.predict("Ada", api_name="/greet") == "Hello from the private Space, Ada!"
    assert [o for o in c.submit(3, api_name="/count")] == ["1", "2", "3"]
    f = tmp_path / "a.txt"
    f.write_text("one\ntwo\n")
    assert c.predict(handle_file(str(f)), api_name="/describe") == "8 bytes, 2 lines"


def test_gradio_client_with_hf_token(stack, secret, tmp_path):
    from gradio_client import Client

    name, reader, _ = secret
    with sup.Step("gradio_client token=: private greet, stream, upload"):
        c = Client(stack.proxy.url(sup.OWNER, name), token=reader, verbose=False,
                   analytics_enabled=False)
        use_private_space(c, tmp_path)


def test_gradio_client_with_an_authorization_header(stack, secret, tmp_path):
    from gradio_client import Client

    name, reader, bob = secret
    url = stack.proxy.url(sup.OWNER, name)
    with sup.Step("gradio_client Authorization header: private greet, stream, upload"):
        c = Client(url, headers={"Authorization": f"Bearer {reader}"}, verbose=False,
                   analytics_enabled=False)
        use_private_space(c, tmp_path)
    for headers in ({}, {"Authorization": f"Bearer {bob}"}):
        with pytest.raises(ValueError, match="Could not fetch config"):
            Client(url, headers=headers, verbose=False, analytics_enabled=False)
