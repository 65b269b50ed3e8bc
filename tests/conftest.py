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
