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


def test_veth_without_networking_is_a_clear_setup_error(box):
    res = box("true", opts=["--net", "veth"])
    if res.rc == 0:
        pytest.skip("veth networking is wired in this build")
    assert res.rc == 125 and "veth" in res.err
