"""Push and build: real git pushes over smart HTTP to a real runtimed, real builds of the
example Spaces (real pip installs of Gradio and Streamlit), their layers checked inside a
real sandbox.  The Gradio layer is built once and shared by the tests of this module."""
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import time

import pytest
import requests

from test_5_support import Runtimed
from test_70_support import (BUILDING, build_log, commit, db_build, delete_all_spaces,
                             deps_layers, git, head, make_repo, push, push_url, wait_build)


@pytest.fixture(scope="module")
def rt(bin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("rt70")
    cfg = base / "runtimed.yaml"
    # These tests check builds and their hand-off, and poll for an upstream: a Space
    # frozen by light sleep while a slow machine runs the module has none.
    cfg.write_text("light_sleep_ms: -1\nmetrics_listen: ''\n")
    d = Runtimed(bin_dir, base / "data", cfg).start()
    yield d
    assert d.alive(), "runtimed died during the module: " + d.log()[-2000:]
    delete_all_spaces(d)
    d.stop()


@pytest.fixture(scope="module")
def alice(rt):
    rt.add_user("alice")
    return rt.token("alice", "write")


@pytest.fixture(scope="module")
def gradio_space(rt, alice, tmp_path_factory):
    """alice/hello-gradio pushed and built once: (work tree, sha, runtime)."""
    r = rt.create_space("alice", "hello-gradio", alice, sdk="gradio")
    assert r.status_code == 200, r.text
    work = make_repo(tmp_path_factory.mktemp("w") / "hello-gradio", "hello-gradio")
    sha = head(work)
    # Exactly the README's command: any user name, the token as the password.
    push(rt, work, "alice", "hello-gradio", alice)
    status, runtime = wait_build(rt, "alice", "hello-gradio", sha, alice)
    return work, sha, status, runtime


def layer_python(bin_dir, layer, code):
    """Runs @code with the layer's venv inside a sandbox, mounted where Spaces see it."""
    p = subprocess.run([str(bin_dir / "spacebox"), "run", "--ro-bind", f"{layer}:/home/user/.venv",
                        "--", "/home/user/.venv/bin/python", "-c", code],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def deps_key_of(lines):
    for line in lines:
        for marker in ("installing dependencies into layer ", "dependencies: reusing layer "):
            if marker in line:
                return line.split(marker, 1)[1].split()[0]
    return None


def test_gradio_push_builds_a_layer_that_imports(rt, bin_dir, alice, gradio_space):
    work, sha, status, runtime = gradio_space
    assert status == "done", build_log(rt, "alice", "hello-gradio", alice)[-20:]
    assert runtime["stage"] not in ("BUILD_ERROR", "CONFIG_ERROR", "NO_APP_FILE"), runtime
    lines = build_log(rt, "alice", "hello-gradio", alice)
    assert any(f"Commit SHA: {sha[:7]}" in line for line in lines), lines[:3]
    assert any("gradio" in line and "6.31.0" in line for line in lines)
    if not os.path.exists("/usr/bin/python3.10"):
        assert any("python_version 3.10 asked, using 3." in line for line in lines), lines[:5]
    layers = deps_layers(rt)
    assert len(layers) == 1, layers
    assert deps_key_of(lines) == layers[0][:12]
    layer = pathlib.Path(rt.data_dir) / "layers" / "deps" / layers[0]
    assert layer_python(bin_dir, layer, "import gradio; print(gradio.__version__)") == "6.31.0"
    # The app layer is the commit's files.
    app = pathlib.Path(rt.data_dir) / "layers" / "app" / sha
    assert (app / "app.py").read_text() == (work / "app.py").read_text()


def test_build_log_streams_as_sse(rt, alice, gradio_space):
    r = rt.get("/api/spaces/alice/hello-gradio/logs/build", alice, stream=True, timeout=10)
    assert r.status_code == 200
    first = None
    for raw in r.iter_lines():
        if raw.startswith(b"data: "):
            first = json.loads(raw[6:])
            break
    r.close()
    assert first and first["data"].startswith("===== Build Queued at ")


def test_code_only_push_reuses_the_dependency_layer(rt, alice, gradio_space):
    work, first_sha, _, _ = gradio_space
    before = deps_layers(rt)
    sha = commit(work, {"app.py": (work / "app.py").read_text() + "\n# a code-only change\n"})
    push(rt, work, "alice", "hello-gradio", alice)
    status, _ = wait_build(rt, "alice", "hello-gradio", sha, alice)
    assert status == "done"
    lines = build_log(rt, "alice", "hello-gradio", alice)
    mine = lines[max(i for i, line in enumerate(lines) if f"Commit SHA: {sha[:7]}" in line):]
    assert any(f"dependencies: reusing layer {before[0][:12]}" in line for line in mine), mine
    assert deps_layers(rt) == before  # the same layer, not a new one


def test_clone_fetch_and_force_push(rt, alice, gradio_space, tmp_path):
    work, _, _, _ = gradio_space
    clone = tmp_path / "clone"
    # Also at OWNER/NAME.git, as other git hosts spell it.
    git(tmp_path, "clone", "-q", push_url(rt, "alice", "hello-gradio", alice) + ".git", str(clone))
    assert head(clone) == head(work)
    git(clone, "fetch", "-q", "origin")
    # A force-push of an unrelated history is accepted and builds.
    other = make_repo(tmp_path / "other", "hello-gradio", {"NOTES.md": "a new history\n"})
    push(rt, other, "alice", "hello-gradio", alice, "--force")
    status, _ = wait_build(rt, "alice", "hello-gradio", head(other), alice)
    assert status == "done"
    git(clone, "fetch", "-q", "origin")
    assert git(clone, "rev-parse", "origin/main").stdout.strip() == head(other)


def test_streamlit_push_builds_a_layer_that_imports(rt, bin_dir, alice, tmp_path):
    assert rt.create_space("alice", "hello-streamlit", alice, sdk="streamlit").status_code == 200
    work = make_repo(tmp_path / "st", "hello-streamlit")
    push(rt, work, "alice", "hello-streamlit", alice)
    status, _ = wait_build(rt, "alice", "hello-streamlit", head(work), alice)
    lines = build_log(rt, "alice", "hello-streamlit", alice)
    assert status == "done", lines[-20:]
    key = deps_key_of(lines)
    layer = next(pathlib.Path(rt.data_dir, "layers", "deps").glob(key + "*"))
    assert layer_python(bin_dir, layer,
                        "import streamlit; print(streamlit.__version__)") == "1.67.0"


def test_static_space_has_no_dependency_layer(rt, alice, tmp_path):
    assert rt.create_space("alice", "hello-static", alice, sdk="static").status_code == 200
    work = make_repo(tmp_path / "static", "hello-static")
    before = deps_layers(rt)
    # A push to another branch builds nothing and leaves the stage alone.
    git(work, "push", "-q", push_url(rt, "alice", "hello-static", alice), "main:refs/heads/dev")
    assert rt.get("/api/spaces/alice/hello-static/runtime", alice).json()["stage"] == "NO_APP_FILE"
    push(rt, work, "alice", "hello-static", alice)
    # The moment the push returns, the stage is no longer the one from before it.
    assert rt.get("/api/spaces/alice/hello-static/runtime", alice).json()["stage"] != "NO_APP_FILE"
    status, _ = wait_build(rt, "alice", "hello-static", head(work), alice)
    assert status == "done"
    assert deps_layers(rt) == before
    assert (pathlib.Path(rt.data_dir) / "layers" / "app" / head(work) / "index.html").is_file()


def test_large_history_push(rt, alice, tmp_path):
    """A push whose pack is far over git's 1 MiB post buffer (so sent chunked), with a
    history of many commits, arrives whole and builds."""
    assert rt.create_space("alice", "large", alice, sdk="static").status_code == 200
    work = make_repo(tmp_path / "large", "hello-static",
                     {"data/blob.bin": os.urandom(24 << 20)})
    for i in range(150):
        (work / "history.txt").write_text(f"commit {i}\n")
        git(work, "add", "-A")
        git(work, "commit", "-qm", f"c{i}")
    push(rt, work, "alice", "large", alice)
    status, _ = wait_build(rt, "alice", "large", head(work), alice)
    assert status == "done"
    layer = pathlib.Path(rt.data_dir) / "layers" / "app" / head(work)
    assert (layer / "data" / "blob.bin").read_bytes() == (work / "data" / "blob.bin").read_bytes()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", push_url(rt, "alice", "large", alice), str(clone))
    assert git(clone, "rev-list", "--count", "HEAD").stdout.strip() == "151"


def test_push_auth(rt, alice, tmp_path):
    rt.add_user("bob")
    bob = rt.token("bob", "write")
    alice_read = rt.token("alice", "read")
    assert rt.create_space("alice", "guarded", alice, sdk="static").status_code == 200
    assert rt.create_space("alice", "other", alice, sdk="static").status_code == 200
    other_only = rt.token("alice", "write", spaces=["alice/other"])
    work = make_repo(tmp_path / "g", "hello-static")

    p = push(rt, work, "alice", "guarded", None, check=False)
    assert p.returncode != 0 and ("Authentication" in p.stderr or "Username" in p.stderr), p.stderr
    p = push(rt, work, "alice", "guarded", alice_read, check=False)
    assert p.returncode != 0 and "403" in p.stderr, p.stderr
    p = push(rt, work, "alice", "guarded", bob, check=False)
    assert p.returncode != 0 and "403" in p.stderr, p.stderr
    # Scoped to another Space: this public one is readable, not writable.
    p = push(rt, work, "alice", "guarded", other_only, check=False)
    assert p.returncode != 0 and "403" in p.stderr, p.stderr
    p = push(rt, work, "alice", "guarded", "sp_" + "x" * 40, check=False)
    assert p.returncode != 0
    push(rt, work, "alice", "guarded", alice)
    wait_build(rt, "alice", "guarded", head(work), alice)


def test_private_space_is_not_cloneable_without_read(rt, alice, tmp_path):
    carol = (rt.add_user("carol"), rt.token("carol", "write"))[1]
    alice_read = rt.token("alice", "read")
    assert rt.create_space("alice", "secret", alice, sdk="static", private=True).status_code == 200
    work = make_repo(tmp_path / "s", "hello-static")
    push(rt, work, "alice", "secret", alice)
    wait_build(rt, "alice", "secret", head(work), alice)

    p = git(tmp_path, "clone", "-q", push_url(rt, "alice", "secret", None), "c1", check=False)
    assert p.returncode != 0
    p = git(tmp_path, "clone", "-q", push_url(rt, "alice", "secret", carol), "c2", check=False)
    assert p.returncode != 0 and "not found" in p.stderr.lower(), p.stderr
    git(tmp_path, "clone", "-q", push_url(rt, "alice", "secret", alice_read), "c3")
    assert head(tmp_path / "c3") == head(work)


def test_delete_removes_the_repository(rt, alice, tmp_path):
    assert rt.create_space("alice", "gone", alice, sdk="static").status_code == 200
    work = make_repo(tmp_path / "gone", "hello-static")
    push(rt, work, "alice", "gone", alice)
    repo = pathlib.Path(rt.data_dir) / "repos" / "alice" / "gone.git"
    assert repo.is_dir()
    r = rt.request("DELETE", "/api/repos/delete", alice,
                   json={"type": "space", "name": "gone", "organization": "alice"})
    assert r.status_code == 200, r.text
    assert not repo.exists()
    # A new Space of that name starts with an empty repository.
    assert rt.create_space("alice", "gone", alice, sdk="static").status_code == 200
    p = git(tmp_path, "ls-remote", push_url(rt, "alice", "gone", alice))
    assert p.stdout.strip() == ""


SLOW_BACKEND = '''
import time
def get_requires_for_build_wheel(config_settings=None):
    return []
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    time.sleep(3600)
build_wheel = prepare_metadata_for_build_wheel
'''


def wait_log(rt, owner, name, token, pred, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lines = build_log(rt, owner, name, token)
        if pred(lines):
            return lines
        time.sleep(0.1)
    raise AssertionError(f"build log never matched: {build_log(rt, owner, name, token)[-10:]}")


def test_restart_requeues_and_a_newer_push_supersedes(rt, alice, gradio_space, tmp_path):
    """A build interrupted by a runtimed restart is queued again; a newer push cancels the
    running build of the same Space and builds the new commit."""
    assert rt.create_space("alice", "slow", alice, sdk="gradio").status_code == 200
    work = make_repo(tmp_path / "slow", "hello-gradio", {
        "requirements.txt": "./slow\n",
        "slow/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                               'backend-path = ["."]\n[project]\nname = "slow"\nversion = "1"\n',
        "slow/backend.py": SLOW_BACKEND})
    slow = head(work)
    push(rt, work, "alice", "slow", alice)
    in_pip = lambda lines: any("slow" in line and ("Processing" in line or "Preparing" in line)
                               for line in lines)
    wait_log(rt, "alice", "slow", alice, in_pip)
    rt.stop()
    rt.start()
    # Queued again after the restart: a second header for the same commit, pip again.
    wait_log(rt, "alice", "slow", alice,
             lambda lines: sum(f"Commit SHA: {slow[:7]}" in line for line in lines) == 2)
    assert rt.get("/api/spaces/alice/slow/runtime", alice).json()["stage"] == "BUILDING"
    (work / "requirements.txt").unlink()
    shutil.rmtree(work / "slow")
    fast = commit(work, {"app.py": (work / "app.py").read_text() + "\n# fast\n"})
    push(rt, work, "alice", "slow", alice)
    status, _ = wait_build(rt, "alice", "slow", fast, alice)
    assert status == "done"
    assert db_build(rt, "slow", slow)[0] == "cancelled"
    lines = build_log(rt, "alice", "slow", alice)
    assert any("cancelled by a newer push" in line for line in lines), lines[-10:]


def upstream_of(rt, host):
    routes = rt.get("/api/proxy/routes", rt.proxy).json()
    return next((s["upstream"] for s in routes["spaces"] if s["host"] == host), None)


def test_a_running_space_keeps_serving_while_its_new_commit_builds(rt, alice, gradio_space):
    work, _, _, _ = gradio_space
    deadline = time.time() + 120
    while (rt.get("/api/spaces/alice/hello-gradio/runtime", alice).json()["stage"] != "RUNNING"
           or not upstream_of(rt, "alice-hello-gradio")):
        assert time.time() < deadline, rt.log()[-2000:]
        time.sleep(0.2)
    (work / "requirements.txt").write_text("./slow\n")
    (work / "slow").mkdir()
    (work / "slow" / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        '[project]\nname = "slow"\nversion = "1"\n')
    slow = commit(work, {"slow/backend.py": SLOW_BACKEND})
    push(rt, work, "alice", "hello-gradio", alice, "--force")
    wait_log(rt, "alice", "hello-gradio", alice,
             lambda lines: f"Commit SHA: {slow[:7]}" in "\n".join(lines[-50:]))
    runtime = rt.get("/api/spaces/alice/hello-gradio/runtime", alice).json()
    assert runtime["stage"] == "RUNNING_BUILDING", runtime
    upstream = upstream_of(rt, "alice-hello-gradio")
    assert upstream, rt.get("/api/proxy/routes", rt.proxy).json()
    assert requests.get(f"http://{upstream}/", timeout=10).status_code == 200
    # A fix supersedes the endless build; the Space ends up running the fix.
    (work / "requirements.txt").unlink()
    shutil.rmtree(work / "slow")
    fix = commit(work, {"app.py": (work / "app.py").read_text() + "\n# fixed\n"})
    push(rt, work, "alice", "hello-gradio", alice, "--force")
    assert wait_build(rt, "alice", "hello-gradio", fix, alice)[0] == "done"
    assert db_build(rt, "hello-gradio", slow)[0] == "cancelled"


def test_factory_restart_rebuilds_without_the_layer_cache(rt, alice, gradio_space):
    """Last in this module: the rebuild it starts is cancelled by the teardown's delete."""
    work, _, _, _ = gradio_space
    sha = head(work)
    r = rt.post("/api/spaces/alice/hello-gradio/restart", alice, params={"factory": "true"})
    assert r.status_code == 200, r.text
    wait_log(rt, "alice", "hello-gradio", alice,
             lambda lines: any("factory rebuild: cache ignored" in line for line in lines[-30:]))
    con = sqlite3.connect(f"file:{rt.data_dir}/spaceport.db?mode=ro", uri=True)
    try:
        factory = con.execute("SELECT factory FROM builds WHERE sha = ? ORDER BY id DESC LIMIT 1",
                              (sha,)).fetchone()[0]
    finally:
        con.close()
    assert factory == 1
