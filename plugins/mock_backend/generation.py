"""Turning a saved form into tasks, validating them like WanGP, and rendering their outputs."""

from __future__ import annotations

import datetime as _dt
import json
import random
import re
from pathlib import Path
from typing import Any, Iterable

from .catalog import Model
from .session import Task
from .video import MediaInputs, parse_resolution, write_image, write_video

# Form keys holding uploaded media; WanGP removes them from exported settings.
MEDIA_KEYS = frozenset({
    "image_mask_guide", "image_start", "image_end", "image_refs", "video_source", "video_guide",
    "video_guide2", "image_guide", "video_mask", "image_mask", "audio_guide", "audio_guide2",
    "custom_guide", "audio_source", "replace_voice_sample", "replace_voice_sample2",
})
SETTINGS_VERSION = 2.74
_UNSAFE = re.compile(r"[^\w\- ]+")


def media_paths(value: Any) -> list[str]:
    """Local file paths inside a preprocessed media value (str, FileData dict, gallery list...)."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    if isinstance(value, dict):
        for key in ("path", "video", "image", "composite", "background"):
            if value.get(key):
                return media_paths(value[key])
        return []
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (str, Path)):
        return [str(value[0])]  # a gallery item: (path, caption)
    if isinstance(value, (list, tuple)):
        return [p for item in value for p in media_paths(item)]
    return []


def validate(form: dict[str, Any], model: Model) -> str | None:
    """WanGP's validation message for this form, or None when it can be queued.

    WanGP reports these only as gr.Info and queues nothing, so callers must not raise.
    """
    rules = model.rules
    if not rules.supported:
        return f"Model '{model.name}' is not supported by this server"
    if not str(form.get("prompt") or "").strip():
        return "Prompt cannot be empty."
    resolution = str(form.get("resolution") or "")
    if resolution not in model.resolutions:
        return (f"Resolution {resolution} is not supported by model '{model.name}', "
                f"choose one of {', '.join(model.resolutions)}")
    if not rules.image:
        frames = int(float(form.get("video_length") or 0))
        if not rules.valid_frames(frames, model.min_frames):
            return (f"The number of frames ({frames}) must be {rules.frame_step}*k+1 and at least "
                    f"{model.min_frames} for model '{model.name}'")
    if model.needs_start_image and not media_paths(form.get("image_start")):
        return "You must provide a Start Image for an Image to Video model"
    return None


def prompts_of(text: str) -> list[str]:
    """Each paragraph (separated by an empty line) is one prompt; ``#`` lines are comments."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    result = []
    for paragraph in paragraphs:
        lines = [ln for ln in paragraph.splitlines() if not ln.lstrip().startswith("#")]
        if "\n".join(lines).strip():
            result.append("\n".join(lines).strip())
    return result


def expand_tasks(form: dict[str, Any], model: Model, rng: random.Random) -> list[Task]:
    """The tasks one Generate click queues: one per prompt paragraph x ``repeat_generation``."""
    tasks = []
    repeats = max(1, int(float(form.get("repeat_generation") or 1)))
    for prompt in prompts_of(str(form.get("prompt") or "")):
        for _ in range(repeats):
            seed = int(float(form.get("seed") if form.get("seed") is not None else -1))
            if seed < 0:
                seed = rng.randint(0, 999_999_999)
            tasks.append(Task({**form, "prompt": prompt, "seed": seed,
                               "model_type": model.model_type}))
    return tasks


def exported_settings(params: dict[str, Any], model: Model) -> dict[str, Any]:
    """The settings dict WanGP embeds in its outputs (form keys minus media, plus metadata)."""
    settings = {k: v for k, v in params.items() if k not in MEDIA_KEYS and k != "target"}
    settings.update(model_type=model.model_type, type=model.name,
                    settings_version=SETTINGS_VERSION)
    return settings


_PLACEHOLDER = re.compile(r"\{(\w+)(?:\(([^)]*)\))?\}")
_TEMPLATE_KEYS = {"seed": "seed", "resolution": "resolution", "num_inference_steps": "num_inference_steps",
                  "steps": "num_inference_steps", "prompt": "prompt", "flow_shift": "flow_shift",
                  "video_length": "video_length", "frames": "video_length", "guidance_scale": "guidance_scale",
                  "cfg": "guidance_scale"}
_TEMPLATE_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def _clean(text: str) -> str:
    """WanGP's filename-template clean-up: unsafe characters to ``_``, runs of ``_``/spaces to one
    ``_``, no leading or trailing ``_``."""
    return re.sub(r"[_\s]+", "_", _TEMPLATE_UNSAFE.sub("_", text)).strip("_ ")


def templated_stem(template: str, params: dict[str, Any], now: _dt.datetime) -> str:
    """The file stem WanGP makes of an ``output_filename`` template (``{date}``, ``{seed}``,
    ``{prompt(50)}``, ``{resolution}``, ``{steps}``, ``{frames}``, ``{cfg}``, ``{flow_shift}``;
    literal text is kept), cut to 100 bytes. An unknown placeholder raises ValueError, as there."""
    def value(match: re.Match[str]) -> str:
        key, arg = match[1], match[2]
        if key == "date":
            return f"{now:%Y-%m-%d-%Hh%Mm%Ss}"
        if key not in _TEMPLATE_KEYS:
            raise ValueError(f"Unknown placeholder: {{{key}}}")
        text = "" if params.get(_TEMPLATE_KEYS[key]) is None else str(params[_TEMPLATE_KEYS[key]])
        if arg and arg.isdigit():
            text = text[:int(arg)].rstrip()
        return _clean(text)

    stem = Path(_clean(_PLACEHOLDER.sub(value, template)) or f"{now:%Y-%m-%d-%Hh%Mm%Ss}").stem
    return stem.encode("utf-8")[:100].decode("utf-8", "ignore").strip()


def output_name(params: dict[str, Any], now: _dt.datetime, extension: str) -> str:
    """WanGP's automatic ``YYYY-MM-DD-HHhMMmSSs_seed<seed>_<prompt>.<ext>``, or, when the form's
    ``output_filename`` is set, the name its template gives (:func:`templated_stem`)."""
    custom = str(params.get("output_filename") or "").strip()
    if custom:
        return f"{templated_stem(custom, params, now)}.{extension}"
    prompt = _UNSAFE.sub("", str(params["prompt"]).replace("\n", " ")).strip()[:50].strip()
    return f"{now:%Y-%m-%d-%Hh%Mm%Ss}_seed{params['seed']}_{prompt}.{extension}"


def unique_path(folder: Path, name: str) -> Path:
    """``folder/name``, or WanGP's ``name(2).ext``, ``name(3).ext`` ... when it already exists."""
    path = folder / name
    counter = 1
    while path.exists():
        counter += 1
        path = folder / f"{Path(name).stem}({counter}){Path(name).suffix}"
    return path


def media_inputs(params: dict[str, Any]) -> MediaInputs:
    """The input media of a task, as local paths, with the flags WanGP uses to select them."""
    image_mode = str(params.get("image_prompt_type") or "")
    video_mode = str(params.get("video_prompt_type") or "")
    starts = media_paths(params.get("image_start"))
    ends = media_paths(params.get("image_end"))
    controls = media_paths(params.get("video_guide"))
    audio = media_paths(params.get("audio_guide")) or media_paths(params.get("audio_source"))
    refs = media_paths(params.get("image_refs"))
    return MediaInputs(
        # A start image counts when uploaded, unless the flags explicitly say text only.
        start_image=starts[0] if starts and (image_mode == "" or "S" in image_mode) else None,
        end_image=ends[0] if ends and ("E" in image_mode or image_mode == "") else None,
        reference_images=tuple(refs) if ("I" in video_mode or refs) else (),
        control_video=controls[0] if controls else None,
        audio=audio[0] if audio else None,
    )


def render(task: Task, model: Model, folder: Path, now: _dt.datetime,
           settings: dict[str, Any]) -> Path:
    """Write the task's output (MP4, or PNG for image families) into ``folder``."""
    width, height = parse_resolution(str(task.params["resolution"]))
    media = media_inputs(task.params)
    # The pixels depend on what defines the content, not on bookkeeping fields.
    content = {k: settings.get(k) for k in ("model_type", "prompt", "seed", "negative_prompt",
                                           "resolution", "video_length", "num_inference_steps",
                                           "guidance_scale", "flow_shift", "sample_solver")}
    if model.rules.image:
        name = output_name(task.params, now, "png")
        return write_image(unique_path(folder, name), content, width=width, height=height, media=media)
    name = output_name(task.params, now, "mp4")
    path = unique_path(folder, name)
    frames = int(float(task.params["video_length"]))

    return write_video(path, content, width=width, height=height, frames=frames,
                       fps=model.rules.fps, media=media, comment=json.dumps(settings, default=str))


def gallery_caption(path: Path) -> str:
    return path.name


def queue_html(queue: Iterable[Task]) -> str:
    """WanGP's queue HTML: it lists only the tasks after the first (the one being processed)."""
    waiting = list(queue)[1:]
    if not waiting:
        return "<div>Queue is empty.</div>"
    rows = "".join(
        f"<tr><td>{i + 2}</td><td>{t.params['model_type']}</td><td>{_html(t.prompt)}</td></tr>"
        for i, t in enumerate(waiting)
    )
    return f"<table class='queue'><tr><th>#</th><th>Model</th><th>Prompt</th></tr>{rows}</table>"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
