"""Turning a :class:`~vidbridge.GenerationRequest` into WanGP form values, by field name.

Precedence, lowest first: the server's defaults (or the model's form from ``fill_inputs``), an
imported "Export Settings" JSON file, a named preset, the request's typed fields, then the
request's ``settings`` (backend fields by name). Media become ``handle_file`` values shaped for the
component and server version.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gradio_client import handle_file

from vidbridge import GenerationRequest, InvalidRequestError

from .api import ApiSurface
from .catalog import PRESETS, family_of, frame_rule, is_image_family

__all__ = ["FormPlan", "load_settings_file", "plan_form", "validate_for_model", "drop_unknown",
           "SETTINGS_META_KEYS", "MEDIA_FIELDS"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

#: Keys of an exported settings file that are not form fields.
SETTINGS_META_KEYS = frozenset({"model_type", "settings_version", "type", "activated_loras", "custom_settings",
                                "model_filename", "base_model_type"})


#: Settings naming input media: a local path given there is uploaded like a typed input.
MEDIA_FIELDS = frozenset({"image_start", "image_end", "image_refs", "video_guide", "video_source", "audio_guide",
                          "video_mask", "image_guide", "image_mask"})


@dataclass
class FormPlan:
    """What to send: the model, the form values by name (before defaults), and media by field."""

    model: str | None
    values: dict[str, Any] = field(default_factory=dict)
    media: dict[str, list[Path]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-ready copy (media as local paths) for manifests and logs."""
        data = {k: v for k, v in self.values.items()}
        data.update({k: [str(p) for p in v] for k, v in self.media.items()})
        return data


def load_settings_file(path: Path) -> tuple[str | None, dict[str, Any]]:
    """Read a WanGP "Export Settings" JSON: ``(model_type, form values)``.

    ``activated_loras`` becomes ``loras_choices``; other metadata keys are dropped.

    :raises InvalidRequestError: the file is not a JSON object.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"settings_file: cannot read {str(path)!r} as JSON ({exc})",
                                  field="settings_file", allowed="a WanGP 'Export Settings' JSON file") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("settings_file: expected a JSON object of form fields", field="settings_file",
                                  allowed="a WanGP 'Export Settings' JSON file")
    model = data.get("model_type")
    values = {k: v for k, v in data.items() if k not in SETTINGS_META_KEYS}
    if isinstance(data.get("activated_loras"), list) and "loras_choices" not in values:
        values["loras_choices"] = list(data["activated_loras"])
    return (str(model) if model else None), values


def _add_flag(flags: str, letter: str) -> str:
    return flags if letter in flags else flags + letter


def plan_form(request: GenerationRequest) -> FormPlan:
    """The form values a request sets (without server defaults), validated for unknown presets.

    :raises InvalidRequestError: unknown preset, or a preset that does not fit the model.
    """
    model = request.model
    values: dict[str, Any] = {}
    if request.settings_file is not None:
        file_model, file_values = load_settings_file(request.settings_file)
        values.update(file_values)
        model = model or file_model
    if request.preset:
        preset = PRESETS.get(request.preset.lower())
        if preset is None:
            raise InvalidRequestError(f"preset: unknown preset {request.preset!r}; known: {', '.join(sorted(PRESETS))}", field="preset",
                                      allowed=", ".join(sorted(PRESETS)))
        family = family_of(model) if model else None
        if preset.families and family is not None and family not in preset.families:
            raise InvalidRequestError(
                f"preset: {preset.name!r} applies to {', '.join(sorted(preset.families))} models, not {model!r}",
                field="preset", allowed=", ".join(sorted(preset.families)) + " models")
        values.update(preset.values)
    typed = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt or None,
        "resolution": request.resolution,
        "video_length": request.frames,
        "num_inference_steps": request.steps,
        "guidance_scale": request.guidance,
        "seed": request.seed,
        "sample_solver": request.sampler,
    }
    values.update({k: v for k, v in typed.items() if v is not None})
    if request.loras:
        values["loras_choices"] = [lora.name for lora in request.loras]
        values["loras_multipliers"] = " ".join(f"{lora.weight:g}" for lora in request.loras)
    media: dict[str, list[Path]] = {}
    if request.image_start is not None:
        media["image_start"] = [request.image_start]
        flags = "SE" if request.image_end is not None else "S"
        values["image_prompt_type"] = flags
    if request.image_end is not None:
        media["image_end"] = [request.image_end]
        if request.image_start is None:
            raise InvalidRequestError("image_end: an end image needs a start image", field="image_end",
                                      allowed="image_start together with image_end")
    if request.video is not None:
        # A control video (VACE and control-net models) goes to video_guide; "V" enables it.
        media["video_guide"] = [request.video]
        values["video_prompt_type"] = _add_flag(str(values.get("video_prompt_type") or ""), "V")
    if request.ref_images:
        media["image_refs"] = list(request.ref_images)
        values["video_prompt_type"] = _add_flag(str(values.get("video_prompt_type") or ""), "I")
    if request.audio is not None:
        media["audio_guide"] = [request.audio]
    values.update(request.settings)
    # Media given through settings as local paths are uploaded like typed ones.
    for name in list(values):
        if name in MEDIA_FIELDS and isinstance(values[name], (str, Path)):
            media[name] = [Path(values.pop(name))]
    return FormPlan(model=model, values=values, media=media)


def drop_unknown(plan: FormPlan, known: Iterable[str]) -> None:
    """Drop the plan's values the server does not know, logging each: after the request's own
    ``settings`` were refused by name, these come from an imported settings file (another WanGP
    version's keys)."""
    known = set(known)
    for name in [n for n in plan.values if n not in known]:
        log.info("settings file key %r is not a field this server knows; ignored", name)
        plan.values.pop(name)


def validate_for_model(plan: FormPlan, model: str, resolutions: tuple[Any, ...] | None) -> None:
    """Client-side checks that need the model: frame rule and resolution choices.

    :param resolutions: the resolutions the server offers for this model, if known.
    :raises InvalidRequestError: naming the field and what is allowed.
    """
    frames = plan.values.get("video_length")
    rule = frame_rule(model)
    if frames is not None and rule is not None and not is_image_family(family_of(model)):
        try:
            count = int(frames)
        except (TypeError, ValueError):
            raise InvalidRequestError(f"frames: {frames!r} is not a number", field="frames",
                                      allowed=rule.describe()) from None
        if not rule.accepts(count):
            near = " or ".join(str(n) for n in rule.nearest(count))
            raise InvalidRequestError(
                f"frames: {count} is not valid for {model!r} ({rule.describe()}); try {near}",
                field="frames", allowed=rule.describe())
    resolution = plan.values.get("resolution")
    if resolution is not None and resolutions and resolution not in resolutions:
        raise InvalidRequestError(
            f"resolution: {resolution!r} is not offered by the server for {model!r}; choose one of "
            f"{', '.join(map(str, resolutions))}", field="resolution", allowed=", ".join(map(str, resolutions)))


def media_value(api: ApiSurface, api_name: str, name: str, paths: list[Path]) -> Any:
    """A ``handle_file`` value shaped for parameter ``name`` of ``api_name`` on this server."""
    parameter = api.parameter(api_name, name)
    component = parameter.component.lower() if parameter else ""
    files = [handle_file(str(p)) for p in paths]
    if component == "gallery":
        return [{"image": f, "caption": None} for f in files]
    if component == "video" and parameter is not None and "video:" in parameter.python_type:
        return {"video": files[0], "subtitles": None}  # gradio 5.x VideoData
    return files[0]
