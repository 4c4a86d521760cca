"""The one code path for the operators and for scripts: queue a job, pump, cancel, resume.

Everything here runs on Blender's main thread and returns at once, except :func:`run_pending`,
which is meant for scripts and background (farm) runs.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import bpy

from . import compat, lifecycle, paths, placement, prefs
from .props import TERMINAL, find_entry

__all__ = ["generate", "run_pending", "cancel", "resume", "refresh_ledger", "pending", "active_image_strip_path"]


def active_image_strip_path(scene: Any) -> str | None:
    """The file of the scene's active image strip, or ``None``."""
    editor = compat.editor(scene)
    strip = getattr(editor, "active_strip", None) if editor is not None else None
    if strip is None or strip.type != "IMAGE" or not len(strip.elements):
        return None
    return bpy.path.abspath(os.path.join(strip.directory, strip.elements[0].filename))


def generate(prompt: str, *, negative_prompt: str = "", model: str | None = None, frames: int | None = 17,
             resolution: str | None = None, seed: int | None = None, steps: int | None = None,
             preset: str | None = None, image_start: str | None = None, audio: str | None = None,
             url: str | None = None, output_dir: str | None = None, scene: Any = None,
             frame_start: int | None = None, channel: int | None = None, timeout: float | None = None) -> str:
    """Queue a generation whose strips land in ``scene`` (default: the current one); returns the
    job's token at once (the vidbridge job id follows in the job entry, ``scene.vidbridge_jobs``).

    The strip's frame (default: the current frame) and channel (default: the lowest one free
    over the job's frames) are chosen now. Empty values mean the server's defaults; ``model``
    defaults to the preferences' default model, ``url`` to the first server of the preferences.
    ``audio`` (a file; ``//`` paths are relative to the .blend) drives an audio-driven model; a
    video that comes back with a soundtrack also gets a sound strip, on the next free channel.

    :raises vidbridge.InvalidRequestError: the request is invalid (before any network call).
    """
    from vidbridge import GenerationRequest

    scene = scene or bpy.context.scene
    config = prefs.settings()
    fields: dict[str, Any] = {"prompt": prompt}
    optional = {"negative_prompt": negative_prompt or None, "model": model or config.default_model or None,
                "frames": frames or None, "resolution": resolution or None,
                "seed": None if seed is None or seed < 0 else seed, "steps": steps or None,
                "preset": preset or None, "image_start": bpy.path.abspath(image_start) if image_start else None,
                "audio": bpy.path.abspath(audio) if audio else None}
    fields.update({key: value for key, value in optional.items() if value is not None})
    request = GenerationRequest(**fields)  # validation only: no network, raises InvalidRequestError
    target = (url or config.urls[0]).strip()
    folder = paths.output_folder(config.output_dir, output_dir)
    start = scene.frame_current if frame_start is None else frame_start
    length = request.frames or 1
    lane = channel or placement.free_channel(scene, start, length)  # before the new entry reserves anything
    entry = scene.vidbridge_jobs.add()
    entry.token = "vb-" + uuid.uuid4().hex[:12]
    entry.prompt = prompt
    entry.url = target
    entry.model = request.model or ""
    entry.seed = -1 if request.seed is None else request.seed
    entry.frames = request.frames or 0
    entry.frame_start = start
    entry.channel = lane
    entry.output_dir = folder
    entry.phase = "queued"
    entry.message = "connecting"
    lifecycle.runner().submit(entry.token, target, config.credentials(), request, folder, timeout)
    lifecycle.ensure_timer()
    return entry.token


def cancel(job_id: str) -> None:
    """Ask the server to cancel the job (token or vidbridge job id); returns at once.

    :raises KeyError: no such job in the open scenes.
    """
    _scene, entry = find_entry(job_id)
    if entry is None:
        raise KeyError(f"no vidbridge job {job_id!r} in this file")
    entry.message = "cancelling"
    lifecycle.runner().cancel(entry.token)
    lifecycle.ensure_timer()


def resume(job_id: str, output_dir: str | None = None, resubmit: bool = False) -> str:
    """Follow an unfinished (or finished) job of the scene again through the vidbridge job ledger
    (``Client.resume``): a completed job's files are verified again and its strips placed; an
    unfinished one is re-attached. A job of the ledger's last listing (:func:`refresh_ledger`)
    that is not in the file gets an entry first. Returns the token.

    When the server cannot find the job's work again (a WanGP web-UI task belonged to the gradio
    session of the Blender that queued it), the entry becomes ``interrupted`` with the reason, is
    reported, and stays listed; ``resubmit=True`` then runs its request again, as the ledger
    job's next attempt (a second generation on the server: never done without being asked).

    :raises KeyError: no such job in the open scenes or the ledger listing.
    """
    _scene, entry = find_entry(job_id)
    if entry is None:
        entry = _adopt(job_id)
    if not entry.job_id:
        raise KeyError(f"job {job_id!r} never reached vidbridge (no job id): generate it again")
    entry.phase, entry.error, entry.message = "queued", "", "resubmitting" if resubmit else "resuming"
    entry.resumable = False
    folder = output_dir or entry.output_dir or paths.output_folder(prefs.settings().output_dir)
    lifecycle.runner().resume(entry.token, entry.job_id, folder, prefs.settings().credentials(), resubmit=resubmit)
    lifecycle.ensure_timer()
    return entry.token


def _adopt(job_id: str) -> Any:
    """A scene entry for a ledger job started elsewhere (listed by ``refresh_ledger``): its strips
    land at the current frame, on a free channel.

    :raises KeyError: the job is neither in this file nor in the last ledger listing.
    """
    row = next((row for row in lifecycle.ledger_rows if row["id"] == job_id), None)
    if row is None:
        raise KeyError(f"no vidbridge job {job_id!r} in this file or the job ledger's last listing")
    scene = bpy.context.scene
    start, length = scene.frame_current, int(row.get("frames") or 1)
    lane = placement.free_channel(scene, start, length)
    entry = scene.vidbridge_jobs.add()
    entry.token = "vb-" + uuid.uuid4().hex[:12]
    entry.job_id, entry.prompt, entry.url = row["id"], row["prompt"], row["endpoint"]
    entry.model, entry.seed = row.get("model") or "", int(row["seed"]) if row.get("seed") is not None else -1
    entry.frames, entry.frame_start, entry.channel = int(row.get("frames") or 0), start, lane
    entry.output_dir = row.get("output_dir") or ""
    return entry


def refresh_ledger(limit: int = 10) -> None:
    """Read the job ledger's unfinished jobs in the background (``lifecycle.ledger_rows``)."""
    lifecycle.runner().list_ledger(limit)
    lifecycle.ensure_timer()


def pending() -> int:
    """How many jobs of this session have not landed yet."""
    return len(lifecycle.runner().outstanding()) if lifecycle.has_runner() else 0


def run_pending(timeout: float | None = None) -> bool:
    """Pump job events on the calling (main) thread until every job of this session has landed
    in the Sequencer; for scripts and ``blender -b`` farm runs, where timers do not fire.

    Returns True when every job that landed since the previous call (those that landed before
    this one was called included: a timer may have pumped them) completed and got its strips;
    False when any failed or was cancelled, or ``timeout`` seconds passed first (the jobs go on,
    and a later call judges them).
    """
    from . import pump

    if not lifecycle.has_runner():
        return True
    current = lifecycle.runner()
    deadline = None if timeout is None else time.monotonic() + timeout
    while current.outstanding():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        pump.pump(timeout=0.2 if left is None else min(0.2, left))  # a short wait on the queue, no sleep
    pump.pump(timeout=0)
    ok = True
    for token in current.take_landed():
        _scene, entry = find_entry(token)
        ok = ok and entry is not None and entry.phase == "completed" and bool(entry.strip_name)
    return ok


def unfinished_entries(scene: Any) -> list:
    """The scene's job entries that have not ended (``interrupted`` ones included)."""
    return [entry for entry in scene.vidbridge_jobs if entry.phase not in TERMINAL]
