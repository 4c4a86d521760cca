"""The main-thread half: apply the runner's events to the scene's job entries and the Sequencer."""

from __future__ import annotations

import logging
import queue
import sys
from typing import Any

import bpy

from . import lifecycle, placement
from .props import INTERRUPTED, find_entry

__all__ = ["pump", "report"]

log = logging.getLogger("vidbridge.blender")
MAX_ERRORS = 20


def report(message: str, level: str = "ERROR", entry: Any = None) -> bool:
    """Tell the artist: stored on the job entry, kept for the panel, logged, and shown as a
    Blender report (the info bar; stderr in background mode). True when a report was shown."""
    if entry is not None and level == "ERROR":
        entry.error = message
    if level == "ERROR":
        lifecycle.errors.append(message)
        del lifecycle.errors[:-MAX_ERRORS]
    log.log(logging.ERROR if level == "ERROR" else logging.INFO, "vidbridge: %s", message)
    if bpy.app.background:
        print(f"vidbridge {level}: {message}", file=sys.stderr)
        return True
    try:
        return bpy.ops.vidbridge.report_message("EXEC_DEFAULT", message=message, level=level) == {"FINISHED"}
    except RuntimeError:  # called from Python, Blender raises the ERROR report it just made
        return True
    except Exception:  # noqa: BLE001 - no window to report to (e.g. while a file loads): it is stored
        log.debug("report operator unavailable", exc_info=True)
        return False


def _redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", ()):
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def _apply_status(entry: Any, status: Any) -> None:
    entry.phase = status.phase.value
    entry.message = (status.message or "")[:500]
    entry.queue_position = -1 if status.queue_position is None else status.queue_position
    entry.step = -1 if status.step is None else status.step
    entry.total_steps = -1 if status.total_steps is None else status.total_steps
    entry.eta = -1 if status.eta_seconds is None else int(status.eta_seconds)
    entry.downloaded = -1 if status.downloaded_bytes is None else min(status.downloaded_bytes, 2**31 - 1)
    entry.total_bytes = -1 if status.total_bytes is None else min(status.total_bytes, 2**31 - 1)


def _finish(scene: Any, entry: Any, event: Any) -> None:
    status = event.data
    _apply_status(entry, status)
    if status.phase.value == "completed":
        try:
            names = placement.place(scene, entry, event.extra["artifacts"])
        except Exception as exc:  # noqa: BLE001 - the artist must see why no strip appeared
            log.exception("placing the strips of %s failed", entry.token)
            entry.phase = "failed"
            report(f"job {entry.job_id}: the strip could not be added: {type(exc).__name__}: {exc}", entry=entry)
            return
        report(f"job {entry.job_id} landed: {', '.join(names)}", level="INFO")
    elif status.phase.value == "cancelled":
        entry.error = event.extra.get("error") or "cancelled"
        report(f"job {entry.job_id} cancelled", level="INFO")
    else:
        report(f"job {entry.job_id or entry.token} failed: {event.extra.get('error') or status.message}", entry=entry)


def _handle(event: Any) -> None:
    current = lifecycle.runner()
    if event.kind == "health":
        for row in event.data:
            lifecycle.health[row["url"]] = row
            if event.extra.get("announce"):
                if row["reachable"]:
                    report(f"{row['url']}: reachable, {row.get('backend')} {row.get('version')} "
                           f"({row.get('face')}), {len(row.get('models', []))} models", level="INFO")
                else:
                    report(f"{row['url']}: not reachable: {row.get('note') or 'no answer'}")
        return
    if event.kind == "ledger":
        lifecycle.ledger_rows[:] = event.data
        return
    scene, entry = find_entry(event.token) if event.token else (None, None)
    if event.kind == "report":
        report(event.data, entry=entry)
        return
    if entry is None:  # the file that held the entry was closed: nothing to show it in
        if event.kind in ("finished", "failed"):
            current.landed(event.token)
            log.warning("vidbridge: job %s ended, but its scene is no longer open", event.token)
        return
    if event.kind == "submitted":
        entry.job_id = event.data
        seed = event.extra.get("seed")
        if seed is not None and seed >= 0:
            entry.seed = seed
    elif event.kind == "status":
        if entry.phase not in ("completed", "failed", "cancelled"):
            _apply_status(entry, event.data)
    elif event.kind == "cancelled_request":
        entry.message = f"cancel: {event.data}"
    elif event.kind == "interrupted":
        # Not failed: the job's work may even have run on the server, but this Blender cannot
        # follow it. It stays unfinished (listed, its place kept) and is offered for Resubmit.
        entry.phase = INTERRUPTED
        entry.resumable = True
        entry.message = "interrupted: Resubmit generates it again"
        current.landed(event.token)
        why = str(event.data).removeprefix(f"{entry.job_id} is interrupted: ")  # said once is enough
        report(f"job {entry.job_id} interrupted ({event.extra.get('reason')}): {why}", entry=entry)
    elif event.kind == "failed":
        entry.phase = "failed"
        entry.resumable = False
        current.landed(event.token)
        report(f"job {entry.job_id or entry.token} failed: {event.data}", entry=entry)
    elif event.kind == "finished":
        entry.resumable = False
        try:
            _finish(scene, entry, event)
        finally:
            current.landed(event.token)


def pump(timeout: float = 0) -> int:
    """Handle the waiting events (waiting up to ``timeout`` seconds for the first); returns how many."""
    events = lifecycle.runner().events
    handled = 0
    wait = timeout
    while True:
        try:
            event = events.get(timeout=wait) if wait > 0 else events.get_nowait()
        except queue.Empty:
            break
        wait = 0
        try:
            _handle(event)
        except Exception as exc:  # noqa: BLE001 - log and store: never lose an error in a timer
            log.exception("vidbridge: event %s failed", event.kind)
            _scene, entry = find_entry(event.token) if event.token else (None, None)
            report(f"internal error handling {event.kind}: {type(exc).__name__}: {exc}", entry=entry)
            if event.kind in ("finished", "failed"):
                lifecycle.runner().landed(event.token)
        handled += 1
    if handled:
        _redraw()
    return handled
