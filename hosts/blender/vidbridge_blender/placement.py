"""Where a job's strips go (chosen when it is submitted) and putting them there when it lands."""

from __future__ import annotations

import logging
from typing import Any

from . import compat, paths
from .props import TERMINAL

__all__ = ["free_channel", "place", "strip_name"]

log = logging.getLogger("vidbridge.blender")

MAX_CHANNEL = 128


def _busy(scene: Any) -> list[tuple[int, int, int]]:
    """``(channel, start, end)`` of the scene's strips and of the places its open jobs reserved."""
    spans = []
    editor = compat.editor(scene)
    if editor is not None:
        for strip in compat.all_strips(editor):
            spans.append((strip.channel, int(strip.frame_final_start), int(strip.frame_final_end)))
    for entry in scene.vidbridge_jobs:
        if entry.phase not in TERMINAL:
            spans.append((entry.channel, entry.frame_start, entry.frame_start + max(entry.frames, 1)))
    return spans


def free_channel(scene: Any, frame_start: int, length: int, lowest: int = 1) -> int:
    """The lowest channel (from ``lowest``) free over ``[frame_start, frame_start + length)``."""
    end = frame_start + max(length, 1)
    spans = _busy(scene)
    for channel in range(lowest, MAX_CHANNEL + 1):
        if not any(c == channel and s < end and frame_start < e for c, s, e in spans):
            return channel
    return MAX_CHANNEL


def strip_name(prompt: str) -> str:
    """A strip name from the prompt (Blender names are at most 63 bytes)."""
    words = " ".join(prompt.split()) or "vidbridge"
    name = words[:60]
    while len(name.encode()) > 60:
        name = name[:-1]
    return name


def _tag(strip: Any, entry: Any, artifact: Any) -> None:
    strip["vidbridge_job_id"] = entry.job_id
    strip["vidbridge_token"] = entry.token
    seed = getattr(artifact.provenance, "seed", None)  # the seed the backend used (0 is a seed)
    strip["vidbridge_seed"] = int(entry.seed if seed is None else seed)
    strip["vidbridge_model"] = str(getattr(artifact.provenance, "model", None) or entry.model or "")
    strip["vidbridge_sha256"] = artifact.sha256
    strip["vidbridge_manifest"] = paths.strip_path(str(artifact.manifest_path)) if artifact.manifest_path else ""
    strip["vidbridge_server"] = entry.url


def place(scene: Any, entry: Any, artifacts: list) -> list[str]:
    """Add the job's movie strip (and sound strips) at the entry's frame and channel; returns names."""
    editor = compat.editor(scene, create=True)
    collection = compat.strips(editor)
    name = strip_name(entry.prompt)
    placed = []
    videos = [a for a in artifacts if a.media_type.startswith("video/")]
    sounds = [a for a in artifacts if a.media_type.startswith("audio/")]
    if not videos and not sounds:
        raise ValueError(f"the job produced no video or audio (got {[a.media_type for a in artifacts]})")
    channel = entry.channel
    for artifact in videos[:1]:
        strip = collection.new_movie(name=name, filepath=paths.strip_path(str(artifact.path)),
                                     channel=channel, frame_start=entry.frame_start)
        _tag(strip, entry, artifact)
        placed.append(strip.name)
        entry.strip_name = strip.name
        sound = _movie_sound(scene, collection, name, artifact, entry, strip)
        if sound is not None:
            placed.append(sound)
    for artifact in sounds:
        sound_channel = free_channel(scene, entry.frame_start, max(entry.frames, 1), lowest=channel + 1)
        strip = collection.new_sound(name=name, filepath=paths.strip_path(str(artifact.path)),
                                     channel=sound_channel, frame_start=entry.frame_start)
        _tag(strip, entry, artifact)
        placed.append(strip.name)
    return placed


def _movie_sound(scene: Any, collection: Any, name: str, artifact: Any, entry: Any, movie: Any) -> str | None:
    """A sound strip for a movie that has an audio stream (Blender refuses one that has none)."""
    channel = free_channel(scene, entry.frame_start, movie.frame_final_duration, lowest=movie.channel + 1)
    try:
        sound = collection.new_sound(name=name, filepath=paths.strip_path(str(artifact.path)),
                                     channel=channel, frame_start=entry.frame_start)
    except (RuntimeError, TypeError):  # no audio stream in the file: a movie strip only
        return None
    data = getattr(sound, "sound", None)
    # Blender makes a sound strip of a file without audio too: no sample rate, channels INVALID.
    if data is None or not getattr(data, "samplerate", 0) or getattr(data, "channels", "INVALID") == "INVALID":
        collection.remove(sound)
        if data is not None and data.users == 0:
            import bpy

            bpy.data.sounds.remove(data)
        return None
    _tag(sound, entry, artifact)
    return sound.name
