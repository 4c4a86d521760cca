"""The add-on's live state for this Blender session: one :class:`~.runner.Runner`, the pump
timer, the file-load handler, the latest server health and the errors shown to the artist."""

from __future__ import annotations

import logging

import bpy
from bpy.app.handlers import persistent

from .props import INTERRUPTED, TERMINAL

__all__ = ["runner", "ensure_timer", "mark_unfinished", "health", "errors", "register", "unregister"]

log = logging.getLogger("vidbridge.blender")

_state: dict = {"runner": None}
#: url -> the latest health row (a plain dict, written on the main thread only)
health: dict[str, dict] = {}
#: the latest errors (newest last), for the panel
errors: list[str] = []
#: the job ledger's unfinished jobs as last read (plain dicts), for the panel and Resume
ledger_rows: list[dict] = []
TIMER_INTERVAL = 0.2


def runner():
    """This session's runner (made on first use: no thread before work is asked for)."""
    if _state["runner"] is None:
        from .runner import Runner

        _state["runner"] = Runner()  # vidbridge's job ledger: VIDBRIDGE_LEDGER, else the user's
    return _state["runner"]


def has_runner() -> bool:
    """True once work was asked for in this session."""
    return _state["runner"] is not None


def _timer():
    """Drain the runner's events on the main thread; keep going while work is open."""
    from . import pump

    try:
        pump.pump(timeout=0)
    except Exception:  # noqa: BLE001 - a timer that raises is dropped silently by Blender: log and keep it
        log.exception("vidbridge: handling job events failed")
    current = _state["runner"]
    if current is not None and current.busy():
        return TIMER_INTERVAL
    return None


def ensure_timer() -> None:
    """Start the pump timer (it stops itself when no work is left)."""
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=0.05, persistent=True)


def mark_unfinished() -> None:
    """Offer the open file's unfinished jobs that this session does not follow for Resume
    (``entry.resumable``). Interrupted ones keep their message (why, and that Resubmit runs them
    again)."""
    followed = runner().outstanding() if has_runner() else set()
    for scene in bpy.data.scenes:
        for entry in getattr(scene, "vidbridge_jobs", ()):
            if entry.phase not in TERMINAL and entry.token not in followed:
                entry.resumable = True
                if entry.phase != INTERRUPTED:
                    entry.message = "unfinished when the file was saved: Resume follows it again"


@persistent
def _on_load(_dummy) -> None:
    """A file was opened: its unfinished jobs that this session does not follow can be resumed."""
    mark_unfinished()


def register() -> None:
    """Install the load handler (no timer or thread yet), and offer the unfinished jobs of a file
    that was opened before the add-on was enabled (``blender -b shot.blend --python ...``, or a
    script that enables it): no load handler ran for that file."""
    if _on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_on_load)
    try:
        scenes = bpy.data.scenes
    except AttributeError:  # enabled while Blender starts (restricted data): the load handler will run
        return
    if len(scenes):
        mark_unfinished()


def unregister() -> None:
    """Stop the timer, cancel unfinished jobs and end every thread of the add-on."""
    if _on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load)
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    current, _state["runner"] = _state["runner"], None
    if current is not None and not current.close():
        log.warning("vidbridge: some worker threads did not end in time")
    health.clear()
    ledger_rows.clear()
