"""Operations (docs/operator-guide.md): the example config comes from the parser's
table, the install layout, the systemd units (systemd-analyze verify and security), the
sysusers/tmpfiles entries, and the debootstrap base image (only with
SPACEPORT_TEST_MKBASE=1: it downloads from Debian's mirror and fills ~850 MB)."""
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from test_5_support import Runtimed

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run([str(a) for a in argv], **kw)


# --- the example config -----------------------------------------------------------------

def test_committed_example_is_what_the_table_prints(bin_dir):
    res = run([bin_dir / "runtimed", "--print-config-example"])
    assert res.returncode == 0, res.stderr
    committed = (ROOT / "ops/runtimed.conf.example").read_text()
    assert res.stdout == committed, (
        "ops/runtimed.conf.example is stale: bin/runtimed --print-config-example > "
        "ops/runtimed.conf.example")


def test_every_key_is_documented_and_accepted(bin_dir, tmp_path):
    text = (ROOT / "ops/runtimed.conf.example").read_text()
    lines = text.splitlines()
    keys = [(i, m.group(1)) for i, line in enumerate(lines)
            if (m := re.match(r"^([a-z_]+):", line))]
    assert len(keys) >= 10
    for i, key in keys:
        assert lines[i - 1].startswith("# "), f"{key} has no comment above it"
        # each key alone is accepted by the parser; a key it does not know is refused
        cfg = tmp_path / f"{key}.yaml"
        cfg.write_text(lines[i] + "\nnot_a_key_" + key + ": 1\n")
        res = run([bin_dir / "runtimed", "--config", cfg, "--data-dir", tmp_path / "never"])
        assert res.returncode == 1 and f"unknown setting 'not_a_key_{key}'" in res.stderr, \
            (key, res.stderr)
    # the whole example, as written, starts runtimed
    rt = Runtimed(bin_dir, tmp_path / "data", ROOT / "ops/runtimed.conf.example").start()
    try:
        assert rt.get("/api/spaces").status_code == 200
    finally:
        rt.stop()


# --- install layout, units, sysusers, tmpfiles -----------------------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory, bin_dir):
    """ops/install.sh into a DESTDIR with PREFIX=/usr, plus the two daemons (what
    `make install` adds), so the units' ExecStart= paths exist under the root."""
    dest = tmp_path_factory.mktemp("destdir")
    env = dict(os.environ, PREFIX="/usr", DESTDIR=str(dest), SYSCONFDIR="/etc")
    res = run([ROOT / "ops/install.sh"], env=env)
    assert res.returncode == 0, res.stderr
    (dest / "usr/bin").mkdir(parents=True, exist_ok=True)
    for b in ("runtimed", "spaceproxy", "spacectl", "spaceport-shim"):
        shutil.copy2(pathlib.Path(bin_dir) / b, dest / "usr/bin" / b)
    return dest


def test_make_install_runs_the_ops_installer():
    res = run(["make", "-n", "install", "PREFIX=/opt/sp", "DESTDIR=/tmp/x"], cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "ops/install.sh" in res.stdout and "PREFIX=/opt/sp" in res.stdout
    assert "DESTDIR=/tmp/x" in res.stdout


def test_install_layout(installed, bin_dir, tmp_path):
    d = installed
    for p in ("usr/lib/systemd/system/spaceport-runtimed.service",
              "usr/lib/systemd/system/spaceport-proxy.service",
              "usr/lib/sysusers.d/spaceport.conf", "usr/lib/tmpfiles.d/spaceport.conf",
              "usr/share/spaceport/templates/gradio.yaml", "usr/share/spaceport/mkbase.sh",
              "usr/share/doc/spaceport/operator-guide.md", "usr/share/doc/spaceport/backup.md",
              "usr/share/doc/spaceport/examples/runtimed.conf.example",
              "etc/spaceport/runtimed.conf", "etc/spaceport/spaceproxy.yaml"):
        assert (d / p).is_file(), p
    unit = (d / "usr/lib/systemd/system/spaceport-runtimed.service").read_text()
    assert "@" not in unit.replace("%", ""), "every placeholder is filled"
    assert "ExecStart=/usr/bin/runtimed --config /etc/spaceport/runtimed.conf" in unit
    conf = d / "etc/spaceport/runtimed.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    assert "templates_dir: /usr/share/spaceport/templates" in conf.read_text()
    proxy_conf = (d / "etc/spaceport/spaceproxy.yaml").read_text()
    assert re.search(r"^runtimed: http://127\.0\.0\.1:8080", proxy_conf, re.M)
    # The installed configs are accepted by the daemons that read them.
    installed_conf = tmp_path / "runtimed.conf"
    installed_conf.write_text(conf.read_text().replace("/usr/share/spaceport",
                                                       str(d / "usr/share/spaceport")))
    rt = Runtimed(bin_dir, tmp_path / "data", installed_conf).start()
    rt.stop()
    res = run([bin_dir / "spaceproxy", "--config", d / "etc/spaceport/spaceproxy.yaml",
               "--help"])
    assert res.returncode == 0, res.stderr
    # A second install keeps the operator's edits.
    conf.write_text("domain: example.org\n")
    env = dict(os.environ, PREFIX="/usr", DESTDIR=str(d), SYSCONFDIR="/etc")
    assert run([ROOT / "ops/install.sh"], env=env).returncode == 0
    assert conf.read_text() == "domain: example.org\n"


def test_units_pass_systemd_analyze_verify(installed, bin_dir, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze missing (Debian package systemd, ops/debian-packages.txt)")
    # The installed units, pointed at the binaries built here (verify checks that
    # ExecStart= is executable, and --root would lack the host's sysinit.target).
    units = []
    for u in sorted((installed / "usr/lib/systemd/system").glob("*.service")):
        units.append(tmp_path / u.name)
        units[-1].write_text(u.read_text().replace("/usr/bin/", f"{bin_dir}/"))
    res = run(["systemd-analyze", "verify", "--man=no", *units])
    # verify exits 0 with warnings (unknown keys, bad values): any output is a failure
    assert res.returncode == 0 and not res.stderr.strip() and not res.stdout.strip(), \
        res.stdout + res.stderr
    # and it does catch a broken unit, so the check above means something
    bad = tmp_path / "spaceport-broken.service"
    bad.write_text(units[0].read_text().replace(f"{bin_dir}/", "/nonexistent/") +
                   "\n[Service]\nNoSuchDirective=1\n")
    res = run(["systemd-analyze", "verify", "--man=no", bad])
    assert res.returncode != 0 and "/nonexistent/" in res.stderr, res.stderr
    assert "NoSuchDirective" in res.stderr, res.stderr


def directives(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_proxy_unit_is_locked_down_and_runtimed_keeps_spaces(installed):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze missing")
    unit = installed / "usr/lib/systemd/system/spaceport-proxy.service"
    res = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", f"--root={installed}",
               "--threshold=25", "/usr/lib/systemd/system/spaceport-proxy.service"])
    assert res.returncode == 0, res.stdout[-1500:] + res.stderr
    m = re.search(r"Overall exposure level for spaceport-proxy.service: ([0-9.]+)", res.stdout)
    assert m and float(m.group(1)) <= 2.5, res.stdout[-500:]
    text = unit.read_text()
    assert "User=spaceport" in text and "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in text
    rt = (installed / "usr/lib/systemd/system/spaceport-runtimed.service").read_text()
    # a restart of runtimed must not take the Spaces' shims with it
    assert "KillMode=process" in rt and "Delegate=yes" in rt and "Restart=on-failure" in rt
    # and no private mount namespace: a later runtimed must see the mounts of this one
    for directive in ("ProtectSystem=", "PrivateTmp=", "ProtectHome=", "PrivateDevices="):
        assert not [d for d in directives(rt) if d.startswith(directive)], directive


def test_sysusers_and_tmpfiles(installed):
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} missing")
    root = installed
    (root / "etc").mkdir(exist_ok=True)
    res = run(["systemd-sysusers", f"--root={root}", root / "usr/lib/sysusers.d/spaceport.conf"])
    assert res.returncode == 0, res.stderr
    passwd = (root / "etc/passwd").read_text()
    entry = [line for line in passwd.splitlines() if line.startswith("spaceport:")]
    assert entry and int(entry[0].split(":")[2]) < 1000, passwd  # a system user
    res = run(["systemd-tmpfiles", "--create", f"--root={root}",
               root / "usr/lib/tmpfiles.d/spaceport.conf"])
    assert res.returncode == 0, res.stderr
    data = root / "var/lib/spaceport"
    assert data.is_dir() and data.stat().st_mode & 0o777 == 0o700


# --- the base image -------------------------------------------------------------------------

@pytest.mark.slow
def test_mkbase_builds_a_root_spaces_run_on(bin_dir, tmp_path):
    want = os.environ.get("SPACEPORT_TEST_MKBASE")
    if not want:
        pytest.skip("set SPACEPORT_TEST_MKBASE=1 to build the debootstrap base (minutes, "
                    "~850 MB from Debian's mirror), or =DIR to test an existing one")
    if want != "1" and pathlib.Path(want).is_dir():
        base = pathlib.Path(want)
    else:
        base = tmp_path / "base"
        t0 = time.time()
        res = run([ROOT / "ops/mkbase.sh", base], timeout=1800)
        assert res.returncode == 0, res.stderr[-3000:]
        print(f"mkbase: {time.time() - t0:.0f} s")
        assert (base / "etc/spaceport-base").is_file()
        # a half-built base is never left under the final name
        assert not (tmp_path / ".base.partial").exists()
    res = run([bin_dir / "spacebox", "run", "--rootfs", base, "--tmpfs", "/tmp", "--", "/bin/sh",
               "-c", "python3 -m venv /tmp/v && /tmp/v/bin/python -c 'import ssl, sqlite3, "
                     "sys; print(sys.version_info[:2])' && git --version && git lfs version && "
                     "id -un"])
    assert res.returncode == 0, res.stderr
    assert "(3, " in res.stdout and "git version" in res.stdout and "git-lfs" in res.stdout
    assert res.stdout.strip().endswith("user")


def test_spaceproxy_serves_port_80_as_nobody_with_one_capability(bin_dir, tmp_path):
    """What spaceport-proxy.service gives it (User=, AmbientCapabilities=
    CAP_NET_BIND_SERVICE, CapabilityBoundingSet=, NoNewPrivileges=) is enough to serve
    :80, reproduced with setpriv in a private network namespace."""
    for tool in ("unshare", "setpriv", "curl"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} missing")
    token = tmp_path / "proxy-token"
    token.write_text("sp_" + "x" * 40 + "\n")
    token.chmod(0o644)
    tmp_path.chmod(0o755)
    script = f"""
ip link set lo up
setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \\
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \\
    --bounding-set=-all,+net_bind_service \\
    {bin_dir}/spaceproxy --listen 127.0.0.1:80 --token-file {token} --workers 1 2>/dev/null &
pid=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:80/ && break; sleep 0.1; done
curl -s -o /dev/null -w 'status=%{{http_code}}\\n' -H 'Host: a-b.localhost' http://127.0.0.1:80/
grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs):' /proc/$pid/status
kill $pid; wait $pid
"""
    res = run(["unshare", "-n", "sh", "-c", script], timeout=60)
    out = res.stdout
    assert "status=404" in out, out + res.stderr  # served: no Space of that name
    assert re.search(r"^Uid:\s+65534\s+65534\s+65534\s+65534", out, re.M), out
    cap = 1 << 10  # CAP_NET_BIND_SERVICE
    assert int(re.search(r"^CapEff:\s+([0-9a-f]+)", out, re.M).group(1), 16) == cap, out
    assert int(re.search(r"^CapBnd:\s+([0-9a-f]+)", out, re.M).group(1), 16) == cap, out
    assert re.search(r"^NoNewPrivs:\s+1", out, re.M), out


def test_sandboxes_start_under_runtimeds_unit_limits(bin_dir, installed):
    """The capabilities spaceport-runtimed.service takes away (CapabilityBoundingSet=~...)
    and NoNewPrivileges= still let a sandbox start, with its own network."""
    unit = (installed / "usr/lib/systemd/system/spaceport-runtimed.service").read_text()
    dropped = re.search(r"^CapabilityBoundingSet=~(.*)$", unit, re.M).group(1).split()
    assert "CAP_SYS_ADMIN" not in dropped and "CAP_NET_ADMIN" not in dropped
    bounding = ",".join("-" + c.lower().removeprefix("cap_") for c in dropped)
    res = run(["setpriv", "--no-new-privs", f"--bounding-set={bounding}", bin_dir / "spacebox",
               "run", "--net", "veth", "--", "/bin/sh", "-c",
               "grep -E '^(NoNewPrivs|CapBnd)' /proc/self/status; ip -o -4 addr show eth0"],
              timeout=60)
    assert res.returncode == 0, res.stderr
    assert re.search(r"^NoNewPrivs:\s+1", res.stdout, re.M), res.stdout
    assert "eth0" in res.stdout and "inet " in res.stdout, res.stdout
