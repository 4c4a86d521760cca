"""The model discovery tools of WanGP's MCP face, built from the mock's catalogue.

Record shapes follow the recording (``/work/shared/wan2gp/mcp-12.60/calls/``): compact metadata
(``model_type, family, family_label, base_model_type, finetune, main_output, outputs, inputs,
media_inputs, capabilities, name``), the compact schema (metadata plus ``description, fps,
frames_minimum, frames_steps, frames_maximum, sliding_window, infos, prompt_infos``), default
settings and availability. Values WanGP derives from its model files are derived here from the
family rules of :mod:`..catalog`; the mock reports every model it can generate as available
(``status_code`` 2) and the audio models, which it cannot synthesise, as missing.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from ..catalog import Model, load_models

FAMILY_LABELS = {"wan": "Wan2.1", "wan2_2": "Wan2.2", "hunyuan": "Hunyuan Video",
                 "hunyuan_1_5": "Hunyuan Video 1.5", "ltxv": "LTX Video", "ltx2": "LTX-2",
                 "kandinsky5": "Kandinsky 5", "longcat": "LongCat", "magi_human": "Magi Human",
                 "minimax_h3": "MiniMax H3", "flux": "Flux", "flux2": "Flux 2", "qwen": "Qwen",
                 "z_image": "Z-Image", "hidream": "HiDream", "ideogram4": "Ideogram 4",
                 "krea2": "Krea 2", "music": "Music", "tts": "TTS"}
DEFAULT_PROMPT = ("A large orange octopus is seen resting on the bottom of the ocean floor, blending "
                  "in with the sandy and rocky terrain.")
LORA_EXTENSIONS = (".safetensors", ".sft")
_AVAILABLE = {"status": "available", "status_code": 2, "indicator": "blue_square", "available": True}
_MISSING = {"status": "missing", "status_code": 0, "indicator": "black_square", "available": False}


def default_settings(model: Model) -> dict[str, Any]:
    """What ``wangp_get_default_settings`` returns for ``model`` (and what a task starts from)."""
    rules = model.rules
    settings: dict[str, Any] = {"prompt": DEFAULT_PROMPT, "image_mode": 1 if rules.image else 0}
    if model.needs_start_image:
        settings["image_prompt_type"] = "S"
    settings.update(resolution=model.default_resolution,
                    video_length=max(rules.default_frames, model.min_frames),
                    num_inference_steps=30, seed=-1, guidance_phases=1, guidance_scale=5,
                    sample_solver="unipc", flow_shift=5.0, repeat_generation=1,
                    multi_prompts_gen_type="PG")
    if not rules.image:
        settings["RIFLEx_setting"] = 0  # as 12.60 answers for t2v_1.3B (calls/04_get_default_settings_t2v.json)
    settings["model_type"] = model.model_type
    return settings


def _outputs(model: Model) -> list[str]:
    if model.family == "tts":
        return ["audio"]
    return ["image"] if model.rules.image else ["video"]


def metadata(model: Model) -> dict[str, Any]:
    """The compact metadata record of ``model``."""
    start = model.needs_start_image
    audio = model.family == "tts"
    image = model.rules.image
    inputs = ["text"] + (["image"] if start else []) + (["audio"] if audio else [])
    return {
        "model_type": model.model_type, "family": model.ui_family,
        "family_label": FAMILY_LABELS.get(model.ui_family, model.ui_family),
        "base_model_type": model.architecture, "finetune": False,
        "main_output": _outputs(model), "outputs": _outputs(model), "inputs": inputs,
        "media_inputs": {
            "image": {"start": start, "end": start, "reference": False, "single_reference": False,
                      "multiple_references": False, "background": False, "injected_frames": False,
                      "control": False, "mask": False},
            "video": {"continue": False, "last": False, "control": False, "mask": False},
            "audio": {"prompt": audio, "output": audio},
        },
        "capabilities": {
            "text_to_video": not (image or audio or start), "image_to_video": start,
            "video_to_video": False, "text_to_image": image, "image_to_image": False,
            "text_to_audio": audio, "audio_to_audio": audio, "audio_to_video": False,
            "audio_output": audio, "inpainting": False, "outpainting": False,
            "reference_images": False, "background_image": False, "injected_frames": False,
            "control_image": False, "control_video": False, "video_continuation": False,
            "sliding_window": False, "lora": True,
        },
        "name": model.name,
    }


def availability(model: Model) -> dict[str, Any]:
    """Local file availability of ``model`` (UI selector status)."""
    return {"model_type": model.model_type, **(_MISSING if not model.rules.supported else _AVAILABLE)}


def schema(model: Model) -> dict[str, Any]:
    """The compact capability and usage summary of ``model``."""
    rules = model.rules
    return {"metadata": metadata(model), "description": f"{model.name} (vidbridge mock).",
            "fps": rules.fps, "frames_minimum": model.min_frames, "frames_steps": rules.frame_step,
            "infos": "", "prompt_infos": "", "sliding_window": False,
            "frames_maximum": rules.max_frames}


def definition(model: Model) -> dict[str, Any]:
    """A full model definition (the mock's subset of WanGP's model def)."""
    rules = model.rules
    return {"name": model.name, "architecture": model.architecture, "group": model.family,
            "description": f"{model.name} (vidbridge mock).", "fps": rules.fps,
            "frames_minimum": model.min_frames, "frames_steps": rules.frame_step,
            "sliding_window": False, "resolutions": list(model.resolutions),
            "image_outputs": rules.image, "model_type": model.model_type}


def lookup(model_type: str) -> Model | None:
    """The model named ``model_type``, or None."""
    return load_models().get(str(model_type or "").strip())


def require(model_type: str) -> Model:
    """The model named ``model_type``; ValueError with WanGP's message when unknown."""
    model = lookup(model_type)
    if model is None:
        raise ValueError(f"Unknown model_type: {model_type}")
    return model


def _glob(pattern: str | None, *values: Any) -> bool:
    if pattern is None:
        return True
    pattern = pattern.casefold()
    if not any(c in pattern for c in "*?"):
        pattern = f"*{pattern}*" if len(values) > 1 else pattern
    return any(fnmatch.fnmatchcase(str(v).casefold(), pattern) for v in values)


FILTERS = ("family", "base_model_type", "finetune", "model_type", "main_output", "inputs", "name", "query")


def filters_of(arguments: dict[str, Any]) -> dict[str, Any]:
    """The discovery filters among a tool's ``arguments`` (its ``locals()``)."""
    return {key: arguments[key] for key in FILTERS if key in arguments}


def select(*, family: str | None = None, base_model_type: str | None = None,
           finetune: str | None = None, model_type: str | None = None,
           main_output: str | None = None, inputs: str | None = None, name: str | None = None,
           query: str | None = None) -> list[Model]:
    """Models matching every given filter (case-insensitive ``*``/``?`` globs), by model_type.

    ``query`` searches names, ids, families and descriptions (a substring without globs);
    ``finetune`` is ``true``/``false`` (the mock defines no finetunes).
    """
    chosen = []
    for model in sorted(load_models().values(), key=lambda m: m.model_type):
        record = metadata(model)
        if not (_glob(family, record["family"]) and _glob(base_model_type, model.architecture)
                and _glob(model_type, model.model_type) and _glob(name, model.name)
                and _glob(main_output, *record["main_output"]) and _glob(inputs, *record["inputs"])
                and _glob(query, model.name, model.model_type, record["family"], model.architecture,
                          record["family_label"])):
            continue
        if finetune is not None and str(finetune).strip().lower() not in {"false", "0", "no", "*"}:
            continue
        chosen.append(model)
    return chosen


def page(models: list[Model], limit: int, offset: int, maximum: int = 10) -> list[Model]:
    """``limit`` (capped at ``maximum``) models from ``offset``."""
    limit = max(1, min(int(limit), maximum))
    offset = max(0, int(offset))
    return models[offset:offset + limit]


def search(query: str, limit: int, offset: int, include_availability: bool, **filters: Any) -> dict[str, Any]:
    """``wangp_search_models``: a bounded page of matches with totals (ValueError for no query)."""
    if not str(query or "").strip():
        raise ValueError("query is required")
    matches = select(query=query, **filters)
    chosen = page(matches, limit, offset)
    offset = max(0, int(offset))
    return {"matches": [with_availability(m, include_availability) for m in chosen],
            "total_matches": len(matches), "returned": len(chosen), "offset": offset,
            "has_more": offset + len(chosen) < len(matches)}


def with_availability(model: Model, include: bool) -> dict[str, Any]:
    """The metadata record, with ``availability`` when asked."""
    record = metadata(model)
    if include:
        record["availability"] = availability(model)
    return record


def loras(model: Model, lora_dir: Path) -> dict[str, Any]:
    """``wangp_list_loras``: the LoRA files found in ``lora_dir`` (the mock's ``state_dir/loras``)."""
    names = sorted(p.name for p in lora_dir.glob("*") if p.suffix.lower() in LORA_EXTENSIONS) \
        if lora_dir.is_dir() else []
    return {"model_type": model.model_type, "supported": True, "loras": names, "count": len(names)}
