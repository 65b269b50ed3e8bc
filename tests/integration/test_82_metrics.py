"""/metrics (runtimed/metrics.h): the Prometheus text format, parsed by Prometheus's
own Python parser, served only on the admin listener, with the store's state in it."""
import os
import socket
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from test_5_support import Runtimed, free_port

STAGES = {"NO_APP_FILE", "CONFIG_ERROR", "BUILDING", "BUILD_ERROR", "APP_STARTING", "RUNNING",
          "RUNNING_BUILDING", "RUNTIME_ERROR", "SLEEPING", "PAUSED", "STOPPED", "DELETING"}


def scrape(url):
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    return families, r.text


def samples(families, name):
    return {tuple(sorted(s.labels.items())): s.value for s in families[name].samples
            if s.name == name}


def value(families, family, name=None, **labels):
    for s in families[family].samples:
        if s.name == (name or family) and s.labels == labels:
            return s.value
    raise KeyError(f"{name or family}{labels}")


@pytest.fixture
def node(bin_dir, tmp_path):
    port = free_port()
    cfg = tmp_path / "rt.yaml"
    cfg.write_text(f"metrics_listen: 127.0.0.1:{port}\ngpu_backend: fake\n"
                   "gpu_fake: 1xt4:16G,1xa10g:24G\nzero_gpus: 1\nzero_gpu_kind: a10g\n")
    rt = Runtimed(bin_dir, tmp_path / "data", cfg).start()
    rt.metrics_url = f"http://127.0.0.1:{port}/metrics"
    yield rt
    rt.stop()


def git_env():
    return {k: v for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


def test_metrics_parse_and_show_the_store(node, tmp_path):
    fams, text = scrape(node.metrics_url)
    # every stage is a series, even at zero, so dashboards never see gaps
    assert {dict(k)["stage"] for k in samples(fams, "spaceport_spaces")} == STAGES
    assert sum(samples(fams, "spaceport_spaces").values()) == 0
    assert value(fams, "spaceport_users") == 1  # admin
    assert fams["spaceport_build_duration_seconds"].type == "histogram"
    assert fams["spaceport_wake_duration_seconds"].type == "histogram"
    assert value(fams, "spaceport_build_duration_seconds",
                 "spaceport_build_duration_seconds_bucket", le="+Inf") == 0
    for name in ("spaceport_builds_finished", "spaceport_wakes", "spaceport_sleeps",
                 "spaceport_space_starts", "spaceport_pushes"):
        assert fams[name].type == "counter", name
    for name in ("spaceport_build_queue_length", "spaceport_gpu_dedicated_leased",
                 "spaceport_zerogpu_leases", "spaceport_zerogpu_queue_length"):
        assert fams[name].type == "gauge", name
    start = value(fams, "spaceport_start_time_seconds")
    assert abs(start - time.time()) < 60
    assert text.endswith("\n")

    # Spaces, a user, a paused Space and a real build (a README naming an unknown SDK
    # ends in CONFIG_ERROR, with its build in the store)
    node.add_user("dora")
    dora = node.token("dora", "write")
    for name in ("one", "two", "three"):
        r = node.create_space("dora", name, token=dora)
        assert r.status_code in (200, 201), r.text
    for name, tier in (("gpu", "t4-small"), ("zero", "zero-a10g")):
        r = node.create_space("dora", name, token=dora, hardware=tier)
        assert r.status_code in (200, 201), r.text
    r = node.post("/api/spaces/dora/two/pause", dora)
    assert r.status_code == 200, r.text
    w = tmp_path / "w"
    w.mkdir()
    g = ["git", "-C", str(w), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(g + ["init", "-q", "-b", "main"], check=True)
    (w / "README.md").write_text("---\nsdk: nosuchsdk\n---\n")
    subprocess.run(g + ["add", "."], check=True)
    subprocess.run(g + ["commit", "-qm", "x"], check=True)
    port = node.url.rsplit(":", 1)[1]
    subprocess.run(g + ["push", "-q", f"http://dora:{dora}@127.0.0.1:{port}/spaces/dora/three",
                        "main"], check=True, env=git_env(), timeout=60, capture_output=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        fams, _ = scrape(node.metrics_url)
        if value(fams, "spaceport_spaces", stage="CONFIG_ERROR") == 1:
            break
        time.sleep(0.1)
    assert value(fams, "spaceport_spaces", stage="CONFIG_ERROR") == 1
    assert value(fams, "spaceport_spaces", stage="PAUSED") == 1
    assert value(fams, "spaceport_spaces", stage="NO_APP_FILE") == 3
    assert value(fams, "spaceport_users") == 2
    assert value(fams, "spaceport_user_spaces", user="dora") == 5
    assert value(fams, "spaceport_spaces_by_hardware", hardware="cpu-basic") == 3
    assert value(fams, "spaceport_spaces_by_hardware", hardware="t4-small") == 1
    # GPUs: what the node offers, what the tiers of its Spaces ask for
    assert value(fams, "spaceport_node_gpus") == 2
    assert value(fams, "spaceport_gpus_requested") == 1
    assert value(fams, "spaceport_zerogpu_spaces") == 1
    assert sum(samples(fams, "spaceport_builds").values()) == 1
    # The recorders: the push was counted, and its build (which ended in CONFIG_ERROR)
    # as a failed one with its duration.  The build row finishes just after the stage.
    deadline = time.time() + 10
    while time.time() < deadline:
        fams, _ = scrape(node.metrics_url)
        if value(fams, "spaceport_build_duration_seconds",
                 "spaceport_build_duration_seconds_count") == 1:
            break
        time.sleep(0.1)
    assert value(fams, "spaceport_pushes", "spaceport_pushes_total") == 1
    assert value(fams, "spaceport_builds_finished", "spaceport_builds_finished_total",
                 result="error") == 1
    assert value(fams, "spaceport_builds_finished", "spaceport_builds_finished_total",
                 result="ok") == 0
    assert value(fams, "spaceport_build_duration_seconds",
                 "spaceport_build_duration_seconds_count") == 1
    assert value(fams, "spaceport_build_queue_length") == 0


def test_metrics_only_on_the_admin_listener(node):
    # the API port does not serve it
    assert requests.get(node.url + "/metrics", timeout=5).status_code == 404
    base = node.metrics_url.rsplit("/", 1)[0]
    assert requests.get(base + "/", timeout=5).status_code == 404
    assert requests.get(base + "/api/spaces", timeout=5).status_code == 404
    assert requests.post(node.metrics_url, timeout=5).status_code == 405
    # a client that sends nothing does not stop the next scrape for long
    s = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
    try:
        t0 = time.time()
        scrape(node.metrics_url)
        assert time.time() - t0 < 8
    finally:
        s.close()
    assert node.alive()


def test_metrics_default_is_loopback_and_a_taken_port_is_not_fatal(bin_dir, tmp_path):
    out = subprocess.run([bin_dir / "runtimed", "--print-config-example"], capture_output=True,
                         text=True, check=True).stdout
    assert 'metrics_listen: "127.0.0.1:' in out
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        cfg = tmp_path / "rt.yaml"
        cfg.write_text(f"metrics_listen: 127.0.0.1:{taken.getsockname()[1]}\n")
        rt = Runtimed(bin_dir, tmp_path / "data", cfg).start()
        try:
            assert rt.get("/api/spaces").status_code == 200
            assert "no /metrics" in rt.log()
        finally:
            rt.stop()
    finally:
        taken.close()
    # an invalid address is a config error, like every other bad value
    cfg.write_text("metrics_listen: nonsense\n")
    res = subprocess.run([bin_dir / "runtimed", "--config", str(cfg), "--data-dir",
                          str(tmp_path / "d2")], capture_output=True, text=True, timeout=10)
    assert res.returncode == 1 and "metrics_listen" in res.stderr, res.stderr
