"""Checks shared by the CLI tests: an artifact summary matches its file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def frame_count(path: Path) -> int:
    """Decoded video frames of a media file (PyAV)."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def check_artifact(summary: dict[str, Any]) -> Path:
    """Assert the summary's file exists with that size and SHA-256; return its path."""
    path = Path(summary["path"])
    assert path.is_file(), summary
    data = path.read_bytes()
    assert len(data) == summary["size"]
    assert hashlib.sha256(data).hexdigest() == summary["sha256"]
    return path


def sidecar_manifest(path: Path) -> dict[str, Any]:
    """The JSON manifest written beside an artifact."""
    [sidecar] = [p for p in path.parent.glob("*.json") if p.name.startswith(path.stem)]
    return json.loads(sidecar.read_text())
