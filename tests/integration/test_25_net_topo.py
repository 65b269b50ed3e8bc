"""Network namespaces that tests build for sbxnet (no tests here, only the pieces).

A test never touches an address outside the namespaces it creates: a namespace plays the
host (`spacenet` runs inside it, so its links and nftables table live and die there), another
plays the internet and the LAN, and each Space is a process in its own network namespace.
"""
import os
import pathlib
import secrets
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin"))
SPACENET = BIN / "spacenet"
# the system interpreter: it must run as any uid and inside sandboxes (not a per-user shim)
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

# A TCP server: answers each connection with its name, then closes.  Prints "ready".
SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(sys.argv[3].encode())
    finally:
        c.close()
"""

# A TCP client: prints the server's name, or "fail <why>".  Optional source address.
CLIENT = r"""
import socket, sys
addr, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket()
s.settimeout(timeout)
try:
    if len(sys.argv) > 4:
        s.bind((sys.argv[4], 0))
    s.connect((addr, port))
    print("ok", s.recv(100).decode())
except OSError as e:
    print("fail", type(e).__name__, e)
"""


def sh(*cmd, check=True, timeout=30):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))}: rc={out.returncode}\n{out.stdout}{out.stderr}")
    return out


def is_root():
    return os.geteuid() == 0


class Netns:
    """A named network namespace (ip netns add); delete() removes it and what lives in it."""

    def __init__(self, tag):
        self.name = f"spt-test-{tag}-{secrets.token_hex(3)}"
        sh("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args, check=True):
        return sh("ip", "-n", self.name, *args, check=check)

    def exec(self, *args, check=True, timeout=30):
        return sh("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def argv(self, *args):
        return ["ip", "netns", "exec", self.name, *map(str, args)]

    def delete(self):
        sh("ip", "netns", "del", self.name, check=False)


class Procs:
    """Background processes, killed and reaped by stop()."""

    def __init__(self):
        self.procs = []

    def start(self, argv):
        p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.procs.append(p)
        return p

    def server(self, prefix_argv, addr, port, name):
        p = self.start([*prefix_argv, PY, "-c", SERVER, addr, str(port), name])
        line = p.stdout.readline()
        assert line.strip() == "ready", f"server {name} did not start: {line!r} {p.stderr.read()}"
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait(timeout=10)
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        self.procs = []


class Space:
    """A process in its own network namespace serving SERVER on 0.0.0.0:port."""

    def __init__(self, procs, name, port=8000, parent_ns=None):
        prefix = (parent_ns.argv() if parent_ns else []) + ["unshare", "--net"]
        self.name = name
        self.port = port
        self.proc = procs.server(prefix, "0.0.0.0", port, name)
        self.pid = self.proc.pid  # ip netns exec and unshare both exec: same pid
        self.link = None

    def probe(self, addr, port, timeout=1.0, src=None):
        return probe(["nsenter", "-t", str(self.pid), "-n"], addr, port, timeout, src)

    def nsexec(self, *args, check=True):
        return sh("nsenter", "-t", str(self.pid), "-n", *args, check=check)


def probe(prefix_argv, addr, port, timeout=1.0, src=None):
    """Connects from where prefix_argv runs; returns the server's name or None."""
    extra = [src] if src else []
    out = sh(*prefix_argv, PY, "-c", CLIENT, addr, str(port), str(timeout), *extra,
             timeout=timeout + 20)
    words = out.stdout.split(maxsplit=1)
    return words[1].strip() if words and words[0] == "ok" else None


def parse_kv(line):
    return dict(kv.split("=", 1) for kv in line.split())


def spacenet(host_ns, *args, check=True):
    """Runs bin/spacenet inside host_ns (or in this namespace when host_ns is None)."""
    argv = (host_ns.argv() if host_ns else []) + [str(SPACENET), *map(str, args)]
    return sh(*argv, check=check)


def attach(host_ns, space, egress=False, extra=()):
    args = [*extra, "attach", *(["--egress"] if egress else []), space.pid]
    out = spacenet(host_ns, *args)
    space.link = parse_kv(out.stdout.strip())
    return space.link


def wait_until(pred, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
