"""References to work on a backend: a job's :class:`JobRef`, and a finished output's :class:`OutputRef`.

A :class:`JobRef` is what a host stores to find a job again from another process (a ledger, a
Blender file, a render farm's database): small, JSON-able, and free of secrets::

    saved = job.ref.to_json()
    ...
    job = client.attach(vidbridge.JobRef.from_json(saved))

``data`` holds the backend's own ids, as the plugin defines them (its ``vidbridge_job_ref`` hook);
the core never interprets it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import NotAttachableError

__all__ = ["JobRef", "OutputRef"]

#: A JSON value (what ``json.dumps`` accepts without a ``default``).
JSONValue = Any


def _json_only(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} must be JSON (dicts, lists, strings, finite numbers): {exc}") from None


class JobRef(BaseModel):
    """Everything needed to find one job's work on its backend again.

    :ivar backend: the plugin that owns the job (the endpoint's backend).
    :ivar endpoint: the endpoint's URL (without user info).
    :ivar job_id: vidbridge's id of the job (the one in statuses, manifests and the CLI's output).
    :ivar data: the backend's own ids (JSON), ``{}`` until the backend gave any.
    :ivar version: format version of this reference.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str
    endpoint: str
    job_id: str
    data: dict[str, JSONValue] = Field(default_factory=dict)
    version: int = 1

    @field_validator("data")
    @classmethod
    def _data_is_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _json_only(value, "JobRef.data")

    def to_json(self) -> str:
        """This reference as a compact JSON text."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes | dict[str, Any]) -> JobRef:
        """Parse a reference saved with :meth:`to_json` (or its dict).

        :raises NotAttachableError: ``reason="invalid"``, the text is not a job reference.
        """
        try:
            if isinstance(text, dict):
                return cls.model_validate(text)
            return cls.model_validate_json(text)
        except (ValidationError, ValueError) as exc:
            first = exc.errors()[0] if isinstance(exc, ValidationError) else {"msg": str(exc), "loc": ()}
            where = ".".join(str(part) for part in first.get("loc", ())) or "reference"
            raise NotAttachableError(f"not a vidbridge job reference ({where}: {first['msg']})",
                                     reason="invalid") from None


class OutputRef(BaseModel):
    """One output of a finished job, still on the backend (listed by ``job.outputs()``).

    :ivar name: the server's file name (never trusted as a local path: ``job.fetch`` sanitises it).
    :ivar url: where it can be downloaded (may need the session's credentials).
    :ivar size: bytes, when the backend says.
    :ivar media_type: e.g. ``video/mp4``, when known.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: str
    size: int | None = None
    media_type: str | None = None
