"""Typed, validated data that crosses the host/core/plugin boundaries (pydantic v2).

All models are frozen and reject unknown fields, so a typo in a host's request fails loudly at
construction instead of being silently dropped. Validation errors are re-raised as
:class:`vidbridge.InvalidRequestError` naming the field and what is allowed
(see :func:`build`).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import itertools
import json
import mimetypes
import os
import re
import stat
import time
import typing
from pathlib import Path
from typing import Any, Iterator, Mapping, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .containers import sniff_media_type
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
    "MEDIA_FORMATS",
    "SETTINGS_FILE_LIMIT",
    "RESOLUTION_SIDES",
    "excerpt",
    "field_labels",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class _Input(BaseModel):
    """Base of models a host builds by hand: invalid input raises :class:`InvalidRequestError`."""

    model_config = _FROZEN

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid_request_from(exc, type(self)) from None


# -------------------------------------------------------------------------------------------------
# Helpers for validators and their messages
# -------------------------------------------------------------------------------------------------


def excerpt(value: object, limit: int = 60, *, tail: bool = False) -> str:
    """A short quote of a user value for an error message.

    The quote (a Python ``repr``, so control characters show as escapes) is at most about
    ``limit`` characters; a longer value is cut and its length stated, so that a 1 MB input never
    makes a 1 MB message. ``tail`` keeps the end instead of the start (a path's file name).
    """
    if not isinstance(value, str):  # a number, a list...: its repr, cut the same way but not quoted again
        shown = repr(value)
        return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} characters)"
    shown = repr(value)
    if len(shown) <= limit + 2:
        return shown
    # as many characters as fit in ``limit`` once escaped ('\x00' takes four)
    widths = itertools.accumulate(len(repr(char)) - 2 for char in (reversed(value) if tail else value))
    count = sum(1 for _ in itertools.takewhile(lambda width: width <= limit, widths))
    if tail:
        return f"...{value[len(value) - count:]!r} ({len(value)} characters)"
    return f"{value[:count]!r}... ({len(value)} characters)"


def _path_excerpt(path: Path) -> str:
    return excerpt(str(path), 80, tail=True)


class _Refusal(ValueError):
    """A validator's refusal that also says what is allowed (read by :func:`invalid_request_from`)."""

    def __init__(self, message: str, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


_LABELS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("vidbridge_field_labels", default={})


@contextlib.contextmanager
def field_labels(labels: Mapping[str, str]) -> Iterator[None]:
    """Name fields as the caller knows them in the messages of errors raised inside the block.

    The command line uses it so that a bad ``frames`` reads ``--frames: ...``; ``error.field``
    stays the model's field name.
    """
    token = _LABELS.set({**_LABELS.get(), **labels})
    try:
        yield
    finally:
        _LABELS.reset(token)


# C0 and C1 control characters (pydantic already refuses lone surrogates, undecodable argv bytes).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _check_characters(value: str, *, multiline: bool) -> str:
    pattern = _CONTROL_IN_TEXT if multiline else _CONTROL
    found = pattern.search(value)
    if found is None:
        return value
    allowed = ("text without control characters other than newline and tab" if multiline
               else "one line of text without control characters")
    raise _Refusal(f"contains control character {found.group()!r} at position {found.start()} "
                   f"(of {len(value)} characters)", allowed)


def _check_line(value: str | None) -> str | None:
    return None if value is None else _check_characters(value, multiline=False)


def _check_secret_text(secret: SecretStr, what: str) -> None:
    # a line break would split the HTTP header the secret travels in; it is never shown
    if _CONTROL.search(secret.get_secret_value()):
        raise _Refusal(f"{what} contains a control character or line break (not shown)",
                       "a secret without control characters or line breaks")


_ARTICLE = {"image": "an image", "video": "a video", "audio": "an audio"}


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
    max_jobs: int | None = Field(None, ge=1, description="Jobs the server runs at once, when it has a limit "
                                 "(WanGP's MCP face: 1); the client's local queue never runs more")
    note: str | None = Field(None, description="Why it is not usable, e.g. 'not Wan2GP'")
    details: Mapping[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        allowed = "an http:// or https:// base URL such as http://127.0.0.1:7860 (no user name, password or query)"
        if len(value) > 2048 or re.search(r"[\s\x00-\x1f\x7f]", value):
            raise _Refusal(f"is not a URL: {len(value)} characters with spaces or control characters", allowed)
        try:
            parts = urlsplit(value)
            parts.port  # parsed lazily: an out-of-range or non-numeric port raises here
        except ValueError as exc:
            # the text is not echoed: what looks like a URL may hold a password before the '@'
            raise _Refusal(f"is not a valid URL ({exc})", allowed) from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise _Refusal("must be an http:// or https:// URL with a host, such as http://127.0.0.1:7860", allowed)
        if "@" in parts.netloc:
            raise _Refusal(
                "must not contain a user name or password (they would be ignored, and URLs are logged): pass "
                "Credentials(username=..., password=...) instead; on the command line --username with the "
                "password in the VIDBRIDGE_PASSWORD environment variable", allowed)
        if parts.query or parts.fragment or value.rstrip("/").endswith(("?", "#")):
            raise _Refusal("is a server's base URL: it takes no query ('?...') or fragment ('#...')", allowed)
        return value.rstrip("/")


class Credentials(_Input):
    """How to authenticate to a server. Secrets are :class:`~pydantic.SecretStr` and never print.

    * ``username``/``password``: the server's own login (gradio auth).
    * ``token``: a Hugging Face token (sent as ``x-hf-authorization``).
    * ``headers``: extra headers for every request, e.g. an API key for a reverse proxy; values
      are secret too.
    """

    model_config = _FROZEN

    username: str | None = Field(None, min_length=1, max_length=256)
    password: SecretStr | None = None
    token: SecretStr | None = None
    headers: Mapping[str, SecretStr] = Field(default_factory=dict)

    _check_username = field_validator("username")(_check_line)

    @field_validator("password", "token")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_secret_text(value, "the value")
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: Mapping[str, SecretStr]) -> Mapping[str, SecretStr]:
        for number, (name, secret) in enumerate(value.items(), 1):
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                # the name is not echoed: a mistyped name may contain the secret value
                raise _Refusal(f"header name number {number} is not a valid HTTP header name (not shown)",
                               "HTTP header names (letters, digits and !#$%&'*+.^_`|~-) with one-line values")
            _check_secret_text(secret, f"header number {number}")
        return value

    @model_validator(mode="after")
    def _pair(self) -> Credentials:
        if (self.username is None) != (self.password is None):
            raise _Refusal("username and password go together: give both or neither", "both or neither")
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

    name: str = Field(min_length=1, max_length=1_000)
    weight: float = Field(1.0, ge=-10.0, le=10.0, allow_inf_nan=False)

    _check_name = field_validator("name")(_check_line)

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
                f"LoRA {excerpt(text)}: weight {excerpt(weight, 20)} is not a number", field="loras",
                allowed="NAME or NAME:WEIGHT, WEIGHT a number from -10 to 10"
            ) from None
        return build(cls, name=name, weight=value)


#: Accepted input media: suffix families and the largest size accepted, in bytes.
MEDIA_LIMITS: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}), 64 * 2**20),
    "video": (frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi"}), 4 * 2**30),
    "audio": (frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac"}), 512 * 2**20),
}

#: The content an input file of each kind must start with, as the media types
#: :func:`vidbridge.containers.sniff_media_type` reads from its first bytes, with their common names.
MEDIA_FORMATS: dict[str, dict[str, str]] = {
    "image": {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP", "image/gif": "GIF",
              "image/bmp": "BMP"},
    "video": {"video/mp4": "MP4", "video/quicktime": "MOV", "video/x-matroska": "MKV/WebM",
              "video/x-msvideo": "AVI"},
    # an ISO-BMFF audio file often carries a video brand (isom, mp42): its ftyp box is what counts
    "audio": {"audio/wav": "WAV", "audio/mpeg": "MP3", "audio/flac": "FLAC", "audio/ogg": "OGG",
              "audio/mp4": "M4A", "video/mp4": "M4A", "audio/aac": "AAC"},
}

#: The largest settings file read, in bytes (a Wan2GP export is a few KB).
SETTINGS_FILE_LIMIT = 16 * 2**20

#: Smallest and largest side of a ``resolution``, in pixels.
RESOLUTION_SIDES = (8, 16_384)

_MEDIA_FIELDS = {
    "image_start": "image",
    "image_end": "image",
    "ref_images": "image",
    "video": "video",
    "audio": "audio",
}
_SNIFF_BYTES = 16  # all sniff_media_type needs


def _size_text(count: int) -> str:
    """A size limit for people (the limits are whole MiB or GiB)."""
    return f"{count / 2**30:g} GiB" if count >= 2**30 else f"{count / 2**20:g} MiB"


def _media_allowed(kind: str) -> str:
    suffixes, limit = MEDIA_LIMITS[kind]
    names = sorted(set(MEDIA_FORMATS[kind].values()), key=list(MEDIA_FORMATS[kind].values()).index)
    return (f"an existing, readable {kind} file ({', '.join(names)}; named {', '.join(sorted(suffixes))}) "
            f"of 1 byte to {_size_text(limit)}")


def _regular_file(path: Path, allowed: str) -> int:
    """The size of ``path``, a readable regular file (symbolic links followed); else a refusal."""
    shown = _path_excerpt(path)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink():
            raise _Refusal(f"{shown} is a symbolic link to a file that does not exist", allowed) from None
        raise _Refusal(f"{shown} does not exist", allowed) from None
    except (OSError, ValueError) as exc:  # permission on a parent, a loop of links, a NUL byte...
        raise _Refusal(f"{shown} cannot be accessed ({getattr(exc, 'strerror', None) or exc})", allowed) from None
    if stat.S_ISDIR(info.st_mode):
        raise _Refusal(f"{shown} is a directory, not a file", allowed)
    if not stat.S_ISREG(info.st_mode):
        # opening a FIFO would block, a device would stream forever
        raise _Refusal(f"{shown} is not a regular file (a device, pipe or socket)", allowed)
    return info.st_size


def _read_head(path: Path, count: int, allowed: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read(count)
    except OSError as exc:
        raise _Refusal(f"{_path_excerpt(path)} cannot be read ({exc.strerror or exc})", allowed) from None


def _check_media(path: Path, kind: str) -> Path:
    """Refuse ``path`` unless it is a readable ``kind`` file whose content matches (not only its name)."""
    suffixes, limit = MEDIA_LIMITS[kind]
    allowed = _media_allowed(kind)
    shown = _path_excerpt(path)
    size = _regular_file(path, allowed)
    if path.suffix.lower() not in suffixes:
        raise _Refusal(f"{shown} is not named like {_ARTICLE[kind]} file; allowed: {', '.join(sorted(suffixes))}", allowed)
    if size == 0:
        raise _Refusal(f"{shown} is empty", allowed)
    if size > limit:
        raise _Refusal(f"{shown} is {size} bytes, more than the {_size_text(limit)} allowed for {_ARTICLE[kind]} file",
                       allowed)
    sniffed = sniff_media_type(_read_head(path, _SNIFF_BYTES, allowed))
    if sniffed is None:
        raise _Refusal(f"{shown} is not {_ARTICLE[kind]} file: its first bytes match no {kind} format "
                       f"({', '.join(sorted(set(MEDIA_FORMATS[kind].values())))})", allowed)
    if sniffed not in MEDIA_FORMATS[kind]:
        raise _Refusal(f"{shown} is named like {_ARTICLE[kind]} file but holds {sniffed}", allowed)
    return path


def _check_settings_path(path: Path) -> Path:
    """Refuse ``path`` unless it is a readable JSON file holding one object."""
    allowed = (f"a readable JSON file holding one object (e.g. a Wan2GP 'Export Settings' file) "
               f"of at most {_size_text(SETTINGS_FILE_LIMIT)}")
    shown = _path_excerpt(path)
    size = _regular_file(path, allowed)
    if size > SETTINGS_FILE_LIMIT:
        raise _Refusal(f"{shown} is {size} bytes, more than the {_size_text(SETTINGS_FILE_LIMIT)} allowed", allowed)
    raw = _read_head(path, SETTINGS_FILE_LIMIT + 1, allowed)
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _Refusal(f"{shown} is not UTF-8 text (byte {exc.start})", allowed) from None
    except json.JSONDecodeError as exc:  # the content is not echoed: it may be anything, of any size
        raise _Refusal(f"{shown} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", allowed) from None
    if not isinstance(data, dict):
        raise _Refusal(f"{shown} holds a JSON {type(data).__name__}, not an object of settings", allowed)
    return path


def _path_as_text(value: Any) -> str:
    if isinstance(value, os.PathLike):  # a local file a plugin uploads (e.g. a Wan2GP mask)
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _check_settings_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    allowed = "a mapping of backend field names to JSON values (finite numbers, text, lists, objects) or paths"
    for key, item in value.items():
        if not key.strip() or len(key) > 200 or _CONTROL.search(key):
            raise _Refusal(f"key {excerpt(key)} is not a field name (1 to 200 characters, one line)", allowed)
        try:
            json.dumps(item, allow_nan=False, default=_path_as_text)
        except (TypeError, ValueError) as exc:
            # sent as JSON to the backend: refuse here what could not be sent
            raise _Refusal(f"{excerpt(key)}: the value is not JSON-compatible ({excerpt(str(exc), 80)})", allowed) from None
    return value


class GenerationRequest(_Input):
    """What to generate. Backend-neutral fields, plus ``settings`` for everything else.

    ``None`` means "the backend's default". Backend plugins validate further (frame counts of a
    model family, resolutions among a model's choices) before any network call.
    """

    model_config = _FROZEN

    prompt: str = Field(min_length=1, max_length=20_000)
    negative_prompt: str = Field("", max_length=20_000)
    model: str | None = Field(None, min_length=1, max_length=200, description="Backend model identifier")
    resolution: str | None = Field(None, description="'WIDTHxHEIGHT', e.g. '832x480'")
    frames: int | None = Field(None, ge=1, le=10_000)
    steps: int | None = Field(None, ge=1, le=1_000)
    guidance: float | None = Field(None, ge=0.0, le=100.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=-1, le=2**32 - 1, description="-1 or None: random")
    sampler: str | None = Field(None, min_length=1, max_length=200)
    loras: tuple[LoRA, ...] = ()
    preset: str | None = Field(None, min_length=1, max_length=200,
                               description="A named accelerator preset, e.g. 'causvid'")
    image_start: Path | None = None
    image_end: Path | None = None
    ref_images: tuple[Path, ...] = ()
    video: Path | None = Field(None, description="Control or source video")
    audio: Path | None = None
    settings_file: Path | None = Field(None, description="A backend settings export (e.g. Wan2GP JSON)")
    settings: Mapping[str, Any] = Field(default_factory=dict, description="Backend-specific fields by name")

    _check_names = field_validator("model", "sampler", "preset")(_check_line)

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _check_prompt(cls, value: str, info: Any) -> str:
        if info.field_name == "prompt" and not value.strip():
            raise _Refusal(f"is blank ({len(value)} spaces or line breaks)", "text with at least one visible character")
        return _check_characters(value, multiline=True)

    @field_validator("resolution")
    @classmethod
    def _check_resolution(cls, value: str | None) -> str | None:
        if value is None:
            return value
        low, high = RESOLUTION_SIDES
        allowed = f"'WIDTHxHEIGHT', each side an even number of pixels from {low} to {high}, e.g. '832x480'"
        match = re.fullmatch(r"\s*(\d{1,6})\s*[xX]\s*(\d{1,6})\s*", value)
        if not match:
            raise _Refusal(f"{excerpt(value, 40)} is not 'WIDTHxHEIGHT'; allowed: {allowed}", allowed)
        width, height = int(match[1]), int(match[2])
        if not all(low <= side <= high and side % 2 == 0 for side in (width, height)):
            # even: the 4:2:0 video every backend writes has no odd sides
            raise _Refusal(f"{width}x{height} is not allowed; allowed: {allowed}", allowed)
        return f"{width}x{height}"

    @field_validator("image_start", "image_end", "video", "audio")
    @classmethod
    def _check_single_media(cls, value: Path | None, info: Any) -> Path | None:
        return None if value is None else _check_media(value, _MEDIA_FIELDS[info.field_name])

    @field_validator("ref_images")
    @classmethod
    def _check_ref_images(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for number, path in enumerate(value, 1):
            try:
                _check_media(path, "image")
            except _Refusal as refusal:
                raise _Refusal(f"reference image {number} of {len(value)}: {refusal}", refusal.allowed) from None
        return value

    @field_validator("settings_file")
    @classmethod
    def _check_settings_file(cls, value: Path | None) -> Path | None:
        return None if value is None else _check_settings_path(value)

    @field_validator("settings")
    @classmethod
    def _check_settings(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        return _check_settings_mapping(value)

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
    cached: bool = Field(False, description="The artifacts were reused from an earlier identical job (reuse=True)")
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
        raise invalid_request_from(exc, model) from None


_SECRET_FIELDS = {"password", "token", "headers"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _field_info(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> Any:
    """The pydantic ``FieldInfo`` of the field an error location starts with, or ``None``.

    Nested models (a request's LoRAs) are :class:`_Input` too: their errors arrive already
    translated, with their own ``allowed``.
    """
    if model is None or not loc:
        return None
    return model.model_fields.get(str(loc[0]))


def _allowed_by_field(info: Any) -> str | None:
    """What a field accepts, from its type and its ``Field`` constraints."""
    kinds = set(typing.get_args(info.annotation)) or {info.annotation}
    bounds = {name: getattr(item, name) for item in info.metadata
              for name in ("ge", "le", "max_length", "min_length") if getattr(item, name, None) is not None}
    optional = " (or None: the backend's default)" if type(None) in kinds else ""
    if int in kinds or float in kinds:
        noun = "an integer" if int in kinds else "a finite number"
        if "ge" in bounds and "le" in bounds:
            noun += f" from {_number(bounds['ge'])} to {_number(bounds['le'])}"
        return noun + optional
    if str in kinds:
        if "max_length" not in bounds:
            return "text" + optional
        return f"text of {bounds.get('min_length', 0)} to {bounds['max_length']} characters{optional}"
    if Path in kinds:
        return "a path to a local file" + optional
    return None


_ALLOWED_BY_TYPE = {
    "int_parsing": "an integer", "int_from_float": "an integer", "int_type": "an integer",
    "float_parsing": "a number", "float_type": "a number", "finite_number": "a finite number",
    "string_type": "text", "bool_parsing": "true or false", "path_type": "a path to a local file",
    "dict_type": "a mapping", "tuple_type": "a list", "model_type": "a mapping of fields",
}


def _allowed(error: Any, model: type[BaseModel] | None) -> str | None:
    refusal = (error.get("ctx") or {}).get("error")
    if isinstance(refusal, (_Refusal, InvalidRequestError)):  # the second from a nested model (a LoRA)
        return refusal.allowed
    if error["type"] == "extra_forbidden":  # nested models are _Input too: this is about ``model``'s own fields
        return f"known fields: {', '.join(model.model_fields)}" if model is not None else None
    info = _field_info(model, error["loc"])
    return (_allowed_by_field(info) if info is not None else None) or _ALLOWED_BY_TYPE.get(error["type"])


def invalid_request_from(exc: ValidationError, model: type[BaseModel] | None = None) -> InvalidRequestError:
    """Translate a pydantic ``ValidationError`` into one :class:`InvalidRequestError`.

    ``field`` is the first offending field and ``allowed`` what it accepts (from the validator's
    refusal, or the field's type and constraints when ``model`` is given). User values are quoted
    only as a short excerpt, secrets never; field names use the labels of :func:`field_labels`.
    """
    labels = _LABELS.get()
    problems = []
    fields = []
    allowed = None
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        field = ".".join(str(part) for part in loc) or exc.title
        if not fields:
            allowed = _allowed(error, model)
        fields.append(field)
        label = field
        if loc and str(loc[0]) in labels:
            label = labels[str(loc[0])] + (f" ({'.'.join(map(str, loc[1:]))})" if loc[1:] else "")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a known field"
        elif error["type"] not in ("value_error", "missing") and not _SECRET_FIELDS & set(map(str, loc)):
            message += f" (got {excerpt(error.get('input'))})"
        problems.append(f"{label}: {message}")
    return InvalidRequestError(
        f"invalid {exc.title}: " + "; ".join(problems), field=fields[0] if fields else None, allowed=allowed
    )
