"""The Hub's Space endpoints: success shapes and error paths."""
import re
import time

import pytest

from test_5_support import assert_error, shared_rt, unique  # noqa: F401

RUNTIME_KEYS = {"stage", "hardware", "storage", "gcTimeout", "replicas", "devMode", "domains"}


@pytest.fixture(scope="module")
def alice(shared_rt):
    shared_rt.add_user("alice")
    return shared_rt.token("alice", "write")


def test_whoami_shape(shared_rt, alice):
    r = shared_rt.get("/api/whoami-v2", alice)
    assert r.status_code == 200
    me = r.json()
    assert me["type"] == "user" and me["name"] == "alice" and me["isAdmin"] is False
    assert me["orgs"] == []
    assert me["auth"]["type"] == "access_token"
    assert me["auth"]["accessToken"]["role"] == "write"
    assert_error(shared_rt.get("/api/whoami-v2"), 401)
    assert_error(shared_rt.get("/api/whoami-v2", "sp_" + "x" * 40), 401)
    assert_error(shared_rt.get("/api/whoami-v2", headers={"Authorization": "Basic YTpi"}), 401)


def test_create_shape_and_defaults(shared_rt, alice):
    name = unique("demo")
    r = shared_rt.create_space("alice", name, alice)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"] == f"{shared_rt.url}/spaces/alice/{name}"
    assert body["name"] == f"alice/{name}"
    info = shared_rt.get(f"/api/spaces/alice/{name}").json()
    assert info["id"] == f"alice/{name}" and info["author"] == "alice"
    assert info["sdk"] == "gradio" and info["private"] is False
    assert info["subdomain"] == f"alice-{name}".lower()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", info["createdAt"])
    rt = info["runtime"]
    assert RUNTIME_KEYS <= set(rt)
    # Nothing was pushed: the stage it is really in.
    assert rt["stage"] == "NO_APP_FILE"
    assert rt["hardware"] == {"current": None, "requested": "cpu-basic"}
    assert rt["gcTimeout"] == 172800
    assert shared_rt.get(f"/api/spaces/alice/{name}/runtime").json() == rt


def test_create_without_organization_uses_the_caller(shared_rt, alice):
    name = unique()
    r = shared_rt.post("/api/repos/create", alice, json={"type": "space", "name": name, "sdk": "static"})
    assert r.status_code == 200, r.text
    assert shared_rt.get(f"/api/spaces/alice/{name}").json()["sdk"] == "static"


def test_create_with_everything(shared_rt, alice):
    name = unique()
    r = shared_rt.create_space("alice", name, alice, sdk="streamlit", private=True, hardware="cpu-upgrade",
                               sleepTimeSeconds=600,
                               secrets=[{"key": "API_KEY", "value": "hunter2", "description": "d"}],
                               variables=[{"key": "MODE", "value": "fast"}])
    assert r.status_code == 200, r.text
    rt = shared_rt.get(f"/api/spaces/alice/{name}/runtime", alice).json()
    assert rt["hardware"]["requested"] == "cpu-upgrade"
    assert rt["gcTimeout"] == 600
    assert shared_rt.get(f"/api/spaces/alice/{name}/secrets", alice).json()["API_KEY"]["description"] == "d"
    assert shared_rt.get(f"/api/spaces/alice/{name}/variables", alice).json()["MODE"]["value"] == "fast"


def test_create_conflicts(shared_rt, alice):
    name = unique("dup")
    assert shared_rt.create_space("alice", name, alice).status_code == 200
    r = shared_rt.create_space("alice", name, alice)
    assert_error(r, 409, "already created")
    assert r.json()["url"].endswith(f"/spaces/alice/{name}")
    assert_error(shared_rt.create_space("ALICE", name.upper(), shared_rt.admin), 409)
    # alice/x-y and alice-x/y share the host alice-x-y.
    shared_rt.add_user(f"alice-{name}")
    r = shared_rt.create_space(f"alice-{name}", "web", shared_rt.admin)
    assert r.status_code == 200, r.text
    assert_error(shared_rt.create_space("alice", f"{name}-web", alice), 409, "host")
    assert_error(shared_rt.create_space("alice", f"{name}_web", alice), 409, "host")


@pytest.mark.parametrize("fields,status,words", [
    ({"sdk": "docker"}, 422, "sdk"),
    ({"sdk": None}, 400, "sdk"),
    ({"sdk": 3}, 400, "sdk"),
    ({"hardware": "h9000"}, 422, "unknown hardware"),
    ({"hardware": "a10g-small"}, 422, "gpu"),
    ({"hardware": "zero-a10g"}, 422, "gpu"),
    ({"private": "yes"}, 400, "private"),
    ({"visibility": "protected"}, 400, "visibility"),
    ({"sleepTimeSeconds": "1h"}, 400, "sleepTimeSeconds"),
    ({"sleepTimeSeconds": 0}, 400, "sleepTimeSeconds"),
    ({"secrets": {"A": "b"}}, 400, "secrets"),
    ({"secrets": [{"key": "1BAD", "value": "x"}]}, 400, "key"),
    ({"variables": [{"key": "A"}]}, 400, "variables"),
    ({"type": "model"}, 400, "space"),
])
def test_create_bad_fields(shared_rt, alice, fields, status, words):
    name = unique()
    assert_error(shared_rt.create_space("alice", name, alice, **fields), status, words)
    assert shared_rt.get(f"/api/spaces/alice/{name}", alice).status_code == 404


@pytest.mark.parametrize("name", ["-x", "x-", ".x", "a--b", "a..b", "a b", "é", "a" * 97, "", "a/b"])
def test_create_bad_names(shared_rt, alice, name):
    assert_error(shared_rt.create_space("alice", name, alice), 400)


def test_create_needs_permission(shared_rt, alice):
    assert_error(shared_rt.post("/api/repos/create", json={"type": "space", "name": f"alice/{unique()}",
                                                           "sdk": "gradio"}), 401)
    assert_error(shared_rt.create_space("admin", unique(), alice), 403)
    reader = shared_rt.token("alice", "read")
    assert_error(shared_rt.create_space("alice", unique(), reader), 403)


def test_delete(shared_rt, alice):
    name = unique()
    assert shared_rt.create_space("alice", name, alice).status_code == 200
    body = {"type": "space", "organization": "alice", "name": name}
    assert_error(shared_rt.delete("/api/repos/delete", None, json=body), 401)
    reader = shared_rt.token("alice", "read")
    assert_error(shared_rt.delete("/api/repos/delete", reader, json=body), 403)
    r = shared_rt.delete("/api/repos/delete", alice, json=body)
    assert r.status_code == 200, r.text
    assert shared_rt.get(f"/api/spaces/alice/{name}").status_code == 404
    assert_error(shared_rt.delete("/api/repos/delete", alice, json=body), 404)
    # The name is free again.
    assert shared_rt.create_space("alice", name, alice).status_code == 200
    assert shared_rt.delete("/api/repos/delete", alice, json={"type": "space", "name": f"alice/{name}"}).status_code == 200
    assert_error(shared_rt.post("/api/repos/delete", alice, json=body), 405)


def test_list_filters_and_pagination(shared_rt):
    owner = unique("lister")
    shared_rt.add_user(owner)
    tok = shared_rt.token(owner)
    names = [f"app{i}" for i in range(7)]
    for n in names:
        assert shared_rt.create_space(owner, n, tok).status_code == 200
    assert shared_rt.create_space(owner, "hidden", tok, private=True).status_code == 200

    r = shared_rt.get(f"/api/spaces?author={owner}")
    assert r.status_code == 200
    assert [s["id"] for s in r.json()] == [f"{owner}/{n}" for n in names]
    assert "Link" not in r.headers
    # The owner sees the private one too.
    assert len(shared_rt.get(f"/api/spaces?author={owner}", tok).json()) == 8

    seen, url, pages = [], f"/api/spaces?author={owner}&limit=3", 0
    while url:
        r = shared_rt.get(url)
        assert r.status_code == 200
        page = r.json()
        assert len(page) <= 3
        seen += [s["id"] for s in page]
        pages += 1
        link = r.headers.get("Link")
        url = None
        if link:
            m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
            assert m, link
            assert m.group(1).startswith(shared_rt.url)
            url = m.group(1)[len(shared_rt.url):]
    assert seen == [f"{owner}/{n}" for n in names]
    assert pages == 3

    found = shared_rt.get(f"/api/spaces?search={owner}/APP3").json()
    assert [s["id"] for s in found] == [f"{owner}/app3"]
    assert shared_rt.get("/api/spaces?author=nobody-at-all").json() == []
    for bad in ("limit=0", "limit=1001", "limit=x", "cursor=-1", "cursor=abc"):
        assert_error(shared_rt.get(f"/api/spaces?{bad}"), 400)


def test_hardware_list(shared_rt):
    tiers = shared_rt.get("/api/spaces/hardware").json()
    names = [t["name"] for t in tiers]
    for want in ("cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "a10g-small", "a100-large", "l4x1", "l40sx1"):
        assert want in names
    basic = tiers[names.index("cpu-basic")]
    assert basic["cpu"] == "2 vCPU" and basic["accelerator"] is None
    assert basic["cpus"] == 2 and basic["gpus"] == 0 and basic["zero"] is False and basic["memory"] > 0
    a10g = tiers[names.index("a10g-largex2")]
    assert a10g["gpus"] == 2 and a10g["gpuKind"] == "a10g"
    assert a10g["accelerator"]["quantity"] == "2"
    assert tiers[names.index("zero-a10g")]["zero"] is True


def test_hardware_and_sleeptime(shared_rt, alice):
    name = unique()
    assert shared_rt.create_space("alice", name, alice).status_code == 200
    base = f"/api/spaces/alice/{name}"
    r = shared_rt.post(base + "/hardware", alice, json={"flavor": "cpu-upgrade"})
    assert r.status_code == 200, r.text
    assert r.json()["hardware"] == {"current": None, "requested": "cpu-upgrade"}
    assert r.json()["gcTimeout"] is None, "upgraded hardware never sleeps by default"
    r = shared_rt.post(base + "/hardware", alice, json={"flavor": "cpu-basic", "sleepTimeSeconds": 3600})
    assert r.json()["gcTimeout"] == 3600
    assert_error(shared_rt.post(base + "/hardware", alice, json={"flavor": "nope"}), 422, "unknown hardware")
    assert_error(shared_rt.post(base + "/hardware", alice, json={"flavor": "a100x8"}), 422, "8 GPUs")
    assert_error(shared_rt.post(base + "/hardware", alice, json={}), 400, "flavor")
    assert_error(shared_rt.post(base + "/hardware", alice, json={"flavor": 1}), 400, "flavor")
    assert shared_rt.get(base + "/runtime").json()["hardware"]["requested"] == "cpu-basic"

    r = shared_rt.post(base + "/sleeptime", alice, json={"seconds": 300})
    assert r.status_code == 200 and r.json()["gcTimeout"] == 300
    r = shared_rt.post(base + "/sleeptime", alice, json={"seconds": -1})
    assert r.status_code == 200 and r.json()["gcTimeout"] is None
    for bad in ({}, {"seconds": "300"}, {"seconds": -2}, {"seconds": 1.5}, {"seconds": 2**40}):
        assert_error(shared_rt.post(base + "/sleeptime", alice, json=bad), 400)
    assert_error(shared_rt.get(base + "/sleeptime", alice), 405)


def test_pause_and_restart(shared_rt, alice):
    name = unique()
    assert shared_rt.create_space("alice", name, alice).status_code == 200
    base = f"/api/spaces/alice/{name}"
    r = shared_rt.post(base + "/pause", alice)
    assert r.status_code == 200 and r.json()["stage"] == "PAUSED"
    assert shared_rt.get(base + "/runtime").json()["stage"] == "PAUSED"
    r = shared_rt.post(base + "/restart", alice)
    assert r.status_code == 200
    assert r.json()["stage"] == "NO_APP_FILE", "nothing to build: the real stage, not an invented one"
    r = shared_rt.post(base + "/restart?factory=true", alice)
    assert r.status_code == 200 and r.json()["stage"] == "NO_APP_FILE"
    static = unique()
    assert shared_rt.create_space("alice", static, alice, sdk="static").status_code == 200
    assert_error(shared_rt.post(f"/api/spaces/alice/{static}/pause", alice), 400, "static")


def test_secrets_never_returned_nor_logged(shared_rt, alice):
    name = unique()
    value = "S3CRET-" + unique("v")
    assert shared_rt.create_space("alice", name, alice, secrets=[{"key": "FIRST", "value": value + "a"}]).status_code == 200
    base = f"/api/spaces/alice/{name}/secrets"
    r = shared_rt.post(base, alice, json={"key": "HF_TOKEN", "value": value, "description": "hub"})
    assert r.status_code == 200 and r.json() == {}
    listing = shared_rt.get(base, alice)
    assert listing.status_code == 200
    assert set(listing.json()) == {"FIRST", "HF_TOKEN"}
    assert listing.json()["HF_TOKEN"]["description"] == "hub"
    assert "updatedAt" in listing.json()["HF_TOKEN"]
    # Update keeps one key.
    assert shared_rt.post(base, alice, json={"key": "HF_TOKEN", "value": value + "2"}).status_code == 200
    assert set(shared_rt.get(base, alice).json()) == {"FIRST", "HF_TOKEN"}
    responses = [listing.text,
                 shared_rt.get(f"/api/spaces/alice/{name}", alice).text,
                 shared_rt.get(f"/api/spaces/alice/{name}/runtime", alice).text,
                 shared_rt.get(f"/api/spaces/alice/{name}/variables", alice).text,
                 shared_rt.get("/api/spaces?full=true", alice).text]
    for text in responses:
        assert value not in text
    assert_error(shared_rt.get(base, shared_rt.token("alice", "read")), 403)
    assert_error(shared_rt.get(base), 401)
    r = shared_rt.delete(base, alice, json={"key": "HF_TOKEN"})
    assert r.status_code == 200
    assert set(shared_rt.get(base, alice).json()) == {"FIRST"}
    assert_error(shared_rt.delete(base, alice, json={"key": "HF_TOKEN"}), 404)
    assert_error(shared_rt.post(base, alice, json={"key": "X"}), 400, "value")
    assert_error(shared_rt.post(base, alice, json={"key": "X-Y", "value": "v"}), 400, "key")
    assert_error(shared_rt.post(base, alice, json={"key": "X", "value": "v" * 70000}), 413)
    time.sleep(0.2)
    assert value not in shared_rt.log()


def test_variables(shared_rt, alice):
    name = unique()
    assert shared_rt.create_space("alice", name, alice).status_code == 200
    base = f"/api/spaces/alice/{name}/variables"
    assert shared_rt.get(base).json() == {}
    r = shared_rt.post(base, alice, json={"key": "MODEL", "value": "gpt2", "description": "which"})
    assert r.status_code == 200
    assert r.json()["MODEL"]["value"] == "gpt2" and r.json()["MODEL"]["description"] == "which"
    r = shared_rt.post(base, alice, json={"key": "B", "value": ""})
    assert set(r.json()) == {"MODEL", "B"}
    r = shared_rt.delete(base, alice, json={"key": "MODEL"})
    assert r.status_code == 200 and set(r.json()) == {"B"}
    assert_error(shared_rt.post(base, None, json={"key": "A", "value": "b"}), 401)
    assert_error(shared_rt.post(base, shared_rt.token("alice", "read"), json={"key": "A", "value": "b"}), 403)
    assert_error(shared_rt.request("PUT", base, alice, json={"key": "A", "value": "b"}), 405)


def test_duplicate(shared_rt, alice):
    src = unique("src")
    assert shared_rt.create_space("alice", src, alice, sdk="streamlit",
                                  variables=[{"key": "V", "value": "1"}],
                                  secrets=[{"key": "S", "value": "x"}]).status_code == 200
    dst = unique("dst")
    r = shared_rt.post(f"/api/spaces/alice/{src}/duplicate", alice,
                       json={"repository": f"alice/{dst}", "private": True,
                             "secrets": [{"key": "NEW", "value": "y"}]})
    assert r.status_code == 200, r.text
    assert r.json() == {"url": f"{shared_rt.url}/spaces/alice/{dst}"}
    info = shared_rt.get(f"/api/spaces/alice/{dst}", alice).json()
    assert info["sdk"] == "streamlit" and info["private"] is True
    assert shared_rt.get(f"/api/spaces/alice/{dst}/variables", alice).json()["V"]["value"] == "1"
    assert set(shared_rt.get(f"/api/spaces/alice/{dst}/secrets", alice).json()) == {"NEW"}
    # Without a repository: the caller's namespace and the same name.
    shared_rt.add_user("bob-dup")
    bob = shared_rt.token("bob-dup")
    r = shared_rt.post(f"/api/spaces/alice/{src}/duplicate", bob, json={})
    assert r.status_code == 200, r.text
    assert shared_rt.get(f"/api/spaces/bob-dup/{src}", bob).status_code == 200
    assert_error(shared_rt.post(f"/api/spaces/alice/{src}/duplicate", bob, json={}), 409)
    assert_error(shared_rt.post(f"/api/spaces/alice/{src}/duplicate", bob,
                                json={"repository": f"alice/{unique()}"}), 403)
    assert_error(shared_rt.post(f"/api/spaces/alice/{src}/duplicate", bob,
                                json={"repository": "no-slash"}), 400)
    assert_error(shared_rt.post(f"/api/spaces/alice/{src}/duplicate", None, json={}), 401)
    assert_error(shared_rt.post(f"/api/spaces/alice/{dst}/duplicate", bob, json={}), 404)


def test_unknown_paths(shared_rt, alice):
    for path in ("/api/nope", "/api/spaces/alice", "/api/spaces/alice/x/y/z/w", "/api/spaces/alice/nope/runtime",
                 "/", "/index.html", "/api", "/api/", "/api/repos/create/x"):
        r = shared_rt.get(path, alice)
        assert r.status_code == 404, path
        assert "error" in r.json()


def test_concurrent_creates(shared_rt, alice):
    from concurrent.futures import ThreadPoolExecutor

    name = unique("race")
    with ThreadPoolExecutor(8) as pool:
        same = list(pool.map(lambda _: shared_rt.create_space("alice", name, alice).status_code, range(16)))
        names = [unique("par") for _ in range(16)]
        distinct = list(pool.map(lambda n: shared_rt.create_space("alice", n, alice).status_code, names))
    assert sorted(same) == [200] + [409] * 15
    assert distinct == [200] * 16
    listed = {s["id"] for s in shared_rt.get("/api/spaces?author=alice&limit=1000").json()}
    assert {f"alice/{n}" for n in names} <= listed


def test_settings_visibility(shared_rt, alice):
    name = unique()
    assert shared_rt.create_space("alice", name, alice).status_code == 200
    base = f"/api/spaces/alice/{name}"
    r = shared_rt.request("PUT", base + "/settings", alice, json={"private": True})
    assert r.status_code == 200 and r.json() == {"private": True}
    assert shared_rt.get(base).status_code == 404
    assert shared_rt.get(base, alice).json()["private"] is True
    r = shared_rt.request("PUT", base + "/settings", alice, json={"visibility": "public"})
    assert r.status_code == 200
    assert shared_rt.get(base).json()["private"] is False
    assert_error(shared_rt.request("PUT", base + "/settings", alice, json={"private": "no"}), 400)
    assert_error(shared_rt.request("PUT", base + "/settings", shared_rt.token("alice", "read"), json={"private": True}), 403)
    assert_error(shared_rt.post(base + "/settings", alice, json={"private": True}), 405)


def test_light_sleep_seconds(shared_rt, alice):
    """Spaceport's lightSeconds beside the Hub's seconds; the effective light sleep shows as
    runtime.lightSleepTime (this runtimed: the node's light_sleep_ms, 60 s)."""
    name = unique("light")
    assert shared_rt.create_space("alice", name, alice).status_code == 200
    base = f"/api/spaces/alice/{name}"
    rt = shared_rt.get(base + "/runtime").json()
    assert rt["lightSleepTime"] == 60 and rt["gcTimeout"] == 172800
    r = shared_rt.post(base + "/sleeptime", alice, json={"seconds": 300, "lightSeconds": 30})
    assert r.status_code == 200, r.text
    assert r.json()["gcTimeout"] == 300 and r.json()["lightSleepTime"] == 30
    assert RUNTIME_KEYS <= set(r.json())
    # lightSeconds alone changes only light sleep
    r = shared_rt.post(base + "/sleeptime", alice, json={"lightSeconds": -1})
    assert r.status_code == 200 and r.json()["lightSleepTime"] is None and r.json()["gcTimeout"] == 300
    # seconds alone (the Hub's client) leaves light sleep as it is
    r = shared_rt.post(base + "/sleeptime", alice, json={"seconds": 600})
    assert r.json()["gcTimeout"] == 600 and r.json()["lightSleepTime"] is None
    # null: back to the tier's default (cpu-basic has none: the node's)
    r = shared_rt.post(base + "/sleeptime", alice, json={"seconds": 600, "lightSeconds": None})
    assert r.status_code == 200 and r.json()["lightSleepTime"] == 60
    for bad in ("30", 0, -2, 1.5, True, [1], 2**40):
        err = assert_error(shared_rt.post(base + "/sleeptime", alice,
                                          json={"seconds": 10, "lightSeconds": bad}), 400)
        assert "lightSeconds" in err, err
    assert_error(shared_rt.post(base + "/sleeptime", alice, json={"seconds": 0, "lightSeconds": 5}),
                 400, "seconds")
    # a refused body changed nothing
    rt = shared_rt.get(base + "/runtime").json()
    assert rt["gcTimeout"] == 600 and rt["lightSleepTime"] == 60
    assert_error(shared_rt.post(base + "/sleeptime", alice, json={}), 400, "missing field 'seconds'")
    assert_error(shared_rt.post(base + "/sleeptime", json={"lightSeconds": 5}), 401)


def test_tier_light_sleep_default(shared_rt, alice):
    tier = unique("cpu-light")
    r = shared_rt.post("/api/admin/hardware", shared_rt.admin,
                       json={"name": tier, "cpus": 1, "memory": 1 << 30, "lightSleepSeconds": 20})
    assert r.status_code == 201, r.text
    assert r.json()["lightSleepSeconds"] == 20 and r.json()["sleepTimeSeconds"] == -1
    listed = {t["name"]: t for t in shared_rt.get("/api/spaces/hardware").json()}
    assert listed[tier]["lightSleepSeconds"] == 20
    assert listed["cpu-basic"]["lightSleepSeconds"] is None  # the node's setting
    assert listed["cpu-basic"]["sleepTimeSeconds"] == 172800
    name = unique("ontier")
    r = shared_rt.create_space("alice", name, alice, hardware=tier)
    assert r.status_code == 200, r.text
    base = f"/api/spaces/alice/{name}"
    assert shared_rt.get(base + "/runtime").json()["lightSleepTime"] == 20  # the tier's default
    r = shared_rt.post(base + "/sleeptime", alice, json={"seconds": -1, "lightSeconds": 5})
    assert r.json()["lightSleepTime"] == 5  # its own beats the tier's
    r = shared_rt.post(base + "/sleeptime", alice, json={"seconds": -1, "lightSeconds": None})
    assert r.json()["lightSleepTime"] == 20

    # PATCH changes the sleep defaults of a tier in place
    path = f"/api/admin/hardware/{tier}"
    r = shared_rt.request("PATCH", path, shared_rt.admin,
                          json={"lightSleepSeconds": -1, "sleepTimeSeconds": 7200})
    assert r.status_code == 200, r.text
    assert r.json()["lightSleepSeconds"] == -1 and r.json()["sleepTimeSeconds"] == 7200
    rt = shared_rt.get(base + "/runtime").json()
    assert rt["lightSleepTime"] is None and rt["gcTimeout"] is None  # the Space set -1 itself
    r = shared_rt.request("PATCH", path, shared_rt.admin, json={"lightSleepSeconds": None})
    assert r.status_code == 200 and r.json()["lightSleepSeconds"] is None
    assert r.json()["sleepTimeSeconds"] == 7200, "an absent field stays as it was"
    assert shared_rt.get(base + "/runtime").json()["lightSleepTime"] == 60
    for bad in ("20", 0, -5, 2.5, False):
        err = assert_error(shared_rt.request("PATCH", path, shared_rt.admin,
                                             json={"lightSleepSeconds": bad}), 400)
        assert "lightSleepSeconds" in err, err
        err = assert_error(shared_rt.post("/api/admin/hardware", shared_rt.admin,
                                          json={"name": unique("t"), "cpus": 1, "memory": 1 << 30,
                                                "lightSleepSeconds": bad}), 400)
        assert "lightSleepSeconds" in err, err
    assert_error(shared_rt.request("PATCH", "/api/admin/hardware/no-such-tier", shared_rt.admin,
                                   json={"lightSleepSeconds": 5}), 404, "no-such-tier")
    assert_error(shared_rt.request("PATCH", path, alice, json={"lightSleepSeconds": 5}), 403)
