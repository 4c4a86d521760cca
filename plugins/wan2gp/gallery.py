"""Reading WanGP's output Gallery, whatever shape the server version sends.

Seen shapes: an update dict ``{"__type__": "update", "value": [...]}`` or a plain list; each item
``{"video": X, "caption": ...}`` or ``{"image": X, ...}`` where ``X`` is a FileData dict
(``{"path", "url", ...}``), a path string (gradio 6 Video) or ``{"video": FileData, "subtitles"}``
(gradio 5.29 Video). Anything else raises :class:`GalleryFormatError`; parsing never crashes
with another exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["GalleryItem", "GalleryFormatError", "parse_gallery", "new_items"]


class GalleryFormatError(ValueError):
    """The server's gallery value has a shape this client does not understand."""


@dataclass(frozen=True)
class GalleryItem:
    """One output file the server lists: its server path, URL (if given), kind and caption."""

    path: str
    kind: str  # "video" or "image"
    url: str | None = None
    caption: str | None = None
    orig_name: str | None = None
    size: int | None = None
    mime_type: str | None = None


def _file(value: Any, depth: int = 0) -> dict[str, Any]:
    if depth > 3:
        raise GalleryFormatError("gallery file nested too deeply")
    if isinstance(value, str) and value:
        return {"path": value}
    if isinstance(value, dict):
        if isinstance(value.get("path"), str) and value["path"]:
            return value
        for key in ("video", "image"):  # gradio 5.29 VideoData / ImageData wrappers
            if key in value and value[key] is not None:
                return _file(value[key], depth + 1)
    raise GalleryFormatError(f"gallery item file has an unknown shape: {type(value).__name__}")


def _item(raw: Any) -> GalleryItem:
    if isinstance(raw, (list, tuple)) and raw:  # legacy (file, caption) pairs
        raw = {"image": raw[0], "caption": raw[1] if len(raw) > 1 else None}
    if not isinstance(raw, dict):
        raise GalleryFormatError(f"gallery item is a {type(raw).__name__}, expected a dict")
    kind = "video" if raw.get("video") is not None else "image" if raw.get("image") is not None else None
    if kind is None:
        if isinstance(raw.get("path"), str):  # a bare FileData
            kind, raw = "video" if str(raw["path"]).lower().endswith((".mp4", ".mkv", ".webm", ".mov")) else "image", \
                {"image": raw}
            file = _file(raw["image"])
        else:
            raise GalleryFormatError("gallery item has neither 'video' nor 'image'")
    else:
        file = _file(raw[kind])
    caption = raw.get("caption")
    size = file.get("size")
    return GalleryItem(
        path=str(file["path"]),
        kind=kind,
        url=file.get("url") if isinstance(file.get("url"), str) else None,
        caption=caption if isinstance(caption, str) else None,
        orig_name=file.get("orig_name") if isinstance(file.get("orig_name"), str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        mime_type=file.get("mime_type") if isinstance(file.get("mime_type"), str) else None,
    )


def parse_gallery(value: Any) -> list[GalleryItem]:
    """The items of a Gallery output value (update dict or list; ``None`` means empty).

    :raises GalleryFormatError: for any shape this client does not understand.
    """
    if isinstance(value, dict) and value.get("__type__") == "update":
        if "value" not in value:
            return []  # "no change" update
        value = value["value"]
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise GalleryFormatError(f"gallery is a {type(value).__name__}, expected a list")
    return [_item(raw) for raw in value]


def new_items(before: Sequence[GalleryItem], after: Sequence[GalleryItem]) -> list[GalleryItem]:
    """Items of ``after`` whose server path was not in ``before`` (this job's own outputs)."""
    seen = {item.path for item in before}
    return [item for item in after if item.path not in seen]
