"""Unit tests: endpoint resolution (with suffix drift), payloads, gallery parsing, validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidbridge import GenerationRequest, InvalidRequestError, LoRA
from vidbridge.plugins.wan2gp.api import ApiSurface, EndpointNotFound
from vidbridge.plugins.wan2gp.catalog import frame_rule
from vidbridge.plugins.wan2gp.gallery import GalleryFormatError, new_items, parse_gallery
from vidbridge.plugins.wan2gp.payload import load_settings_file, plan_form, validate_for_model

RECORDING = Path("/work/shared/wan2gp/api-12.60.json")
_DATA = Path(__file__).resolve().parents[2] / "plugins" / "mock_backend" / "data"


def _recorded_api() -> dict:
    if RECORDING.is_file():
        api = json.loads(RECORDING.read_text())
    else:  # the mock backend packages the same recording
        import gzip

        api = json.loads(gzip.decompress((_DATA / "api-12.60.json.gz").read_bytes()))
    named = api["named_endpoints"]
    for name, entry in list(named.items()):  # the recording stores repeats as {"same_as": ...}
        while "same_as" in entry:
            entry = named[entry["same_as"]]
        named[name] = entry
    return api


@pytest.fixture(scope="module")
def api() -> ApiSurface:
    return ApiSurface(_recorded_api())


def _renumbered(api_dict: dict, shift: int) -> dict:
    """The same surface with every suffix moved by ``shift`` (what another WanGP version does)."""
    named = {}
    for name, entry in api_dict["named_endpoints"].items():
        match = re.fullmatch(r"(/.+?)_(\d+)", name)
        named[f"{match[1]}_{int(match[2]) + shift}" if match else f"{name}_{shift - 1}" if shift > 1 else name] = entry
    return {"named_endpoints": named, "unnamed_endpoints": {}}


def test_finds_endpoints_by_base_name_and_parameters(api: ApiSurface) -> None:
    save = api.find("save_inputs", requires=["target", "prompt"])
    assert save.startswith("/save_inputs")
    assert api.find("abort_generation", requires=["client_id"]) == "/abort_generation_1"
    assert api.find("abort_generation", exact=[]) == "/abort_generation"
    assert "model_choice" in [p.name for p in api.parameters(api.find("process_prompt_and_add_tasks",
                                                                        requires=["model_choice"]))]


@pytest.mark.parametrize("shift", [3, 10])
def test_suffix_drift_is_tolerated(shift: int) -> None:
    drifted = ApiSurface(_renumbered(_recorded_api(), shift))
    save = drifted.find("save_inputs", requires=["target", "prompt"])
    assert re.fullmatch(r"/save_inputs(_\d+)?", save)
    assert drifted.find("abort_generation", requires=["client_id"]).startswith("/abort_generation_")
    assert drifted.find("process_tasks", exact=[]).startswith("/process_tasks")


def test_missing_endpoint_is_reported(api: ApiSurface) -> None:
    with pytest.raises(EndpointNotFound, match="no endpoint /nope"):
        api.find("nope")


def test_positional_payload_has_every_parameter_and_target_state(api: ApiSurface) -> None:
    save = api.find("save_inputs", requires=["target", "prompt"])
    names = [p.name for p in api.parameters(save)]
    payload = api.positional(save, {"target": "state", "prompt": "x", "video_length": 17})
    assert len(payload) == len(names) == 129
    assert payload[names.index("target")] == "state"
    assert payload[names.index("video_source")] is None  # no default on the server: None
    assert payload[names.index("resolution")] == "832x480"  # the server's default


def test_unknown_settings_field_lists_close_matches(api: ApiSurface) -> None:
    save = api.find("save_inputs", requires=["target", "prompt"])
    with pytest.raises(InvalidRequestError) as info:
        api.check_known(save, {"num_inference_step": 4})
    assert info.value.field == "settings.num_inference_step"
    assert "num_inference_steps" in str(info.value)


def test_plan_maps_typed_fields_loras_and_preset() -> None:
    request = GenerationRequest(prompt="p", frames=17, steps=12, preset="causvid", model="t2v",
                                loras=(LoRA(name="a.safetensors", weight=0.5), LoRA(name="b")))
    plan = plan_form(request)
    assert plan.values["sample_solver"] == "causvid"
    assert plan.values["num_inference_steps"] == 12  # the request's own field wins over the preset
    assert plan.values["guidance_scale"] == 1
    assert plan.values["loras_choices"] == ["a.safetensors", "b"]
    assert plan.values["loras_multipliers"] == "0.5 1"


def test_unknown_preset_and_preset_for_wrong_family() -> None:
    with pytest.raises(InvalidRequestError, match="causvid"):
        plan_form(GenerationRequest(prompt="p", preset="turbo"))
    with pytest.raises(InvalidRequestError) as info:
        plan_form(GenerationRequest(prompt="p", preset="causvid", model="ltx2_19B"))
    assert info.value.field == "preset"


def test_images_set_image_prompt_type(tmp_path: Path) -> None:
    start, end = tmp_path / "a.png", tmp_path / "b.png"
    start.write_bytes(b"\x89PNG\r\n\x1a\n....")
    end.write_bytes(b"\x89PNG\r\n\x1a\n....")
    plan = plan_form(GenerationRequest(prompt="p", image_start=start, image_end=end))
    assert plan.values["image_prompt_type"] == "SE"
    assert plan.media == {"image_start": [start], "image_end": [end]}


def test_settings_file_import_and_override(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"model_type": "t2v_1.3B", "settings_version": 2.74, "type": "x",
                                "prompt": "from file", "num_inference_steps": 9, "activated_loras": ["l1"]}))
    model, values = load_settings_file(path)
    assert model == "t2v_1.3B" and values["loras_choices"] == ["l1"] and "settings_version" not in values
    plan = plan_form(GenerationRequest(prompt="mine", settings_file=path))
    assert plan.model == "t2v_1.3B" and plan.values["prompt"] == "mine" and plan.values["num_inference_steps"] == 9


@pytest.mark.parametrize("model,frames,ok", [("t2v", 81, True), ("t2v", 80, False), ("t2v", 1, False),
                                             ("vace_14B", 13, False), ("vace_14B", 17, True),
                                             ("ltx2_19B", 97, True), ("ltx2_19B", 85, False)])
def test_frame_rules(model: str, frames: int, ok: bool) -> None:
    rule = frame_rule(model)
    assert rule is not None and rule.accepts(frames) is ok


def test_validation_names_field_and_allowed_values() -> None:
    plan = plan_form(GenerationRequest(prompt="p", frames=80, resolution="640x640"))
    with pytest.raises(InvalidRequestError) as info:
        validate_for_model(plan, "t2v", ("832x480",))
    assert info.value.field == "frames" and "77 or 81" in str(info.value)
    plan = plan_form(GenerationRequest(prompt="p", frames=81, resolution="640x640"))
    with pytest.raises(InvalidRequestError) as info:
        validate_for_model(plan, "t2v", ("832x480", "480x832"))
    assert info.value.field == "resolution" and "832x480" in str(info.value)


def test_gallery_shapes_of_both_gradio_versions() -> None:
    file = {"path": "/o/a.mp4", "url": "http://x/file=/o/a.mp4", "size": 5, "orig_name": "a.mp4"}
    six = parse_gallery({"__type__": "update", "value": [{"video": file, "caption": "a"}]})
    five = parse_gallery([{"video": {"video": file, "subtitles": None}, "caption": None}])
    plain = parse_gallery([{"video": "/o/a.mp4", "caption": None}, {"image": {"path": "/o/b.png"}}])
    assert six[0].path == five[0].path == plain[0].path == "/o/a.mp4"
    assert plain[1].kind == "image"
    assert parse_gallery(None) == [] and parse_gallery({"__type__": "update"}) == []
    assert [i.path for i in new_items(plain[:1], plain)] == ["/o/b.png"]


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda children: st.lists(children, max_size=3) | st.dictionaries(
                         st.sampled_from(["video", "image", "path", "value", "__type__", "caption", "url"]),
                         children, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_gallery_parsing_never_crashes(value: object) -> None:
    try:
        items = parse_gallery(value)
    except GalleryFormatError:
        return
    assert all(isinstance(item.path, str) and item.path for item in items)
