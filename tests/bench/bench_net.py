#!/usr/bin/env python3
"""Sandbox networking figures (make bench): what `--net veth` adds to a sandbox start.

1. In-process (spacenet bench): attach and detach of a Space link to a fresh netns child,
   in a private namespace, 200 cycles.
2. End to end: `spacebox run --net none -- true` against `--net veth -- true`, interleaved,
   in a namespace made here (so the links and rules live and die there).
3. Peer: the same link made the common way, with ip(8) commands (one exec each).
Prints figures; never passes or fails on them."""
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", HERE.parent.parent / "bin"))


def sh(*cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)
    if p.returncode != 0:
        sys.exit(f"bench_net: {' '.join(map(str, cmd))}: {p.stderr.strip()}")
    return p


def fmt(xs):
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"mean {statistics.mean(xs):7.2f} ms  p50 {xs[len(xs) // 2]:7.2f}  p95 {p95:7.2f}"


def timed(argv):
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return (time.perf_counter() - t) * 1000


def spacebox_start(ns, n=40):
    none, veth = [], []
    box = str(BIN / "spacebox")
    for _ in range(n):
        none.append(timed(["ip", "netns", "exec", ns, box, "run", "--net", "none", "--", "true"]))
        veth.append(timed(["ip", "netns", "exec", ns, box, "run", "--net", "veth", "--", "true"]))
    return none, veth


def ip_peer(ns, n=40):
    """The link made with ip(8): veth with the peer in a fresh netns, addresses, up, lo up."""
    out = []
    for i in range(n):
        child = subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "--net", "sleep", "30"])
        pid = str(child.pid)
        while not os.readlink(f"/proc/{pid}/exe").endswith("sleep"):  # unshare has exec'd
            time.sleep(0.002)
        t = time.perf_counter()
        sh("ip", "-n", ns, "link", "add", "pv0", "type", "veth", "peer", "name", "eth0",
           "netns", pid)
        sh("ip", "-n", ns, "addr", "add", "10.232.0.1/30", "dev", "pv0")
        sh("ip", "-n", ns, "link", "set", "pv0", "up")
        sh("nsenter", "-t", pid, "-n", "ip", "addr", "add", "10.232.0.2/30", "dev", "eth0")
        sh("nsenter", "-t", pid, "-n", "ip", "link", "set", "eth0", "up")
        sh("nsenter", "-t", pid, "-n", "ip", "link", "set", "lo", "up")
        out.append((time.perf_counter() - t) * 1000)
        sh("ip", "-n", ns, "link", "del", "pv0")
        child.kill()
        child.wait()
    return out


def main():
    if os.geteuid() != 0:
        sys.exit("bench_net: needs root (network namespaces)")
    for prog in ("spacenet", "spacebox"):
        if not (BIN / prog).is_file():
            sys.exit(f"{BIN / prog} missing: run make first")
    print("-- spacenet bench: the library alone (libnl + libnftables, no exec)")
    print(sh(BIN / "spacenet", "bench", "--count", "200").stdout, end="")

    ns = f"spt-bench-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        none, veth = spacebox_start(ns)
        print("-- spacebox run -- true, whole command (40 runs each, interleaved)")
        print(f"  --net none   {fmt(none)}")
        print(f"  --net veth   {fmt(veth)}")
        print(f"  networking adds {statistics.median(veth) - statistics.median(none):+.2f} ms "
              "at the median (spacebox execs bin/spacenet attach before the init runs; the link "
              "dies with the sandbox's netns)")
        peer = ip_peer(ns)
        print("-- peer: the same link with ip(8), 6 execs (40 runs)")
        print(f"  ip commands  {fmt(peer)}")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
