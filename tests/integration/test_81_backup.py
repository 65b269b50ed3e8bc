"""Backup and restore (docs/backup.md): `spacectl admin backup` taken while pushes and
API writes go on, `spacectl admin restore` into a fresh data dir, and a runtimed on that
dir serves the same Spaces, tokens, secrets, variables, build logs and git history."""
import os
import sqlite3
import subprocess
import tarfile
import threading
import time

import pytest
import requests

from test_5_support import Runtimed, assert_error

NO_METRICS = "metrics_listen: ''\n"


def env_for(url=None, token=None):
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
           and not k.startswith("SPACEPORT_")}
    if url:
        env["SPACEPORT_URL"] = url
    if token:
        env["SPACEPORT_TOKEN"] = token
    return env


def git(repo, *args, **kw):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@example.org", *args], check=True, capture_output=True,
                          text=True, env=env_for(), timeout=60, **kw)


def start(bin_dir, data_dir, tmp_path):
    cfg = tmp_path / f"rt-{data_dir.name}.yaml"
    cfg.write_text(NO_METRICS)
    return Runtimed(bin_dir, data_dir, cfg).start()


def build_log(rt, space):
    r = rt.get(f"/api/spaces/{space}/logs/build?follow=0", rt.admin, timeout=30)
    assert r.status_code == 200, r.text
    return [line for line in r.text.splitlines() if line.startswith("data:")]


def wait_built(rt, space, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        stage = rt.get(f"/api/spaces/{space}/runtime", rt.admin).json()["stage"]
        if stage not in ("BUILDING", "NO_APP_FILE", "RUNNING_BUILDING"):
            return stage
        time.sleep(0.1)
    raise AssertionError(f"{space} still building")


def refs(repo_dir):
    out = subprocess.run(["git", "-C", str(repo_dir), "for-each-ref",
                          "--format=%(refname) %(objectname)"], check=True,
                         capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines())


def rows(db, sql):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return sorted(con.execute(sql).fetchall())
    finally:
        con.close()


# A README with an SDK no template knows: each push is a real build that ends in
# CONFIG_ERROR with its log in the store, and no Space process is left running.
BAD_README = "---\ntitle: t\nsdk: nosuchsdk\n---\n"


@pytest.fixture
def loaded_node(bin_dir, tmp_path):
    rt = start(bin_dir, tmp_path / "a", tmp_path)
    yield rt
    rt.stop()


def test_backup_under_load_restores_everything(bin_dir, tmp_path, loaded_node):
    rt = loaded_node
    rt.add_user("bob")
    bob = rt.token("bob", "write")
    bob_read = rt.token("bob", "read", spaces=["bob/quiet"], name="scoped")
    for name, private in (("busy", False), ("quiet", True)):
        r = rt.create_space("bob", name, token=bob, private=private)
        assert r.status_code in (200, 201), r.text
    r = rt.post("/api/spaces/bob/quiet/secrets", bob, json={"key": "API_KEY", "value": "s3cr3t"})
    assert r.status_code in (200, 201, 204), r.text
    r = rt.post("/api/spaces/bob/quiet/variables", bob, json={"key": "MODE", "value": "fast"})
    assert r.status_code in (200, 201, 204), r.text

    port = rt.url.rsplit(":", 1)[1]
    work = {}
    for name in ("busy", "quiet"):
        w = tmp_path / f"w-{name}"
        w.mkdir()
        git(w, "init", "-q", "-b", "main")
        (w / "README.md").write_text(BAD_README)
        (w / "blob.bin").write_bytes(os.urandom(2 << 20))  # so a bundle takes a moment
        git(w, "add", ".")
        git(w, "commit", "-qm", "first")
        git(w, "push", "-q", f"http://bob:{bob}@127.0.0.1:{port}/spaces/bob/{name}", "main")
        work[name] = w
    assert wait_built(rt, "bob/quiet") == "CONFIG_ERROR"
    quiet_log = build_log(rt, "bob/quiet")
    assert any("Build Queued" in line for line in quiet_log), quiet_log

    # Load: pushes to bob/busy and API writes, all through the backup.
    stop = threading.Event()
    errors, pushes = [], [0]

    def pusher():
        w = work["busy"]
        while not stop.is_set():
            try:
                (w / "n.txt").write_text(str(pushes[0]))
                git(w, "add", ".")
                git(w, "commit", "-qm", f"push {pushes[0]}")
                git(w, "push", "-q", f"http://bob:{bob}@127.0.0.1:{port}/spaces/bob/busy",
                    "main")
                pushes[0] += 1
            except subprocess.CalledProcessError as e:  # pragma: no cover - reported below
                errors.append(e.stderr)

    def writer():
        i = 0
        while not stop.is_set():
            r = rt.post("/api/spaces/bob/busy/variables", bob, json={"key": f"V{i % 5}",
                                                                      "value": str(i)})
            if r.status_code not in (200, 201, 204):
                errors.append(r.text)
            i += 1

    threads = [threading.Thread(target=pusher), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        # Backups until one overlapped a push that completed while it ran (a backup of
        # this node takes a fraction of a second; pushes land every ~100 ms).
        for attempt in range(20):
            backup = tmp_path / f"node-{attempt}.tar.gz"
            before, t0 = pushes[0], time.time()
            res = subprocess.run([bin_dir / "spacectl", "admin", "backup", str(backup)],
                                 env=env_for(rt.url, rt.admin), capture_output=True, text=True,
                                 timeout=120)
            took, during = time.time() - t0, pushes[0] - before
            assert res.returncode == 0, res.stderr
            if during >= 1:
                break
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:3]
    assert during >= 1, "no push completed while a backup ran"
    print(f"backup under load: {backup.stat().st_size} bytes in {took:.2f}s "
          f"(attempt {attempt + 1}), {during} pushes completed during it, {pushes[0]} in all")
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(backup) as tf:
        names = set(tf.getnames())
    assert {"./manifest.json", "./spaceport.db", "./repos/bob/busy.git/repo.bundle",
            "./repos/bob/quiet.git/repo.bundle"} <= names, names

    # Stop the old node, keep what it had to compare with.
    wait_built(rt, "bob/busy")
    spaces = {s["id"]: s for s in rt.get("/api/spaces?full=true", rt.admin).json()}
    tokens = rt.get("/api/admin/tokens", rt.admin).json()
    old_busy_log = build_log(rt, "bob/busy")
    rt.stop()
    old = tmp_path / "a"

    # Restore into a fresh dir, as a new node would.
    new = tmp_path / "b"
    res = subprocess.run([bin_dir / "spacectl", "admin", "restore", str(backup), "--data-dir",
                          str(new)], env=env_for(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    # a second restore over a node that has a database is refused
    res = subprocess.run([bin_dir / "spacectl", "admin", "restore", str(backup), "--data-dir",
                          str(new)], env=env_for(), capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "fresh data dir" in res.stderr, res.stderr

    # Secrets (values are never read back through the API: compare the databases).
    secrets_sql = "SELECT s.owner, s.name, k.key, k.value FROM secrets k JOIN spaces s " \
                  "ON s.id = k.space_id"
    assert rows(new / "spaceport.db", secrets_sql) == rows(old / "spaceport.db", secrets_sql)
    assert ("bob", "quiet", "API_KEY", "s3cr3t") in rows(new / "spaceport.db", secrets_sql)
    # Every commit the restored database names is in the restored repos.
    for owner, name, sha in rows(new / "spaceport.db",
                                 "SELECT s.owner, s.name, b.sha FROM builds b JOIN spaces s "
                                 "ON s.id = b.space_id"):
        subprocess.run(["git", "-C", str(new / "repos" / owner / f"{name}.git"), "cat-file",
                        "-e", f"{sha}^{{commit}}"], check=True)
    # The quiet repo is the same; the busy one has at least what was pushed before.
    assert refs(new / "repos/bob/quiet.git") == refs(old / "repos/bob/quiet.git")
    assert refs(new / "repos/bob/busy.git")["refs/heads/main"]

    rt2 = start(bin_dir, new, tmp_path)
    try:
        assert rt2.admin == rt.admin and rt2.proxy == rt.proxy, "the token files come back"
        # tokens: the same list, and each works
        assert rt2.get("/api/admin/tokens", rt2.admin).json() == tokens
        assert rt2.get("/api/whoami-v2", bob).json()["name"] == "bob"
        assert rt2.get("/api/spaces/bob/quiet", bob_read).status_code == 200
        assert_error(rt2.get("/api/spaces/bob/quiet", "sp_" + "x" * 40), 401)
        # Spaces, with their privacy and settings
        spaces2 = {s["id"]: s for s in rt2.get("/api/spaces?full=true", rt2.admin).json()}
        assert spaces2.keys() == spaces.keys()
        assert rt2.get("/api/spaces/bob/quiet").status_code == 404, "still private"
        assert rt2.get("/api/spaces/bob/quiet/variables", bob).json()["MODE"]["value"] == "fast"
        secrets = rt2.get("/api/spaces/bob/quiet/secrets", bob).json()
        assert "API_KEY" in (secrets if isinstance(secrets, dict)
                             else [s.get("key") for s in secrets]), secrets
        # build logs (a Space with a serving commit would add a rebuild's lines after them;
        # these two never built, so their logs are exactly what the backup held)
        assert build_log(rt2, "bob/quiet") == quiet_log
        busy_log = build_log(rt2, "bob/busy")
        # What the backup held comes back as it was.  A push the backup recorded while its
        # build was still only queued is built by the restored node (runtimed requeues the
        # newest unbuilt push at start), so its lines may follow, with their own times.
        same = 0
        while same < min(len(busy_log), len(old_busy_log)) and busy_log[same] == old_busy_log[same]:
            same += 1
        assert same > 0, (busy_log[:3], old_busy_log[:3])
        assert same == len(busy_log) or "Build Queued" in busy_log[same], busy_log[same:same + 3]
        # git through the restored node
        clone = tmp_path / "clone"
        port2 = rt2.url.rsplit(":", 1)[1]
        subprocess.run(["git", "clone", "-q",
                        f"http://bob:{bob}@127.0.0.1:{port2}/spaces/bob/quiet", str(clone)],
                       check=True, env=env_for(), timeout=60, capture_output=True)
        assert (clone / "README.md").read_text() == BAD_README
    finally:
        rt2.stop()


def test_backup_needs_an_unscoped_admin_write_token(bin_dir, tmp_path):
    rt = start(bin_dir, tmp_path / "n", tmp_path)
    try:
        rt.add_user("carol")
        carol = rt.token("carol", "write")
        reader = rt.token("admin", "read")
        assert_error(rt.get("/api/admin/backup"), 401)
        assert_error(rt.get("/api/admin/backup", carol), 403)
        assert_error(rt.get("/api/admin/backup", reader), 403, "unscoped write token")
        assert_error(rt.post("/api/admin/backup", rt.admin), 405)
        r = rt.get("/api/admin/backup", rt.admin)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/gzip"
        assert r.content[:2] == b"\x1f\x8b"
        # no staging files left behind in the data dir
        assert not [p for p in os.listdir(rt.data_dir) if p.startswith(".backup")]
        # spacectl: an existing FILE is never overwritten; a refused backup leaves no file
        existing = tmp_path / "exists.tgz"
        existing.write_text("keep")
        res = subprocess.run([bin_dir / "spacectl", "admin", "backup", str(existing)],
                             env=env_for(rt.url, rt.admin), capture_output=True, text=True)
        assert res.returncode == 2 and existing.read_text() == "keep"
        out = tmp_path / "refused.tgz"
        res = subprocess.run([bin_dir / "spacectl", "admin", "backup", str(out)],
                             env=env_for(rt.url, carol), capture_output=True, text=True)
        assert res.returncode == 1 and "403" in res.stderr
        assert not out.exists() and not (tmp_path / "refused.tgz.partial").exists()
    finally:
        rt.stop()


def test_restore_refuses_what_is_not_a_backup(bin_dir, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    with tarfile.open(junk, "w:gz") as tf:
        f = tmp_path / "hello.txt"
        f.write_text("hi")
        tf.add(f, arcname="hello.txt")
    res = subprocess.run([bin_dir / "runtimed", "--data-dir", str(tmp_path / "d"), "--restore",
                          str(junk)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "not a Spaceport backup" in res.stderr, res.stderr
    assert not (tmp_path / "d" / "spaceport.db").exists()
    res = subprocess.run([bin_dir / "runtimed", "--data-dir", str(tmp_path / "d"), "--restore",
                          str(tmp_path / "missing.tgz")], capture_output=True, text=True)
    assert res.returncode == 1 and "missing.tgz" in res.stderr


def test_restore_refuses_a_data_dir_in_use(bin_dir, tmp_path):
    rt = start(bin_dir, tmp_path / "live", tmp_path)
    try:
        backup = tmp_path / "b.tgz"
        r = rt.get("/api/admin/backup", rt.admin)
        backup.write_bytes(r.content)
        fresh = tmp_path / "other"
        fresh.mkdir()
        # runtimed holds the lock of its data dir: a restore into it is refused
        res = subprocess.run([bin_dir / "runtimed", "--data-dir", str(rt.data_dir), "--restore",
                              str(backup)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 1 and "in use" in res.stderr, res.stderr
    finally:
        rt.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(rt.url, timeout=1)


def test_restore_rebuilds_what_was_serving(bin_dir, tmp_path):
    """A restored node has no layers and no shims: each Space that served a commit gets
    a build of that commit at the new node's first start, and no old upstream is kept."""
    rt = start(bin_dir, tmp_path / "a", tmp_path)
    rt.add_user("erin")
    erin = rt.token("erin", "write")
    assert rt.create_space("erin", "app", token=erin).status_code in (200, 201)
    w = tmp_path / "w"
    w.mkdir()
    git(w, "init", "-q", "-b", "main")
    (w / "README.md").write_text(BAD_README)
    git(w, "add", ".")
    git(w, "commit", "-qm", "first")
    port = rt.url.rsplit(":", 1)[1]
    git(w, "push", "-q", f"http://erin:{erin}@127.0.0.1:{port}/spaces/erin/app", "main")
    sha = git(w, "rev-parse", "HEAD").stdout.strip()
    wait_built(rt, "erin/app")
    rt.stop()
    # As if the Space had been running this commit when the backup was taken.
    con = sqlite3.connect(tmp_path / "a" / "spaceport.db")
    con.execute("UPDATE spaces SET stage = 'RUNNING', sha = ?, upstream = '10.9.9.9:7860', "
                "hardware_current = 'cpu-basic' WHERE owner = 'erin'", (sha,))
    con.commit()
    con.close()
    rt = start(bin_dir, tmp_path / "a", tmp_path)
    backup = tmp_path / "b.tgz"
    backup.write_bytes(rt.get("/api/admin/backup", rt.admin).content)
    rt.stop()

    res = run_restore(bin_dir, backup, tmp_path / "b")
    assert res.returncode == 0, res.stderr
    db = tmp_path / "b" / "spaceport.db"
    assert rows(db, "SELECT upstream, hardware_current FROM spaces") == [("", "")]
    assert rows(db, "SELECT sha FROM builds WHERE finished_at IS NULL") == [(sha,)]
    rt2 = start(bin_dir, tmp_path / "b", tmp_path)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            queued = [line for line in build_log(rt2, "erin/app") if "Build Queued" in line]
            if len(queued) >= 2:
                break
            time.sleep(0.2)
        assert len(queued) == 2 and sha[:7] in queued[-1], queued
        assert wait_built(rt2, "erin/app") == "CONFIG_ERROR"
    finally:
        rt2.stop()


def run_restore(bin_dir, backup, data_dir):
    return subprocess.run([bin_dir / "spacectl", "admin", "restore", str(backup), "--data-dir",
                           str(data_dir)], env=env_for(), capture_output=True, text=True,
                          timeout=120)
