"""Helpers for the escape and abuse suite: every attempt runs inside `spacebox run`.

`probe(attempt, *args, opts=[...])` runs tests/helpers/sbxprobe ATTEMPT inside a sandbox
(bound read-only at /probe) and returns a Result with the probe's verdict: "BLOCKED
<ERRNO>" when the attempt failed, "ESCAPED" when it worked.  Never run sbxprobe outside a
sandbox: it is root on this machine."""
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def verdict(self):
        m = re.search(r"^(BLOCKED \S+|ESCAPED)", self.out, re.M)
        return m.group(1) if m else None

    @property
    def errno(self):
        v = self.verdict
        return v.split()[1] if v and v.startswith("BLOCKED") else None

    def info(self, key):
        """Value of the first "INFO <key> <value>" line."""
        m = re.search(rf"^INFO {re.escape(key)}\s+(.*)$", self.out, re.M)
        return m.group(1).strip() if m else None


@pytest.fixture(scope="session")
def spacebox(bin_dir):
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root on the host (uid maps, cgroups)")
    return str(bin_dir / "spacebox")


@pytest.fixture(scope="session")
def probe_dir(helpers_dir, tmp_path_factory):
    src = helpers_dir / "sbxprobe"
    assert src.is_file(), f"{src} missing: run make {src}"
    # a world-readable copy: the sandbox's uids are unprivileged on the host
    d = tmp_path_factory.mktemp("probe")
    os.chmod(d, 0o755)
    shutil.copy2(src, d / "sbxprobe")
    os.chmod(d / "sbxprobe", 0o755)
    return d


@pytest.fixture
def box(spacebox):
    def run(*cmd, opts=(), timeout=60, **kw):
        argv = [spacebox, "run", *opts, "--", *cmd]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
        return Result(p.returncode, p.stdout, p.stderr)
    return run


@pytest.fixture
def probe(box, probe_dir):
    def run(attempt, *args, opts=(), timeout=60, **kw):
        opts = ["--ro-bind", f"{probe_dir}:/probe", *opts]
        return box("/probe/sbxprobe", attempt, *args, opts=opts, timeout=timeout, **kw)
    return run


def _assert_blocked(res, *errnos):
    """The attempt failed, with one of the errnos that name the expected defence."""
    assert res.verdict is not None, f"no verdict: rc={res.rc} out={res.out!r} err={res.err!r}"
    assert res.verdict.startswith("BLOCKED"), f"escape succeeded: {res.out}"
    if errnos:
        assert res.errno in errnos, f"blocked by {res.errno}, expected {errnos}: {res.out}"


@pytest.fixture(scope="session")
def blocked():
    return _assert_blocked
