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
from test_70_support import (BUILDING, commit, db_build, delete_all_spaces,  # noqa: E402
                             head, make_repo, push)

BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin"))
N = int(os.environ.get("BENCH_N", "10"))


def timed_push(rt, work, token):
    """Seconds from the start of the push to: the push returning, the build finishing (the
    builder hands the layers to the lifecycle), and the stage leaving BUILDING /
    RUNNING_BUILDING (for a running Space the lifecycle switches only once the new
    version answers, so that one includes the app's start)."""
    sha = head(work)
    t0 = time.monotonic()
    push(rt, work, "bench", "hello", token)
    pushed = time.monotonic() - t0
    built = None
    while True:
        now = time.monotonic() - t0
        if built is None:
            row = db_build(rt, "hello", sha)
            if row and row[1] is not None:
                built, status = now, row[0]
        if built is not None:
            stage = rt.get("/api/spaces/bench/hello/runtime", token).json()["stage"]
            if stage not in BUILDING:
                return pushed, built, time.monotonic() - t0, status
        if now > 900:
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
            cold = timed_push(rt, work, token)
            assert cold[3] == "done", rt.log()[-2000:]
            warm = []
            for i in range(N):
                commit(work, {"app.py": (work / "app.py").read_text() + f"\n# change {i}\n"})
                warm.append(timed_push(rt, work, token))
                assert warm[-1][3] == "done"
        finally:
            delete_all_spaces(rt)
            rt.stop()
    print(f"{'seconds from git push to':34} {'cold build':>11} {'code-only rebuild':>18}"
          f"   (median of {N}, min-max)")
    for k, label in ((0, "push returned"), (1, "build finished (handoff)"),
                     (2, "stage left BUILDING")):
        w = [x[k] for x in warm]
        print(f"  {label:32} {cold[k]:11.2f} {statistics.median(w):18.3f}"
              f"   ({min(w):.3f}-{max(w):.3f})")
    med = statistics.median(x[1] for x in warm)
    print(f"code-only rebuild target (build finished under 2 s): {'met' if med < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
