"""Unknown ``settings=`` keys on WanGP's MCP face: refused locally, before any upload or generation,
as on the web UI face (a settings file's unknown keys, dropped on both faces, are tested in
``test_integration.py::test_settings_json_import``). Against the mock's MCP face (a real local
server, the real SDK)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vidbridge import GenerationRequest, InvalidRequestError
from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.fixtures import vidbridge_mock_mcp, vidbridge_mock_mcp_server  # noqa: F401
from vidbridge.plugins.mock_backend.mcp.models import default_settings, lookup
from vidbridge.plugins.wan2gp import plugin

from wan2gp_helpers import run_job

pytestmark = pytest.mark.integration

#: Tools that only read what the server knows: the MCP face may call these to validate.
READ_ONLY = {"wangp_get_default_settings", "wangp_get_model_schema", "wangp_get_deepy_template_settings"}


def _png(tmp_path: Path) -> Path:
    from PIL import Image

    png = tmp_path / "start.png"
    Image.new("RGB", (64, 48), (30, 30, 200)).save(png)
    return png


def test_unknown_settings_key_is_refused_before_any_upload_or_generation(vidbridge_mock_mcp: Any, connect: Any,
                                                                         tmp_path: Path) -> None:
    session = connect(vidbridge_mock_mcp.url)
    request = GenerationRequest(prompt="it moves", model="i2v", image_start=_png(tmp_path), frames=17,
                                settings={"num_inference_step": 3})  # a typo of num_inference_steps
    with pytest.raises(InvalidRequestError) as caught:
        plugin.vidbridge_submit(session=session, request=request, job_id="typo")
    error = caught.value
    assert error.field == "settings.num_inference_step" and "num_inference_steps" in (error.allowed or "")
    assert "num_inference_step" in str(error) and "did you mean num_inference_steps" in str(error)
    counter = faults.read_counter(vidbridge_mock_mcp.url)
    assert counter["total"] == 0
    assert set(counter["calls"].get("mcp", [])) <= READ_ONLY  # no wangp_generate, no upload ticket


def test_a_key_with_no_close_match_lists_every_allowed_key(vidbridge_mock_mcp: Any, connect: Any) -> None:
    session = connect(vidbridge_mock_mcp.url)
    request = GenerationRequest(prompt="x", model="t2v", frames=17, settings={"zzqq": 1})
    with pytest.raises(InvalidRequestError) as caught:
        plugin.vidbridge_validate(session=session, request=request)
    allowed = caught.value.allowed or ""
    defaults = default_settings(lookup("t2v"))
    # what the server's defaults name, plus what vidbridge itself sets
    assert all(key in allowed for key in defaults) and "negative_prompt" in allowed and "flow_shift" in allowed
    assert caught.value.field == "settings.zzqq"
    assert "negative_prompt" not in defaults  # so the plugin's own keys really come from elsewhere
    assert faults.read_counter(vidbridge_mock_mcp.url)["total"] == 0


def test_client_submit_refuses_on_the_hosts_thread(vidbridge_mock_mcp: Any, tmp_path: Path) -> None:
    import vidbridge

    with vidbridge.Client(ledger=tmp_path / "jobs.sqlite3") as client, \
            client.connect(vidbridge_mock_mcp.url) as session:
        with pytest.raises(InvalidRequestError, match="guidance_scale"):
            session.submit(prompt="x", model="t2v", frames=17, settings={"guidance_scal": 4}, output_dir=tmp_path)
    assert "wangp_generate" not in faults.read_counter(vidbridge_mock_mcp.url)["calls"].get("mcp", [])


def test_known_settings_keys_are_sent(vidbridge_mock_mcp: Any, connect: Any, tmp_path: Path) -> None:
    session = connect(vidbridge_mock_mcp.url)
    request = GenerationRequest(prompt="x", model="t2v", frames=17, steps=1,
                                settings={"flow_shift": 3.0, "negative_prompt": "blur", "loras_multipliers": ""})
    artifacts, handle = run_job(session, request, tmp_path, "known")
    assert artifacts and handle.settings_sent["flow_shift"] == 3.0 and handle.settings_sent["negative_prompt"] == "blur"


def test_preset_keys_are_known() -> None:
    from vidbridge.plugins.wan2gp.catalog import PRESETS
    from vidbridge.plugins.wan2gp.mcp.settings import PLUGIN_KEYS

    assert all(key in PLUGIN_KEYS for preset in PRESETS.values() for key in preset.values)


def test_a_wangp_setting_missing_from_the_models_defaults_is_still_known() -> None:
    """12.60's defaults for a model name a few keys only; a genuine WanGP setting (a form field)
    is not refused for being absent from them, a typo is."""
    from vidbridge.plugins.wan2gp.mcp.settings import known_keys

    known = known_keys({"prompt": "", "seed": -1})
    assert {"RIFLEx_setting", "skip_steps_cache_type", "NAG_scale", "film_grain_intensity"} <= known
    assert "num_inference_step" not in known and "tea_cache_setting" not in known  # not a 12.60 setting
