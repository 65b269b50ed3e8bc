"""Support for the push-and-build suites (test_70_*.py, tests/security/test_hostile_repos.py,
tests/bench/bench_build.py): real git pushes to a real runtimed, waiting on its builds.
No tests live here."""
import os
import pathlib
import shutil
import sqlite3
import subprocess
import time

from shimsocks import shim_sockets

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"
BUILDING = ("BUILDING", "RUNNING_BUILDING")


def git(cwd, *args, check=True, env=None, timeout=120):
    e = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false",
             GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
             GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    e.pop("SSH_ASKPASS", None)
    if env:
        e.update(env)
    p = subprocess.run(["git", "-c", "credential.helper=", "-c", "init.defaultBranch=main",
                        *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def make_repo(path, example=None, files=None):
    """A fresh work tree with one commit: an example's files, then @files (name -> text or
    bytes) over them."""
    path = pathlib.Path(path)
    if path.exists():
        shutil.rmtree(path)
    if example:
        shutil.copytree(EXAMPLES / example, path)
    else:
        path.mkdir(parents=True)
    for name, content in (files or {}).items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            f.write_bytes(content)
        else:
            f.write_text(content)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "init")
    return path


def commit(path, files, message="change"):
    for name, content in files.items():
        (pathlib.Path(path) / name).write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)
    return head(path)


def head(path):
    return git(path, "rev-parse", "HEAD").stdout.strip()


def push_url(rt, owner, name, token, user="user"):
    host = rt.url.split("://", 1)[1]
    if token is None:
        return f"http://{host}/spaces/{owner}/{name}"
    return f"http://{user}:{token}@{host}/spaces/{owner}/{name}"


def push(rt, path, owner, name, token, *extra, check=True):
    return git(path, "push", *extra, push_url(rt, owner, name, token), "main", check=check)


def db_build(rt, space_name, sha):
    """The newest build row of @sha: (status, finished) or None."""
    con = sqlite3.connect(f"file:{rt.data_dir}/spaceport.db?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute(
            "SELECT b.status, b.finished_at FROM builds b JOIN spaces s ON s.id = b.space_id"
            " WHERE s.name = ? AND b.sha = ? ORDER BY b.id DESC LIMIT 1",
            (space_name, sha)).fetchone()
    finally:
        con.close()
    return row


def wait_build(rt, owner, name, sha, token, timeout=600):
    """Waits until the build of @sha has finished: the builder has set the stage of a
    failure, or handed a success to the lifecycle (which then owns the stage).  Returns
    (status, runtime JSON)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        row = db_build(rt, name, sha)
        if row and row[1] is not None:
            return row[0], rt.get(f"/api/spaces/{owner}/{name}/runtime", token).json()
        time.sleep(0.02)
    raise AssertionError(f"build of {sha[:12]} did not finish: {rt.log()[-3000:]}")


def delete_all_spaces(rt, timeout=20):
    """Deletes every Space (as the admin) and waits for their shims to go: a Space the
    lifecycle started outlives runtimed by design, a test's Spaces must not."""
    spaces = rt.get("/api/spaces", rt.admin, params={"limit": 1000}).json()
    for s in spaces:
        owner, name = s["id"].split("/", 1)
        rt.request("DELETE", "/api/repos/delete", rt.admin,
                   json={"type": "space", "name": name, "organization": owner})
    run = pathlib.Path(rt.data_dir) / "run"
    deadline = time.time() + timeout
    while time.time() < deadline and run.is_dir() and shim_sockets(run):
        time.sleep(0.1)


def build_log(rt, owner, name, token):
    """The stored build log lines (read from the store, as the SSE endpoint does)."""
    con = sqlite3.connect(f"file:{rt.data_dir}/spaceport.db?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute(
            "SELECT l.line FROM logs l JOIN spaces s ON s.id = l.space_id"
            " WHERE s.owner = ? AND s.name = ? AND l.kind = 0 ORDER BY l.id",
            (owner, name)).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def deps_layers(rt):
    d = pathlib.Path(rt.data_dir) / "layers" / "deps"
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
