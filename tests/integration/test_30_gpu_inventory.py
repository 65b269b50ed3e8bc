"""GPU inventory through gpu-sim --inventory: the NVML backend on a machine
without the driver, and the fake backend over real character devices."""
import json
import os
import pathlib
import stat
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
SIM = pathlib.Path(os.environ.get("SPACEPORT_BIN", ROOT / "bin")) / "gpu-sim"


def inventory(*args):
    assert SIM.is_file(), f"{SIM} missing: run make first"
    return subprocess.run([str(SIM), "--inventory", *map(str, args)], capture_output=True,
                          text=True, timeout=30)


def test_nvml_without_driver():
    out = inventory("--backend", "nvml")
    if out.returncode == 0:
        pytest.skip("this machine has an NVIDIA driver")
    assert out.returncode == 3
    assert "NVIDIA driver not available" in out.stderr
    assert "libnvidia-ml.so.1" in out.stderr


def test_none_backend():
    out = inventory("--backend", "none")
    assert out.returncode == 0
    assert json.loads(out.stdout) == {"backend": "none", "driver": "", "gpus": 0, "units": []}


def test_fake_synthetic():
    out = inventory("--fake", "2xl4:24G,1xh100:80G:mig=3x2g.20gb")
    assert out.returncode == 0, out.stderr
    inv = json.loads(out.stdout)
    assert inv["gpus"] == 3
    assert [u["kind"] for u in inv["units"]] == ["l4", "l4"] + ["h100-2g.20gb"] * 3
    assert len({u["uuid"] for u in inv["units"]}) == 5
    mig = inv["units"][2]
    assert mig["mig"] == {"gi": 1, "ci": 0} and mig["memory"] == 20 << 30
    paths = [n["path"] for n in mig["nodes"]]
    assert paths[:2] == ["/dev/nvidia2", "/dev/nvidiactl"]
    assert any(p.startswith("/dev/nvidia-caps/nvidia-cap") for p in paths)


def test_fake_bad_spec():
    out = inventory("--fake", "2xl4")
    assert out.returncode == 1
    assert "expected COUNTxKIND:MEMORY" in out.stderr


def test_fake_over_real_nodes(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    spec = "1xa10g:24G"
    out = inventory("--fake", spec, "--dev-dir", tmp_path)
    assert out.returncode == 1 and "nvidia0" in out.stderr
    # Majors 120/121 are LOCAL/EXPERIMENTAL in devices.txt: no driver answers them.
    nodes = {"nvidia0": (120, 0), "nvidiactl": (120, 255), "nvidia-modeset": (120, 254),
             "nvidia-uvm": (121, 0), "nvidia-uvm-tools": (121, 1)}
    for name, (major, minor) in nodes.items():
        os.mknod(tmp_path / name, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
    out = inventory("--fake", spec, "--dev-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    unit = json.loads(out.stdout)["units"][0]
    got = {pathlib.Path(n["path"]).name: (n["major"], n["minor"]) for n in unit["nodes"]}
    assert got == nodes
    with pytest.raises(OSError) as e:
        os.open(tmp_path / "nvidia0", os.O_RDWR)
    assert e.value.errno == 6  # ENXIO: a node with no driver behind it
