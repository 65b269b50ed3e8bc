"""sbxnet lifecycle: links die with their Space, failures leave nothing, cleanup removes only
leftovers, and 200 create/destroy cycles leave no interface, address, route, rule, nftables
rule or namespace mount."""
import os
import signal
import subprocess

import pytest

from test_25_net_topo import (SPACENET, Netns, Procs, Space, attach, is_root, probe, sh, spacenet,
                              wait_until)

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root for network namespaces")


@pytest.fixture
def host():
    procs = Procs()
    ns = Netns("host")
    try:
        yield ns, procs
    finally:
        procs.stop()
        ns.delete()


def links(ns, prefix="spv"):
    out = ns.ip("-o", "link", "show").stdout
    return sorted(l.split(":")[1].strip().split("@")[0] for l in out.splitlines()
                  if l.split(":")[1].strip().startswith(prefix))


def table_present(ns, table="spaceport"):
    return ns.exec("nft", "list", "table", "inet", table, check=False).returncode == 0


def test_link_dies_with_its_space(host):
    ns, procs = host
    s = Space(procs, "dying", parent_ns=ns)
    link = attach(ns, s)
    assert links(ns) == [link["host_if"]]
    s.proc.kill()
    s.proc.wait()
    # the kernel tears the pair down with the namespace (asynchronously)
    assert wait_until(lambda: links(ns) == [])
    assert "inet 10.231." not in ns.ip("-4", "-o", "addr").stdout


def test_attach_errors_are_clear_and_leave_nothing(host):
    ns, procs = host
    out = spacenet(ns, "attach", "999999999", check=False)
    assert out.returncode == 1 and "pid 999999999" in out.stderr
    # a process sharing the host's namespace cannot be "attached" to itself
    own = procs.start(ns.argv("sleep", "60"))
    assert wait_until(lambda: exe_is(own.pid, "sleep"), 5, 0.002)
    out = spacenet(ns, "attach", own.pid, check=False)
    assert out.returncode == 1 and "shares our network namespace" in out.stderr
    # from a test host, a process of the machine's own namespace is refused too
    out = spacenet(ns, "attach", os.getpid(), check=False)
    assert out.returncode == 1 and "not a fresh one: it has a link" in out.stderr
    s = Space(procs, "twice", parent_ns=ns)
    first = attach(ns, s)
    out = spacenet(ns, "attach", s.pid, check=False)
    assert out.returncode == 1 and "not a fresh one: it has a link 'eth0'" in out.stderr
    assert links(ns) == [first["host_if"]]
    out = spacenet(ns, "detach", "eth0", check=False)
    assert out.returncode == 1 and "not a space link" in out.stderr
    assert spacenet(ns, "attach", check=False).returncode == 2
    assert spacenet(ns, "--pool", "10.0.0.0/33", "list", check=False).returncode == 2


def test_egress_needs_forwarding(host):
    ns, procs = host
    s = Space(procs, "egress", parent_ns=ns)
    assert ns.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    out = spacenet(ns, "attach", "--egress", s.pid, check=False)
    assert out.returncode == 1 and "egress needs the host to forward" in out.stderr
    assert links(ns) == []
    link = attach(ns, s, egress=True, extra=("--host-forwarding",))
    assert link["egress"] == "yes"
    assert ns.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"


def test_detach_is_idempotent(host):
    ns, procs = host
    s = Space(procs, "detach", parent_ns=ns)
    link = attach(ns, s)
    spacenet(ns, "detach", link["host_if"])
    assert links(ns) == []
    assert "eth0" not in s.nsexec("ip", "-o", "link").stdout
    spacenet(ns, "detach", link["host_if"])  # already gone: still success


def test_slots_are_reused_lowest_first(host):
    ns, procs = host
    a, b, c = (Space(procs, n, parent_ns=ns) for n in ("a", "b", "c"))
    la, lb = attach(ns, a), attach(ns, b)
    assert (la["host_if"], lb["host_if"]) == ("spv0", "spv1")
    assert (la["space_ip"], lb["space_ip"]) == ("10.231.0.2", "10.231.0.6")
    spacenet(ns, "detach", "spv0")
    assert attach(ns, c)["host_if"] == "spv0"


def test_custom_pool_and_prefix(host):
    ns, procs = host
    s = Space(procs, "custom", parent_ns=ns)
    link = attach(ns, s, extra=("--pool", "172.30.8.0/22", "--ifprefix", "sbx", "--table", "sbxt"))
    assert link["host_if"] == "sbx0" and link["space_ip"] == "172.30.8.2"
    assert table_present(ns, "sbxt") and not table_present(ns, "spaceport")
    assert probe(ns.argv(), link["space_ip"], s.port) == "custom"


def test_cleanup_removes_only_leftovers(host):
    ns, procs = host
    live = Space(procs, "live", parent_ns=ns)
    live_link = attach(ns, live)
    # a leftover: the owner is gone but its namespace is pinned (by ip netns add's mount)
    pinned = Netns("pinned")
    try:
        sleeper = procs.start(["ip", "netns", "exec", pinned.name, "sleep", "300"])
        # attach only once it runs inside the pinned namespace (not while still `ip`)
        assert wait_until(lambda: exe_is(sleeper.pid, "sleep"), 5, 0.002)
        out = spacenet(ns, "attach", sleeper.pid)
        gone_if = dict(kv.split("=", 1) for kv in out.stdout.split())["host_if"]
        sleeper.kill()
        sleeper.wait()
        assert sorted(links(ns)) == sorted([live_link["host_if"], gone_if])
        out = spacenet(ns, "cleanup")
        assert out.stdout.strip() == "removed=1"
        assert links(ns) == [live_link["host_if"]]
        assert table_present(ns)  # a live Space keeps its protection
        assert probe(ns.argv(), live_link["space_ip"], live.port) == "live"
        live.proc.kill()
        live.proc.wait()
        assert wait_until(lambda: links(ns) == [])
        assert spacenet(ns, "cleanup").stdout.strip() == "removed=0"
        assert not table_present(ns)
    finally:
        pinned.delete()


def snapshot(ns):
    """Everything a Space could leave behind in the host namespace, plus the mount table."""
    return {
        "links": ns.ip("-o", "link", "show").stdout,
        "addrs": ns.ip("-o", "addr", "show").stdout,
        "routes4": ns.ip("-4", "route", "show", "table", "all").stdout,
        "routes6": ns.ip("-6", "route", "show", "table", "all").stdout,
        "rules": ns.ip("rule", "show").stdout,
        "nft": ns.exec("nft", "list", "ruleset").stdout,
    }


def pinned_netns_inodes():
    """Network namespaces held by a mount (what `ip netns add` does): "net:[INODE]" roots."""
    with open("/proc/self/mountinfo") as f:
        return {l.split()[3] for l in f if l.split()[3].startswith("net:[")}


def exe_is(pid, name):
    try:
        return os.readlink(f"/proc/{pid}/exe").endswith(name)
    except OSError:
        return False


def strip_counters(ruleset):
    import re
    return re.sub(r"counter packets \d+ bytes \d+", "counter", ruleset)


@pytest.mark.slow
def test_200_cycles_leave_nothing_behind(host):
    ns, procs = host
    before = snapshot(ns)
    ruleset_during = None
    for i in range(200):
        p = procs.start(ns.argv("unshare", "--net", "sleep", "60"))
        # wait for unshare to have exec'd sleep in its new namespace
        assert wait_until(lambda: exe_is(p.pid, "sleep"), 5, 0.002)
        netns = f"net:[{os.stat(f'/proc/{p.pid}/ns/net').st_ino}]"
        # --host-forwarding: ip_forward of this test namespace only, for the egress cycles
        out = spacenet(ns, "--host-forwarding", "attach", *(["--egress"] if i % 3 == 0 else []),
                       p.pid)
        link = dict(kv.split("=", 1) for kv in out.stdout.split())
        rs = strip_counters(ns.exec("nft", "list", "table", "inet", "spaceport").stdout)
        ruleset_during = ruleset_during or rs
        assert rs == ruleset_during, "the table grew or changed with a Space"
        if i % 2 == 0:
            spacenet(ns, "detach", link["host_if"])  # orderly teardown
        p.send_signal(signal.SIGKILL)  # odd cycles: the Space just dies
        p.wait()
        # nothing pins the dead Space's namespace: checked at once, before the inode number
        # can be reused by a namespace made elsewhere on the machine
        assert netns not in pinned_netns_inodes()
    procs.procs.clear()
    assert wait_until(lambda: links(ns) == [], 30)
    assert spacenet(ns, "cleanup").stdout.strip() == "removed=0"
    after = snapshot(ns)
    # The one thing meant to stay: the pool's unreachable route, so an address of a Space
    # that is gone never follows the default route off the host.
    guard = "unreachable 10.231.0.0/16 proto static \n"
    assert guard in after["routes4"] and guard not in before["routes4"]
    after["routes4"] = after["routes4"].replace(guard, "", 1)
    for k in before:
        assert after[k] == before[k], k



def test_real_host_namespace_smoke():
    """Once in this machine's own namespace (own prefix and table, loopback-only peers)."""
    procs = Procs()
    # its own pool too: Spaces of other suites may hold the default pool's first slots
    extra = ("--ifprefix", "sptt", "--table", "spaceport_test", "--pool", "10.232.0.0/24")
    try:
        s = Space(procs, "real")
        link = attach(None, s, extra=extra)
        procs.server([], "127.0.0.1", 19471, "real-host-lo")
        procs.server([], link["host_ip"], 19472, "real-host-link")
        assert probe([], link["space_ip"], s.port) == "real"
        assert probe([], link["host_ip"], 19472) == "real-host-link"
        assert s.probe("127.0.0.1", 19471) is None
        assert s.probe(link["host_ip"], 19472) is None
        spacenet(None, *extra, "detach", link["host_if"])
        assert "sptt" not in sh("ip", "-o", "link").stdout
    finally:
        procs.stop()
        spacenet(None, *extra, "cleanup", check=False)
    assert sh("nft", "list", "table", "inet", "spaceport_test", check=False).returncode != 0


def test_allow_uid_keeps_other_local_users_out(host):
    """With --allow-uid (the proxy's uid), other host users cannot dial a Space directly."""
    ns, procs = host
    s = Space(procs, "guarded", parent_ns=ns)
    link = attach(ns, s, extra=("--allow-uid", "4242"))

    def as_uid(uid):
        return ns.argv("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups")

    assert probe(ns.argv(), link["space_ip"], s.port) == "guarded"  # root: runtimed's checks
    assert probe(as_uid(4242), link["space_ip"], s.port) == "guarded"  # the proxy
    assert probe(as_uid(65534), link["space_ip"], s.port) is None  # anyone else
    # the same configuration without the uid list replaces the table: any user again
    other = Space(procs, "open", parent_ns=ns)
    attach(ns, other)
    assert probe(as_uid(65534), link["space_ip"], s.port) == "guarded"


def test_cleanup_removes_half_made_links(host):
    """A crash between creating a link and recording its owner leaves a link without an
    alias: cleanup treats it as a leftover (and its peer goes with it)."""
    ns, procs = host
    live = Space(procs, "live", parent_ns=ns)
    attach(ns, live)
    ns.ip("link", "add", "spv7", "type", "veth", "peer", "name", "spt-half")
    out = spacenet(ns, "cleanup")
    assert out.stdout.strip() == "removed=1"
    assert links(ns) == ["spv0"]
    assert "spt-half" not in ns.ip("-o", "link").stdout


def test_concurrent_attaches_get_distinct_slots(host):
    ns, procs = host
    spaces = [Space(procs, f"c{i}", parent_ns=ns) for i in range(8)]
    runs = [subprocess.Popen(ns.argv(SPACENET, "attach", s.pid), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for s in spaces]
    got = []
    for s, p in zip(spaces, runs):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        s.link = dict(kv.split("=", 1) for kv in out.split())
        got.append(s.link["host_if"])
    assert sorted(got) == sorted(f"spv{i}" for i in range(8))
    for s in spaces:
        assert probe(ns.argv(), s.link["space_ip"], s.port) == s.name


def test_new_host_subnets_are_denied_at_the_next_attach(host):
    ns, procs = host
    attach(ns, Space(procs, "first", parent_ns=ns))
    deny = lambda: ns.exec("nft", "list", "set", "inet", "spaceport", "deny4").stdout  # noqa: E731
    assert "198.51.100.0/24" not in deny()
    # the host gains an address on a public-looking subnet (its new LAN, say)
    ns.ip("link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
    ns.ip("addr", "add", "198.51.100.7/24", "dev", "lan0")
    attach(ns, Space(procs, "second", parent_ns=ns))
    assert "198.51.100.0/24" in deny()
