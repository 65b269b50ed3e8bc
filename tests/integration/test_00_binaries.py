"""Every program answers --help and --version, and refuses an unknown option clearly."""
import subprocess

import pytest

PROGRAMS = ["runtimed", "spacectl", "spaceproxy", "spacebox"]


@pytest.mark.parametrize("prog", PROGRAMS)
def test_version(bin_dir, prog):
    out = subprocess.run([bin_dir / prog, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.startswith(f"{prog} ")
    assert out.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("prog", PROGRAMS)
def test_help(bin_dir, prog):
    out = subprocess.run([bin_dir / prog, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.startswith("usage:")


@pytest.mark.parametrize("prog", PROGRAMS)
def test_unknown_option(bin_dir, prog):
    out = subprocess.run([bin_dir / prog, "--no-such-option"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert "--no-such-option" in out.stderr
