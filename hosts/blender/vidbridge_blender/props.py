"""Scene data: the Generate panel's inputs and the scene's job entries.

Job entries live in the .blend (a CollectionProperty of the scene), so unfinished jobs are still
listed after Blender restarts; they hold ids, placement and progress, never credentials.
"""

from __future__ import annotations

import bpy
from bpy.props import (CollectionProperty, IntProperty, PointerProperty, StringProperty)
from bpy.types import PropertyGroup

__all__ = ["VIDBRIDGE_PG_job", "VIDBRIDGE_PG_inputs", "TERMINAL", "INTERRUPTED", "register", "unregister"]

#: phases after which a job entry needs nothing more
TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: not a vidbridge phase: the server cannot be asked about the job's work any more (a WanGP web-UI
#: task belonged to the gradio session of the Blender that queued it). Unfinished, never dropped:
#: it keeps its place in the Sequencer and is offered for Resubmit (``resume(..., resubmit=True)``).
INTERRUPTED = "interrupted"


class VIDBRIDGE_PG_job(PropertyGroup):
    """One job of the scene: where its strips go and how far it got."""

    token: StringProperty(name="Token", description="The add-on's id of the job")
    job_id: StringProperty(name="Job id", description="vidbridge's job id (the ledger's)")
    prompt: StringProperty(name="Prompt")
    url: StringProperty(name="Server")
    model: StringProperty(name="Model")
    seed: IntProperty(name="Seed", default=-1)
    frames: IntProperty(name="Frames", default=0)
    frame_start: IntProperty(name="Frame", default=1)
    channel: IntProperty(name="Channel", default=1)
    output_dir: StringProperty(name="Output folder", subtype="DIR_PATH")
    phase: StringProperty(name="Phase", default="queued")
    message: StringProperty(name="Message")
    error: StringProperty(name="Error")
    queue_position: IntProperty(name="Queue position", default=-1)
    step: IntProperty(name="Step", default=-1)
    total_steps: IntProperty(name="Steps", default=-1)
    eta: IntProperty(name="ETA (s)", default=-1)
    downloaded: IntProperty(name="Downloaded bytes", default=-1)
    total_bytes: IntProperty(name="Total bytes", default=-1)
    strip_name: StringProperty(name="Strip")
    resumable: bpy.props.BoolProperty(name="Resumable", default=False,
                                      description="Unfinished when the file was opened: Resume follows it again")


class VIDBRIDGE_PG_inputs(PropertyGroup):
    """The Generate panel's inputs (the operator's defaults)."""

    prompt: StringProperty(name="Prompt", default="")
    negative_prompt: StringProperty(name="Negative", default="")
    model: StringProperty(name="Model", description="Empty: the preferences' default model")
    frames: IntProperty(name="Frames", default=17, min=1, max=10000)
    resolution: StringProperty(name="Resolution", description="WIDTHxHEIGHT, e.g. 832x480; empty: server default")
    seed: IntProperty(name="Seed", default=-1, min=-1, description="-1: random")
    steps: IntProperty(name="Steps", default=0, min=0, max=1000, description="0: the server's default")
    preset: StringProperty(name="Preset", description="e.g. causvid; empty: none")
    image_start: StringProperty(name="Start image", subtype="FILE_PATH",
                                description="A start image file; empty: the active image strip, if any")
    use_active_strip: bpy.props.BoolProperty(name="Active image strip as start image", default=False)
    audio: StringProperty(name="Audio", subtype="FILE_PATH",
                          description="Drives an audio-driven model; the video comes back with it as its soundtrack")
    server_index: IntProperty(name="Server", default=0, min=0)


_CLASSES = (VIDBRIDGE_PG_job, VIDBRIDGE_PG_inputs)


def register() -> None:
    """Register the property groups and attach them to ``bpy.types.Scene``."""
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.vidbridge_jobs = CollectionProperty(type=VIDBRIDGE_PG_job)
    bpy.types.Scene.vidbridge_inputs = PointerProperty(type=VIDBRIDGE_PG_inputs)


def unregister() -> None:
    """Detach and unregister (the data stays in .blend files)."""
    for name in ("vidbridge_jobs", "vidbridge_inputs"):
        if hasattr(bpy.types.Scene, name):
            delattr(bpy.types.Scene, name)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)


def find_entry(token_or_id: str):
    """``(scene, entry)`` of a job by token or vidbridge job id, in any scene; ``(None, None)``."""
    for scene in bpy.data.scenes:
        for entry in getattr(scene, "vidbridge_jobs", ()):
            if token_or_id and token_or_id in (entry.token, entry.job_id):
                return scene, entry
    return None, None
