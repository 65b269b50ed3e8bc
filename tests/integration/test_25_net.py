"""sbxnet: a Space is reachable from the host and from nothing else; by default it reaches
nothing; with egress it reaches the internet but never private ranges, the host or metadata.

Everything runs in namespaces made here: "host" (spacenet runs in it, so its links and its
nftables table live there), "inet" (plays the internet and the LAN behind the uplink), and one
namespace per Space.
"""
import subprocess

import pytest

from test_25_net_topo import PY, Netns, Procs, Space, attach, is_root, probe, spacenet

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root for network namespaces")

INTERNET = "203.0.113.10"   # a public-looking address (TEST-NET-3) inside "inet"
METADATA = "169.254.169.254"
PRIVATE = "192.168.50.10"
LAN_GW = "10.99.0.2"        # the uplink's other end
UPLINK = "10.99.0.1"        # the host's own address on its uplink


@pytest.fixture(scope="module")
def world():
    procs = Procs()
    made = []
    try:
        host = Netns("host")
        made.append(host)
        inet = Netns("inet")
        made.append(inet)
        host.ip("link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", inet.name)
        host.ip("addr", "add", f"{UPLINK}/30", "dev", "up0")
        host.ip("link", "set", "up0", "up")
        host.ip("route", "add", "default", "via", LAN_GW)
        # forwarding on in the test host only (a namespace's own sysctl): egress needs it
        host.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        inet.ip("addr", "add", f"{LAN_GW}/30", "dev", "eth0")
        inet.ip("link", "set", "eth0", "up")
        for a in (INTERNET, METADATA, PRIVATE):
            inet.ip("addr", "add", f"{a}/32", "dev", "lo")
        procs.server(inet.argv(), INTERNET, 80, "internet")
        procs.server(inet.argv(), METADATA, 80, "metadata")
        procs.server(inet.argv(), PRIVATE, 80, "private")
        procs.server(inet.argv(), LAN_GW, 80, "lan")
        procs.server(host.argv(), "127.0.0.1", 9001, "host-lo")
        procs.server(host.argv(), "0.0.0.0", 9002, "host-any")
        a = Space(procs, "space-a", parent_ns=host)
        b = Space(procs, "space-b", parent_ns=host)
        e = Space(procs, "space-e", parent_ns=host)
        attach(host, a)
        attach(host, b)
        attach(host, e, egress=True)
        yield dict(host=host, inet=inet, a=a, b=b, e=e)
    finally:
        procs.stop()
        for ns in made:
            ns.delete()


def from_host(w, addr, port, timeout=1.0):
    return probe(w["host"].argv(), addr, port, timeout)


def test_links_are_what_attach_printed(world):
    a, b, e = world["a"], world["b"], world["e"]
    assert a.link["space_ip"] != b.link["space_ip"]
    assert (a.link["egress"], b.link["egress"], e.link["egress"]) == ("no", "no", "yes")
    out = a.nsexec("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert f"{a.link['space_ip']}/30" in out
    assert "UP" in a.nsexec("ip", "link", "show", "lo").stdout
    # only the egress Space has a default route
    assert "default" not in a.nsexec("ip", "route").stdout
    assert f"default via {e.link['host_ip']}" in e.nsexec("ip", "route").stdout
    listed = spacenet(world["host"], "list").stdout
    for s in (a, b, e):
        assert f"host_if={s.link['host_if']} " in listed and f"owner={s.pid}" in listed


def test_space_server_answers_from_host(world):
    for s in (world["a"], world["b"], world["e"]):
        assert from_host(world, s.link["space_ip"], s.port) == s.name


def test_space_cannot_reach_another_space(world):
    a, b, e = world["a"], world["b"], world["e"]
    assert a.probe(b.link["space_ip"], b.port) is None
    assert e.probe(a.link["space_ip"], a.port) is None  # egress does not open other Spaces
    assert b.probe(e.link["space_ip"], e.port) is None


def test_space_cannot_reach_host_loopback(world):
    assert from_host(world, "127.0.0.1", 9001) == "host-lo"  # the server is there
    for s in (world["a"], world["e"]):
        assert s.probe("127.0.0.1", 9001) is None


def test_space_cannot_reach_host_side_of_any_link(world):
    a, b, e = world["a"], world["b"], world["e"]
    targets = [a.link["host_ip"], b.link["host_ip"], e.link["host_ip"], UPLINK]
    for t in targets:
        assert from_host(world, t, 9002) == "host-any", t  # reachable on the host itself
    for s in (a, e):
        for t in targets:
            assert s.probe(t, 9002) is None, (s.name, t)


def test_metadata_unreachable_with_and_without_egress(world):
    assert from_host(world, METADATA, 80) == "metadata"  # the route exists from the host
    assert world["a"].probe(METADATA, 80) is None
    assert world["e"].probe(METADATA, 80) is None


def test_egress_reaches_internet_but_not_private_ranges(world):
    e, a = world["e"], world["a"]
    assert from_host(world, PRIVATE, 80) == "private"
    assert from_host(world, LAN_GW, 80) == "lan"
    assert e.probe(INTERNET, 80) == "internet"
    assert e.probe(PRIVATE, 80) is None
    assert e.probe(LAN_GW, 80) is None  # the host's LAN
    assert a.probe(INTERNET, 80) is None  # no egress by default


def group_drops(host):
    out = host.exec("nft", "list", "chain", "inet", "spaceport", "forward").stdout
    line = next(l for l in out.splitlines() if "iifgroup" in l)
    return int(line.split("counter packets ")[1].split()[0])


def test_a_space_that_routes_anyway_reaches_nothing(world):
    """Without egress a Space has no default route; one that adds it (root in its netns here,
    which a real sandbox is not) still meets the host's forward rules, even when the host
    forwards on its link (writing net.ipv4.ip_forward=1 later turns that on for every link)."""
    a, host = world["a"], world["host"]
    a.nsexec("ip", "route", "add", "default", "via", a.link["host_ip"])
    host.exec("sysctl", "-qw", f"net.ipv4.conf.{a.link['host_if']}.forwarding=1")
    try:
        before = group_drops(host)
        for target in (INTERNET, METADATA, PRIVATE, LAN_GW):
            assert a.probe(target, 80) is None, target
        assert group_drops(host) > before  # the egress-group rule is what stopped them
    finally:
        host.exec("sysctl", "-qw", f"net.ipv4.conf.{a.link['host_if']}.forwarding=0")
        a.nsexec("ip", "route", "del", "default", check=False)


def test_egress_is_masqueraded(world):
    # the internet sees the host's uplink address, never the pool
    inet = world["inet"]
    inet.ip("addr", "add", "203.0.113.11/32", "dev", "lo")
    procs = Procs()
    try:
        p = procs.start(inet.argv(PY, "-c", PEER_ECHO, "203.0.113.11", "81"))
        assert p.stdout.readline().strip() == "ready"
        assert world["e"].probe("203.0.113.11", 81) == UPLINK
    finally:
        procs.stop()
        inet.ip("addr", "del", "203.0.113.11/32", "dev", "lo", check=False)


PEER_ECHO = r"""
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4)
print("ready", flush=True)
c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
"""


def test_spoofed_source_is_dropped(world):
    e, b = world["e"], world["b"]
    # root inside the test Space may add any address; the host still drops what does not
    # come from the address routed to the Space's own link
    spoof = b.link["space_ip"]
    e.nsexec("ip", "addr", "add", f"{spoof}/32", "dev", "eth0")
    try:
        assert e.probe(INTERNET, 80) == "internet"
        assert e.probe(INTERNET, 80, src=spoof) is None
    finally:
        e.nsexec("ip", "addr", "del", f"{spoof}/32", "dev", "eth0", check=False)


def prerouting_drops(host):
    out = host.exec("nft", "list", "chain", "inet", "spaceport", "prerouting").stdout
    return sum(int(l.split("counter packets ")[1].split()[0]) for l in out.splitlines()
               if "counter packets" in l)


def test_posing_as_the_host_is_dropped(world):
    """A Space sending as the host end of its own link: dropped before anything else (the
    reverse path check, and a rule against local sources behind it)."""
    e, host = world["e"], world["host"]
    spoof = e.link["host_ip"]
    mac = host.ip("-o", "link", "show", e.link["host_if"]).stdout.split("link/ether ")[1].split()[0]
    assert e.probe(INTERNET, 80) == "internet"  # the path works
    # once the host's address is the Space's own, reach the host by a static neighbour entry
    e.nsexec("ip", "addr", "add", f"{spoof}/32", "dev", "eth0")
    e.nsexec("ip", "route", "add", f"{INTERNET}/32", "dev", "eth0")
    e.nsexec("ip", "neigh", "replace", INTERNET, "lladdr", mac, "dev", "eth0")
    try:
        before = prerouting_drops(host)
        assert e.probe(INTERNET, 80, src=spoof) is None
        assert prerouting_drops(host) > before  # seen and dropped on the way in
    finally:
        e.nsexec("ip", "neigh", "del", INTERNET, "dev", "eth0", check=False)
        e.nsexec("ip", "route", "del", f"{INTERNET}/32", check=False)
        e.nsexec("ip", "addr", "del", f"{spoof}/32", "dev", "eth0", check=False)
    assert e.probe(INTERNET, 80) == "internet"


def test_ipv6_to_host_dropped(world):
    # the host end has no IPv6 at all: nothing link-local to talk to
    host_if = world["a"].link["host_if"]
    out = world["host"].ip("-6", "addr", "show", "dev", host_if).stdout
    assert "inet6" not in out


def test_without_the_table_the_host_is_reachable(world):
    """The control: the rules, not the topology, are what block (so the tests above can fail)."""
    host, a = world["host"], world["a"]
    target = a.link["host_ip"]
    assert a.probe(target, 9002) is None
    rules = spacenet(host, "ruleset").stdout
    host.exec("nft", "delete", "table", "inet", "spaceport")
    try:
        assert a.probe(target, 9002) == "host-any"
    finally:
        p = subprocess.run(host.argv("nft", "-f", "-"), input=rules, text=True,
                           capture_output=True)
        assert p.returncode == 0, p.stderr
    assert a.probe(target, 9002) is None
