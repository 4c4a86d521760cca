"""Result reuse (opt-in, ``reuse=True``): an identical request with a fixed seed returns the
artifacts an earlier completed job produced, re-verified, without asking the server to generate.

What "identical" means is the :func:`reuse_key`: the SHA-256 of

* the normalised request (every field, as JSON with sorted keys; each input file replaced by the
  SHA-256 of its content, so a changed file is another request),
* the model (a request must name one: the server's default model may change),
* the :func:`server_fingerprint`: backend, endpoint URL (no user info), the version the server
  reported and the models it lists, all known to the session at no cost. A server that changes
  version or model list is another server for reuse.

A request without a fixed seed (``None`` or ``-1``: random) or without a model has no key and is
never reused. Reused files are re-verified (size and SHA-256 against the ledger) and hard-linked,
or copied where links are impossible, into the new job's output folder; a file missing or changed
means the request is generated normally.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .download import _claim
from .models import Artifact, Provenance

if TYPE_CHECKING:  # pragma: no cover
    from .ledger import ArtifactRecord, Ledger
    from .models import Endpoint, GenerationRequest

__all__ = ["reuse_key", "server_fingerprint", "file_sha256", "find_reusable", "verified", "materialise", "Reused"]

log = logging.getLogger("vidbridge.reuse")

_CHUNK = 1 << 20


def file_sha256(path: Path) -> tuple[int, str]:
    """``(size, SHA-256 hex)`` of the file at ``path`` (read in 1 MiB pieces)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def server_fingerprint(endpoint: Endpoint) -> str:
    """What identifies a server for reuse: SHA-256 of its backend, URL (redacted), reported
    version and model list (all in the session's :class:`~vidbridge.Endpoint`)."""
    from .httperrors import redact_url

    text = json.dumps([endpoint.backend, redact_url(endpoint.url).rstrip("/").lower(), endpoint.version,
                       sorted(endpoint.models)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def reuse_key(request: GenerationRequest, endpoint: Endpoint) -> str | None:
    """The key of ``request`` on ``endpoint`` (see the module docstring), ``None`` when it may not
    be reused (random seed or no model). Hashes the request's input files."""
    if request.seed is None or request.seed == -1 or request.model is None:
        return None
    data: dict[str, Any] = request.model_dump(mode="json")
    for name, paths in request.input_files().items():
        data[name] = [file_sha256(path)[1] for path in paths]
    if request.settings_file is not None:
        data["settings_file"] = file_sha256(request.settings_file)[1]
    text = json.dumps({"request": data, "model": request.model, "server": server_fingerprint(endpoint)},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def verified(records: tuple[ArtifactRecord, ...] | list[ArtifactRecord]) -> bool:
    """True when every file is there with the size and SHA-256 the ledger holds."""
    if not records:
        return False
    for record in records:
        try:
            if record.path.stat().st_size != record.size or file_sha256(record.path) != (record.size, record.sha256):
                log.info("%s changed or is unreadable since it was recorded", record.path)
                return False
        except OSError as exc:
            log.info("%s is gone (%s)", record.path, exc.strerror or exc)
            return False
    return True


def materialise(record: ArtifactRecord, destination: Path) -> Path:
    """Hard-link (or copy) ``record``'s file into ``destination`` under a free name, verified.

    Returns the existing path itself when it already is in ``destination``.
    :raises OSError: the file could not be linked or copied, or the copy does not match.
    """
    destination.mkdir(parents=True, exist_ok=True)
    if record.path.parent.resolve() == destination.resolve():
        return record.path
    part = destination / f".{record.path.name}.{os.getpid()}.{id(record)}.reuse"
    part.unlink(missing_ok=True)
    try:
        try:
            os.link(record.path, part)
        except OSError:  # another filesystem, or no hard links here
            shutil.copyfile(record.path, part)
        if file_sha256(part) != (record.size, record.sha256):
            raise OSError(f"{record.path} changed while it was copied")
        return _claim(part, destination, record.path.name, manifest=False)
    finally:
        part.unlink(missing_ok=True)


class Reused(NamedTuple):
    """Verified artifacts a job is served without the backend: from an earlier job (``source``
    is its id), or its own from an earlier run (``source`` ``None``; :meth:`Client.resume`)."""

    artifacts: list[Artifact]
    source: str


def artifacts_of(ledger: Ledger, job_id: str, records: Any, paths: list[Path]) -> list[Artifact]:
    """Artifacts for ``paths`` (copies of ``records``) with the provenance the ledger stored."""
    stored = ledger.provenance(job_id)
    artifacts = []
    for number, (record, path) in enumerate(zip(records, paths)):
        provenance = stored[number] if number < len(stored) and stored[number] else {
            "backend": "", "endpoint": "", "job_id": job_id}
        artifacts.append(Artifact(path=path, size=record.size, sha256=record.sha256,
                                  media_type=record.media_type or "application/octet-stream",
                                  provenance=Provenance(**provenance)))
    return artifacts


def find_reusable(ledger: Ledger, key: str, destination: Path, *, job_id: str) -> Reused | None:
    """The verified artifacts of the newest completed job recorded with ``key`` (not ``job_id``),
    placed in ``destination``; ``None`` when there is none whose files are all intact."""
    for record in ledger.reusable(key):
        if record.id == job_id or not verified(record.artifacts):
            continue
        try:
            paths = [materialise(item, destination) for item in record.artifacts]
        except OSError as exc:
            log.info("cannot reuse %s: %s", record.id, exc)
            continue
        return Reused(artifacts_of(ledger, record.id, record.artifacts, paths), record.id)
    return None
