"""The differences between the Blender versions the add-on supports (3.4 to 5.x), in one place."""

from __future__ import annotations

from typing import Any

__all__ = ["strips", "all_strips", "editor", "is_background"]


def editor(scene: Any, create: bool = False) -> Any:
    """The scene's sequence editor (created when ``create`` and missing)."""
    if scene.sequence_editor is None and create:
        scene.sequence_editor_create()
    return scene.sequence_editor


def strips(sequence_editor: Any) -> Any:
    """The top-level strip collection: ``strips`` from Blender 4.4 on, ``sequences`` before."""
    found = getattr(sequence_editor, "strips", None)
    return found if found is not None else sequence_editor.sequences


def all_strips(sequence_editor: Any) -> Any:
    """Every strip, meta strips' contents included (``strips_all`` / ``sequences_all``)."""
    found = getattr(sequence_editor, "strips_all", None)
    return found if found is not None else sequence_editor.sequences_all


def is_background() -> bool:
    """True when Blender runs without a UI (``-b``, or the ``bpy`` module)."""
    import bpy

    return bool(bpy.app.background)
