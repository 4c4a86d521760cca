"""Model families, their frame rules, and named accelerator presets.

Client-side knowledge only: it lets us refuse an impossible request before any network call.
Anything we do not know (a model added after WanGP 12.60) passes through and the server decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .known_models import FAMILIES_12_60, MODELS_12_60, SELECTOR_FAMILIES_12_60

__all__ = ["FrameRule", "Preset", "PRESETS", "family_of", "frame_rule", "display_name", "is_image_family",
           "selector_family", "known_models_by_family"]


@dataclass(frozen=True)
class FrameRule:
    """Valid frame counts: ``min_frames + k * step`` (Wan: 4k+1, at least 5)."""

    step: int
    min_frames: int

    def accepts(self, frames: int) -> bool:
        """True when ``frames`` is a count this family can generate."""
        return frames >= self.min_frames and (frames - 1) % self.step == 0

    def nearest(self, frames: int) -> list[int]:
        """The valid counts around ``frames`` (for error messages)."""
        below = max(self.min_frames, ((frames - 1) // self.step) * self.step + 1)
        return sorted({below, below + self.step})

    def describe(self) -> str:
        """Human wording, e.g. ``4*k+1 frames, at least 5``."""
        return f"{self.step}*k+1 frames, at least {self.min_frames}"


# Video families and their frame rules; image and audio families have none (frames ignored).
_FRAME_RULES: dict[str, FrameRule] = {
    "wan": FrameRule(4, 5),
    "hunyuan": FrameRule(4, 5),
    "kandinsky5": FrameRule(4, 5),
    "longcat": FrameRule(4, 5),
    "magi_human": FrameRule(4, 5),
    "minimax_h3": FrameRule(4, 5),
    "ltxv": FrameRule(8, 9),
    "ltx2": FrameRule(8, 9),
}
_IMAGE_FAMILIES = frozenset({"flux", "qwen", "z_image", "hidream", "ideogram4", "krea2"})


def family_of(model_type: str) -> str | None:
    """The family of a model identifier, or ``None`` when it is unknown to this client."""
    known = MODELS_12_60.get(model_type)
    if known:
        return known[0]
    for prefix, family in (("ltx2", "ltx2"), ("ltxv", "ltxv"), ("hunyuan", "hunyuan"), ("flux", "flux"),
                           ("qwen", "qwen"), ("z_image", "z_image"), ("kandinsky", "kandinsky5")):
        if model_type.startswith(prefix):
            return family
    return None


def selector_family(model_type: str) -> str | None:
    """The family WanGP's model selector files a known model under (``"wan2_2"`` for Wan 2.2
    models, ``"music"`` for ACE-Step ...), or ``None`` for a model unknown to this client."""
    known = MODELS_12_60.get(model_type)
    return SELECTOR_FAMILIES_12_60.get(model_type, known[0]) if known else None


def known_models_by_family() -> dict[str, list[str]]:
    """WanGP 12.60's models by selector family, families in the selector's order."""
    grouped: dict[str, list[str]] = {family: [] for family in FAMILIES_12_60}
    for model_type, (family, _name) in MODELS_12_60.items():
        grouped.setdefault(SELECTOR_FAMILIES_12_60.get(model_type, family), []).append(model_type)
    return grouped


def display_name(model_type: str) -> str:
    """The model's display name when known, else its identifier."""
    known = MODELS_12_60.get(model_type)
    return known[1] if known else model_type


def is_image_family(family: str | None) -> bool:
    """True for families that produce images (no frame count)."""
    return family in _IMAGE_FAMILIES


def frame_rule(model_type: str) -> FrameRule | None:
    """The frame rule of a model, or ``None`` when the client does not know one."""
    family = family_of(model_type)
    rule = _FRAME_RULES.get(family or "")
    if rule is not None and "vace" in model_type:
        # VACE keeps reference frames in front of the clip: WanGP wants at least 17.
        return FrameRule(rule.step, 17)
    return rule


@dataclass(frozen=True)
class Preset:
    """A named accelerator preset: form values merged under the request's own fields.

    ``families`` restricts which model families it applies to (empty: any).
    """

    name: str
    description: str
    values: Mapping[str, Any]
    families: frozenset[str] = field(default_factory=frozenset)


#: Accelerator presets by lower-case name. CausVid is not a model: a Wan solver plus few steps.
PRESETS: dict[str, Preset] = {
    "causvid": Preset(
        "causvid",
        "CausVid accelerator for Wan 2.x: causvid solver, 8 steps, guidance 1",
        {"sample_solver": "causvid", "num_inference_steps": 8, "guidance_scale": 1, "flow_shift": 8},
        frozenset({"wan"}),
    ),
}
