"""A :class:`~vidbridge.GenerationRequest` as WanGP settings for ``wangp_generate``.

The request's values are planned as on the web UI (:func:`..payload.plan_form`: settings file,
preset, typed fields, backend settings), laid over the server's own defaults for the model
(``wangp_get_default_settings``) and checked against the model's schema
(``wangp_get_model_schema``: frame rules) before anything is uploaded or generated.

The MCP server takes any dict as settings and publishes no list of the keys it understands: the
keys it knows for a model are taken to be those of its defaults for that model, WanGP 12.60's
settings as its web UI names them (:data:`WANGP_SETTINGS`), and those vidbridge itself sets
(:data:`PLUGIN_KEYS`). A request's own ``settings`` naming any other key is
refused (:func:`keep_known`), as the web UI face refuses a name its form lacks; other keys of an
imported settings file are dropped with a log line, as there.
"""

from __future__ import annotations

from typing import Any, Mapping

from vidbridge import GenerationRequest, InvalidRequestError

from ..api import refuse_unknown
from ..catalog import PRESETS
from ..payload import MEDIA_FIELDS, FormPlan, drop_unknown, plan_form

__all__ = ["plan", "check_frames", "settings_for", "known_keys", "keep_known", "PLUGIN_KEYS", "WANGP_SETTINGS"]

#: The settings keys vidbridge sets from a request's typed fields, LoRAs, media and presets.
PLUGIN_KEYS = frozenset({
    "model_type", "prompt", "negative_prompt", "resolution", "video_length", "num_inference_steps",
    "guidance_scale", "seed", "sample_solver", "loras_choices", "activated_loras", "loras_multipliers",
    "image_prompt_type", "video_prompt_type", *MEDIA_FIELDS,
    *(key for preset in PRESETS.values() for key in preset.values),
})


#: WanGP 12.60's settings as its web UI form names them (the fields of ``save_inputs``, less the
#: form's own ``target``, ``client_id``, ``lset_name`` and ``mode``): the keys of a settings file,
#: which ``wangp_generate`` takes as its ``source`` too. A model's defaults list only some of them.
WANGP_SETTINGS = frozenset({
    "image_mask_guide", "image_mode", "prompt", "alt_prompt", "negative_prompt", "resolution",
    "video_length", "duration_seconds", "pause_seconds", "batch_size", "seed", "force_fps",
    "num_inference_steps", "guidance_scale", "guidance2_scale", "guidance3_scale", "switch_threshold",
    "switch_threshold2", "guidance_phases", "model_switch_phase", "alt_guidance_scale", "alt_scale",
    "audio_guidance_scale", "audio_scale", "flow_shift", "sample_solver", "embedded_guidance_scale",
    "repeat_generation", "multi_prompts_gen_type", "multi_images_gen_type", "skip_steps_cache_type",
    "skip_steps_multiplier", "skip_steps_start_step_perc", "loras_choices", "loras_multipliers",
    "image_prompt_type", "image_start", "image_end", "model_mode", "video_source",
    "keep_frames_video_source", "input_video_strength", "video_guide_outpainting",
    "video_guide_outpainting_ratio", "video_prompt_type", "image_refs", "frames_positions",
    "video_guide", "video_guide2", "image_guide", "keep_frames_video_guide", "denoising_strength",
    "masking_strength", "video_mask", "image_mask", "control_net_weight", "control_net_weight2",
    "control_net_weight_alt", "motion_amplitude", "mask_expand", "audio_guide", "audio_guide2",
    "custom_guide", "audio_source", "replace_voice_method", "replace_voice_sample",
    "replace_voice_sample2", "audio_prompt_type", "speakers_locations", "sliding_window_size",
    "sliding_window_overlap", "sub_parallel_window_size", "sub_parallel_window_overlap",
    "sliding_window_color_correction_strength", "sliding_window_overlap_noise",
    "sliding_window_discard_last_frames", "sliding_window_trim_first_frames",
    "image_refs_relative_size", "remove_background_images_ref", "temporal_upsampling",
    "spatial_upsampling", "film_grain_intensity", "film_grain_saturation", "postprocess_audio",
    "postprocess_audio_prompt", "postprocess_audio_neg_prompt", "RIFLEx_setting", "NAG_scale",
    "NAG_tau", "NAG_alpha", "perturbation_switch", "perturbation_layers", "perturbation_start_perc",
    "perturbation_end_perc", "apg_switch", "cfg_star_switch", "cfg_zero_step", "prompt_enhancer",
    "min_frames_if_references", "override_profile", "override_attention", "attention_sparsity",
    "temperature", "custom_setting_1", "custom_setting_2", "custom_setting_3", "custom_setting_4",
    "custom_setting_5", "custom_setting_slider_1", "custom_setting_slider_2", "custom_setting_slider_3",
    "custom_setting_slider_4", "custom_setting_slider_5", "custom_setting_dropdown_1",
    "custom_setting_dropdown_2", "custom_setting_dropdown_3", "custom_setting_dropdown_4",
    "custom_setting_dropdown_5", "top_p", "top_k", "self_refiner_setting", "self_refiner_f_uncertainty",
    "self_refiner_certain_percentage", "output_filename", "config",
})


def known_keys(defaults: Mapping[str, Any]) -> frozenset[str]:
    """The settings keys taken as known for a model: its defaults' keys, WanGP's settings
    (:data:`WANGP_SETTINGS`) and :data:`PLUGIN_KEYS`."""
    return frozenset(defaults) | WANGP_SETTINGS | PLUGIN_KEYS


def keep_known(form: FormPlan, settings: Mapping[str, Any], defaults: Mapping[str, Any], model: str) -> None:
    """Refuse a key of the request's own ``settings`` the server does not know for ``model``;
    drop (with a log line) the other unknown keys of ``form`` (an imported settings file's).

    :raises InvalidRequestError: ``field`` ``settings.<key>``; ``allowed`` the close matches, else
        every known key.
    """
    known = known_keys(defaults)
    refuse_unknown(settings, sorted(known), field="settings",
                   lacks=f"WanGP's MCP server knows no setting of {model} named",
                   everything="one of " + ", ".join(sorted(known)))
    drop_unknown(form, known)


def plan(request: GenerationRequest, default_model: str | None) -> FormPlan:
    """The request's own values and media; the model defaults to ``default_model``.

    :raises InvalidRequestError: no model named, or the web UI's planning refused the request.
    """
    form = plan_form(request)
    form.model = form.model or default_model
    if not form.model:
        raise InvalidRequestError("model: WanGP's MCP face needs a model (no default template is configured)",
                                  field="model", allowed="a WanGP model_type, e.g. t2v_1.3B")
    if "loras_choices" in form.values:  # WanGP's settings name for the web UI's LoRA choice
        form.values["activated_loras"] = form.values.pop("loras_choices")
    return form


def check_frames(frames: Any, schema: Mapping[str, Any], model: str) -> None:
    """Refuse a frame count the model's schema does not allow (``frames_minimum + k *
    frames_steps``, at most ``frames_maximum``).

    :raises InvalidRequestError: naming ``frames`` and the allowed counts.
    """
    if not isinstance(frames, int) or isinstance(frames, bool):
        return  # WanGP also takes durations ("2s"): the server judges those
    low = schema.get("frames_minimum")
    step = schema.get("frames_steps")
    high = schema.get("frames_maximum")
    if not isinstance(low, int) or not isinstance(step, int) or step < 1:
        return
    allowed = f"{low}, {low + step}, {low + 2 * step}, ... (minimum {low} + a multiple of {step})"
    if isinstance(high, int):
        allowed += f", at most {high}"
    if frames < low or (frames - low) % step or (isinstance(high, int) and frames > high):
        raise InvalidRequestError(f"frames: {model} cannot make {frames} frames; allowed: {allowed}",
                                  field="frames", allowed=allowed)


def settings_for(form: FormPlan, defaults: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The settings to send: the server's defaults, then the request's values, validated.

    :raises InvalidRequestError: a frame count outside the model's rules.
    """
    settings = {**defaults, **form.values, "model_type": form.model}
    check_frames(settings.get("video_length"), schema, str(form.model))
    return settings
