"""Users, scoped tokens, private Spaces and the admin endpoints (docs/API.md)."""
import re

import pytest

from test_5_support import assert_error, shared_rt, unique  # noqa: F401


@pytest.fixture(scope="module")
def people(shared_rt):
    for name in ("carol", "dave"):
        shared_rt.add_user(name)
    t = {
        "carol": shared_rt.token("carol", "write"),
        "carol_read": shared_rt.token("carol", "read"),
        "dave": shared_rt.token("dave", "write"),
    }
    for name in ("a", "b"):
        assert shared_rt.create_space("carol", name, t["carol"], private=True).status_code == 200
    assert shared_rt.create_space("carol", "pub", t["carol"]).status_code == 200
    t["carol_a"] = shared_rt.token("carol", "write", spaces=["carol/a"], name="only-a")
    t["carol_a_read"] = shared_rt.token("carol", "read", spaces=["carol/a"])
    return t


def test_users_admin_endpoints(shared_rt):
    name = unique("u")
    r = shared_rt.post("/api/admin/users", shared_rt.admin, json={"name": name})
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == name and body["admin"] is False and "createdAt" in body
    assert_error(shared_rt.post("/api/admin/users", shared_rt.admin, json={"name": name.upper()}), 409)
    listing = shared_rt.get("/api/admin/users", shared_rt.admin).json()
    assert {"name": "admin", "admin": True} .items() <= next(u for u in listing if u["name"] == "admin").items()
    assert name in [u["name"] for u in listing]
    for bad in ({}, {"name": ""}, {"name": "a b"}, {"name": 7}, {"name": "ok", "admin": "yes"}):
        assert_error(shared_rt.post("/api/admin/users", shared_rt.admin, json=bad), 400)
    assert shared_rt.delete(f"/api/admin/users/{name}", shared_rt.admin).status_code == 204
    assert_error(shared_rt.delete(f"/api/admin/users/{name}", shared_rt.admin), 404)
    assert_error(shared_rt.delete("/api/admin/users/admin", shared_rt.admin), 409, "last admin")


def test_user_with_spaces_cannot_be_deleted(shared_rt, people):
    assert_error(shared_rt.delete("/api/admin/users/carol", shared_rt.admin), 409, "owns")


def test_tokens_admin_endpoints(shared_rt, people):
    r = shared_rt.post("/api/admin/tokens", shared_rt.admin,
                       json={"user": "dave", "role": "read", "spaces": ["dave/x"], "name": "ci"})
    assert r.status_code == 201, r.text
    tok = r.json()
    assert set(tok) == {"id", "user", "role", "spaces", "name", "token", "createdAt"}
    assert tok["user"] == "dave" and tok["role"] == "read" and tok["spaces"] == ["dave/x"] and tok["name"] == "ci"
    assert re.fullmatch(r"sp_[A-Za-z0-9]{40}", tok["token"])
    listing = shared_rt.get("/api/admin/tokens?user=dave", shared_rt.admin).json()
    assert tok["id"] in [t["id"] for t in listing]
    assert all(t["user"] == "dave" for t in listing)
    assert all("token" not in t for t in listing), "a token is shown only once"
    assert tok["token"] not in shared_rt.get("/api/admin/tokens", shared_rt.admin).text
    me = shared_rt.get("/api/whoami-v2", tok["token"]).json()
    assert me["auth"]["accessToken"]["role"] == "fineGrained"
    scoped = me["auth"]["accessToken"]["fineGrained"]["scoped"]
    assert scoped[0]["entity"]["name"] == "dave/x" and scoped[0]["permissions"] == ["repo.content.read"]
    assert shared_rt.delete(f"/api/admin/tokens/{tok['id']}", shared_rt.admin).status_code == 204
    assert_error(shared_rt.get("/api/whoami-v2", tok["token"]), 401)
    assert_error(shared_rt.delete(f"/api/admin/tokens/{tok['id']}", shared_rt.admin), 404)
    for bad in ({"user": "dave"}, {"user": "dave", "role": "god"}, {"user": "nobody", "role": "read"},
                {"user": "dave", "role": "read", "spaces": "dave/x"},
                {"user": "dave", "role": "read", "spaces": ["nope"]},
                {"user": "dave", "role": "read", "spaces": [1]}):
        r = shared_rt.post("/api/admin/tokens", shared_rt.admin, json=bad)
        assert r.status_code in (400, 404), (bad, r.text)
        assert "error" in r.json()


def test_tiers_admin_endpoints(shared_rt, people):
    name = unique("tier")
    r = shared_rt.post("/api/admin/hardware", shared_rt.admin,
                       json={"name": name, "cpus": 1.5, "memory": 2 << 30, "disk": 10 << 30})
    assert r.status_code == 201, r.text
    tier = r.json()
    assert tier["name"] == name and tier["cpus"] == 1.5 and tier["memory"] == 2 << 30
    assert tier["gpus"] == 0 and tier["zero"] is False and tier["accelerator"] is None
    assert name in [t["name"] for t in shared_rt.get("/api/spaces/hardware").json()]
    assert_error(shared_rt.post("/api/admin/hardware", shared_rt.admin,
                                json={"name": name, "cpus": 1, "memory": 2 << 30}), 409)
    # A Space on it keeps it.
    assert shared_rt.create_space("dave", "on-tier", people["dave"], hardware=name).status_code == 200
    assert_error(shared_rt.delete(f"/api/admin/hardware/{name}", shared_rt.admin), 409, "used")
    assert shared_rt.post("/api/spaces/dave/on-tier/hardware", people["dave"], json={"flavor": "cpu-basic"}).status_code == 200
    assert shared_rt.delete(f"/api/admin/hardware/{name}", shared_rt.admin).status_code == 204
    assert name not in [t["name"] for t in shared_rt.get("/api/spaces/hardware").json()]
    assert_error(shared_rt.delete(f"/api/admin/hardware/{name}", shared_rt.admin), 404)
    # GPU tiers this node cannot run are defined fine but refused for Spaces.
    gpu = unique("gpu")
    r = shared_rt.post("/api/admin/hardware", shared_rt.admin,
                       json={"name": gpu, "cpus": 4, "memory": 8 << 30, "gpus": 1, "gpuKind": "h100"})
    assert r.status_code == 201 and r.json()["accelerator"]["model"] == "h100"
    assert_error(shared_rt.create_space("dave", unique(), people["dave"], hardware=gpu), 422, "GPU")
    for bad in ({"name": "x"}, {"name": "x", "cpus": 0, "memory": 1 << 30},
                {"name": "x", "cpus": 1, "memory": 10}, {"name": "x", "cpus": "1", "memory": 1 << 30},
                {"name": "x", "cpus": 1, "memory": 1 << 30, "gpus": 1},
                {"name": "x", "cpus": 1, "memory": 1 << 30, "gpus": 1, "zero": True, "gpuKind": "a"},
                {"name": "bad name", "cpus": 1, "memory": 1 << 30}):
        assert_error(shared_rt.post("/api/admin/hardware", shared_rt.admin, json=bad), 400)


def test_admin_endpoints_need_an_admin(shared_rt, people):
    for method, path in (("GET", "/api/admin/users"), ("POST", "/api/admin/users"), ("GET", "/api/admin/tokens"),
                         ("POST", "/api/admin/tokens"), ("POST", "/api/admin/hardware"),
                         ("DELETE", "/api/admin/hardware/cpu-basic"), ("DELETE", "/api/admin/users/dave")):
        assert_error(shared_rt.request(method, path, None, json={}), 401)
        assert_error(shared_rt.request(method, path, people["dave"], json={}), 403)
        assert_error(shared_rt.request(method, path, shared_rt.proxy, json={}), 403)
    assert "cpu-basic" in [t["name"] for t in shared_rt.get("/api/spaces/hardware").json()]


def test_admin_read_token_cannot_change(shared_rt):
    ro = shared_rt.token("admin", "read")
    assert shared_rt.get("/api/admin/users", ro).status_code == 200
    assert_error(shared_rt.post("/api/admin/users", ro, json={"name": unique()}), 403)


def test_private_spaces_are_invisible(shared_rt, people):
    for who in (None, people["dave"], people["carol_a"], shared_rt.proxy):
        for path in ("/api/spaces/carol/b", "/api/spaces/carol/b/runtime", "/api/spaces/carol/b/variables",
                     "/api/spaces/carol/b/secrets"):
            r = shared_rt.get(path, who)
            if who == shared_rt.proxy:
                assert_error(r, 403)
            else:
                assert_error(r, 404, "not found")
        assert_error(shared_rt.post("/api/spaces/carol/b/hardware", who, json={"flavor": "cpu-basic"}),
                     403 if who == shared_rt.proxy else 404)
    listed = [s["id"] for s in shared_rt.get("/api/spaces?author=carol", people["dave"]).json()]
    assert listed == ["carol/pub"]
    assert [s["id"] for s in shared_rt.get("/api/spaces?author=carol").json()] == ["carol/pub"]
    listed = [s["id"] for s in shared_rt.get("/api/spaces?author=carol", people["carol_a"]).json()]
    assert listed == ["carol/a", "carol/pub"]
    assert len(shared_rt.get("/api/spaces?author=carol", people["carol_read"]).json()) == 3
    assert len(shared_rt.get("/api/spaces?author=carol", shared_rt.admin).json()) == 3
    # A missing Space and an invisible one answer the same.
    missing = shared_rt.get("/api/spaces/carol/zzz", people["dave"])
    hidden = shared_rt.get("/api/spaces/carol/b", people["dave"])
    assert missing.status_code == hidden.status_code == 404
    assert missing.json()["error"].replace("zzz", "b") == hidden.json()["error"]


def test_read_token_cannot_change_hardware(shared_rt, people):
    r = shared_rt.post("/api/spaces/carol/a/hardware", people["carol_read"], json={"flavor": "cpu-upgrade"})
    assert_error(r, 403)
    for sub in ("sleeptime", "pause", "restart"):
        assert_error(shared_rt.post(f"/api/spaces/carol/a/{sub}", people["carol_read"], json={"seconds": 60}), 403)
    assert shared_rt.get("/api/spaces/carol/a/runtime", people["carol_read"]).json()["hardware"]["requested"] == "cpu-basic"
    assert shared_rt.get("/api/spaces/carol/a", people["carol_a_read"]).status_code == 200


def test_token_for_space_a_cannot_touch_space_b(shared_rt, people):
    tok = people["carol_a"]
    assert shared_rt.post("/api/spaces/carol/a/hardware", tok, json={"flavor": "cpu-upgrade"}).status_code == 200
    assert shared_rt.post("/api/spaces/carol/a/variables", tok, json={"key": "K", "value": "v"}).status_code == 200
    assert_error(shared_rt.post("/api/spaces/carol/b/hardware", tok, json={"flavor": "cpu-upgrade"}), 404)
    # B public is readable by anyone but still not writable through A's token.
    assert_error(shared_rt.post("/api/spaces/carol/pub/hardware", tok, json={"flavor": "cpu-upgrade"}), 403)
    assert_error(shared_rt.post("/api/spaces/carol/pub/secrets", tok, json={"key": "K", "value": "v"}), 403)
    assert_error(shared_rt.delete("/api/repos/delete", tok, json={"type": "space", "name": "carol/pub"}), 403)
    assert_error(shared_rt.create_space("carol", unique(), tok), 403)
    assert shared_rt.get("/api/spaces/carol/pub/runtime", tok).json()["hardware"]["requested"] == "cpu-basic"
    assert shared_rt.post("/api/spaces/carol/a/hardware", tok, json={"flavor": "cpu-basic"}).status_code == 200


def test_other_users_cannot_write(shared_rt, people):
    assert_error(shared_rt.post("/api/spaces/carol/pub/pause", people["dave"]), 403)
    assert_error(shared_rt.post("/api/spaces/carol/pub/restart", None), 401)
    assert shared_rt.post("/api/spaces/carol/pub/sleeptime", shared_rt.admin, json={"seconds": 60}).status_code == 200


def test_proxy_token_is_only_for_proxy_endpoints(shared_rt, people):
    assert_error(shared_rt.get("/api/whoami-v2", shared_rt.proxy), 403)
    assert_error(shared_rt.create_space("proxy", unique(), shared_rt.proxy), 403)
    assert shared_rt.get("/api/proxy/routes", shared_rt.proxy).status_code == 200
    assert_error(shared_rt.get("/api/proxy/routes", people["dave"]), 403)
    assert_error(shared_rt.get("/api/proxy/routes"), 401)
