"""Network escape attempts from inside `spacebox run --net veth` (research/sandbox.md §3.2,
items 31-35).  Everything happens in namespaces made here: "host" runs spacebox (so the
sandboxes' links and the nftables table live there), "inet" plays the internet, the LAN and
the cloud metadata service.  Each attempt runs as the sandbox's unprivileged uid and prints
one JSON line of results."""
import json
import os
import pathlib
import select
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "integration"))
from test_25_net_topo import (PY, Netns, Procs, is_root, parse_kv, probe, spacenet,  # noqa: E402
                             wait_until)

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root for network namespaces")

LAN_GW, UPLINK = "10.99.0.2", "10.99.0.1"
INET_SERVERS = {  # address -> what it plays
    "203.0.113.10": "internet",
    "169.254.169.254": "metadata",
    "169.254.1.1": "link-local",
    "192.168.50.10": "rfc1918",
    "100.64.0.1": "cgnat",
    LAN_GW: "lan",
}
HOST_PORTS = (22, 80, 8080, 9002)  # host services bound to 0.0.0.0 in the test host

# Runs inside the sandbox: each attempt -> "ok ..." when it worked, else the errno name.
ATTEMPTS = r"""
import errno, json, socket, struct, sys

def name(e):
    return errno.errorcode.get(e.errno, str(e)) if isinstance(e, OSError) and e.errno else type(e).__name__

def tcp(addr, port, timeout=1.0, src=None):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if src:
            s.bind((src, 0))
        s.connect((addr, port))
        return "ok " + s.recv(64).decode(errors="replace")
    except OSError as e:
        return name(e)
    finally:
        s.close()

def udp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"q", (addr, port))
        return "ok sent"
    except OSError as e:
        return name(e)
    finally:
        s.close()

def sock(*args):
    try:
        socket.socket(*args).close()
        return "ok"
    except OSError as e:
        return name(e)

def newaddr(ifname, addr):
    # RTM_NEWADDR for ifname, by hand: what `ip addr add` would send
    try:
        idx = socket.if_nametoindex(ifname)
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    except OSError as e:
        return name(e)
    try:
        ifa = struct.pack("=BBBBI", socket.AF_INET, 32, 0, 0, idx)
        a = socket.inet_aton(addr)
        rta = struct.pack("=HH", 8, 2) + a + struct.pack("=HH", 8, 1) + a
        body = ifa + rta
        hdr = struct.pack("=IHHII", 16 + len(body), 20, 0x1 | 0x4 | 0x400 | 0x200, 1, 0)
        s.send(hdr + body)
        reply = s.recv(4096)
        code = struct.unpack("=i", reply[16:20])[0]
        return "ok" if code == 0 else errno.errorcode.get(-code, str(code))
    except OSError as e:
        return name(e)
    finally:
        s.close()

def local_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv

out = {}
for item in json.loads(sys.argv[1]):
    kind, args = item[0], item[1:]
    key = " ".join(map(str, item))
    if kind == "tcp":
        out[key] = tcp(*args)
    elif kind == "udp":
        out[key] = udp(*args)
    elif kind == "sock":
        out[key] = sock(*[getattr(socket, a) if isinstance(a, str) else a for a in args])
    elif kind == "newaddr":
        out[key] = newaddr(*args)
    elif kind == "own_lo":
        srv = local_server()
        c = socket.create_connection(srv.getsockname(), 2)
        out[key] = "ok" if srv.accept() else "fail"
        c.close()
        srv.close()
print(json.dumps(out), flush=True)
"""

SERVER = r"""
import socket, sys
s = socket.socket(); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[2].encode()); c.close()
"""

UDP_SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(100); print("got", peer[0], flush=True)
"""


@pytest.fixture(scope="module")
def net(bin_dir):
    procs = Procs()
    made = []
    spacebox = str(bin_dir / "spacebox")
    try:
        host = Netns("sechost")
        made.append(host)
        inet = Netns("secinet")
        made.append(inet)
        host.ip("link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", inet.name)
        host.ip("addr", "add", f"{UPLINK}/30", "dev", "up0")
        host.ip("link", "set", "up0", "up")
        host.ip("route", "add", "default", "via", LAN_GW)
        host.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        inet.ip("addr", "add", f"{LAN_GW}/30", "dev", "eth0")
        inet.ip("link", "set", "eth0", "up")
        for a, what in INET_SERVERS.items():
            if a != LAN_GW:
                inet.ip("addr", "add", f"{a}/32", "dev", "lo")
            procs.server(inet.argv(), a, 80, what)
        dns = procs.start(inet.argv(PY, "-c", UDP_SINK, "203.0.113.10", "53"))
        assert dns.stdout.readline().strip() == "ready"
        procs.server(host.argv(), "127.0.0.1", 9001, "host-lo")
        for port in HOST_PORTS:
            procs.start(host.argv(PY, "-c", SERVER, port, f"host-{port}"))
        # sandbox B: a server in a spacebox with --net veth; the only link so far is its own
        b = procs.start(host.argv(spacebox, "run", "--net", "veth", "--", PY, "-c",
                                  SERVER, "8000", "space-b"))
        assert b.stdout.readline().strip() == "ready", b.stderr.read()
        for p in procs.procs[-len(HOST_PORTS) - 1:-1]:
            assert p.stdout.readline().strip() == "ready"
        links = spacenet(host, "list").stdout.strip().splitlines()
        assert len(links) == 1
        yield dict(host=host, inet=inet, b=parse_kv(links[0]), dns=dns, spacebox=spacebox)
    finally:
        procs.stop()
        for ns in made:
            ns.delete()


def attempt(net, items, timeout=120):
    """Runs ATTEMPTS in a fresh `spacebox run --net veth`; returns (results, its link)."""
    host = net["host"]
    p = subprocess.run(host.argv(net["spacebox"], "run", "--net", "veth", "--", PY, "-c",
                                 ATTEMPTS, json.dumps(items)),
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def host_link_addresses(net):
    """The host ends of every link now present, and the uplink: "the host side of any link"."""
    # links of earlier one-shot sandboxes go away with their namespaces, asynchronously
    assert wait_until(lambda: len(spacenet(net["host"], "list").stdout.strip().splitlines()) == 1)
    out = net["host"].ip("-4", "-o", "addr", "show").stdout
    return sorted({l.split()[3].split("/")[0] for l in out.splitlines()} - {"127.0.0.1"})


def test_probe_works_inside(net):
    """Control: the in-sandbox probe can connect where it is allowed (its own loopback)."""
    res = attempt(net, [["own_lo"]])
    assert res == {"own_lo": "ok"}


def test_31_host_services_unreachable(net):
    host_addrs = host_link_addresses(net)
    assert net["b"]["host_ip"] in host_addrs and UPLINK in host_addrs
    # controls: each host service answers on each address from the host itself
    for a in host_addrs:
        for port in HOST_PORTS:
            assert probe(net["host"].argv(), a, port) == f"host-{port}", (a, port)
    items = [["tcp", a, port] for a in host_addrs for port in HOST_PORTS]
    items.append(["tcp", "127.0.0.1", 9001])  # the sandbox's own lo: nothing there
    res = attempt(net, items, timeout=300)
    assert all(not v.startswith("ok") for v in res.values()), res
    assert res["tcp 127.0.0.1 9001"] == "ECONNREFUSED"


def test_31_the_attempting_sandboxs_own_host_end(net):
    """A sandbox tries the host end of its own link (read from its default gateway-less
    routing: the first address of its /30)."""
    code = r"""
import socket, fcntl, struct, json
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ip = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", b"eth0"))[20:24])
host = socket.inet_ntoa(struct.pack("!I", struct.unpack("!I", socket.inet_aton(ip))[0] - 1))
res = {}
for port in (22, 80, 8080, 9002):
    c = socket.socket(); c.settimeout(1)
    try:
        c.connect((host, port)); res[port] = "ok"
    except OSError as e:
        res[port] = str(e)
    c.close()
print(json.dumps({"me": ip, "host": host, "res": res}))
"""
    host = net["host"]
    p = subprocess.run(host.argv(net["spacebox"], "run", "--net", "veth", "--", PY, "-c",
                                 code), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["me"].startswith("10.231.")
    assert all(v != "ok" for v in out["res"].values()), out


def test_32_other_sandbox_unreachable(net):
    b = net["b"]
    assert probe(net["host"].argv(), b["space_ip"], 8000) == "space-b"  # control
    res = attempt(net, [["tcp", b["space_ip"], 8000]])
    assert not res[f"tcp {b['space_ip']} 8000"].startswith("ok"), res


def test_33_metadata_linklocal_private_cgnat_lan_unreachable(net):
    """Here the sandbox has no route at all (and cannot add one: see test_34); the host's
    filter behind it is tested with a Space that routes anyway in test_25_net.py."""
    for a, what in INET_SERVERS.items():
        assert probe(net["host"].argv(), a, 80) == what, a  # controls: routed from the host
    res = attempt(net, [["tcp", a, 80] for a in INET_SERVERS] + [["tcp", "fd00:ec2::254", 80]])
    assert all(not v.startswith("ok") for v in res.values()), res


def test_34_raw_packet_and_netlink_changes_refused(net):
    res = attempt(net, [
        ["sock", "AF_INET", "SOCK_RAW", socket_proto("IPPROTO_ICMP")],
        ["sock", "AF_INET", "SOCK_RAW", socket_proto("IPPROTO_RAW")],
        ["sock", "AF_PACKET", "SOCK_RAW", 0x0300],  # ETH_P_ALL: ARP spoofing needs this
        ["newaddr", "eth0", net["b"]["space_ip"]],  # pose as sandbox B
    ])
    for k, v in res.items():
        assert v in ("EPERM", "EACCES", "EAFNOSUPPORT", "EINVAL", "ENOSYS"), (k, v)


def socket_proto(name):
    import socket
    return getattr(socket, name)


def pending(f, wait=0.5):
    r, _, _ = select.select([f], [], [], wait)
    return os.read(f.fileno(), 4096).decode() if r else ""


def test_34_no_dns_or_udp_out_without_egress(net):
    dns = net["dns"]
    # control: a datagram from the host itself arrives
    net["host"].exec(PY, "-c", "import socket; socket.socket(socket.AF_INET, "
                     "socket.SOCK_DGRAM).sendto(b'q', ('203.0.113.10', 53))")
    assert pending(dns.stdout, 5).startswith("got ")
    res = attempt(net, [["udp", "203.0.113.10", 53], ["udp", LAN_GW, 53]])
    # no default route: the send fails at once; either way nothing may arrive
    assert all(v in ("ENETUNREACH", "ok sent") for v in res.values()), res
    assert pending(dns.stdout) == "", "a datagram reached the 'internet'"


def test_34_no_ipv6_towards_the_host(net):
    # the host end of every Space link has no IPv6 address at all, link-local included
    b_if = net["b"]["host_if"]
    assert "inet6" not in net["host"].ip("-6", "addr", "show", "dev", b_if).stdout
    res = attempt(net, [["tcp", "::1", 9001]])
    assert res == {"tcp ::1 9001": "ECONNREFUSED"}  # its own loopback, not the host's


def test_35_no_user_mode_gateway_to_host_loopback(net):
    """No slirp4netns/pasta: the gateway side is the host end of a veth, and a host service
    bound to 127.0.0.1 is not reachable through it (route_localnet stays off; input drops)."""
    host = net["host"]
    assert host.exec("sysctl", "-n", "net.ipv4.conf.all.route_localnet").stdout.strip() == "0"
    res = attempt(net, [["tcp", net["b"]["host_ip"], 9001], ["tcp", UPLINK, 9001]])
    assert all(not v.startswith("ok") for v in res.values()), res
    assert wait_until(lambda: len(spacenet(host, "list").stdout.strip().splitlines()) == 1)
