"""Output folders and strip paths: ``//`` means beside the saved .blend."""

from __future__ import annotations

import os
import tempfile

import bpy

__all__ = ["output_folder", "strip_path"]


def output_folder(setting: str, override: str | None = None) -> str:
    """The absolute folder for a job's files.

    ``//...`` is relative to the saved .blend; for an unsaved file it goes to a temp folder
    (there is no "beside" yet).
    """
    raw = (override or setting or "//vidbridge/").strip()
    if raw.startswith("//"):
        if bpy.data.filepath:
            return os.path.normpath(bpy.path.abspath(raw))
        return os.path.join(tempfile.gettempdir(), "vidbridge-blender", raw[2:].strip("/\\") or "vidbridge")
    return os.path.abspath(os.path.expanduser(raw))


def strip_path(path: str) -> str:
    """``path`` as a strip should store it: ``//relative`` once the .blend is saved."""
    if not bpy.data.filepath:
        return str(path)
    try:
        return bpy.path.relpath(str(path))
    except ValueError:  # another drive (Windows): keep it absolute
        return str(path)
