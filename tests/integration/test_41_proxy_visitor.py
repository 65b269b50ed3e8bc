"""Visitor identity through spaceproxy and runtimed: X-IP-Token is an HS256 JWT the proxy
signs with the visitor key (HMAC-SHA256(proxy token, "spaceport-visitor-v1")), naming the
signed-in user (a bearer token, gradio_client's X-HF-Authorization, or the sign-in
cookie) and the class of the user's plan; the ZeroGPU quota bills by it.

The Space's app is the echo upstream of test_40 (it answers with the headers it got);
as in test_40_proxy_runtimed, the test writes the Space's stage and upstream into
runtimed's database in place of the supervisor.  runtimed runs a fake one-GPU ZeroGPU
pool (test_33's setup) so GET /api/spaces/zero-gpu/quota shows whom a token bills and
with what budget (the device API's /schedule verifies tokens with the same code,
gpu_visitor_verify)."""
import base64
import hashlib
import hmac
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest
import requests

from test_31_zerogpu_support import proxy_v1, visitor_key
from test_33_zerogpu_runtimed import fake_nodes
from test_40_proxy import free_port, start_upstream, wait_port
from test_40_proxy_runtimed import set_running
from test_5_support import Runtimed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the fake GPU nodes need mknod: root")

TOKEN_CACHE_S = 1  # the proxy's token_cache here (default 60 s): a plan change shows after it


def _unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_ip_token(tok, proxy_token_file):
    """Checks spaceproxy's X-IP-Token under the key runtimed derives from its proxy token
    and returns the payload; fails the test if the signature is not valid."""
    secret = pathlib.Path(proxy_token_file).read_text().strip().encode()
    head, body, sig = tok.split(".")
    assert json.loads(_unb64(head)) == {"alg": "HS256", "typ": "JWT"}
    mac = hmac.new(visitor_key(secret), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(_unb64(sig), mac), "X-IP-Token signature"
    return json.loads(_unb64(body))


class Stack:
    pass


@pytest.fixture(scope="module")
def stack(bin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("rt41")
    st = Stack()
    st.dev = pathlib.Path(f"/dev/spaceport-test41-{os.getpid()}")
    fake_nodes(st.dev)
    conf = base / "runtimed.yaml"
    conf.write_text(f"gpu_backend: fake\ngpu_fake: 1xa10g:24G\ngpu_fake_dev_dir: {st.dev}\n"
                    "zero_gpus: 1\n")
    st.rt = rt = Runtimed(bin_dir, base / "data", config=conf).start()
    st.bin = bin_dir
    st.up = start_upstream("space")
    try:
        rt.add_user("alice")
        rt.add_user("bob")
        st.alice = rt.token("alice", "read")
        st.bob = rt.token("bob", "read")
        assert rt.create_space("alice", "open").status_code == 200
        set_running(rt, "alice", "open", st.up.port)
        st.port = free_port()
        pconf = base / "proxy.yaml"
        pconf.write_text(f"poll_interval: 200ms\ntoken_cache: {TOKEN_CACHE_S}s\n")
        st.proxy = subprocess.Popen(
            [str(bin_dir / "spaceproxy"), "--listen", f"127.0.0.1:{st.port}", "--runtimed",
             rt.url, "--token-file", str(rt.data_dir / "proxy.token"), "--workers", "2",
             "--config", str(pconf)], stderr=open(base / "proxy.log", "wb"))
        wait_port(st.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and get(st).status_code != 200:
            time.sleep(0.05)
        yield st
        st.proxy.send_signal(signal.SIGTERM)
        st.proxy.wait(timeout=15)
    finally:
        rt.stop()
        st.up.shutdown()
        st.up.server_close()
        for p in sorted(st.dev.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        st.dev.rmdir()


def get(st, headers=None):
    h = {"Host": f"alice-open.localhost:{st.port}"}
    h.update(headers or {})
    return requests.get(f"http://127.0.0.1:{st.port}/echo", headers=h, timeout=10,
                        allow_redirects=False)


def seen_token(st, headers=None):
    """The X-IP-Token the Space received, verified, and its payload."""
    r = get(st, headers)
    assert r.status_code == 200, r.text
    got = [v for k, v in r.json()["headers"] if k.lower() == "x-ip-token"]
    assert len(got) == 1, got
    return got[0], verify_ip_token(got[0], st.rt.data_dir / "proxy.token")


def quota(st, tok):
    r = requests.get(f"{st.rt.url}/api/spaces/zero-gpu/quota", headers={"X-IP-Token": tok},
                     timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def spacectl(st, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACEPORT_")}
    env.update(SPACEPORT_URL=st.rt.url, SPACEPORT_TOKEN=st.rt.admin)
    p = subprocess.run([str(st.bin / "spacectl"), *args], capture_output=True, text=True,
                       env=env, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def wait_class(st, headers, want, timeout=15):
    """A plan change reaches the proxy when its cached check-token answer (TOKEN_CACHE_S)
    is refreshed: the request after expiry triggers it, a later one sees it."""
    deadline = time.monotonic() + timeout
    while True:
        tok, pl = seen_token(st, headers)
        if pl.get("class") == want or time.monotonic() > deadline:
            return tok, pl
        time.sleep(0.2)


def test_anonymous_visitor(stack):
    tok, pl = seen_token(stack)
    assert pl["ip"] == "127.0.0.1" and pl["class"] == "anonymous" and "user" not in pl
    assert 3590 <= pl["exp"] - time.time() <= 3610
    q = quota(stack, tok)
    assert q["identity"] == "ip:127.0.0.1" and q["class"] == "anonymous" and q["left"] == 120, q


def test_a_forged_client_token_is_replaced(stack):
    secret = (stack.rt.data_dir / "proxy.token").read_text().strip().encode()
    forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + base64.urlsafe_b64encode(
        json.dumps({"ip": "1.2.3.4", "user": "alice", "class": "pro", "exp": 2**31}).encode()
    ).rstrip(b"=").decode() + ".AAAA"
    for claim in (forged, proxy_v1(visitor_key(secret), "6.6.6.6")):
        tok, pl = seen_token(stack, {"X-IP-Token": claim})
        assert tok != claim and pl["class"] == "anonymous" and pl["ip"] == "127.0.0.1"


def test_bearer_token_names_the_user(stack):
    for hdr in ("Authorization", "X-HF-Authorization"):  # gradio_client sends the second
        tok, pl = seen_token(stack, {hdr: f"Bearer {stack.alice}"})
        assert pl["user"] == "alice" and pl["class"] == "user" and pl["ip"] == "127.0.0.1", pl
    _, pl = seen_token(stack, {"Authorization": f"Bearer {stack.bob}"})
    assert pl["user"] == "bob" and pl["class"] == "user"
    # a token runtimed does not know: an anonymous visitor, still served (public Space)
    _, pl = seen_token(stack, {"Authorization": "Bearer sp_not_a_token"})
    assert pl["class"] == "anonymous" and "user" not in pl


def test_signin_cookie_on_a_public_space(stack):
    host = {"Host": f"alice-open.localhost:{stack.port}"}
    r = requests.post(f"http://127.0.0.1:{stack.port}/.spaceport/signin", headers=host,
                      data={"token": stack.bob}, allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    cookie = r.headers["Set-Cookie"].split(";")[0]
    assert ".user.bob." in cookie  # the user and class, under the cookie's MAC
    _, pl = seen_token(stack, {"Cookie": cookie})
    assert pl["user"] == "bob" and pl["class"] == "user"
    r = get(stack, {"Cookie": cookie})
    assert "cookie" not in {k.lower() for k, _ in r.json()["headers"]}  # ours, not the Space's
    promoted = cookie.replace(".user.bob.", ".pro.bob.")
    _, pl = seen_token(stack, {"Cookie": promoted})
    assert pl["class"] == "anonymous", "a changed class breaks the MAC"
    bad = requests.post(f"http://127.0.0.1:{stack.port}/.spaceport/signin", headers=host,
                        data={"token": "sp_wrong"}, allow_redirects=False, timeout=10)
    assert bad.status_code == 403 and "Set-Cookie" not in bad.headers


def test_plan_sets_class_and_quota(stack):
    auth = {"Authorization": f"Bearer {stack.alice}"}
    tok, pl = seen_token(stack, auth)
    assert pl["class"] == "user"
    q = quota(stack, tok)
    assert q["identity"] == "user:alice" and q["class"] == "user" and q["left"] == 300, q

    out = spacectl(stack, "user", "set", "alice", "--plan", "pro")
    assert "pro" in out
    users = {u["name"]: u for u in stack.rt.get("/api/admin/users", stack.rt.admin).json()}
    assert users["alice"]["plan"] == "pro" and users["bob"]["plan"] == "free"
    tok, pl = wait_class(stack, auth, "pro")
    assert pl["user"] == "alice" and pl["class"] == "pro", pl
    q = quota(stack, tok)
    assert q["identity"] == "user:alice" and q["class"] == "pro" and q["left"] == 2400, q
    # the signed-in user asking runtimed directly is billed by the same plan
    q = stack.rt.get("/api/spaces/zero-gpu/quota", stack.alice).json()
    assert q["identity"] == "user:alice" and q["class"] == "pro", q

    # and back, through the API
    r = stack.rt.request("PATCH", "/api/admin/users/alice", stack.rt.admin, json={"plan": "free"})
    assert r.status_code == 200 and r.json()["plan"] == "free", r.text
    _, pl = wait_class(stack, auth, "user")
    assert pl["class"] == "user"
    # anonymous visitors meanwhile: billed per address with the anonymous budget
    tok, _ = seen_token(stack)
    q = quota(stack, tok)
    assert q["identity"] == "ip:127.0.0.1" and q["left"] == 120, q


def test_runtimed_still_takes_the_old_v1_header(stack):
    secret = (stack.rt.data_dir / "proxy.token").read_text().strip().encode()
    q = quota(stack, proxy_v1(visitor_key(secret), "198.51.100.4"))
    assert q["identity"] == "ip:198.51.100.4" and q["class"] == "anonymous", q


def test_admin_api_plans(stack):
    rt = stack.rt
    r = rt.post("/api/admin/users", rt.admin, json={"name": "paula", "plan": "pro"})
    assert r.status_code == 201 and r.json()["plan"] == "pro", r.text
    r = rt.post("/api/admin/users", rt.admin, json={"name": "gold", "plan": "gold"})
    assert r.status_code == 400 and "plan" in r.text
    assert "gold" not in {u["name"] for u in rt.get("/api/admin/users", rt.admin).json()}
    r = rt.request("PATCH", "/api/admin/users/paula", rt.admin, json={"plan": "platinum"})
    assert r.status_code == 400
    r = rt.request("PATCH", "/api/admin/users/nobody", rt.admin, json={"plan": "pro"})
    assert r.status_code == 404
    r = rt.request("PATCH", "/api/admin/users/paula", stack.alice, json={"plan": "free"})
    assert r.status_code == 403
    # check-token, as the proxy sees it
    proxy = (rt.data_dir / "proxy.token").read_text().strip()
    tok = rt.token("paula", "read")
    r = rt.post("/api/proxy/check-token", proxy, json={"id": "alice/open", "token": tok})
    assert r.json() == {"read": True, "user": "paula", "class": "pro"}, r.text
    r = rt.post("/api/proxy/check-token", proxy, json={"id": "alice/open", "token": "sp_x"})
    assert r.json() == {"read": False, "user": None, "class": None}, r.text
