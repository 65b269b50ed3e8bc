"""Push to finished build: a cold build of the Gradio example (dependency layer installed
from the package index, pip cache empty) against a code-only rebuild of the same Space
(dependency layer reused), each timed from the start of `git push` until the build row
is finished and the stage has left BUILDING.  Printed side by side; never pass/fail.
BENCH_N sets the number of code-only rebuilds (default 10)."""
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from test_5_support import Runtimed  # noqa: E402
from test_70_support import (BUILDING, commit, db_build, head, make_repo,  # noqa: E402
                             push)

BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin"))
N = int(os.environ.get("BENCH_N", "10"))


def timed_push(rt, work, token):
    """Seconds from the start of the push to the end of the build (and its status)."""
    sha = head(work)
    t0 = time.monotonic()
    push(rt, work, "bench", "hello", token)
    pushed = time.monotonic()
    while True:
        row = db_build(rt, "hello", sha)
        if row and row[1] is not None:
            stage = rt.get("/api/spaces/bench/hello/runtime", token).json()["stage"]
            if stage not in BUILDING:
                return time.monotonic() - t0, pushed - t0, row[0]
        if time.monotonic() - t0 > 900:
            raise SystemExit("build did not finish in 15 minutes")
        time.sleep(0.005)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtimed(BIN, pathlib.Path(tmp) / "data").start()
        try:
            rt.add_user("bench")
            token = rt.token("bench", "write")
            assert rt.create_space("bench", "hello", token, sdk="gradio").status_code == 200
            work = make_repo(pathlib.Path(tmp) / "w", "hello-gradio")
            cold, cold_push, status = timed_push(rt, work, token)
            assert status == "done", rt.log()[-2000:]
            warm, pushes = [], []
            for i in range(N):
                commit(work, {"app.py": (work / "app.py").read_text() + f"\n# change {i}\n"})
                t, p, status = timed_push(rt, work, token)
                assert status == "done"
                warm.append(t)
                pushes.append(p)
        finally:
            rt.stop()
    med = statistics.median(warm)
    print(f"{'':28} {'cold build':>12} {'code-only rebuild':>20}")
    print(f"{'push to finished build (s)':28} {cold:12.2f} {med:20.3f}   "
          f"(median of {N}; min {min(warm):.3f}, max {max(warm):.3f})")
    print(f"{'  of which git push (s)':28} {cold_push:12.2f} {statistics.median(pushes):20.3f}")
    print(f"code-only rebuild target: under 2 s -> {'met' if med < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
