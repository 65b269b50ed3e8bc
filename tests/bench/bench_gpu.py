#!/usr/bin/env python3
"""ZeroGPU scheduler figures (make bench): the bursty trace replayed by gpu-sim
under our policy and plain FIFO, a larger generated trace, and the grant latency
inside the scheduler for a free GPU (target: p99 under 1 ms).  Prints figures;
never passes or fails on them."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", HERE.parent.parent / "bin"))
SIM = BIN / "gpu-sim"


def run(*args):
    return subprocess.run([str(SIM), *map(str, args)], check=True, capture_output=True,
                          text=True, timeout=300).stdout


def main():
    if not SIM.is_file():
        sys.exit(f"{SIM} missing: run make first")
    trace = HERE / "gpu-trace-bursty.csv"
    print(f"-- {trace.name}: 4 GPUs, defaults (max 300 s, 2 per Space, quotas 120/300/2400 s)")
    print(run(trace), end="")

    with tempfile.TemporaryDirectory() as tmp:
        big = pathlib.Path(tmp) / "big.csv"
        with open(big, "w") as f:
            subprocess.run([sys.executable, str(HERE / "gen_gpu_trace.py"), "--seed", "7",
                            "--hours", "24", "--rate", "1400"], stdout=f, check=True)
        print(f"\n-- generated: 24 h at 1400 calls/h base, 12 GPUs, 120 s queue timeout (the client gives up)")
        print(run("--gpus", 12, "--queue-timeout", 120, big), end="")

    lat = json.loads(run("--bench-grant", 200000, "--json"))
    g = lat["grant_free_gpu"]
    h = lat["release_handoff_queue_1000"]
    print("\n-- scheduler latency (gpu_sched_request on a free GPU; release handing a unit"
          " to the head of a 1000-deep queue)")
    print(f"grant, free GPU:        p50 {g['p50_us']:.2f} us  p99 {g['p99_us']:.2f} us"
          f"  max {g['max_us']:.1f} us  (n={g['n']}; target p99 < 1000 us:"
          f" {'met' if g['p99_us'] < 1000 else 'MISSED'})")
    print(f"handoff, queue of 1000: p50 {h['p50_us']:.2f} us  p99 {h['p99_us']:.2f} us"
          f"  max {h['max_us']:.1f} us  (n={h['n']})")


if __name__ == "__main__":
    main()
