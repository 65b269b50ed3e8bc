"""Garbage collection of build outputs (runtimed/gc.c, docs/builds.md): a real runtimed,
real pushes and builds, POST /api/admin/gc and `spacectl admin gc`.  Static Spaces give
app layers in about a second; a "gradio" template of this module's own (a venv without
pip, served by http.server) gives a dependency layer as fast, so two Spaces can share
one.  The grace and the dependency keep are 0 here so the collector's decisions come
from what is in use alone; the timer is off (gc_interval_s: 0)."""
import os
import pathlib
import shutil
import subprocess
import time

import pytest
import requests

from test_5_support import Runtimed, free_port
from test_70_support import commit, delete_all_spaces, head, make_repo, push

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Spaces run in sandboxes: root")

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent

FAST_GRADIO = """sdk: gradio
base:
  image: python
  python: ${PYTHON_VERSION}
build:
  steps:
    - name: venv
      run: [python3, -m, venv, --without-pip, /home/user/.venv]
    - name: requirements.txt
      if_exists: requirements.txt
      run: [/bin/true]
run:
  command: [/home/user/.venv/bin/python, -m, http.server, "${PORT}"]
  port: 7860
  workdir: /home/user/app
  uid: 1000
  env:
    HOME: /home/user
health:
  path: /
  interval: 1s
  timeout: 5s
"""

GRADIO_README = """---
title: t
sdk: gradio
app_file: app.py
---
"""


@pytest.fixture(scope="module")
def env(bin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("rt71")
    templates = base / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "gradio.yaml").write_text(FAST_GRADIO)
    conf = base / "runtimed.yaml"
    metrics = f"127.0.0.1:{free_port()}"
    conf.write_text(f"light_sleep_ms: -1\nmetrics_listen: '{metrics}'\ngc_interval_s: 0\n"
                    "gc_app_grace_s: 0\ngc_deps_keep_s: 0\ngc_pip_cache_max: 64K\n"
                    f"templates_dir: {templates}\n")
    rt = Runtimed(bin_dir, base / "data", config=conf).start()
    rt.metrics = metrics
    rt.add_user("alice")
    token = rt.token("alice", "write")
    yield rt, token, base
    assert rt.alive(), "runtimed died during the module: " + rt.log()[-2000:]
    delete_all_spaces(rt)
    rt.stop()


def runtime(rt, name, token):
    return rt.get(f"/api/spaces/alice/{name}/runtime", token).json()


def wait_running(rt, name, token, sha, timeout=120):
    deadline = time.time() + timeout
    j = None
    while time.time() < deadline:
        j = rt.get(f"/api/spaces/alice/{name}", token).json()
        stage = j.get("runtime", {}).get("stage")
        if stage == "RUNNING" and j.get("sha") == sha:
            return j
        if stage in ("BUILD_ERROR", "CONFIG_ERROR", "NO_APP_FILE", "RUNTIME_ERROR"):
            raise AssertionError(f"{name}: {j}: {rt.log()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{name}: not RUNNING on {sha[:12]}: {j}: {rt.log()[-2000:]}")


def gc(rt):
    r = rt.post("/api/admin/gc", rt.admin)
    assert r.status_code == 200, r.text
    j = r.json()
    assert isinstance(j["removed"], list) and isinstance(j["freedBytes"], int), j
    return j


def layers(rt, kind):
    d = pathlib.Path(rt.data_dir) / "layers" / kind
    return set(os.listdir(d)) if d.is_dir() else set()


def instances_mounting(rt, needle):
    """Instance dirs whose spec.json names @needle."""
    run = pathlib.Path(rt.data_dir) / "run"
    return [p for p in run.glob("*/*/spec.json") if needle in p.read_text()]


def wait_unmounted(rt, needle, timeout=60):
    """The lifecycle retires a replaced version a few seconds after the switch."""
    deadline = time.time() + timeout
    while time.time() < deadline and instances_mounting(rt, needle):
        time.sleep(0.1)
    assert not instances_mounting(rt, needle), f"{needle[:12]} still mounted"


def create_static(rt, token, base, name):
    r = rt.create_space("alice", name, token, sdk="static")
    assert r.status_code == 200, r.text
    work = make_repo(base / "w" / name, "hello-static")
    push(rt, work, "alice", name, token)
    return work, head(work)


def create_gradio(rt, token, base, name):
    r = rt.create_space("alice", name, token, sdk="gradio")
    assert r.status_code == 200, r.text
    work = make_repo(base / "w" / name, None, {
        "README.md": GRADIO_README, "app.py": f"# {name}\n", "requirements.txt": "# none\n"})
    push(rt, work, "alice", name, token)
    return work, head(work)


def test_old_commit_goes_serving_one_stays(env):
    rt, token, base = env
    work, sha1 = create_static(rt, token, base, "web")
    wait_running(rt, "web", token, sha1)
    assert sha1 in layers(rt, "app")

    removed = gc(rt)["removed"]
    assert f"layers/app/{sha1}" not in removed, "the running Space's layer was removed"
    assert sha1 in layers(rt, "app")

    sha2 = commit(work, {"index.html": "<p>two</p>\n"})
    push(rt, work, "alice", "web", token)
    wait_running(rt, "web", token, sha2)
    wait_unmounted(rt, sha1)
    j = gc(rt)
    assert f"layers/app/{sha1}" in j["removed"], j
    assert j["freedBytes"] > 0, j
    assert f"layers/app/{sha2}" not in j["removed"], j
    assert sha1 not in layers(rt, "app") and sha2 in layers(rt, "app")
    # Removed for good, and nothing of it is left aside.
    assert not [n for n in layers(rt, "app") if sha1 in n]
    # The Space still serves, and a second run finds nothing more of it to take.
    assert runtime(rt, "web", token)["stage"] == "RUNNING"
    assert not [p for p in gc(rt)["removed"] if "layers/app/" in p and sha2 in p]


def test_shared_dependency_layer_stays_while_one_uses_it(env):
    rt, token, base = env
    _, sha_a = create_gradio(rt, token, base, "deps-a")
    _, sha_b = create_gradio(rt, token, base, "deps-b")
    wait_running(rt, "deps-a", token, sha_a)
    wait_running(rt, "deps-b", token, sha_b)
    deps = layers(rt, "deps")
    keys = [k for k in deps if not k.startswith(".")]
    assert len(keys) == 1, deps  # one layer, shared: same inputs
    key = keys[0]
    # A factory rebuild's leftover of that key: kept while an instance mounts the key.
    old = pathlib.Path(rt.data_dir) / "layers" / "deps" / f".old-{key}-1"
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))

    r = rt.request("DELETE", "/api/repos/delete", token,
                   json={"type": "space", "name": "deps-a", "organization": "alice"})
    assert r.status_code == 200, r.text
    wait_unmounted(rt, sha_a)
    j = gc(rt)
    assert f"layers/deps/{key}" not in j["removed"], j
    assert f"layers/deps/.old-{key}-1" not in j["removed"], j
    assert key in layers(rt, "deps") and old.is_dir()
    assert f"layers/app/{sha_a}" in j["removed"], j  # the deleted Space's own layer went

    r = rt.request("DELETE", "/api/repos/delete", token,
                   json={"type": "space", "name": "deps-b", "organization": "alice"})
    assert r.status_code == 200, r.text
    wait_unmounted(rt, key)
    j = gc(rt)
    assert f"layers/deps/{key}" in j["removed"], j
    assert f"layers/deps/.old-{key}-1" in j["removed"], j
    assert f"layers/app/{sha_b}" in j["removed"], j
    assert key not in layers(rt, "deps") and not old.exists()


def test_symlink_is_removed_as_a_link(env):
    rt, token, base = env
    outside = base / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me\n")
    app = pathlib.Path(rt.data_dir) / "layers" / "app"
    app.mkdir(parents=True, exist_ok=True)
    link = app / ("f" * 40)
    link.symlink_to(outside, target_is_directory=True)
    j = gc(rt)
    assert f"layers/app/{'f' * 40}" in j["removed"], j
    assert not os.path.lexists(link)
    assert (outside / "precious").read_text() == "keep me\n"


def test_leftovers_go_once_an_hour_old(env):
    rt, _, _ = env
    app = pathlib.Path(rt.data_dir) / "layers" / "app"
    app.mkdir(parents=True, exist_ok=True)
    stale, fresh = app / ".tmp-dead-abc123", app / ".tmp-live-abc123"
    for d in (stale, fresh):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f").write_bytes(b"x" * 10000)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    j = gc(rt)
    assert "layers/app/.tmp-dead-abc123" in j["removed"], j
    assert "layers/app/.tmp-live-abc123" not in j["removed"], j
    assert not stale.exists() and fresh.is_dir()
    shutil.rmtree(fresh)


def test_pip_caches_trimmed_and_orphans_removed(env):
    rt, token, base = env
    create_static(rt, token, base, "keeper")  # alice keeps a Space: her cache stays
    pip = pathlib.Path(rt.data_dir) / "cache" / "pip"
    ghost = pip / "ghost" / "http"
    ghost.mkdir(parents=True)
    (ghost / "blob").write_bytes(b"g" * 4096)
    mine = pip / "alice" / "wheels"
    mine.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for i in range(6):  # 6 x 32 KiB, the oldest first, over the 64 KiB cap
        f = mine / f"w{i}.whl"
        f.write_bytes(os.urandom(32 * 1024))
        os.utime(f, (now - 1000 + i, now - 1000 + i))
    j = gc(rt)
    assert "cache/pip/ghost" in j["removed"], j
    assert not (pip / "ghost").exists()
    assert any(p.startswith("cache/pip/alice (") for p in j["removed"]), j
    left = sorted(p.name for p in mine.iterdir())
    assert left and "w5.whl" in left and "w0.whl" not in left, left
    assert sum(p.stat().st_blocks * 512 for p in mine.iterdir()) <= 64 * 1024


def test_spacectl_admin_gc(env, bin_dir):
    rt, token, _ = env
    app = pathlib.Path(rt.data_dir) / "layers" / "app"
    stale = app / ".tmp-spacectl-1"
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("SPACEPORT_") and "proxy" not in k.lower()}
    e.update(SPACEPORT_URL=rt.url, SPACEPORT_TOKEN=rt.admin)
    p = subprocess.run([bin_dir / "spacectl", "admin", "gc"], capture_output=True, text=True,
                       env=e, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "removed layers/app/.tmp-spacectl-1\n" in p.stdout, p.stdout
    assert "freed" in p.stdout.splitlines()[-1], p.stdout
    # Only an unscoped admin write token may run it.
    e["SPACEPORT_TOKEN"] = token
    p = subprocess.run([bin_dir / "spacectl", "admin", "gc"], capture_output=True, text=True,
                       env=e, timeout=60)
    assert p.returncode != 0 and "403" in p.stderr, (p.stdout, p.stderr)


def test_metrics_count_runs_and_bytes(env):
    rt, _, _ = env
    text = requests.get(f"http://{rt.metrics}/metrics", timeout=10).text
    values = {line.split()[0]: int(line.split()[1]) for line in text.splitlines()
              if line.startswith("spaceport_gc_")}
    assert values.get("spaceport_gc_runs_total", 0) >= 5, values
    assert values.get("spaceport_gc_freed_bytes_total", 0) > 0, values


def test_timer_runs_it(bin_dir, tmp_path):
    """gc_interval_s: the build worker runs the collector on its own."""
    conf = tmp_path / "runtimed.yaml"
    conf.write_text("metrics_listen: ''\ngc_interval_s: 1\n")
    data = tmp_path / "data"
    stale = data / "layers" / "app" / ".tmp-timer-1"
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    rt = Runtimed(bin_dir, data, config=conf).start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline and stale.exists():
            time.sleep(0.1)
        assert not stale.exists(), rt.log()[-2000:]
        assert "garbage collection: 1 removed" in rt.log(), rt.log()[-2000:]
    finally:
        rt.stop()
