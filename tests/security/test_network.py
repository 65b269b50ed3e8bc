"""Network reach from a sandbox with the default network (loopback only)."""
import socket
import threading

import pytest


@pytest.fixture
def host_service():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(10)
    accepted = []

    def serve():
        try:
            while True:
                c, _ = srv.accept()
                accepted.append(c)
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    srv.close()
    for c in accepted:
        c.close()


def test_host_loopback_service_unreachable(probe, blocked, host_service):
    port, accepted = host_service
    blocked(probe("connect", str(port)), "ECONNREFUSED")
    assert accepted == []


def test_host_network_mode_does_reach_it(probe, host_service):
    """The same probe with --net host connects: proves the check above can fail."""
    port, _ = host_service
    res = probe("connect", str(port), opts=["--net", "host"])
    assert res.verdict == "ESCAPED", res.out + res.err


def test_veth_link_in_a_private_host_namespace(spacebox, bin_dir):
    """--net veth: sbxnet's link (via bin/spacenet) is the sandbox's only way out.  Run in a
    network namespace made for the test, so the real host's links and rules stay as they
    are."""
    import shutil
    import subprocess
    if not (bin_dir / "spacenet").exists() or not shutil.which("unshare"):
        pytest.skip("spacenet or unshare missing")
    script = (f"ip link set lo up && {spacebox} run --net veth -- "
              "sh -c 'cut -d: -f1 /proc/net/dev | tail -n +3'")
    r = subprocess.run(["unshare", "--net", "--", "sh", "-c", script], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [x.strip() for x in r.stdout.split()] == ["lo", "eth0"]
    assert "space_ip=" in r.stderr  # spacenet's report goes to stderr, not the command's stdout
