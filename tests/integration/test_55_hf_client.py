"""The real huggingface_hub client against runtimed (HF_ENDPOINT pointed at Spaceport)."""
import pytest

from test_5_support import shared_rt  # noqa: F401

hf = pytest.importorskip("huggingface_hub")


@pytest.fixture(scope="module")
def api(shared_rt):
    return hf.HfApi(endpoint=shared_rt.url, token=shared_rt.admin)


def test_whoami_and_create(api, shared_rt):
    assert api.whoami()["name"] == "admin"
    url = api.create_repo("admin/hf-demo", repo_type="space", space_sdk="gradio", private=True,
                          space_hardware="cpu-upgrade", space_secrets=[{"key": "S", "value": "x"}],
                          space_variables=[{"key": "V", "value": "1"}])
    assert url.repo_id == "admin/hf-demo"
    assert api.create_repo("admin/hf-demo", repo_type="space", space_sdk="gradio", exist_ok=True).repo_id == "admin/hf-demo"
    with pytest.raises(hf.errors.HfHubHTTPError):
        api.create_repo("admin/hf-demo", repo_type="space", space_sdk="gradio")


def test_runtime_hardware_sleep_pause_restart(api):
    rt = api.get_space_runtime("admin/hf-demo")
    assert rt.stage == "NO_APP_FILE" and rt.hardware is None and rt.requested_hardware == "cpu-upgrade"
    assert api.request_space_hardware("admin/hf-demo", "cpu-basic").requested_hardware == "cpu-basic"
    assert api.set_space_sleep_time("admin/hf-demo", 3600).sleep_time == 3600
    assert api.pause_space("admin/hf-demo").stage == "PAUSED"
    assert api.restart_space("admin/hf-demo", factory_reboot=True).stage == "NO_APP_FILE"


def test_secrets_and_variables(api):
    api.add_space_secret("admin/hf-demo", "TOKEN", "value", description="d")
    api.delete_space_secret("admin/hf-demo", "TOKEN")
    api.add_space_variable("admin/hf-demo", "MODEL", "gpt2", description="which")
    variables = api.get_space_variables("admin/hf-demo")
    assert variables["MODEL"].value == "gpt2" and variables["MODEL"].description == "which"
    assert variables["V"].value == "1"
    api.delete_space_variable("admin/hf-demo", "MODEL")
    assert set(api.get_space_variables("admin/hf-demo")) == {"V"}


def test_info_list_duplicate_delete(api, shared_rt):
    info = api.space_info("admin/hf-demo")
    assert info.id == "admin/hf-demo" and info.private and info.sdk == "gradio"
    assert info.runtime.stage == "NO_APP_FILE"
    assert "admin/hf-demo" in [s.id for s in api.list_spaces(author="admin")]
    anon = hf.HfApi(endpoint=shared_rt.url, token=False)
    assert "admin/hf-demo" not in [s.id for s in anon.list_spaces(author="admin")]
    assert not anon.repo_exists("admin/hf-demo", repo_type="space")
    url = api.duplicate_space("admin/hf-demo", to_id="admin/hf-copy", private=False, exist_ok=True)
    assert url.repo_id == "admin/hf-copy"
    assert anon.space_info("admin/hf-copy").private is False
    assert api.repo_exists("admin/hf-copy", repo_type="space")
    api.delete_repo("admin/hf-copy", repo_type="space")
    assert not api.repo_exists("admin/hf-copy", repo_type="space")
    api.delete_repo("admin/hf-copy", repo_type="space", missing_ok=True)
    with pytest.raises(hf.errors.RepositoryNotFoundError):
        api.get_space_runtime("admin/hf-copy")


def test_update_visibility(api, shared_rt):
    api.create_repo("admin/hf-vis", repo_type="space", space_sdk="static")
    api.update_repo_settings("admin/hf-vis", repo_type="space", private=True)
    anon = hf.HfApi(endpoint=shared_rt.url, token=False)
    assert not anon.repo_exists("admin/hf-vis", repo_type="space")
    assert api.space_info("admin/hf-vis").private
