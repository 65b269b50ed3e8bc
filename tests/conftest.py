"""Fixtures shared by the pytest suites: where the built binaries and helpers are."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin"))
BUILD = pathlib.Path(os.environ.get("SPACEPORT_BUILD", ROOT / "build"))


@pytest.fixture(scope="session")
def bin_dir():
    for prog in ("runtimed", "spacectl", "spaceproxy", "spacebox"):
        assert (BIN / prog).is_file(), f"{BIN / prog} missing: run make first"
    return BIN


@pytest.fixture(scope="session")
def helpers_dir():
    return BUILD / "helpers"


@pytest.fixture(scope="session", autouse=True)
def stop_leftover_spaces(tmp_path_factory):
    """Running Spaces outlive runtimed by design (their shims): at the end of the session
    every shim whose state dir lies under this session's temp dirs is told to stop."""
    yield
    import socket

    base = str(tmp_path_factory.getbasetemp())
    from shimsocks import all_shim_sockets

    for sock in all_shim_sockets(base):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(sock))
                s.sendall(b"stop 0\n")
                s.recv(4096)
        except OSError:
            pass
