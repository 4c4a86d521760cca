"""Typed, validated data that crosses the host/core/plugin boundaries (pydantic v2).

All models are frozen and reject unknown fields, so a typo in a host's request fails loudly at
construction instead of being silently dropped. Validation errors are re-raised as
:class:`vidbridge.InvalidRequestError` naming the field and what is allowed
(see :func:`build`).
"""

from __future__ import annotations

import enum
import mimetypes
import re
import time
from pathlib import Path
from typing import Any, Mapping, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import InvalidRequestError

__all__ = [
    "Phase",
    "TERMINAL_PHASES",
    "Endpoint",
    "Credentials",
    "LoRA",
    "GenerationRequest",
    "JobStatus",
    "ErrorInfo",
    "Artifact",
    "Provenance",
    "CancelResult",
    "build",
    "MEDIA_LIMITS",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class _Input(BaseModel):
    """Base of models a host builds by hand: invalid input raises :class:`InvalidRequestError`."""

    model_config = _FROZEN

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid_request_from(exc) from None


class Phase(str, enum.Enum):
    """The normalised phases of a generation job, the same for every backend."""

    QUEUED = "queued"
    STARTING = "starting"
    LOADING_MODEL = "loading_model"
    ENCODING = "encoding"
    INFERRING = "inferring"
    DECODING = "decoding"
    UPLOADING = "uploading"
    DOWNLOADING = "downloading"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed and cancelled: the job will not change any more."""
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})


class Endpoint(_Input):
    """A backend server that can be connected to.

    ``backend`` is the name of the plugin that owns it (e.g. ``"wan2gp"``); an empty string means
    "not identified yet" and lets :func:`vidbridge.connect` ask every plugin to identify it.
    """

    model_config = _FROZEN

    url: str = Field(description="Base URL, e.g. http://127.0.0.1:7860")
    backend: str = Field("", description="Name of the plugin that owns this endpoint")
    version: str | None = Field(None, description="Backend or framework version, when the server exposes one")
    transport: str = Field("http", description="How the plugin talks to it, e.g. 'gradio'")
    healthy: bool = True
    models: tuple[str, ...] = ()
    latency_ms: float | None = Field(None, description="Response time of the probe")
    queue_size: int | None = None
    note: str | None = Field(None, description="Why it is not usable, e.g. 'not Wan2GP'")
    details: Mapping[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL such as http://127.0.0.1:7860")
        return value.rstrip("/")


class Credentials(_Input):
    """How to authenticate to a server. Secrets are :class:`~pydantic.SecretStr` and never print.

    * ``username``/``password``: the server's own login (gradio auth).
    * ``token``: a Hugging Face token (sent as ``x-hf-authorization``).
    * ``headers``: extra headers for every request, e.g. an API key for a reverse proxy; values
      are secret too.
    """

    model_config = _FROZEN

    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    headers: Mapping[str, SecretStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pair(self) -> Credentials:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both or neither")
        for number, name in enumerate(self.headers, 1):
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                # the name is not echoed: a mistyped name may contain the secret value
                raise ValueError(f"header name number {number} is not a valid HTTP header name (not shown)")
        return self

    @property
    def is_empty(self) -> bool:
        """True when nothing is set."""
        return self.username is None and self.token is None and not self.headers

    def header_values(self) -> dict[str, str]:
        """The extra headers with their secret values revealed, for the HTTP layer only."""
        return {name: value.get_secret_value() for name, value in self.headers.items()}


class LoRA(_Input):
    """A LoRA to apply, by the name the backend knows it under, with its multiplier."""

    model_config = _FROZEN

    name: str = Field(min_length=1)
    weight: float = Field(1.0, ge=-10.0, le=10.0)

    @classmethod
    def parse(cls, text: str) -> LoRA:
        """Parse ``NAME`` or ``NAME:WEIGHT`` (the CLI form)."""
        name, sep, weight = text.rpartition(":")
        if not sep:
            return build(cls, name=text)
        try:
            value = float(weight)
        except ValueError:
            raise InvalidRequestError(
                f"LoRA {text!r}: weight {weight!r} is not a number", field="loras", allowed="NAME or NAME:WEIGHT"
            ) from None
        return build(cls, name=name, weight=value)


#: Accepted input media: suffix families and the largest size accepted, in bytes.
MEDIA_LIMITS: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"}), 64 * 2**20),
    "video": (frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi"}), 4 * 2**30),
    "audio": (frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac"}), 512 * 2**20),
}

_MEDIA_FIELDS = {
    "image_start": "image",
    "image_end": "image",
    "ref_images": "image",
    "video": "video",
    "audio": "audio",
}


def _check_media(path: Path, kind: str) -> Path:
    suffixes, limit = MEDIA_LIMITS[kind]
    if not path.is_file():
        raise ValueError(f"file {str(path)!r} does not exist or is not a regular file")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{str(path)!r} is not an accepted {kind} file; allowed: {', '.join(sorted(suffixes))}")
    size = path.stat().st_size
    if size == 0 or size > limit:
        raise ValueError(f"{str(path)!r} is {size} bytes; allowed: 1 to {limit} bytes")
    return path


class GenerationRequest(_Input):
    """What to generate. Backend-neutral fields, plus ``settings`` for everything else.

    ``None`` means "the backend's default". Backend plugins validate further (frame counts of a
    model family, resolutions among a model's choices) before any network call.
    """

    model_config = _FROZEN

    prompt: str = Field(min_length=1, max_length=20_000)
    negative_prompt: str = ""
    model: str | None = Field(None, min_length=1, description="Backend model identifier")
    resolution: str | None = Field(None, description="'WIDTHxHEIGHT', e.g. '832x480'")
    frames: int | None = Field(None, ge=1, le=10_000)
    steps: int | None = Field(None, ge=1, le=1_000)
    guidance: float | None = Field(None, ge=0.0, le=100.0)
    seed: int | None = Field(None, ge=-1, le=2**32 - 1, description="-1 or None: random")
    sampler: str | None = Field(None, min_length=1)
    loras: tuple[LoRA, ...] = ()
    preset: str | None = Field(None, min_length=1, description="A named accelerator preset, e.g. 'causvid'")
    image_start: Path | None = None
    image_end: Path | None = None
    ref_images: tuple[Path, ...] = ()
    video: Path | None = Field(None, description="Control or source video")
    audio: Path | None = None
    settings_file: Path | None = Field(None, description="A backend settings export (e.g. Wan2GP JSON)")
    settings: Mapping[str, Any] = Field(default_factory=dict, description="Backend-specific fields by name")

    @field_validator("resolution")
    @classmethod
    def _check_resolution(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = re.fullmatch(r"\s*(\d{2,5})\s*[xX]\s*(\d{2,5})\s*", value)
        if not match or int(match[1]) == 0 or int(match[2]) == 0:
            raise ValueError("must be 'WIDTHxHEIGHT' with positive integers, e.g. '832x480'")
        return f"{int(match[1])}x{int(match[2])}"

    @field_validator("image_start", "image_end", "video", "audio")
    @classmethod
    def _check_single_media(cls, value: Path | None, info: Any) -> Path | None:
        return None if value is None else _check_media(value, _MEDIA_FIELDS[info.field_name])

    @field_validator("ref_images")
    @classmethod
    def _check_ref_images(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(_check_media(path, "image") for path in value)

    @field_validator("settings_file")
    @classmethod
    def _check_settings_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist")
        return value

    @property
    def size(self) -> tuple[int, int] | None:
        """``(width, height)`` parsed from ``resolution``."""
        if self.resolution is None:
            return None
        width, height = self.resolution.split("x")
        return int(width), int(height)

    def input_files(self) -> dict[str, tuple[Path, ...]]:
        """The local files this request uploads, by field name."""
        files: dict[str, tuple[Path, ...]] = {}
        for name in ("image_start", "image_end", "video", "audio"):
            value = getattr(self, name)
            if value is not None:
                files[name] = (value,)
        if self.ref_images:
            files["ref_images"] = self.ref_images
        return files


class ErrorInfo(BaseModel):
    """A failure, as data: the error class name, its message, and its extra attributes."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    message: str
    retryable: bool = False


class JobStatus(BaseModel):
    """A normalised snapshot of a job. Immutable: each change makes a new snapshot."""

    model_config = _FROZEN

    job_id: str
    phase: Phase = Phase.QUEUED
    queue_position: int | None = Field(None, ge=0, description="0 = next to run")
    queue_size: int | None = Field(None, ge=0)
    step: int | None = Field(None, ge=0)
    total_steps: int | None = Field(None, ge=0)
    progress: float | None = Field(None, ge=0.0, le=1.0)
    eta_seconds: float | None = Field(None, ge=0.0)
    message: str | None = None
    downloaded_bytes: int | None = None
    total_bytes: int | None = None
    error: ErrorInfo | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    phase_started_at: Mapping[str, float] = Field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        """True once the job is completed, failed or cancelled."""
        return self.phase.is_terminal

    def same_state(self, other: JobStatus) -> bool:
        """True when ``other`` differs from this snapshot at most in its timestamps."""
        ignore = {"updated_at", "phase_started_at"}
        return self.model_dump(exclude=ignore) == other.model_dump(exclude=ignore)

    def evolve(self, **changes: Any) -> JobStatus:
        """A new snapshot with ``changes`` applied, timestamps kept up to date.

        Changing phase clears step/progress fields that belonged to the previous phase unless
        they are given again.
        """
        now = time.time()
        phase = Phase(changes.get("phase", self.phase))
        data = self.model_dump()
        if phase is not self.phase:
            for key in ("step", "total_steps", "progress", "eta_seconds"):
                data[key] = None
            if phase is not Phase.QUEUED:
                data["queue_position"] = None
            data["phase_started_at"] = {**self.phase_started_at, phase.value: now}
        data.update(changes)
        data["phase"] = phase
        data["updated_at"] = now
        return JobStatus.model_validate(data)


class Provenance(BaseModel):
    """Where an artifact came from: enough to reproduce or audit it."""

    model_config = ConfigDict(frozen=True, extra="allow")

    backend: str
    endpoint: str
    job_id: str
    model: str | None = None
    seed: int | None = None
    original_name: str | None = None
    request: Mapping[str, Any] = Field(default_factory=dict)
    settings_sent: Mapping[str, Any] = Field(default_factory=dict)
    timings: Mapping[str, float] = Field(default_factory=dict)


class Artifact(BaseModel):
    """A verified local file produced by a job."""

    model_config = _FROZEN

    path: Path
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    media_type: str
    provenance: Provenance
    manifest_path: Path | None = None

    def to_summary(self) -> dict[str, Any]:
        """The short JSON form used by the CLI: path, size, sha256, media_type."""
        return {"path": str(self.path), "size": self.size, "sha256": self.sha256, "media_type": self.media_type}


class CancelResult(BaseModel):
    """What a cancel achieved: ``server_stopped`` is True when the backend itself stopped the work."""

    model_config = _FROZEN

    server_stopped: bool
    message: str = ""


def guess_media_type(path: Path | str) -> str:
    """The media type of a file name (``video/mp4``, ``image/png``...), ``application/octet-stream`` if unknown."""
    return mimetypes.guess_type(str(path))[0] or "application/octet-stream"


_M = TypeVar("_M", bound=BaseModel)


def build(model: type[_M], /, **fields: Any) -> _M:
    """Construct ``model`` from ``fields``, raising :class:`InvalidRequestError` on bad input."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise invalid_request_from(exc) from None


_SECRET_FIELDS = {"password", "token", "headers"}


def invalid_request_from(exc: ValidationError) -> InvalidRequestError:
    """Translate a pydantic ``ValidationError`` into one :class:`InvalidRequestError`."""
    problems = []
    fields = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or exc.title
        fields.append(field)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a known field"
        elif error["type"] not in ("value_error", "missing") and not _SECRET_FIELDS & set(map(str, error["loc"])):
            message += f" (got {error.get('input')!r})"
        problems.append(f"{field}: {message}")
    return InvalidRequestError(
        f"invalid {exc.title}: " + "; ".join(problems), field=fields[0] if fields else None, allowed=None
    )
