"""The Gradio example Space (examples/hello-gradio: a text function, a streaming
generator and a file upload), pushed with git, built from PyPI at the sdk_version its
README names, and used through spaceproxy by the real gradio_client and by Chromium."""
import pathlib
import re

import pytest

import e2e_support as sup


def client(stack, name, **kw):
    from gradio_client import Client

    return Client(stack.proxy.url(sup.OWNER, name), verbose=False, analytics_enabled=False, **kw)


def test_built_at_the_readme_sdk_version(stack, gradio_space):
    j = sup.runtime(stack.rt, gradio_space, stack.token)
    assert j["stage"] == "RUNNING", j
    log = sup.build_log_tail(stack.rt, sup.OWNER, gradio_space, stack.token)
    # The deps layer comes from PyPI at the README's sdk_version (6.31.0), or is reused.
    r = stack.proxy.get(sup.OWNER, gradio_space, "/config")
    assert r.status_code == 200, r.text[:500]
    assert r.json()["version"].startswith("6.31.0"), (r.json().get("version"), log)


def test_page_loads_through_the_proxy(stack, gradio_space):
    with sup.Step("gradio: first page through the proxy"):
        r = stack.proxy.get(sup.OWNER, gradio_space, "/", headers={"Accept": "text/html"})
    assert r.status_code == 200, r.text[:500]
    assert "text/html" in r.headers["Content-Type"]
    assert "<title>Hello Gradio</title>" in r.text or "Hello Gradio" in r.text


def test_client_text_function(stack, gradio_space):
    with sup.Step("gradio_client: connect and call greet"):
        c = client(stack, gradio_space)
        out = c.predict("Ada", api_name="/greet")
    assert out == "Hello, Ada!"


def test_client_streams_the_generator_in_order(stack, gradio_space):
    c = client(stack, gradio_space)
    with sup.Step("gradio_client: stream count(6)"):
        job = c.submit(6, api_name="/count")
        seen = [o for o in job]
    assert seen == ["1", "2", "3", "4", "5", "6"], seen
    assert job.outputs() == ["1", "2", "3", "4", "5", "6"]


def test_client_uploads_a_file(stack, gradio_space, tmp_path):
    from gradio_client import handle_file

    data = b"first line\nsecond line\n" + bytes(range(256)) * 40 + b"\nlast\n"
    f = tmp_path / "sample.bin"
    f.write_bytes(data)
    c = client(stack, gradio_space)
    with sup.Step("gradio_client: upload a 10 KiB file to describe"):
        out = c.predict(handle_file(str(f)), api_name="/describe")
    lines = data.count(b"\n")
    assert out == f"{len(data)} bytes, {lines} lines", out


def test_browser_type_submit_see_the_answer(stack, gradio_space, page):
    from playwright.sync_api import expect

    w = sup.Watch(page)
    with sup.Step("chromium: gradio page loads"):
        resp = page.goto(stack.proxy.url(sup.OWNER, gradio_space), wait_until="load")
        assert resp.status == 200
        name = page.get_by_label("Name")
        w.check(expect(name).to_be_visible, timeout=60_000)
    with sup.Step("chromium: type, submit, see the greeting"):
        name.fill("Grace Hopper")
        page.get_by_role("button", name="Greet", exact=True).click()
        expect(page.get_by_label("Greeting")).to_have_value("Hello, Grace Hopper!", timeout=30_000)
