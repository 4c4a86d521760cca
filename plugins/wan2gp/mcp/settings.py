"""A :class:`~vidbridge.GenerationRequest` as WanGP settings for ``wangp_generate``.

The request's values are planned as on the web UI (:func:`..payload.plan_form`: settings file,
preset, typed fields, backend settings), laid over the server's own defaults for the model
(``wangp_get_default_settings``) and checked against the model's schema
(``wangp_get_model_schema``: frame rules) before anything is uploaded or generated.
"""

from __future__ import annotations

from typing import Any, Mapping

from vidbridge import GenerationRequest, InvalidRequestError

from ..payload import FormPlan, plan_form

__all__ = ["plan", "check_frames", "settings_for"]


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
