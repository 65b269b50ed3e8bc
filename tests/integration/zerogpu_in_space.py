"""Runs the real `spaces` client (0.51.3, the test venv's) as a process of a running zero
Space: test_33_zerogpu_runtimed.py starts it inside the Space's network and pid
namespaces and its devices cgroup (where the Space's own app runs), so every call reaches
the device API only as the Space can, and /allow sees a pid of the Space.

    zerogpu_in_space.py SCENARIO NODE [ARGS...]

NODE is the leased unit's device node.  Each scenario prints one JSON object per line;
"hold" then waits for a line on stdin before releasing.  No tests live here."""
import errno
import json
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time
from datetime import timedelta

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_31_zerogpu_support import SSE, api_client, load_spaces_client  # noqa: E402

URL = os.environ.get("SPACES_ZERO_DEVICE_API_URL", "http://127.0.0.1:7911")
PORT = int(URL.rsplit(":", 1)[1])


def out(**kw):
    print(json.dumps(kw), flush=True)


def open_errno(path):
    try:
        os.close(os.open(path, os.O_RDWR))
        return 0
    except OSError as e:
        return e.errno


def fork_worker(client, token, node, then):
    """A forked worker, as the client forks one: it calls the client's allow() with its own
    pid, opens the unit's node, reports, then does @then ("sleep", "exit", "crash")."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            client.allow(token)
            os.write(w, json.dumps({"allowed": True, "open": open_errno(node)}).encode() + b"\n")
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(w, json.dumps({"allowed": False, "error": repr(e)}).encode() + b"\n")
            code = 3
        if then == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if then == "sleep" and code == 0:
            time.sleep(60)
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        return pid, json.loads(f.readline() or "{}")


def main():
    scenario, node = sys.argv[1], sys.argv[2]
    client, api, gr = load_spaces_client(URL, pathlib.Path(tempfile.mkstemp()[1]))
    c = api_client(URL)
    if scenario == "grant":
        client.startup_report()
        res = client.schedule(task_id=7, request=None, duration=timedelta(seconds=30))
        main_open = open_errno(node)  # the app's main process: the device is denied
        pid, rep = fork_worker(client, res.allowToken, node, "sleep")
        out(idle=res.idle, index=res.nvidiaIndex, uuid=res.nvidiaUUID, main_open=main_open,
            worker=rep)
        out(release=c.release(res.allowToken, fail=False), again=c.release(res.allowToken))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        # A pid that is not one of this Space's processes is refused.
        res2, _ = c.schedule(cgroup_path="/", task_id=8, duration_seconds=10)
        out(foreign=c.allow(res2.allowToken, 99999), release2=c.release(res2.allowToken))
    elif scenario == "expire":
        res = client.schedule(task_id=9, request=None, duration=timedelta(seconds=2))
        t0 = time.monotonic()
        pid, rep = fork_worker(client, res.allowToken, node, "sleep")
        _, status = os.waitpid(pid, 0)
        out(worker=rep, after=time.monotonic() - t0,
            signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            release=c.release(res.allowToken))
    elif scenario == "crash":
        res = client.schedule(task_id=10, request=None, duration=timedelta(seconds=60))
        pid, rep = fork_worker(client, res.allowToken, node, "crash")
        os.waitpid(pid, 0)
        deadline, again = time.monotonic() + 5, None
        while time.monotonic() < deadline:  # the death is noticed through a pidfd
            again, _ = c.schedule(cgroup_path="/", task_id=11, duration_seconds=5,
                                  enable_queue=False)
            if isinstance(again, api.ScheduleResponse):
                break
            time.sleep(0.05)
        out(worker=rep, back=isinstance(again, api.ScheduleResponse),
            release=c.release(again.allowToken) if isinstance(again, api.ScheduleResponse)
            else None)
    elif scenario == "queue":
        held, _ = c.schedule(cgroup_path="/", task_id=12, duration_seconds=20)
        s = SSE(PORT, "cgroupPath=%2F&taskId=13&durationSeconds=5&enableQueue=true")
        head = {"status": s.status, "reason": s.headers.get("x-queuing-reason")}
        threading.Timer(0.3, lambda: c.release(held.allowToken)).start()
        chunks = []
        while True:
            ch = s.chunk()
            if not ch:
                break
            chunks.append(ch.decode())
        s.close()
        out(head=head, chunks=chunks, queue=c.get_queue_size())
        ok = [x for x in chunks if x.startswith("event: succeeded")]
        if ok:
            tok = json.loads(ok[0].split("data: ", 1)[1])["allowToken"]
            out(release=c.release(tok))
    elif scenario == "quota":
        token = sys.argv[3]
        res, meta = c.schedule(cgroup_path="/", task_id=14, token=token, duration_seconds=60)
        out(first=type(res).__name__, auth=meta.auth, release=c.release(res.allowToken))
        res, meta = c.schedule(cgroup_path="/", task_id=15, token=token, duration_seconds=121)
        out(second=type(res).__name__, left=getattr(res, "left", None),
            wait=res.wait.total_seconds() if hasattr(res, "wait") else None)
    elif scenario == "hold":
        res = client.schedule(task_id=16, request=None, duration=timedelta(seconds=30))
        pid, rep = fork_worker(client, res.allowToken, node, "sleep")
        out(held=True, worker=rep, pid=pid)
        sys.stdin.readline()
        out(release=c.release(res.allowToken))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    else:
        sys.exit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
