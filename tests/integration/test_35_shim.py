"""The per-Space shim: runs a sandbox detached, keeps its logs and exit status, answers
on its control socket, freezes and thaws, and survives the death of its starter."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes need root")


def shim_cmd(state, cmd, timeout=5):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(state / "shim.sock"))
        s.sendall(cmd.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def wait_for(pred, timeout=15, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status(state):
    try:
        return json.loads((state / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def log_lines(state):
    p = state / "run.log"
    if not p.exists():
        return []
    return [json.loads(l)["data"] for l in p.read_text().splitlines()]


@pytest.fixture
def start_shim(bin_dir, tmp_path):
    started = []

    def start(argv, **extra):
        state = tmp_path / f"space{len(started)}"
        state.mkdir()
        spec = {"id": "alice/demo", "argv": argv, "net": "none", "memory": 256 << 20,
                "pids": 256, "env": ["GREETING=hello"]}
        spec.update(extra)
        (state / "spec.json").write_text(json.dumps(spec))
        # As runtimed does: stderr to a log file, stdout read up to the report line (the
        # detached shim keeps running with neither).
        with open(state / "shim.log", "w") as log:
            out = subprocess.run([bin_dir / "spaceport-shim", str(state)], stdout=subprocess.PIPE,
                                 stderr=log, text=True, timeout=30)
        started.append(state)
        return state, out

    yield start
    for state in started:
        st = status(state)
        if st and st.get("state") == "running":
            try:
                os.kill(st["shimPid"], signal.SIGTERM)
            except ProcessLookupError:
                pass


def test_runs_detached_and_logs(start_shim):
    state, out = start_shim(["/bin/sh", "-c", "echo $GREETING; echo to-stderr >&2; sleep 30"])
    assert out.returncode == 0, out.stdout
    assert out.stdout.startswith("ok "), out.stdout
    st = status(state)
    assert st["state"] == "running"
    # Detached: its own session, not a child of whoever started it.
    shim_pid = int((state / "shim.pid").read_text())
    assert shim_pid == st["shimPid"]
    assert os.getsid(shim_pid) == shim_pid
    with open(f"/proc/{shim_pid}/stat") as f:
        assert f.read().split(") ")[1].split()[1] != str(os.getpid())
    wait_for(lambda: "to-stderr" in log_lines(state), what="log lines")
    assert log_lines(state)[:2] == ["hello", "to-stderr"]
    entry = json.loads((state / "run.log").read_text().splitlines()[0])
    assert entry["timestamp"].endswith("Z")
    assert shim_cmd(state, "status")["state"] == "running"


def test_exit_code_and_reason(start_shim):
    state, out = start_shim(["/bin/sh", "-c", "echo bye; exit 3"])
    assert out.returncode == 0
    st = wait_for(lambda: (s := status(state)) and s["state"] == "exited" and s, what="exit")
    assert st["exit"] == {"reason": "exited", "code": 3, "signal": 0}
    assert "endedAt" in st
    assert log_lines(state) == ["bye"]
    # The shim is gone once its sandbox is.
    wait_for(lambda: not (state / "shim.sock").exists() or _refused(state), what="shim exit")


def _refused(state):
    try:
        shim_cmd(state, "status", timeout=1)
        return False
    except OSError:
        return True


def test_oom_is_reported(start_shim):
    state, out = start_shim(
        ["/usr/bin/python3", "-c", "x = []\nwhile True: x.append(bytearray(16 << 20))"],
        memory=64 << 20)
    assert out.returncode == 0, out.stdout
    st = wait_for(lambda: (s := status(state)) and s["state"] == "exited" and s, what="oom")
    assert st["exit"]["reason"] == "oom", st


def test_stop_term_then_kill(start_shim):
    state, _ = start_shim(["/bin/sh", "-c", "trap '' TERM; sleep 60"])
    t0 = time.monotonic()
    assert shim_cmd(state, "stop 1")["state"] == "running"
    st = wait_for(lambda: (s := status(state)) and s["state"] == "exited" and s, what="stop")
    assert time.monotonic() - t0 < 8
    assert st["exit"]["code"] in (128 + 9, 128 + 15)


def test_freeze_and_thaw(start_shim):
    state, _ = start_shim(["/bin/sh", "-c", "while true; do date +%s%N; sleep 0.05; done"])
    wait_for(lambda: len(log_lines(state)) > 2, what="ticks")
    assert shim_cmd(state, "freeze")["frozen"] is True
    n = len(log_lines(state))
    time.sleep(0.5)
    assert len(log_lines(state)) <= n + 1, "a frozen sandbox keeps running"
    assert shim_cmd(state, "thaw")["frozen"] is False
    wait_for(lambda: len(log_lines(state)) > n + 3, what="ticks after thaw")


def test_bad_spec_is_a_clear_error(bin_dir, tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps({"id": "a/b", "argv": ["true"], "memroy": 1}))
    out = subprocess.run([bin_dir / "spaceport-shim", str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, timeout=30)
    assert out.stdout == "error: spec: unknown field 'memroy': Invalid argument\n"


def test_missing_command_is_a_clear_error(start_shim):
    state, out = start_shim(["/nonexistent/app"])
    assert out.stdout.startswith("error: ")
    assert "/nonexistent/app" in out.stdout


def test_veth_upstream_answers(start_shim):
    """With net veth the shim gives the Space its own link and reports the address the
    proxy dials; the app answers there, and the link is gone after the Space stops."""
    import urllib.request

    state, out = start_shim(["/usr/bin/python3", "-m", "http.server", "-d", "/usr/share",
                             "8080"], net="veth", port=8080)
    assert out.returncode == 0 and out.stdout.startswith("ok "), out.stdout
    st = status(state)
    host, port = st["upstream"].split(":")
    assert port == "8080" and host.startswith("10.")

    def answers():
        try:
            return urllib.request.urlopen(f"http://{st['upstream']}/", timeout=1).status == 200
        except OSError:
            return False

    wait_for(answers, what="the app behind its veth")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "spv" in links
    shim_cmd(state, "stop 2")
    wait_for(lambda: (s := status(state)) and s["state"] == "exited", what="stop")
    assert not answers()
