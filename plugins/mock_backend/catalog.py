"""The fake model catalogue: WanGP 12.60's model identifiers and each family's constraints.

Identifiers, architectures and families come from the packaged ``data/models-12.60.json``. The
constraints (frame rule, frame rate, resolution choices, image vs video output) are the facts a
client has to respect on the real server; numbers the recording does not give are plausible values
chosen for the mock and documented here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from .spec import DATA_DIR

# The choices WanGP 12.60 offered for the 480p Wan group (recorded in api-12.60.json).
RESOLUTIONS_480P = ("832x624", "624x832", "720x720", "832x480", "480x832")
RESOLUTIONS_720P = ("1280x720", "720x1280", "1024x1024", "1280x544", "544x1280", "1104x832", "832x1104", "960x960")
RESOLUTIONS_1080P = ("1920x1088", "1088x1920", "1440x1440", "1280x720", "720x1280")
RESOLUTIONS_IMAGE = ("1024x1024", "1280x720", "720x1280", "1152x896", "896x1152", "832x480")

# The family values of WanGP's first model dropdown, in its order (recorded).
UI_FAMILIES = (
    "wan", "wan2_2", "hunyuan", "hunyuan_1_5", "ltxv", "ltx2", "kandinsky5", "longcat",
    "magi_human", "minimax_h3", "flux", "flux2", "qwen", "z_image", "hidream", "ideogram4",
    "krea2", "music", "tts",
)


@dataclass(frozen=True)
class FamilyRules:
    """What a model family accepts and produces.

    ``frame_step``/``min_frames``: valid frame counts are ``min_frames + k * frame_step`` (Wan:
    4k+1, at least 5). ``fps`` is the frame rate of the written MP4. Image families write PNGs.
    """

    fps: int
    frame_step: int = 4
    min_frames: int = 5
    max_frames: int = 737
    resolutions: tuple[str, ...] = RESOLUTIONS_480P
    default_resolution: str = "832x480"
    default_frames: int = 81
    image: bool = False
    supported: bool = True

    def valid_frames(self, frames: int, min_frames: int | None = None) -> bool:
        low = self.min_frames if min_frames is None else min_frames
        return low <= frames <= self.max_frames and (frames - 1) % self.frame_step == 0


_VIDEO_720 = dict(resolutions=RESOLUTIONS_720P, default_resolution="1280x720")
_IMAGE = dict(fps=1, image=True, frame_step=1, min_frames=1, default_frames=1,
              resolutions=RESOLUTIONS_IMAGE, default_resolution="1024x1024")
FAMILY_RULES: dict[str, FamilyRules] = {
    "wan": FamilyRules(fps=16),
    "hunyuan": FamilyRules(fps=24, default_frames=97, **_VIDEO_720),
    "ltxv": FamilyRules(fps=30, frame_step=8, min_frames=9, default_frames=97, **_VIDEO_720),
    "ltx2": FamilyRules(fps=24, frame_step=8, min_frames=9, default_frames=121,
                        resolutions=RESOLUTIONS_1080P, default_resolution="1280x720"),
    "kandinsky5": FamilyRules(fps=24, default_frames=121, **_VIDEO_720),
    "longcat": FamilyRules(fps=30, default_frames=93, **_VIDEO_720),
    "magi_human": FamilyRules(fps=25, default_frames=97, **_VIDEO_720),
    "minimax_h3": FamilyRules(fps=25, default_frames=97, **_VIDEO_720),
    "flux": FamilyRules(**_IMAGE),
    "qwen": FamilyRules(**_IMAGE),
    "z_image": FamilyRules(**_IMAGE),
    "hidream": FamilyRules(**_IMAGE),
    "ideogram4": FamilyRules(**_IMAGE),
    "krea2": FamilyRules(**_IMAGE),
    # Audio models exist in the catalogue but the mock does not synthesise audio.
    "tts": FamilyRules(fps=1, supported=False),
}


@dataclass(frozen=True)
class Model:
    """One model definition: ``model_type`` (the identifier clients send), its architecture (the
    "base model" grouping finetunes), its family and display name."""

    model_type: str
    architecture: str
    family: str
    name: str

    @property
    def rules(self) -> FamilyRules:
        return FAMILY_RULES[self.family]

    @property
    def ui_family(self) -> str:
        """The value of WanGP's family dropdown for this model (it splits some families)."""
        arch = self.architecture
        if self.family == "wan" and "2_2" in arch:
            return "wan2_2"
        if self.family == "hunyuan" and arch.startswith("hunyuan_1_5"):
            return "hunyuan_1_5"
        if self.family == "flux" and arch.startswith("flux2"):
            return "flux2"
        if self.family == "tts" and arch.startswith("ace_step"):
            return "music"
        return self.family

    @property
    def min_frames(self) -> int:
        # VACE models keep reference frames in front: WanGP requires at least 17.
        return 17 if "vace" in self.model_type else self.rules.min_frames

    @property
    def needs_start_image(self) -> bool:
        """Image-to-video models that cannot run without a start image."""
        return (not self.rules.image) and ("i2v" in self.architecture or "flf2v" in self.architecture)

    @property
    def resolutions(self) -> tuple[str, ...]:
        if self.family == "wan" and ("720" in self.model_type or "1080" in self.name):
            return RESOLUTIONS_720P
        return self.rules.resolutions

    @property
    def default_resolution(self) -> str:
        res = self.resolutions
        return self.rules.default_resolution if self.rules.default_resolution in res else res[0]


@functools.lru_cache(maxsize=1)
def load_models() -> dict[str, Model]:
    """All 217 models of WanGP 12.60 keyed by ``model_type`` (catalogue order)."""
    raw = json.loads((DATA_DIR / "models-12.60.json").read_text(encoding="utf-8"))["models"]
    return {
        m["model_type"]: Model(m["model_type"], m["architecture"], m["family"], m["name"])
        for m in raw
    }


def get_model(model_type: str) -> Model:
    """The model named ``model_type``; KeyError if the catalogue has none."""
    return load_models()[model_type]


def base_models(ui_family: str) -> list[str]:
    """The "base model" dropdown values of a family: its architectures in catalogue order."""
    seen: dict[str, None] = {}
    for model in load_models().values():
        if model.ui_family == ui_family:
            seen.setdefault(model.architecture)
    return list(seen)


def finetunes(model_type: str) -> list[str]:
    """The model dropdown values offered next to ``model_type``: models of its architecture,
    the architecture's own definition first (as WanGP lists "Default" first)."""
    arch = get_model(model_type).architecture
    same = [m.model_type for m in load_models().values() if m.architecture == arch]
    return sorted(same, key=lambda t: t != arch)
