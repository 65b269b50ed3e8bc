"""LFS objects are scoped per Space: knowing the SHA-256 of another Space's LFS file (say
from a pointer that was public once) must not yield its content.  Each door is tried
with the real huggingface_hub client, raw LFS batch calls and git: batch download, a
commit that points at the object, a pushed pointer file, and the resolve endpoint.  A
duplicate of the Space keeps its objects; the owner of the same bytes can still upload
them to a Space of their own."""
import hashlib
import os
import pathlib
import subprocess
import sys
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "integration"))
from test_5_support import shared_rt  # noqa: E402,F401

hf = pytest.importorskip("huggingface_hub")
from huggingface_hub import CommitOperationAdd, constants  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError  # noqa: E402

SECRET = b"model weights nobody else may read\n" + bytes(range(256)) * 64
OID = hashlib.sha256(SECRET).hexdigest()
LFS_JSON = "application/vnd.git-lfs+json"


@pytest.fixture(scope="module")
def world(shared_rt):
    mp = pytest.MonkeyPatch()
    mp.setattr(constants, "ENDPOINT", shared_rt.url)
    mp.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
               shared_rt.url + "/{repo_id}/resolve/{revision}/{filename}")
    for user in ("alice", "mallory"):
        shared_rt.add_user(user)
    alice = hf.HfApi(endpoint=shared_rt.url, token=shared_rt.token("alice", "write"))
    mallory = hf.HfApi(endpoint=shared_rt.url, token=shared_rt.token("mallory", "write"))
    alice.create_repo("alice/vault", repo_type="space", space_sdk="static", private=True)
    # binary bytes: preupload says "lfs", so this goes through the batch API and the store
    alice.upload_file(path_or_fileobj=SECRET, path_in_repo="weights.bin",
                      repo_id="alice/vault", repo_type="space")
    [entry] = alice.get_paths_info("alice/vault", ["weights.bin"], repo_type="space")
    assert entry.lfs is not None and entry.lfs.sha256 == OID
    mallory.create_repo("mallory/loot", repo_type="space", space_sdk="static")
    yield shared_rt, alice, mallory
    mp.undo()


def batch(rt, token, repo, operation, oid=OID, size=len(SECRET)):
    r = requests.post(f"{rt.url}/spaces/{repo}.git/info/lfs/objects/batch",
                      headers={"Authorization": f"Bearer {token}", "Accept": LFS_JSON,
                               "Content-Type": LFS_JSON},
                      json={"operation": operation, "transfers": ["basic"],
                            "objects": [{"oid": oid, "size": size}]}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["objects"][0]


def test_batch_download_of_another_spaces_object_is_not_found(world):
    rt, alice, mallory = world
    obj = batch(rt, mallory.token, "mallory/loot", "download")
    assert "actions" not in obj and obj["error"]["code"] == 404, obj
    # its owner's Space has it
    assert "download" in batch(rt, alice.token, "alice/vault", "download")["actions"]


def test_batch_upload_asks_for_the_bytes_again(world):
    """"Already stored" would let a client skip proving it holds the content."""
    rt, _, mallory = world
    obj = batch(rt, mallory.token, "mallory/loot", "upload")
    assert "upload" in obj.get("actions", {}), obj


def test_commit_pointing_at_another_spaces_object_is_refused(world):
    _, _, mallory = world
    op = CommitOperationAdd(path_in_repo="stolen.bin", path_or_fileobj=b"x")
    # What a hostile client sends: an lfsFile line naming the oid, no upload.
    op._upload_mode = "lfs"
    op._is_uploaded = True
    op.upload_info.sha256 = bytes.fromhex(OID)
    op.upload_info.size = len(SECRET)
    with pytest.raises(HfHubHTTPError) as e:
        mallory.create_commit("mallory/loot", [op], commit_message="steal", repo_type="space")
    assert e.value.response.status_code in (400, 404, 422), e.value.response.text
    assert "not uploaded" in e.value.response.text
    assert "stolen.bin" not in mallory.list_repo_files("mallory/loot", repo_type="space")


def test_pushed_pointer_neither_resolves_nor_builds_the_content(world, tmp_path):
    rt, _, mallory = world
    work = tmp_path / "loot"
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_AUTHOR_NAME="m", GIT_AUTHOR_EMAIL="m@x",
               GIT_COMMITTER_NAME="m", GIT_COMMITTER_EMAIL="m@x", HOME=str(tmp_path),
               GIT_CONFIG_NOSYSTEM="1")

    def git(*args):
        # no git-lfs hooks or filters: the attacker pushes the pointer text as it is
        p = subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "core.hooksPath=/dev/null",
                            *args], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (args[0], p.stderr)

    work.mkdir()
    git("init", "-q")
    (work / "README.md").write_text("---\nsdk: static\n---\n")
    (work / "index.html").write_text("<p>hi</p>\n")
    (work / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    # the pointer text git-lfs would write, committed as a plain blob (no upload)
    (work / "stolen.bin").write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize {len(SECRET)}\n")
    git("add", "-A")
    git("commit", "-q", "-m", "pointer only")
    port = rt.url.rsplit(":", 1)[1]
    git("push", "-q", f"http://m:{mallory.token}@127.0.0.1:{port}/spaces/mallory/loot", "main")
    r = requests.get(f"{rt.url}/spaces/mallory/loot/resolve/main/stolen.bin",
                     headers={"Authorization": f"Bearer {mallory.token}"}, timeout=30)
    assert r.status_code == 404 and SECRET not in r.content, (r.status_code, r.content[:200])
    # the build leaves the pointer (its log says why) and never copies the object in
    end = time.time() + 120
    log = ""
    while time.time() < end:
        log = requests.get(f"{rt.url}/api/spaces/mallory/loot/logs/build?follow=0",
                           headers={"Authorization": f"Bearer {mallory.token}"}, timeout=30).text
        if "never uploaded to this Space" in log:
            break
        time.sleep(0.2)
    assert "never uploaded to this Space" in log, log[-2000:]
    for f in (pathlib.Path(rt.data_dir) / "layers" / "app").rglob("stolen.bin"):
        assert f.read_bytes() != SECRET, f


def test_a_duplicate_keeps_its_objects(world, tmp_path):
    rt, alice, _ = world
    r = requests.post(f"{rt.url}/api/spaces/alice/vault/duplicate",
                      headers={"Authorization": f"Bearer {alice.token}"},
                      json={"repository": "alice/vault-copy", "private": True}, timeout=30)
    assert r.status_code == 200, r.text
    path = hf.hf_hub_download("alice/vault-copy", "weights.bin", repo_type="space",
                              endpoint=rt.url, token=alice.token, cache_dir=tmp_path / "c")
    with open(path, "rb") as f:
        assert f.read() == SECRET


def test_someone_holding_the_bytes_can_still_upload_them(world, tmp_path):
    rt, _, mallory = world
    mallory.upload_file(path_or_fileobj=SECRET, path_in_repo="mine.bin", repo_id="mallory/loot",
                        repo_type="space")
    path = hf.hf_hub_download("mallory/loot", "mine.bin", repo_type="space", endpoint=rt.url,
                              token=mallory.token, cache_dir=tmp_path / "c")
    with open(path, "rb") as f:
        assert f.read() == SECRET
