"""Sandbox start latency against bubblewrap, and what one idle sandbox costs the host.

Prints figures; never pass/fail.  Both sandboxes run /bin/true with the same namespaces
(user, pid, mount, ipc, uts, cgroup, net with loopback: bwrap --unshare-all), measured
interleaved in one run so machine noise hits both alike.  Two bwrap layouts are timed:
"minimal" (read-only /usr, /proc, /dev, tmpfs /tmp: the research baseline) and "same"
(the layout spacebox builds by default: plus the minimal /etc files and generated
passwd/group/hosts; spacebox also masks /proc files, which bwrap does not).  The ratio printed first compares with the minimal one,
the stricter of the two.  BENCH_N sets the number of runs (default 200)."""
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin"))
N = int(os.environ.get("BENCH_N", "200"))

ETC = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "resolv.conf",
       "host.conf", "gai.conf", "localtime", "timezone", "ssl", "ca-certificates",
       "alternatives", "mime.types", "protocols", "services", "os-release",
       "debian_version", "python3", "python3.11", "terminfo"]


def root_links():
    args = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = pathlib.Path("/") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), f"/{name}"]
        elif p.is_dir():
            args += ["--ro-bind", str(p), f"/{name}"]
    return args


def bwrap_minimal(bwrap):
    return [bwrap, "--unshare-all", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr", *root_links(),
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/bin/true"]


def bwrap_same(bwrap, gen):
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session",
            "--hostname", "sandbox", "--ro-bind", "/usr", "/usr", *root_links(),
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for name in ETC:
        p = pathlib.Path("/etc") / name
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), str(p)]
        elif p.exists():
            args += ["--ro-bind", str(p), str(p)]
    for name in ("passwd", "group", "hosts"):
        args += ["--ro-bind", str(gen / name), f"/etc/{name}"]
    return args + ["/bin/true"]


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000


def pss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def idle_cost(spacebox):
    """One idle sandbox (sleep) with a cgroup: the supervisor's and the init's memory, and
    what the kernel charges to the sandbox's memory cgroup."""
    name = f"bench-idle-{os.getpid()}"
    p = subprocess.Popen([spacebox, "run", "--name", name, "--memory", "1G", "--", "sleep", "60"])
    try:
        mem = pathlib.Path("/sys/fs/cgroup/memory/spaceport") / name
        time.sleep(0.5)
        children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                                  text=True).stdout.split()
        init = int(children[0]) if children else 0
        app = subprocess.run(["pgrep", "-P", str(init)], capture_output=True,
                             text=True).stdout.split() if init else []
        usage = None
        for f in (mem / "memory.usage_in_bytes",
                  pathlib.Path("/sys/fs/cgroup/spaceport") / name / "memory.current"):
            if f.exists():
                usage = int(f.read_text()) // 1024
                break
        return {
            "supervisor (spacebox) Pss KiB": pss_kib(p.pid),
            "sandbox init Pss KiB": pss_kib(init),
            "command (sleep) Pss KiB": pss_kib(int(app[0])) if app else 0,
            "cgroup charge (init + command + kernel objects) KiB": usage,
        }
    finally:
        p.terminate()
        p.wait(timeout=30)


def meminfo_kib(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def host_cost_per_sandbox(spacebox, k=20):
    """Starts @k idle sandboxes (no limits, so no cgroup of their own) from inside one
    memory cgroup made for the measure, and divides its charge by @k: the supervisor, the
    init, the command, page tables and the kernel objects of every namespace and mount.
    Returns KiB per sandbox, or None without a v1/v2 memory controller."""
    v1 = pathlib.Path("/sys/fs/cgroup/memory")
    group = (v1 if v1.is_dir() else pathlib.Path("/sys/fs/cgroup")) / f"bench-sbx-{os.getpid()}"
    usage = "memory.usage_in_bytes" if v1.is_dir() else "memory.current"
    try:
        group.mkdir()
    except OSError:
        return None

    def enter():
        (group / "cgroup.procs").write_text(str(os.getpid()))

    procs = []
    try:
        procs = [subprocess.Popen([spacebox, "run", "--", "sleep", "60"], preexec_fn=enter)
                 for _ in range(k)]
        time.sleep(1.0)
        total = int((group / usage).read_text()) // 1024
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        for _ in range(100):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)
    return total / k


def main():
    spacebox = str(BIN / "spacebox")
    bwrap = shutil.which("bwrap")
    if os.geteuid() != 0:
        print("bench_sandbox: needs root (uid maps, cgroups); skipped")
        return 0
    if not bwrap:
        print("bench_sandbox: bubblewrap is not installed (ops/debian-packages.txt); skipped")
        return 0
    gen = pathlib.Path(tempfile.mkdtemp(prefix="bench-sbx-"))
    os.chmod(gen, 0o755)
    (gen / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n")
    (gen / "group").write_text("root:x:0:\nuser:x:1000:\n")
    (gen / "hosts").write_text("127.0.0.1 localhost\n")
    cmds = {
        "spaceport": [spacebox, "run", "--", "/bin/true"],
        "bwrap (minimal layout)": bwrap_minimal(bwrap),
        "bwrap (same layout)": bwrap_same(bwrap, gen),
        "bare /bin/true": ["/bin/true"],
    }
    for c in cmds.values():  # warm caches, and fail early if one does not run
        timed(c)
    samples = {k: [] for k in cmds}
    for _ in range(N):
        for k, c in cmds.items():
            samples[k].append(timed(c))
    med = {k: statistics.median(v) for k, v in samples.items()}
    p90 = {k: statistics.quantiles(v, n=10)[-1] for k, v in samples.items()}
    print(f"start latency of /bin/true, median of {N} interleaved runs "
          f"(same namespaces: user pid mount ipc uts cgroup net):")
    for k in cmds:
        print(f"  {k:24s} median {med[k]:6.2f} ms   p90 {p90[k]:6.2f} ms")
    ratio = med["spaceport"] / med["bwrap (minimal layout)"]
    ratio_same = med["spaceport"] / med["bwrap (same layout)"]
    print(f"ratio spaceport/bwrap = {ratio:.2f} (bwrap minimal layout); "
          f"{ratio_same:.2f} (bwrap with spacebox's layout)")
    print(f"sandbox overhead over bare exec: spaceport {med['spaceport'] - med['bare /bin/true']:.2f} ms, "
          f"bwrap {med['bwrap (minimal layout)'] - med['bare /bin/true']:.2f} ms")
    print("memory of one idle sandbox (spacebox run --memory 1G -- sleep 60):")
    for k, v in idle_cost(spacebox).items():
        print(f"  {k}: {v}")
    per = host_cost_per_sandbox(spacebox)
    if per is not None:
        print(f"  charged to the host per idle sandbox (20 started in one memory cgroup; "
              f"supervisor, init, sleep, page tables, namespaces, mounts): {per:.0f} KiB")
    shutil.rmtree(gen, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
