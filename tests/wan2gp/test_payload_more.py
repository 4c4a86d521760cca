"""Requests to WanGP form values: model families and frame rules, presets, settings-export import,
media fields, and the checks ``prepare`` runs against a live server before queueing anything
(``plugins/wan2gp/catalog.py``, ``payload.py``, ``job.prepare``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from vidbridge import GenerationRequest, InvalidRequestError, JobFailedError, LoRA
from vidbridge.plugins.wan2gp.api import ApiSurface
from vidbridge.plugins.wan2gp.catalog import (
    PRESETS,
    FrameRule,
    display_name,
    family_of,
    frame_rule,
    is_image_family,
)
from vidbridge.plugins.wan2gp.job import prepare
from vidbridge.plugins.wan2gp.payload import (
    SETTINGS_META_KEYS,
    FormPlan,
    load_settings_file,
    media_value,
    plan_form,
    validate_for_model,
)

# -- catalog ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "family"),
    [("t2v", "wan"), ("vace_14B", "wan"), ("ltx2_19B", "ltx2"), ("ltxv_13B", "ltxv"), ("hunyuan", "hunyuan"),
     ("flux", "flux"), ("qwen_image_20B", "qwen"), ("z_image", "z_image"), ("k5_lite_t2v", "kandinsky5"),
     # not in the 12.60 list: recognised by prefix
     ("ltx2_99B_future", "ltx2"), ("ltxv_2_new", "ltxv"), ("hunyuan_9_t2v", "hunyuan"), ("flux9_pro", "flux"),
     ("qwen_next", "qwen"), ("z_image_xl", "z_image"), ("kandinsky7", "kandinsky5"),
     ("brand_new_model", None)],
)
def test_family_of_known_and_future_models(model: str, family: str | None) -> None:
    assert family_of(model) == family


def test_display_name_of_known_and_unknown_models() -> None:
    assert display_name("ace_step_v1") == "Music ACE-Step v1.0 3.5B"
    assert display_name("brand_new_model") == "brand_new_model"


@pytest.mark.parametrize(
    ("model", "step", "minimum"),
    [("t2v", 4, 5), ("hunyuan", 4, 5), ("longcat_video", 4, 5), ("magi_human", 4, 5), ("minimax_h3_fl2va", 4, 5),
     ("k5_lite_t2v", 4, 5), ("ltxv_13B", 8, 9), ("ltx2_19B", 8, 9), ("vace_14B", 4, 17)],
)
def test_frame_rule_per_family(model: str, step: int, minimum: int) -> None:
    assert frame_rule(model) == FrameRule(step, minimum)


@pytest.mark.parametrize("model", ["flux", "qwen_image_20B", "z_image", "ace_step_v1", "brand_new_model"])
def test_image_audio_and_unknown_models_have_no_frame_rule(model: str) -> None:
    assert frame_rule(model) is None


def test_image_families() -> None:
    assert all(is_image_family(f) for f in ("flux", "qwen", "z_image", "hidream", "ideogram4", "krea2"))
    assert not is_image_family("wan") and not is_image_family(None)


@pytest.mark.parametrize(
    ("rule", "frames", "accepted", "nearest"),
    [(FrameRule(4, 5), 17, True, [17, 21]), (FrameRule(4, 5), 18, False, [17, 21]),
     (FrameRule(4, 5), 1, False, [5, 9]), (FrameRule(4, 5), 4, False, [5, 9]),
     (FrameRule(8, 9), 20, False, [17, 25]), (FrameRule(8, 9), 9, True, [9, 17]),
     (FrameRule(4, 17), 13, False, [17, 21])],
)
def test_frame_rule_accepts_and_suggests_neighbours(rule: FrameRule, frames: int, accepted: bool,
                                                    nearest: list[int]) -> None:
    assert rule.accepts(frames) is accepted
    suggested = rule.nearest(frames)
    assert suggested == nearest
    assert all(rule.accepts(n) for n in suggested)


def test_frame_rule_wording() -> None:
    assert FrameRule(8, 9).describe() == "8*k+1 frames, at least 9"


def test_causvid_preset_is_a_wan_solver_with_few_steps() -> None:
    preset = PRESETS["causvid"]
    assert preset.families == frozenset({"wan"})
    assert preset.values["sample_solver"] == "causvid" and preset.values["num_inference_steps"] == 8
    assert preset.values["guidance_scale"] == 1


# -- plan_form -------------------------------------------------------------------------------------


def test_preset_names_are_case_insensitive_and_allowed_for_unknown_models() -> None:
    plan = plan_form(GenerationRequest(prompt="p", preset="CausVid"))
    assert plan.model is None and plan.values["sample_solver"] == "causvid"
    plan = plan_form(GenerationRequest(prompt="p", preset="causvid", model="brand_new_model"))
    assert plan.values["flow_shift"] == 8


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRequestError) as info:
        plan_form(GenerationRequest(prompt="p", preset="turbo"))
    assert info.value.field == "preset" and info.value.allowed == "causvid"
    assert "'turbo'" in info.value.message


def test_preset_for_another_family_names_what_it_fits() -> None:
    with pytest.raises(InvalidRequestError) as info:
        plan_form(GenerationRequest(prompt="p", preset="causvid", model="flux"))
    assert info.value.allowed == "wan models" and "'flux'" in info.value.message


def test_precedence_file_then_preset_then_typed_then_settings(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"model_type": "t2v", "num_inference_steps": 30, "sample_solver": "unipc",
                                "guidance_scale": 5.0, "flow_shift": 3, "seed": 1, "prompt": "file prompt"}))
    request = GenerationRequest(prompt="mine", settings_file=path, preset="causvid", steps=6,
                                settings={"guidance_scale": 2.5})
    plan = plan_form(request)
    assert plan.model == "t2v"
    assert plan.values["prompt"] == "mine"  # typed field over the file
    assert plan.values["sample_solver"] == "causvid" and plan.values["flow_shift"] == 8  # preset over the file
    assert plan.values["num_inference_steps"] == 6  # typed over the preset
    assert plan.values["guidance_scale"] == 2.5  # settings over everything
    assert plan.values["seed"] == 1  # untouched file value kept


def test_the_request_model_wins_over_the_file_model(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"model_type": "t2v", "prompt": "x"}))
    assert plan_form(GenerationRequest(prompt="p", model="hunyuan", settings_file=path)).model == "hunyuan"


def test_typed_fields_left_out_are_not_sent() -> None:
    plan = plan_form(GenerationRequest(prompt="only a prompt"))
    assert plan.values == {"prompt": "only a prompt"}
    assert plan.media == {} and plan.model is None


def test_every_typed_field_maps_to_its_form_name() -> None:
    plan = plan_form(GenerationRequest(prompt="p", negative_prompt="blurry", resolution="832x480", frames=17,
                                       steps=4, guidance=3.5, seed=7, sampler="euler"))
    assert plan.values == {"prompt": "p", "negative_prompt": "blurry", "resolution": "832x480", "video_length": 17,
                           "num_inference_steps": 4, "guidance_scale": 3.5, "seed": 7, "sample_solver": "euler"}


def test_lora_weights_are_written_compactly() -> None:
    plan = plan_form(GenerationRequest(prompt="p", loras=(LoRA(name="a", weight=1.25), LoRA(name="b", weight=0.1))))
    assert plan.values["loras_choices"] == ["a", "b"] and plan.values["loras_multipliers"] == "1.25 0.1"


# The first bytes of each kind: GenerationRequest checks that an input's content matches its name.
_MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".mp4": b"\x00\x00\x00\x18ftypisom", ".wav": b"RIFF\x24\x00\x00\x00WAVE"}


def _media(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(_MAGIC[path.suffix] + b"media")
    return path


def test_start_image_alone_sets_flag_s(tmp_path: Path) -> None:
    start = _media(tmp_path, "s.png")
    plan = plan_form(GenerationRequest(prompt="p", image_start=start))
    assert plan.values["image_prompt_type"] == "S" and plan.media == {"image_start": [start]}


def test_end_image_needs_a_start_image(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError) as info:
        plan_form(GenerationRequest(prompt="p", image_end=_media(tmp_path, "e.png")))
    assert info.value.field == "image_end"


def test_control_video_refs_and_audio_go_to_their_fields_with_flags(tmp_path: Path) -> None:
    video, ref1, ref2, audio = (_media(tmp_path, n) for n in ("c.mp4", "r1.png", "r2.png", "a.wav"))
    plan = plan_form(GenerationRequest(prompt="p", video=video, ref_images=(ref1, ref2), audio=audio))
    assert plan.media == {"video_guide": [video], "image_refs": [ref1, ref2], "audio_guide": [audio]}
    assert plan.values["video_prompt_type"] == "VI"


def test_flags_are_added_once_to_the_imported_ones(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"video_prompt_type": "PV"}))
    plan = plan_form(GenerationRequest(prompt="p", settings_file=path, video=_media(tmp_path, "c.mp4"),
                                       ref_images=(_media(tmp_path, "r.png"),)))
    assert plan.values["video_prompt_type"] == "PVI"


def test_media_given_as_settings_paths_are_uploaded_like_typed_media(tmp_path: Path) -> None:
    mask = _media(tmp_path, "mask.png")
    plan = plan_form(GenerationRequest(prompt="p", settings={"video_mask": str(mask), "image_guide": mask,
                                                             "image_refs": ["already", "uploaded"],
                                                             "video_source": None}))
    assert plan.media == {"video_mask": [mask], "image_guide": [mask]}
    assert plan.values["image_refs"] == ["already", "uploaded"]  # not a path: passed through as given
    assert plan.values["video_source"] is None
    assert "video_mask" not in plan.values


def test_describe_is_json_ready_with_media_as_paths(tmp_path: Path) -> None:
    start = _media(tmp_path, "s.png")
    plan = plan_form(GenerationRequest(prompt="p", frames=17, image_start=start))
    described = plan.describe()
    assert json.loads(json.dumps(described)) == described
    assert described["image_start"] == [str(start)] and described["video_length"] == 17
    assert FormPlan(model=None).describe() == {}


# -- settings-export files -------------------------------------------------------------------------


def test_settings_file_metadata_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    meta = {key: "meta" for key in SETTINGS_META_KEYS}
    meta.update(model_type="hunyuan", activated_loras="not-a-list", prompt="x")
    path.write_text(json.dumps(meta))
    model, values = load_settings_file(path)
    assert model == "hunyuan"
    assert values == {"prompt": "x"}  # activated_loras that is not a list is ignored


def test_settings_file_keeps_explicit_lora_choices(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"activated_loras": ["from-meta"], "loras_choices": ["explicit"]}))
    model, values = load_settings_file(path)
    assert model is None and values == {"loras_choices": ["explicit"]}


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"{\"prompt\": ", "cannot read"), (b"\xff\xfe\x00garbage", "cannot read"), (b"[1, 2]", "expected a JSON object"),
     (b"\"text\"", "expected a JSON object")],
    ids=["truncated", "not-utf8", "list", "string"],
)
def test_unusable_settings_files_are_refused_naming_the_field(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(content)
    with pytest.raises(InvalidRequestError) as info:
        load_settings_file(path)
    assert info.value.field == "settings_file" and words in info.value.message
    assert "Export Settings" in info.value.allowed


def test_missing_settings_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="cannot read"):
        load_settings_file(tmp_path / "gone.json")


# -- validate_for_model ----------------------------------------------------------------------------


def test_frames_that_are_not_a_number_are_refused() -> None:
    plan = FormPlan(model="t2v", values={"video_length": "eighty"})
    with pytest.raises(InvalidRequestError) as info:
        validate_for_model(plan, "t2v", None)
    assert info.value.field == "frames" and "'eighty' is not a number" in info.value.message
    assert info.value.allowed == "4*k+1 frames, at least 5"


def test_frames_as_a_numeric_string_are_checked() -> None:
    validate_for_model(FormPlan(model="t2v", values={"video_length": "17"}), "t2v", None)
    with pytest.raises(InvalidRequestError, match="try 17 or 21"):
        validate_for_model(FormPlan(model="t2v", values={"video_length": "18"}), "t2v", None)


def test_vace_needs_at_least_17_frames() -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_for_model(FormPlan(model="vace_14B", values={"video_length": 9}), "vace_14B", None)
    assert "at least 17" in info.value.message and "try 17 or 21" in info.value.message


@pytest.mark.parametrize("model", ["flux", "brand_new_model", "ace_step_v1"])
def test_frames_are_not_checked_where_the_client_knows_no_rule(model: str) -> None:
    validate_for_model(FormPlan(model=model, values={"video_length": 2}), model, None)


def test_resolution_is_checked_only_against_known_choices() -> None:
    plan = FormPlan(model="t2v", values={"resolution": "640x640"})
    validate_for_model(plan, "t2v", None)
    validate_for_model(plan, "t2v", ())
    validate_for_model(FormPlan(model="t2v"), "t2v", ("832x480",))
    with pytest.raises(InvalidRequestError) as info:
        validate_for_model(plan, "t2v", ("832x480", "480x832"))
    assert info.value.allowed == "832x480, 480x832"


# -- media values ----------------------------------------------------------------------------------


def _surface(component: str, python_type: str) -> ApiSurface:
    return ApiSurface({"named_endpoints": {"/save_inputs": {"parameters": [
        {"parameter_name": "field", "component": component, "python_type": python_type}]}}})


def test_media_value_is_shaped_for_the_component(tmp_path: Path) -> None:
    a, b = _media(tmp_path, "a.png"), _media(tmp_path, "b.png")
    gallery = media_value(_surface("Gallery", "list[dict(image: ...)]"), "/save_inputs", "field", [a, b])
    assert [item["caption"] for item in gallery] == [None, None]
    assert [item["image"]["path"] for item in gallery] == [str(a), str(b)]
    video = media_value(_surface("Video", "dict(video: filepath, subtitles: filepath | None)"),
                        "/save_inputs", "field", [a])
    assert video["subtitles"] is None and video["video"]["path"] == str(a)
    old_video = media_value(_surface("Video", "filepath"), "/save_inputs", "field", [a])
    assert old_video["path"] == str(a) and "video" not in old_video
    audio = media_value(_surface("Audio", "filepath"), "/save_inputs", "field", [a])
    assert audio["path"] == str(a) and audio["meta"] == {"_type": "gradio.FileData"}
    unknown = media_value(_surface("Audio", "filepath"), "/save_inputs", "other", [b])
    assert unknown["path"] == str(b)


# -- prepare() against the mock server -------------------------------------------------------------


@pytest.fixture
def session(vidbridge_mock: Any, connect: Any) -> Any:
    return connect(vidbridge_mock.url)


def test_unknown_settings_field_is_refused_with_close_matches(session: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        prepare(session, GenerationRequest(prompt="p", settings={"guidance_scal": 3}))
    assert info.value.field == "settings.guidance_scal"
    assert "did you mean" in info.value.message and "guidance_scale" in info.value.allowed


def test_unknown_settings_field_without_close_match(session: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        prepare(session, GenerationRequest(prompt="p", settings={"zzqqxx": 1}))
    assert "did you mean" not in info.value.message
    assert info.value.allowed.startswith("one of the ") and "form fields of /save_inputs" in info.value.allowed


def test_unknown_keys_of_an_imported_file_are_dropped_not_refused(session: Any, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"model_type": "t2v", "prompt": "x", "field_of_a_newer_wangp": 1,
                                "num_inference_steps": 3}))
    with caplog.at_level(logging.INFO, logger="vidbridge.plugins.wan2gp"):
        plan, model, save = prepare(session, GenerationRequest(prompt="p", settings_file=path, frames=17))
    assert model == "t2v" and save.startswith("/save_inputs")
    assert "field_of_a_newer_wangp" not in plan.values and plan.values["num_inference_steps"] == 3
    assert "'field_of_a_newer_wangp' is not a field" in caplog.text


def test_wrongly_typed_frames_from_an_imported_file_are_refused(session: Any, tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"model_type": "t2v", "video_length": "many"}))
    with pytest.raises(InvalidRequestError) as info:
        prepare(session, GenerationRequest(prompt="p", settings_file=path))
    assert info.value.field == "frames"


def test_prepare_uses_the_server_model_and_its_resolutions(session: Any) -> None:
    plan, model, _ = prepare(session, GenerationRequest(prompt="p", frames=17))
    assert model == "t2v" == session.default_model()
    with pytest.raises(InvalidRequestError) as info:
        prepare(session, GenerationRequest(prompt="p", frames=17, resolution="640x640"))
    assert info.value.field == "resolution" and "832x480" in info.value.allowed


def test_resolutions_of_the_start_model_are_not_held_against_another_family(session: Any) -> None:
    _, model, _ = prepare(session, GenerationRequest(prompt="p", model="ltx2_19B", frames=17, resolution="640x640"))
    assert model == "ltx2_19B"


def test_a_model_the_client_does_not_know_is_left_to_the_server(session: Any,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vidbridge.plugins.wan2gp"):
        _, model, _ = prepare(session, GenerationRequest(prompt="p", model="brand_new_model", frames=2))
    assert model == "brand_new_model"
    assert "unknown to this client" in caplog.text


def test_a_server_without_save_inputs_is_not_usable(session: Any) -> None:
    class Bare:
        url = session.url
        api = ApiSurface({"named_endpoints": {}})

    with pytest.raises(JobFailedError, match="not a usable WanGP server"):
        prepare(Bare(), GenerationRequest(prompt="p"))


def test_no_model_anywhere_is_refused(session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "default_model", lambda: None)
    with pytest.raises(InvalidRequestError) as info:
        prepare(session, GenerationRequest(prompt="p"))
    assert info.value.field == "model"
