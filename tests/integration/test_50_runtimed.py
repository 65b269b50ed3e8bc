"""runtimed as a daemon: first start, config, data dir lock, signals, restart keeps state."""
import os
import pathlib
import re
import signal
import stat
import subprocess

from test_5_support import Runtimed, assert_error, free_port, rt, runtimed_factory  # noqa: F401


def test_first_start_writes_tokens_0600(rt):
    for name in ("admin.token", "proxy.token"):
        st = os.stat(rt.data_dir / name)
        assert stat.S_IMODE(st.st_mode) == 0o600, name
    assert re.fullmatch(r"sp_[A-Za-z0-9]{40}", rt.admin)
    assert re.fullmatch(r"sp_[A-Za-z0-9]{40}", rt.proxy)
    assert rt.admin != rt.proxy
    assert stat.S_IMODE(os.stat(rt.data_dir / "spaceport.db").st_mode) == 0o600
    # It says where the token is, in a line journald and people both read.
    assert f"{rt.data_dir}/admin.token" in rt.log()
    line = next(l for l in rt.log().splitlines() if "admin.token" in l)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info ", line), line
    me = rt.get("/api/whoami-v2", rt.admin).json()
    assert me["name"] == "admin" and me["isAdmin"] is True


def test_no_token_in_the_database(rt):
    db = (rt.data_dir / "spaceport.db").read_bytes()
    wal = rt.data_dir / "spaceport.db-wal"
    data = db + (wal.read_bytes() if wal.exists() else b"")
    assert rt.admin.encode() not in data
    assert rt.proxy.encode() not in data


def test_sigterm_is_a_clean_stop(rt):
    assert rt.stop() == 0
    assert "stopping" in rt.log()
    assert "stopped" in rt.log()


def test_restart_keeps_state_and_tokens(runtimed_factory):
    d = runtimed_factory().start()
    d.add_user("alice")
    alice = d.token("alice", "write")
    assert d.create_space("alice", "demo", alice, private=True, hardware="cpu-upgrade").status_code == 200
    assert d.post("/api/spaces/alice/demo/secrets", alice, json={"key": "K", "value": "v"}).status_code == 200
    assert d.post("/api/spaces/alice/demo/variables", alice, json={"key": "V", "value": "1"}).status_code == 200
    assert d.post("/api/spaces/alice/demo/pause", alice).status_code == 200
    admin = d.admin
    assert d.stop() == 0

    again = Runtimed(d.bin.parent, d.data_dir).start()
    try:
        assert again.admin == admin, "the admin token is written once, at first start"
        r = again.get("/api/spaces/alice/demo", alice)
        assert r.status_code == 200, r.text
        info = r.json()
        assert info["private"] is True
        assert info["runtime"]["stage"] == "PAUSED"
        assert info["runtime"]["hardware"]["requested"] == "cpu-upgrade"
        assert list(again.get("/api/spaces/alice/demo/secrets", alice).json()) == ["K"]
        assert again.get("/api/spaces/alice/demo/variables", alice).json()["V"]["value"] == "1"
        assert again.get("/api/spaces/alice/demo", None).status_code == 404
        assert "first start" not in again.log().split("listening on")[-1]
    finally:
        again.stop()


def test_second_instance_on_same_data_dir_refused(rt, bin_dir):
    other = subprocess.run(
        [bin_dir / "runtimed", "--data-dir", str(rt.data_dir), "--listen", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=10)
    assert other.returncode == 1
    assert "in use by another runtimed" in other.stderr
    assert f"pid {rt.proc.pid}" in other.stderr
    assert rt.alive()
    assert rt.get("/api/spaces").status_code == 200


def test_port_in_use_is_a_clear_error(rt, bin_dir, tmp_path):
    other = subprocess.run(
        [bin_dir / "runtimed", "--data-dir", str(tmp_path / "other"), "--listen", f"127.0.0.1:{rt.port}"],
        capture_output=True, text=True, timeout=10)
    assert other.returncode == 1
    assert f"127.0.0.1:{rt.port}" in other.stderr


def test_config_file(runtimed_factory, tmp_path):
    d = runtimed_factory(config_text="# settings\nlog_format: json\nmax_body: 2k\ndomain: spaces.test\n")
    d.start()
    r = d.create_space("admin", "x", description="y" * 4096)
    assert_error(r, 413)
    assert d.get("/api/spaces/admin/x").status_code == 404
    assert d.create_space("admin", "x").status_code == 200
    assert d.get("/api/spaces/admin/x/runtime").json()["domains"][0]["domain"] == "admin-x.spaces.test"
    assert '"level":"info"' in d.log()


def test_flags_beat_the_config_file(runtimed_factory, tmp_path):
    # The file says one port, the flag another: the flag wins.
    d = runtimed_factory(config_text=f"listen: 127.0.0.1:{free_port()}\n")
    d.start()
    assert d.get("/api/spaces").status_code == 200


def test_bad_config_is_refused_clearly(bin_dir, tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("listen: 127.0.0.1:8080\nthreads: 4\n")
    out = subprocess.run([bin_dir / "runtimed", "--config", conf, "--data-dir", tmp_path / "d"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    assert f"{conf}:2: unknown setting 'threads'" in out.stderr
    missing = subprocess.run([bin_dir / "runtimed", "--config", tmp_path / "nope.yaml"],
                             capture_output=True, text=True, timeout=10)
    assert missing.returncode == 1 and "nope.yaml" in missing.stderr


def test_bad_flags(bin_dir):
    out = subprocess.run([bin_dir / "runtimed", "--listen", "nowhere"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "--listen" in out.stderr
    out = subprocess.run([bin_dir / "runtimed", "--data-dir"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "--data-dir" in out.stderr
    out = subprocess.run([bin_dir / "runtimed", "extra"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "extra" in out.stderr


def test_help_names_the_flags(bin_dir):
    out = subprocess.run([bin_dir / "runtimed", "--help"], capture_output=True, text=True, timeout=10)
    for flag in ("--config", "--data-dir", "--listen"):
        assert flag in out.stdout


def test_example_config_is_valid(runtimed_factory):
    example = pathlib.Path(__file__).resolve().parents[2] / "ops" / "runtimed.conf.example"
    d = runtimed_factory(config_text=example.read_text())
    d.start()
    assert d.get("/api/spaces").status_code == 200
