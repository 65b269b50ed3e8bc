"""The real huggingface_hub client's file paths against runtimed: preupload, NDJSON commits,
LFS batch + basic transfer, resolve (hf_hub_download), tree / paths-info, deletions, the
Hub's typed errors, and git-lfs pushing to the same store."""
import base64
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest
import requests

from test_5_support import shared_rt  # noqa: F401

hf = pytest.importorskip("huggingface_hub")
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, constants  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError)

SHA = re.compile(r"^[0-9a-f]{40}$")
REPO = "admin/files"
EXAMPLES = pathlib.Path(__file__).resolve().parent.parent.parent / "examples"


@pytest.fixture(scope="module")
def api(shared_rt):
    # What HF_ENDPOINT does when set before the import (as users of a private hub do): the
    # client parses commit URLs against it and builds resolve URLs from it.
    mp = pytest.MonkeyPatch()
    mp.setattr(constants, "ENDPOINT", shared_rt.url)
    mp.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
               shared_rt.url + "/{repo_id}/resolve/{revision}/{filename}")
    a = hf.HfApi(endpoint=shared_rt.url, token=shared_rt.admin)
    # static: the builds these commits queue need no package install
    a.create_repo(REPO, repo_type="space", space_sdk="static", exist_ok=True)
    yield a
    mp.undo()


def files(api, repo=REPO, **kw):
    return sorted(api.list_repo_files(repo, repo_type="space", **kw))


def download(api, tmp_path, name, repo=REPO, **kw):
    path = hf.hf_hub_download(repo, name, repo_type="space", endpoint=api.endpoint,
                              token=api.token, cache_dir=tmp_path / "cache", **kw)
    with open(path, "rb") as f:
        return f.read()


def test_upload_file_list_download(api, tmp_path):
    page = b"<!doctype html><title>hi</title><p>hello from the commit API</p>\n"
    info = api.upload_file(path_or_fileobj=page, path_in_repo="index.html", repo_id=REPO,
                           repo_type="space", commit_message="first page")
    assert SHA.match(info.oid) and info.commit_url.endswith("/commit/" + info.oid)
    assert "index.html" in files(api)
    assert download(api, tmp_path, "index.html") == page
    assert download(api, tmp_path, "index.html", revision=info.oid) == page
    assert api.file_exists(REPO, "index.html", repo_type="space")
    assert not api.file_exists(REPO, "nope.html", repo_type="space")
    space = api.space_info(REPO)
    assert space.sha == info.oid
    assert "index.html" in [s.rfilename for s in space.siblings]
    assert api.space_info(REPO, revision=info.oid).sha == info.oid
    assert api.revision_exists(REPO, "main", repo_type="space")
    assert not api.revision_exists(REPO, "no-such-branch", repo_type="space")
    with pytest.raises(RevisionNotFoundError):
        api.space_info(REPO, revision="f" * 40)
    # The same bytes again change nothing: the client compares preupload's oid with its own
    # git blob hash and skips the commit.
    again = api.upload_file(path_or_fileobj=page, path_in_repo="index.html", repo_id=REPO,
                            repo_type="space")
    assert again.oid == info.oid


def test_upload_folder_tree_paths_info(api, tmp_path):
    src = tmp_path / "site"
    (src / "assets" / "img").mkdir(parents=True)
    (src / "about.html").write_text("<p>about</p>\n")
    (src / "assets" / "style.css").write_text("body { color: red }\n")
    blob = bytes(range(256)) * 4  # binary sample: preupload says lfs
    (src / "assets" / "img" / "logo.bin").write_bytes(blob)
    (src / "skip.log").write_text("ignored\n")
    info = api.upload_folder(folder_path=src, repo_id=REPO, repo_type="space",
                             ignore_patterns=["*.log"], commit_message="a folder")
    assert SHA.match(info.oid)
    listed = files(api)
    for p in ("about.html", "assets/style.css", "assets/img/logo.bin", "index.html"):
        assert p in listed
    assert "skip.log" not in listed
    tree = {e.path: e for e in api.list_repo_tree(REPO, repo_type="space", recursive=True)}
    assert isinstance(tree["assets"], hf.hf_api.RepoFolder) and SHA.match(tree["assets"].tree_id)
    logo = tree["assets/img/logo.bin"]
    assert logo.size == len(blob) and logo.lfs is not None
    assert logo.lfs.sha256 == hashlib.sha256(blob).hexdigest()
    top = {e.path for e in api.list_repo_tree(REPO, repo_type="space")}
    assert "assets" in top and "assets/style.css" not in top
    sub = {e.path for e in api.list_repo_tree(REPO, path_in_repo="assets", repo_type="space")}
    assert sub == {"assets/style.css", "assets/img"}
    got = {e.path: e for e in api.get_paths_info(REPO, ["about.html", "assets", "missing.txt"],
                                                  repo_type="space")}
    assert set(got) == {"about.html", "assets"}
    assert got["about.html"].size == len("<p>about</p>\n")
    assert download(api, tmp_path, "assets/img/logo.bin") == blob


def test_large_lfs_file_round_trip(api, tmp_path):
    big = os.urandom(11 * 1024 * 1024)  # over the 10 MiB LFS threshold
    (tmp_path / "model.bin").write_bytes(big)
    info = api.upload_file(path_or_fileobj=str(tmp_path / "model.bin"),
                           path_in_repo="data/model.bin", repo_id=REPO, repo_type="space")
    [entry] = api.get_paths_info(REPO, ["data/model.bin"], repo_type="space")
    assert entry.size == len(big) and entry.lfs.sha256 == hashlib.sha256(big).hexdigest()
    got = download(api, tmp_path, "data/model.bin", revision=info.oid)
    assert hashlib.sha256(got).digest() == hashlib.sha256(big).digest() and got == big
    meta = hf.get_hf_file_metadata(hf.hf_hub_url(REPO, "data/model.bin", repo_type="space",
                                                 endpoint=api.endpoint), token=api.token)
    assert meta.size == len(big) and meta.commit_hash == info.oid
    assert meta.etag == hashlib.sha256(big).hexdigest()


def test_create_commit_ops_and_delete(api, tmp_path):
    head = api.create_commit(REPO, repo_type="space", commit_message="to delete", operations=[
        CommitOperationAdd("about.html", b"<p>about</p>\n"),
        CommitOperationAdd("assets/style.css", b"body { color: red }\n")]).oid
    info = api.create_commit(REPO, repo_type="space", commit_message="ops",
                             commit_description="several at once", parent_commit=head,
                             operations=[CommitOperationAdd("notes/a.txt", b"a\n"),
                                         CommitOperationAdd("notes/b.txt", b"b\n"),
                                         CommitOperationDelete("about.html")])
    listed = files(api)
    assert "notes/a.txt" in listed and "about.html" not in listed
    # parentCommit that is no longer the head: refused, nothing written
    with pytest.raises(HfHubHTTPError) as e:
        api.create_commit(REPO, repo_type="space", commit_message="stale", parent_commit=head,
                          operations=[CommitOperationAdd("stale.txt", b"x")])
    assert e.value.response.status_code == 412
    assert "stale.txt" not in files(api)
    api.delete_folder("notes", repo_id=REPO, repo_type="space")
    api.delete_file("assets/style.css", repo_id=REPO, repo_type="space")
    listed = files(api)
    assert not any(p.startswith("notes/") for p in listed) and "assets/style.css" not in listed
    with pytest.raises(EntryNotFoundError):
        api.delete_file("never-there.txt", repo_id=REPO, repo_type="space")
    assert api.space_info(REPO).sha != info.oid


def test_errors_are_the_hubs(api, shared_rt, tmp_path):
    with pytest.raises(EntryNotFoundError):
        download(api, tmp_path, "no/such/file.txt")
    with pytest.raises(RevisionNotFoundError):
        download(api, tmp_path, "index.html", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        files(api, revision="0" * 40)
    with pytest.raises(RepositoryNotFoundError):
        download(api, tmp_path, "index.html", repo="admin/never-made")
    with pytest.raises(RepositoryNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="admin/never-made",
                        repo_type="space")
    anon = hf.HfApi(endpoint=shared_rt.url, token=False)
    with pytest.raises(HfHubHTTPError) as e:
        anon.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=REPO, repo_type="space")
    assert e.value.response.status_code in (401, 403)
    with pytest.raises(HfHubHTTPError) as e:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="sub/../x", repo_id=REPO,
                        repo_type="space")
    assert e.value.response.status_code == 400
    with pytest.raises(HfHubHTTPError) as e:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=REPO, repo_type="space",
                        create_pr=True)
    assert e.value.response.status_code == 400
    # endpoints the Hub has and Spaceport does not: JSON errors, not crashes
    r = requests.get(f"{shared_rt.url}/api/spaces/{REPO}/commits/main",
                     headers={"Authorization": f"Bearer {shared_rt.admin}"})
    assert r.status_code == 404 and "error" in r.json()
    r = requests.put(f"{shared_rt.url}/api/spaces/{REPO}/lfs-object/{'a' * 64}?size=1&exp=1&sig=x",
                     data=b"a")
    assert r.status_code == 403 and "error" in r.json()


def test_private_space_files_need_a_token(api, shared_rt, tmp_path):
    api.create_repo("admin/secret-files", repo_type="space", space_sdk="static", private=True,
                    exist_ok=True)
    api.upload_file(path_or_fileobj=b"secret\n", path_in_repo="s.txt",
                    repo_id="admin/secret-files", repo_type="space")
    anon = hf.HfApi(endpoint=shared_rt.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anon.list_repo_files("admin/secret-files", repo_type="space")
    with pytest.raises(RepositoryNotFoundError):
        hf.hf_hub_download("admin/secret-files", "s.txt", repo_type="space",
                           endpoint=shared_rt.url, token=False, cache_dir=tmp_path / "c")
    assert download(api, tmp_path, "s.txt", repo="admin/secret-files") == b"secret\n"


def test_commit_queues_a_build(api, shared_rt, tmp_path):
    """A commit is built exactly like a push: the build log names the commit, and the
    Space ends where that build leaves it."""
    repo = "admin/built"
    api.create_repo(repo, repo_type="space", space_sdk="static", exist_ok=True)
    src = tmp_path / "static"
    src.mkdir()
    (src / "README.md").write_text("---\ntitle: built\nsdk: static\n---\n")
    (src / "index.html").write_text("<p>built by a commit</p>\n")
    info = api.upload_folder(folder_path=src, repo_id=repo, repo_type="space")
    log = sse_lines(shared_rt, repo, "build", info.oid[:7])
    assert any("Commit SHA: " + info.oid[:7] in line for line in log), log[-10:]
    deadline = time.time() + 60
    while api.get_space_runtime(repo).stage == "BUILDING" and time.time() < deadline:
        time.sleep(0.5)
    deadline = time.time() + 60
    while api.get_space_runtime(repo).stage in ("BUILDING", "APP_STARTING") and \
            time.time() < deadline:
        time.sleep(0.5)
    rt = api.get_space_runtime(repo)
    assert rt.stage == "RUNNING" and rt.raw["sha"] == info.oid, rt.raw
    with requests.get(f"{shared_rt.url}/api/spaces/{repo}/logs/run?follow=0",
                      headers={"Authorization": f"Bearer {shared_rt.admin}"}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")


@pytest.mark.skipif(not shutil.which("git-lfs"), reason="git-lfs is not installed")
def test_git_lfs_push_and_clone(api, shared_rt, tmp_path):
    """git with git-lfs uses the same batch endpoint and store; the client reads the result."""
    api.create_repo("admin/lfs-git", repo_type="space", space_sdk="static", exist_ok=True)
    port = shared_rt.url.rsplit(":", 1)[1]
    remote = f"http://admin:{shared_rt.admin}@127.0.0.1:{port}/spaces/admin/lfs-git"
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", HOME=str(tmp_path),
               GIT_CONFIG_NOSYSTEM="1")
    work = tmp_path / "w"
    work.mkdir()

    def git(*args, cwd=work):
        p = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, f"git {args}: {p.stdout}\n{p.stderr}"
        return p.stdout

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    git("lfs", "install")  # in HOME=tmp_path: this repo and the clone below
    git("config", "lfs.locksverify", "false")
    git("lfs", "track", "*.bin")
    payload = os.urandom(3 * 1024 * 1024)
    (work / "weights.bin").write_bytes(payload)
    (work / "index.html").write_text("<p>lfs</p>\n")
    git("add", ".")
    git("commit", "-q", "-m", "lfs via git")
    git("push", "-q", remote, "main")
    [entry] = api.get_paths_info("admin/lfs-git", ["weights.bin"], repo_type="space")
    assert entry.lfs is not None and entry.lfs.sha256 == hashlib.sha256(payload).hexdigest()
    assert download(api, tmp_path, "weights.bin", repo="admin/lfs-git") == payload
    # and back: a clone smudges the pointer through the batch download action
    git("clone", "-q", remote, str(tmp_path / "clone"), cwd=tmp_path)
    assert (tmp_path / "clone" / "weights.bin").read_bytes() == payload


def test_upload_folder_gradio_app_runs(api, shared_rt):
    """The Hub's quickstart, unmodified: create a Gradio Space, upload_folder the app, poll
    get_space_runtime until it runs (a real build: pip installs Gradio)."""
    repo = "admin/hello-gradio"
    api.create_repo(repo, repo_type="space", space_sdk="gradio", space_hardware="cpu-basic",
                    exist_ok=True)
    info = api.upload_folder(folder_path=EXAMPLES / "hello-gradio", repo_id=repo,
                             repo_type="space", commit_message="the app")
    deadline = time.time() + 600
    stages = []
    while time.time() < deadline:
        rt = api.get_space_runtime(repo)
        if not stages or stages[-1] != rt.stage:
            stages.append(rt.stage)
        if rt.stage in ("RUNNING", "BUILD_ERROR", "CONFIG_ERROR", "RUNTIME_ERROR", "NO_APP_FILE"):
            break
        time.sleep(1)
    assert rt.stage == "RUNNING", (stages, rt.raw)
    assert rt.hardware == "cpu-basic" and rt.raw.get("sha") in (None, info.oid)
    assert "BUILDING" in stages or "APP_STARTING" in stages
    # the app it runs is the one uploaded: its page, from the upstream spaceproxy would use
    routes = requests.get(f"{shared_rt.url}/api/proxy/routes",
                          headers={"Authorization": f"Bearer {shared_rt.proxy}"}).json()
    [route] = [s for s in routes["spaces"] if s["id"] == repo]
    page = requests.get(f"http://{route['upstream']}/", timeout=30)
    assert page.status_code == 200 and "gradio" in page.text.lower()


def test_duplicate_space_copies_the_files(api, shared_rt, tmp_path):
    api.create_repo("admin/dup-src", repo_type="space", space_sdk="static", exist_ok=True)
    api.upload_file(path_or_fileobj=b"<p>copy me</p>\n", path_in_repo="index.html",
                    repo_id="admin/dup-src", repo_type="space")
    big = os.urandom(64 * 1024)
    api.upload_file(path_or_fileobj=big, path_in_repo="blob.bin", repo_id="admin/dup-src",
                    repo_type="space")
    url = api.duplicate_space("admin/dup-src", to_id="admin/dup-dst", exist_ok=True)
    assert url.repo_id == "admin/dup-dst"
    assert files(api, "admin/dup-dst") == files(api, "admin/dup-src")
    assert api.space_info("admin/dup-dst").sha == api.space_info("admin/dup-src").sha
    assert download(api, tmp_path, "blob.bin", repo="admin/dup-dst") == big
    # deleting it takes its repository too: a new Space of that name starts empty
    api.delete_repo("admin/dup-dst", repo_type="space")
    api.create_repo("admin/dup-dst", repo_type="space", space_sdk="static")
    assert files(api, "admin/dup-dst") == []


def sse_lines(shared_rt, repo, kind, want, limit=400, timeout=30):
    """The data lines of a log stream, read until one contains @want."""
    seen = []
    with requests.get(f"{shared_rt.url}/api/spaces/{repo}/logs/{kind}", stream=True,
                      timeout=timeout, headers={"Authorization": f"Bearer {shared_rt.admin}"}) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        deadline = time.time() + timeout
        for line in r.iter_lines(chunk_size=1):  # the default waits for 512 bytes
            assert time.time() < deadline, f"no '{want}' in the {kind} log: {seen[-10:]}"
            if line.startswith(b"data:") and line[5:].strip():
                seen.append(json.loads(line[5:])["data"])
                if want in seen[-1] or len(seen) > limit:
                    break
    return seen


def test_client_tour(api, shared_rt, tmp_path):
    """Every HfApi call a Space owner makes, in the order of the Hub's docs, on one Space."""
    repo = "admin/tour"
    assert api.whoami()["name"] == "admin"
    url = api.create_repo(repo, repo_type="space", space_sdk="gradio", private=True,
                          space_hardware="cpu-upgrade", space_sleep_time=3600,
                          space_secrets=[{"key": "API_KEY", "value": "s3cret"}],
                          space_variables=[{"key": "MODE", "value": "tour"}], exist_ok=True)
    assert url.repo_id == repo
    assert api.create_repo(repo, repo_type="space", space_sdk="gradio", exist_ok=True).repo_id == repo
    # a README that says gradio, and no app.py yet: the build ends in NO_APP_FILE
    readme = (EXAMPLES / "hello-gradio" / "README.md").read_bytes()
    c1 = api.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=repo,
                         repo_type="space")
    src = tmp_path / "extra"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "notes.md").write_text("# notes\n")
    (src / "requirements.txt").write_text("")
    c2 = api.upload_folder(folder_path=src, repo_id=repo, repo_type="space")
    assert c2.oid != c1.oid
    assert files(api, repo) == ["README.md", "docs/notes.md", "requirements.txt"]
    api.delete_file("requirements.txt", repo_id=repo, repo_type="space")
    assert files(api, repo) == ["README.md", "docs/notes.md"]
    assert download(api, tmp_path, "README.md", repo=repo) == readme
    info = api.space_info(repo)
    assert info.private and info.sdk == "gradio" and info.sha == api.space_info(repo).sha
    assert sorted(s.rfilename for s in info.siblings) == ["README.md", "docs/notes.md"]
    assert repo in [s.id for s in api.list_spaces(author="admin")]
    deadline = time.time() + 60
    while api.get_space_runtime(repo).stage in ("BUILDING", "NO_APP_FILE") and \
            time.time() < deadline and "app.py" not in (api.get_space_runtime(repo).raw.get(
                "errorMessage") or ""):
        time.sleep(0.5)
    rt = api.get_space_runtime(repo)
    assert rt.stage == "NO_APP_FILE" and "app.py" in rt.raw["errorMessage"], rt.raw
    assert rt.requested_hardware == "cpu-upgrade" and rt.sleep_time == 3600
    log = sse_lines(shared_rt, repo, "build", "app.py")
    assert any("app.py" in line for line in log), log[-5:]
    assert api.request_space_hardware(repo, "cpu-basic").requested_hardware == "cpu-basic"
    assert api.set_space_sleep_time(repo, 7200).sleep_time == 7200
    # A factory reboot builds again, from scratch, and ends as before.  (Resuming a paused
    # Space by restart is test_55's, with the lifecycle's.)
    assert api.restart_space(repo, factory_reboot=True).stage in ("BUILDING", "NO_APP_FILE")
    deadline = time.time() + 60
    while api.get_space_runtime(repo).stage == "BUILDING" and time.time() < deadline:
        time.sleep(0.5)
    assert api.get_space_runtime(repo).stage == "NO_APP_FILE"
    assert api.pause_space(repo).stage == "PAUSED"
    api.add_space_secret(repo, "TOKEN", "v", description="d")
    api.delete_space_secret(repo, "TOKEN")
    api.add_space_variable(repo, "MODEL", "gpt2", description="which")
    variables = api.get_space_variables(repo)
    assert variables["MODEL"].value == "gpt2" and variables["MODE"].value == "tour"
    api.delete_space_variable(repo, "MODEL")
    assert set(api.get_space_variables(repo)) == {"MODE"}
    copy = api.duplicate_space(repo, to_id="admin/tour-copy", private=True, exist_ok=True)
    assert files(api, copy.repo_id) == ["README.md", "docs/notes.md"]
    api.delete_repo(copy.repo_id, repo_type="space")
    api.delete_repo(repo, repo_type="space")
    with pytest.raises(RepositoryNotFoundError):
        api.get_space_runtime(repo)
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_files(repo, repo_type="space")


def test_resolve_ranges_resume_downloads(api, shared_rt, tmp_path):
    """hf_hub_download resumes with a Range header and appends what comes back."""
    data = os.urandom(300 * 1024)
    api.upload_file(path_or_fileobj=data, path_in_repo="ranged.bin", repo_id=REPO,
                    repo_type="space")
    url = f"{shared_rt.url}/spaces/{REPO}/resolve/main/ranged.bin"
    auth = {"Authorization": f"Bearer {shared_rt.admin}"}
    r = requests.get(url, headers={**auth, "Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == data[1000:]
    assert r.headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    r = requests.get(url, headers={**auth, "Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    r = requests.get(url, headers={**auth, "Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = requests.get(url, headers={**auth, "Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    r = requests.head(url, headers=auth)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data)
    assert r.headers["X-Linked-Etag"].strip('"') == hashlib.sha256(data).hexdigest()
    small = b"regular file, served from git\n" * 10
    api.upload_file(path_or_fileobj=small, path_in_repo="r.txt", repo_id=REPO, repo_type="space")
    r = requests.get(f"{shared_rt.url}/spaces/{REPO}/resolve/main/r.txt",
                     headers={**auth, "Range": "bytes=5-9"})
    assert r.status_code == 206 and r.content == small[5:10]


def test_commit_ndjson_by_hand(api, shared_rt):
    """The wire format itself: a chunked body (no Content-Length), utf-8 and base64 contents,
    a rename through oldPath, deletedFolder, a short parentCommit, and refusals."""
    url = f"{shared_rt.url}/api/spaces/{REPO}/commit/main"
    auth = {"Authorization": f"Bearer {shared_rt.admin}", "Content-Type": "application/x-ndjson"}
    head = api.upload_file(path_or_fileobj=b"seed\n", path_in_repo="seed.txt", repo_id=REPO,
                           repo_type="space").oid

    def body(lines):
        for line in lines:
            yield json.dumps(line).encode() + b"\n"

    lines = [{"key": "header", "value": {"summary": "by hand", "description": "chunked",
                                         "parentCommit": head[:7]}}]
    lines += [{"key": "file", "value": {"path": f"hand/{i}.txt", "encoding": "base64",
                                        "content": base64.b64encode(b"%d" % i * 5000).decode()}}
              for i in range(40)]
    lines.append({"key": "file", "value": {"path": "hand/u.txt", "content": "héllo\n",
                                           "encoding": "utf-8"}})
    r = requests.post(url, data=body(lines), headers=auth)
    assert r.status_code == 200, r.text
    first = r.json()["commitOid"]
    assert r.json()["success"] is True and SHA.match(first)
    r = requests.post(url, headers=auth, data=body([
        {"key": "header", "value": {"summary": "move and drop"}},
        {"key": "file", "value": {"path": "moved.txt", "oldPath": "hand/u.txt"}},
        {"key": "deletedFolder", "value": {"path": "hand/"}}]))
    assert r.status_code == 200, r.text
    listed = files(api)
    assert "moved.txt" in listed and not any(p.startswith("hand/") for p in listed)
    assert requests.get(f"{shared_rt.url}/spaces/{REPO}/resolve/main/moved.txt",
                        headers=auth).content == "héllo\n".encode()
    for bad, status in (
            ([{"key": "file", "value": {"path": "x", "content": "eA=="}}], 400),  # no header
            ([{"key": "header", "value": {"summary": "s"}},
              {"key": "file", "value": {"path": "x", "content": "not base64!"}}], 400),
            ([{"key": "header", "value": {"summary": "s"}},
              {"key": "lfsFile", "value": {"path": "x", "algo": "sha256", "oid": "a" * 64,
                                           "size": 3}}], 404),  # never uploaded
            ([{"key": "header", "value": {"summary": "s", "parentCommit": first}},
              {"key": "file", "value": {"path": "x", "content": "eA=="}}], 412),
            ([{"key": "header", "value": {"summary": "s"}},
              {"key": "whatever", "value": {"path": "x"}}], 400)):
        r = requests.post(url, headers=auth, data=b"".join(body(bad)))
        assert r.status_code == status, (bad, r.status_code, r.text)
        assert r.json()["error"]
    r = requests.post(url, headers=auth, data=b"{not json\n")
    assert r.status_code == 400 and r.json()["error"]


def test_unpatched_client_with_hf_endpoint(shared_rt, tmp_path):
    """The documented setup, nothing patched: HF_ENDPOINT and HF_TOKEN in the environment
    of a fresh interpreter, then the module-level helpers."""
    script = """
import os, sys
from huggingface_hub import create_repo, upload_file, hf_hub_download, list_repo_files
create_repo("admin/env-only", repo_type="space", space_sdk="static", exist_ok=True)
info = upload_file(path_or_fileobj=b"<p>env</p>", path_in_repo="index.html",
                   repo_id="admin/env-only", repo_type="space")
assert info.repo_url.repo_id == "admin/env-only", info.repo_url
assert list_repo_files("admin/env-only", repo_type="space") == ["index.html"]
path = hf_hub_download("admin/env-only", "index.html", repo_type="space")
assert open(path, "rb").read() == b"<p>env</p>"
print("ok", info.oid)
"""
    env = dict(os.environ, HF_ENDPOINT=shared_rt.url, HF_TOKEN=shared_rt.admin,
               HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1")
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("ok "), p.stdout + p.stderr
