"""Hostile Space repositories pushed to a real runtimed: each ends in a clear stage with a
message that says what to fix, and nothing on the host changes.

The file size limit is lowered through runtimed's config (max_file_size: 1M) and a 2 MB
file is pushed, rather than pushing 2 GB; the build timeout is lowered the same way
(build_timeout_s) so a build that never ends is stopped within seconds."""
import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "integration"))
from test_5_support import Runtimed  # noqa: E402
from test_70_support import (build_log, delete_all_spaces, git, head, make_repo,  # noqa: E402
                             push, wait_build)

TIMEOUT_S = 25
GRADIO_README = "---\nsdk: gradio\napp_file: app.py\n---\n"
STATIC_README = "---\nsdk: static\napp_file: index.html\n---\n"


def digest(path):
    try:
        return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@pytest.fixture(scope="module")
def rt(bin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    conf = base / "runtimed.yaml"
    conf.write_text(f"build_timeout_s: {TIMEOUT_S}\nmax_file_size: 1M\n")
    watched = ["/etc/shadow", "/etc/passwd", "/etc/hosts"]
    before = {p: digest(p) for p in watched}
    d = Runtimed(bin_dir, base / "data", config=conf).start()
    d.add_user("mallory")
    d.mallory = d.token("mallory", "write")
    yield d
    assert d.alive(), "runtimed died: " + d.log()[-2000:]
    delete_all_spaces(d)
    d.stop()
    assert {p: digest(p) for p in watched} == before, "a host file changed"
    # Failed builds leave no half-made layers behind.
    for kind in ("app", "deps"):
        layers = pathlib.Path(d.data_dir) / "layers" / kind
        if layers.is_dir():
            assert not [p for p in layers.iterdir() if p.name.startswith(".tmp-")]


def push_and_wait(rt, tmp_path, name, sdk="gradio", files=None, work=None):
    assert rt.create_space("mallory", name, rt.mallory, sdk=sdk).status_code == 200
    work = work or make_repo(tmp_path / name, files=files)
    push(rt, work, "mallory", name, rt.mallory)
    sha = head(work)
    status, runtime = wait_build(rt, "mallory", name, sha, rt.mallory, timeout=TIMEOUT_S * 4)
    return sha, status, runtime


def test_symlink_to_etc_shadow_is_refused(rt, tmp_path):
    work = make_repo(tmp_path / "w", files={"README.md": STATIC_README, "index.html": "hi"})
    os.symlink("/etc/shadow", work / "shadow")
    os.symlink("../../../../../../etc/shadow", work / "climb")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "links")
    sha, status, runtime = push_and_wait(rt, tmp_path, "links", sdk="static", work=work)
    assert status == "failed"
    assert runtime["stage"] == "BUILD_ERROR"
    msg = runtime["errorMessage"]
    assert "symlink" in msg and ("'shadow'" in msg or "'climb'" in msg), msg
    assert not (pathlib.Path(rt.data_dir) / "layers" / "app" / sha).exists()


def test_file_over_the_size_limit_is_refused(rt, tmp_path):
    sha, status, runtime = push_and_wait(rt, tmp_path, "big", sdk="static", files={
        "README.md": STATIC_README, "index.html": "hi", "big.bin": b"\0" * (2 << 20)})
    assert status == "failed" and runtime["stage"] == "BUILD_ERROR"
    assert "big.bin" in runtime["errorMessage"], runtime
    assert not (pathlib.Path(rt.data_dir) / "layers" / "app" / sha).exists()


def test_fifo_is_never_pushed(rt, tmp_path):
    work = make_repo(tmp_path / "fifo", files={"README.md": STATIC_README, "index.html": "hi"})
    os.mkfifo(work / "pipe")
    git(work, "add", "-A")  # git cannot store a fifo: it leaves it out
    git(work, "commit", "-qm", "fifo", "--allow-empty")
    sha, status, runtime = push_and_wait(rt, tmp_path, "fifo", sdk="static", work=work)
    assert status == "done", runtime
    layer = pathlib.Path(rt.data_dir) / "layers" / "app" / sha
    assert (layer / "index.html").is_file() and not (layer / "pipe").exists()


def test_device_mode_entry_never_becomes_a_device(rt, tmp_path):
    """A tree entry with a character-device mode (crafted with git mktree; git's fsck only
    warns, and git reads any such mode as a submodule link): it is skipped, never made."""
    work = make_repo(tmp_path / "mode", files={"README.md": STATIC_README, "index.html": "hi"})
    blob = git(work, "rev-parse", "HEAD:index.html").stdout.strip()
    readme = git(work, "rev-parse", "HEAD:README.md").stdout.strip()
    tree_text = (f"100644 blob {readme}\tREADME.md\n100644 blob {blob}\tindex.html\n"
                 f"020644 blob {blob}\tdev\n")
    tree = subprocess.run(["git", "mktree"], cwd=work, input=tree_text, capture_output=True,
                          text=True, check=True).stdout.strip()
    c = git(work, "commit-tree", tree, "-p", "HEAD", "-m", "device mode").stdout.strip()
    git(work, "update-ref", "refs/heads/main", c)
    assert rt.create_space("mallory", "mode", rt.mallory, sdk="static").status_code == 200
    p = push(rt, work, "mallory", "mode", rt.mallory, check=False)
    if p.returncode != 0:
        assert "mode" in p.stderr.lower(), p.stderr  # git's object checks refused it
        return
    status, runtime = wait_build(rt, "mallory", "mode", c, rt.mallory)
    layer = pathlib.Path(rt.data_dir) / "layers" / "app" / c
    if status == "done":
        assert (layer / "index.html").is_file()
        assert not os.path.lexists(layer / "dev")
        assert any("submodules skipped" in line
                   for line in build_log(rt, "mallory", "mode", rt.mallory))
    else:
        assert runtime["stage"] == "BUILD_ERROR" and "dev" in runtime["errorMessage"], runtime
        assert not layer.exists()


def test_broken_yaml_is_a_config_error(rt, tmp_path):
    _, status, runtime = push_and_wait(rt, tmp_path, "yaml", files={
        "README.md": "---\nsdk: gradio\ntitle: [unclosed\n---\n", "app.py": "print(1)\n"})
    assert status == "failed" and runtime["stage"] == "CONFIG_ERROR"
    assert "README.md" in runtime["errorMessage"], runtime


def test_missing_readme_is_a_config_error(rt, tmp_path):
    _, status, runtime = push_and_wait(rt, tmp_path, "noreadme", files={"app.py": "print(1)\n"})
    assert status == "failed" and runtime["stage"] == "CONFIG_ERROR", runtime
    assert "README.md" in runtime["errorMessage"], runtime


def test_unknown_sdk_is_a_config_error(rt, tmp_path):
    _, status, runtime = push_and_wait(rt, tmp_path, "sdk", files={
        "README.md": "---\nsdk: gradoo\n---\n", "app.py": "print(1)\n"})
    assert runtime["stage"] == "CONFIG_ERROR" and "gradoo" in runtime["errorMessage"], runtime


def test_missing_app_file(rt, tmp_path):
    _, status, runtime = push_and_wait(rt, tmp_path, "noapp", files={
        "README.md": GRADIO_README + "\nno app here\n", "main.py": "print(1)\n"})
    assert status == "failed" and runtime["stage"] == "NO_APP_FILE"
    assert "app.py" in runtime["errorMessage"], runtime


def test_unknown_keys_are_warned_about_in_the_log(rt, tmp_path):
    _, status, runtime = push_and_wait(rt, tmp_path, "warn", sdk="static", files={
        "README.md": "---\nsdk: static\ncolour: blue\n---\n", "index.html": "hi"})
    assert status == "done", runtime
    lines = build_log(rt, "mallory", "warn", rt.mallory)
    assert any(line.startswith("warning: ") and "colour" in line for line in lines), lines


def test_requirements_that_fail_to_install(rt, tmp_path):
    _, status, runtime = push_and_wait(rt, tmp_path, "reqs", files={
        "README.md": GRADIO_README, "app.py": "print(1)\n",
        "requirements.txt": "spaceport-no-such-package-xyz==9.9.9\n"})
    assert status == "failed" and runtime["stage"] == "BUILD_ERROR"
    msg = runtime["errorMessage"]
    assert "installing dependencies failed" in msg, msg
    assert "spaceport-no-such-package-xyz" in msg, msg  # pip's own words, from the log tail


BACKEND = '''
import time
def get_requires_for_build_wheel(config_settings=None):
    return []
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    while True:
        print("still building...", flush=True)
        time.sleep(1)
build_wheel = prepare_metadata_for_build_wheel
'''


def test_a_build_that_never_ends_hits_the_timeout(rt, tmp_path):
    _, status, runtime = push_and_wait(rt, tmp_path, "forever", files={
        "README.md": GRADIO_README, "app.py": "print(1)\n",
        "requirements.txt": "./forever\n",
        "forever/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                  'backend-path = ["."]\n[project]\nname = "forever"\n'
                                  'version = "1"\n',
        "forever/backend.py": BACKEND})
    assert status == "failed" and runtime["stage"] == "BUILD_ERROR"
    assert f"timed out after {TIMEOUT_S} s" in runtime["errorMessage"], runtime
