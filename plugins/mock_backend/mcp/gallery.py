"""The server's Gallery as WanGP's MCP face shows it: generated and uploaded media with ids.

WanGP keeps two galleries per (headless) session, ``visual`` (images and videos) and ``audio``;
an item's ``gallery_id`` is ``<gallery>:<first 12 hex of sha1(path, case-folded)>``, so the same
file always has the same id. Registering a file selects it. Records are what
``wangp_list_gallery`` returns: ``gallery_id, gallery, index, path, media_type, selected,
in_gallery, settings`` (and ``current_time_seconds`` for a selected video: None, as headless
WanGP has no player).
"""

from __future__ import annotations

import copy
import hashlib
import threading
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac"})
MEDIA_TYPES = ("all", "image", "video", "audio")


def media_type_of(name: str) -> str | None:
    """``image``, ``video`` or ``audio`` from a file name's extension (None when none fits)."""
    suffix = Path(name).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    return None


def gallery_id_of(path: str, gallery: str) -> str:
    """The id WanGP gives the file at ``path`` in ``gallery``."""
    key = hashlib.sha1(path.replace("\\", "/").casefold().encode("utf-8")).hexdigest()[:12]
    return f"{gallery}:{key}"


def looks_like_gallery_id(value: Any) -> bool:
    """Whether a media argument names a Gallery item rather than a file path."""
    return isinstance(value, str) and value.split(":", 1)[0] in {"visual", "audio"} and ":" in value


class Gallery:
    """The media one MCP server has produced or received; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, list[str]] = {"visual": [], "audio": []}
        self._settings: dict[str, dict[str, Any]] = {}
        self._selected: dict[str, int] = {"visual": -1, "audio": -1}

    def register(self, path: str | Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """Add (or re-select) a file; returns its record. ValueError for an unknown extension."""
        path = str(path)
        media_type = media_type_of(path)
        if media_type is None:
            raise ValueError(f"Unsupported media file extension: {Path(path).suffix}")
        gallery = "audio" if media_type == "audio" else "visual"
        with self._lock:
            paths = self._paths[gallery]
            if path not in paths:
                paths.append(path)
            self._settings.setdefault(path, dict(settings or {}))
            self._selected[gallery] = paths.index(path)
        return self.item(gallery_id_of(path, gallery))

    def records(self, media_type: str = "all", limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` (1..500) items of ``media_type``, oldest first."""
        requested = str(media_type or "all").strip().lower()
        if requested not in MEDIA_TYPES:
            raise ValueError("media_type must be all, image, video, or audio")
        limit = max(1, min(int(limit), 500))
        with self._lock:
            records = [self._record(gallery, index, path)
                       for gallery, paths in self._paths.items()
                       for index, path in enumerate(paths) if Path(path).exists()]
        return [r for r in records if requested == "all" or r["media_type"] == requested][-limit:]

    def item(self, gallery_id: str) -> dict[str, Any]:
        """One item by id; KeyError (WanGP's message) when unknown or its file is gone."""
        lookup = str(gallery_id or "").strip().lower()
        for record in self.records(limit=500):
            if record["gallery_id"] == lookup:
                return record
        raise KeyError(f"Unknown WanGP gallery_id: {gallery_id}")

    def selection(self, media_type: str = "all") -> list[dict[str, Any]]:
        """The selected item of each gallery, filtered by ``media_type``."""
        return [r for r in self.records(media_type, limit=500) if r["selected"]]

    def _record(self, gallery: str, index: int, path: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "gallery_id": gallery_id_of(path, gallery), "gallery": gallery, "index": index,
            "path": path, "media_type": media_type_of(path), "selected": index == self._selected[gallery],
            "in_gallery": True, "settings": copy.deepcopy(self._settings.get(path, {})),
        }
        if record["selected"] and record["media_type"] == "video":
            record["current_time_seconds"] = None  # headless WanGP: no player position
        return record
