"""bin/spacenet follows the conventions of the other programs, and refuses bad settings
before touching anything (no root needed)."""
import subprocess

import pytest

from test_25_net_topo import SPACENET


def run(*args):
    return subprocess.run([str(SPACENET), *args], capture_output=True, text=True, timeout=10)


def test_version_help_unknown():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("spacenet ")
    out = run("--help")
    assert out.returncode == 0 and out.stdout.startswith("usage:")
    out = run("--no-such-option")
    assert out.returncode == 2 and "--no-such-option" in out.stderr
    out = run("no-such-command")
    assert out.returncode == 2 and "no-such-command" in out.stderr


@pytest.mark.parametrize("args, says", [
    (("--pool", "10.231.0.1/16", "list"), "host bits set"),
    (("--pool", "10.231.0.0/30", "list"), "prefix must be 8..29"),
    (("--ifprefix", "spv*", "list"), "only a-z, 0-9 and '-'"),
    (("--table", "t; flush ruleset", "list"), "only a-z, 0-9 and '_'"),
    (("--allow-uid", "x", "list"), "expected a uid"),
    (("attach", "0"), "expected a PID"),
    (("attach", "1", "2"), "unexpected '2'"),
    (("detach",), "expected IFNAME"),
    (("bench", "--count", "1"), "--count 2..100000"),
])
def test_bad_settings_are_refused(args, says):
    out = run(*args)
    assert out.returncode == 2, out
    assert says in out.stderr
