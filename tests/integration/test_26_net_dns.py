"""DNS for Spaces with egress (runtimed/resolv.c, runspec.c): a Space reaches public IPv4
addresses only, so the host's resolver (127.0.0.53, a LAN address) is no use to it; it gets
its own read-only /etc/resolv.conf naming the resolvers runtimed picked (egress_resolvers,
or the public ones of the host's resolv.conf), and a Space without egress gets none.

The world is the one test_25_net.py builds, all inside namespaces this module makes: a
namespace plays the host (runtimed runs in it, so the Spaces' links, the nftables table and
ip_forward are its own), another plays the internet, where a few lines of Python answer DNS
on a public-looking address (TEST-NET-3).  The Space is a real sandbox started by
runtimed's shim; its app reports its /etc files and resolves a name through that resolver.
"""
import ctypes
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest
import requests

from test_25_net_topo import PY, Netns, Procs, is_root, sh
from test_5_support import Runtimed, free_port
from test_70_support import ROOT, head, make_repo, push

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root: namespaces and sandboxes")

LAN_GW = "10.99.0.2"  # the "internet" side of the host's uplink
UPLINK = "10.99.0.1"  # the host's own address on its uplink
RESOLVER = "203.0.113.53"  # the public resolver, inside "inet"
NAME, ANSWER = "api.example.test", "203.0.113.80"

# A DNS server: answers A queries for argv[2] with argv[3]; anything else NXDOMAIN.
DNS = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
name, ans = sys.argv[2], socket.inet_aton(sys.argv[3])
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode())
        i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    qname = ".".join(labels).lower()
    hit = qname == name and qtype == 1
    flags = 0x8180 if qname == name else 0x8183
    hdr = q[:2] + struct.pack(">HHHHH", flags, 1, 1 if hit else 0, 0, 0)
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + ans if hit else b""
    s.sendto(hdr + q[12:i + 5] + rr, peer)
"""

# The Space: / reports its /etc files and hostname, /lookup resolves NAME.
APP = r"""
import http.server, json, socket, sys

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        out = {"hostname": socket.gethostname()}
        for f in ("resolv.conf", "hosts"):
            with open("/etc/" + f) as fh:
                out[f] = fh.read()
        if self.path == "/lookup":
            try:
                out["lookup"] = socket.getaddrinfo(%r, 80, socket.AF_INET)[0][4][0]
            except OSError as e:
                out["lookup"] = "fail " + str(e)
            try:
                open("/etc/resolv.conf", "a").close()
                out["writable"] = True
            except OSError:
                out["writable"] = False
        b = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
""" % NAME

README = "---\ntitle: DNS probe\nsdk: static\napp_file: app.py\n---\n"

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


def setns(fd):
    """Moves this thread (pytest's only one) into the network namespace @fd: runtimed and
    git, started from here, live there, and so do the test's own HTTP requests."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def templates_with_python_static(dst):
    """The SDK templates, with static's run command running the app file with python3 (a
    Space that reports what it sees, without a package install)."""
    shutil.copytree(ROOT / "templates", dst)
    static = dst / "static.yaml"
    text = static.read_text()
    old = ('command: [python3, -m, http.server, "${PORT}", --bind, 0.0.0.0, --directory, '
           '"${APP_FILE_DIR}"]')
    assert old in text
    static.write_text(text.replace(old, 'command: [python3, "${APP_FILE}", "${PORT}"]'))
    return dst


def stop_shims(rt):
    for sock in (pathlib.Path(rt.data_dir) / "run").glob("*/*/shim.sock"):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(sock))
                s.sendall(b"stop 0\n")
                s.recv(100)
        except OSError:
            pass


@pytest.fixture(scope="module")
def world(bin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("rt26")
    procs = Procs()
    made = []
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    rt = None
    try:
        host = Netns("host")
        made.append(host)
        inet = Netns("inet")
        made.append(inet)
        host.ip("link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", inet.name)
        host.ip("addr", "add", f"{UPLINK}/30", "dev", "up0")
        host.ip("link", "set", "up0", "up")
        host.ip("route", "add", "default", "via", LAN_GW)
        host.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        inet.ip("addr", "add", f"{LAN_GW}/30", "dev", "eth0")
        inet.ip("link", "set", "eth0", "up")
        inet.ip("addr", "add", f"{RESOLVER}/32", "dev", "lo")
        dns = procs.start([*inet.argv(), PY, "-c", DNS, RESOLVER, NAME, ANSWER])
        assert dns.stdout.readline().strip() == "ready", dns.stderr.read()
        templates = templates_with_python_static(base / "templates")
        conf = base / "runtimed.yaml"
        conf.write_text(f'egress_resolvers: "{RESOLVER}"\ntemplates_dir: {templates}\n'
                        "light_sleep_ms: -1\n")
        nsfd = os.open(f"/run/netns/{host.name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(nsfd)
        finally:
            os.close(nsfd)
        rt = Runtimed(bin_dir, base / "data", config=conf).start()
        rt.add_user("alice")
        yield dict(rt=rt, token=rt.token("alice", "write"), base=base, host=host)
    finally:
        if rt:
            rt.stop()
            stop_shims(rt)
        setns(home)
        os.close(home)
        procs.stop()
        for ns in made:
            ns.delete()


def start_space(w, name):
    rt, token = w["rt"], w["token"]
    r = rt.create_space("alice", name, token, sdk="static")
    assert r.status_code == 200, r.text
    work = make_repo(w["base"] / "w" / name, files={"README.md": README, "app.py": APP})
    push(rt, work, "alice", name, token)
    deadline = time.time() + 180
    while time.time() < deadline:
        j = rt.get(f"/api/spaces/alice/{name}/runtime", token).json()
        if j["stage"] in ("RUNNING", "RUNTIME_ERROR", "BUILD_ERROR"):
            break
        time.sleep(0.1)
    assert j["stage"] == "RUNNING", f"{j}: {rt.log()[-3000:]}"
    assert rt.post("/api/proxy/wake", rt.proxy, json={"id": f"alice/{name}"}).status_code == 202
    for s in rt.get("/api/proxy/routes", rt.proxy).json()["spaces"]:
        if s["id"] == f"alice/{name}":
            return s["upstream"], head(work)
    raise AssertionError(f"no route for {name}")


def ask(upstream, path="/"):
    r = requests.get(f"http://{upstream}{path}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def nameservers(text):
    return [l.split()[1] for l in text.splitlines() if l.startswith("nameserver")]


def test_space_with_egress_resolves_through_the_configured_resolver(world):
    rt = world["rt"]
    assert f"Spaces with egress resolve names through {RESOLVER}" in rt.log()
    upstream, _ = start_space(world, "dns")
    j = ask(upstream, "/lookup")
    assert nameservers(j["resolv.conf"]) == [RESOLVER], j
    assert "options timeout:2 attempts:2" in j["resolv.conf"]
    # the name resolves through the fake public resolver, across the egress filter and NAT
    assert j["lookup"] == ANSWER, j
    assert j["writable"] is False, "resolv.conf must be read-only inside"
    # /etc/hosts names localhost and the Space itself, which is its hostname
    assert "127.0.0.1\tlocalhost" in j["hosts"]
    assert j["hostname"] == "alice-dns" and "\talice-dns\n" in j["hosts"], j


def test_space_without_egress_gets_no_nameserver(world):
    host = world["host"]
    host.exec("sysctl", "-qw", "net.ipv4.ip_forward=0")
    try:
        upstream, _ = start_space(world, "quiet")
        j = ask(upstream, "/lookup")
    finally:
        host.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
    assert nameservers(j["resolv.conf"]) == [], j
    assert j["lookup"].startswith("fail"), j


def run_runtimed(bin_dir, tmp_path, conf_text, fake_resolv=None, timeout=20):
    """Starts runtimed and returns (rc or None if it kept running, log).  With @fake_resolv,
    in a private mount namespace whose /etc/resolv.conf is that text (the host's file is
    never touched)."""
    tmp_path = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    tmp_path.mkdir()
    conf = tmp_path / "runtimed.yaml"
    conf.write_text(conf_text)
    data = tmp_path / "data"
    argv = [str(bin_dir / "runtimed"), "--data-dir", str(data), "--config", str(conf),
            "--listen", f"127.0.0.1:{free_port()}"]
    if fake_resolv is not None:
        f = tmp_path / "resolv.conf"
        f.write_text(fake_resolv)
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                f'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(f), *argv]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    # the resolvers are picked before the data dir is opened: a database means past them
    while time.time() < deadline and p.poll() is None and not (data / "spaceport.db").exists():
        time.sleep(0.1)
    if p.poll() is None:
        p.terminate()
        return None, p.communicate(timeout=30)[0]
    return p.returncode, p.communicate()[0]


def test_a_private_configured_resolver_is_refused_at_start(bin_dir, tmp_path):
    rc, log = run_runtimed(bin_dir, tmp_path, 'egress_resolvers: "1.1.1.1 192.168.1.1"\n'
                           "metrics_listen: \"\"\n")
    assert rc not in (None, 0), log
    assert "192.168.1.1 is not a public address" in log, log
    rc, log = run_runtimed(bin_dir, tmp_path, 'egress_resolvers: "1.1.1.1 8.8.8.8 9.9.9.9 '
                           '8.8.4.4"\nmetrics_listen: ""\n')
    assert rc not in (None, 0) and "at most 3" in log, log


def test_derived_from_the_hosts_resolv_conf(bin_dir, tmp_path):
    rc, log = run_runtimed(bin_dir, tmp_path, 'metrics_listen: ""\n',
                           "nameserver 127.0.0.53\nnameserver 10.0.0.2\n"
                           f"nameserver {RESOLVER}\noptions edns0\n")
    assert rc is None, log
    assert f"Spaces with egress resolve names through {RESOLVER}" in log, log
    rc, log = run_runtimed(bin_dir, tmp_path, 'metrics_listen: ""\n',
                           "nameserver 10.0.0.2\nnameserver 192.168.1.1\n")
    assert rc is None, log
    assert "Spaces get no DNS resolver" in log and "set egress_resolvers" in log, log
