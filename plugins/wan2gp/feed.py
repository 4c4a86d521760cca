"""The status-feed parser: what one gradio update of a WanGP job says about the job's state.

Two streams feed a job (see :mod:`.job`): gradio's updates of ``process_tasks`` (queue position,
start, ``gr.Info`` messages, progress bars) and WanGP's own status feed ``refresh_status_async``
(text lines such as ``Loading model Wan2.1...``, ``Denoising 3/30``, ``Decoding...``). This module
turns one update into the changes it implies (a plain dict of :class:`.state.JobSnapshot` fields),
without side effects, so it can be tested on recorded updates alone.
"""

from __future__ import annotations

import re
from typing import Any

from vidbridge import Phase

from .api import update_value
from .compat import Status

__all__ = ["AUTOSAVE_NOTE", "phase_from_text", "changes_for"]

#: WanGP's info after a failed task: not the failure's cause, never shown as the job's message.
AUTOSAVE_NOTE = "Error Queue autosaved"
_STEPS = re.compile(r"(\d+)\s*/\s*(\d+)")
_STEP_WORD = re.compile(r"\bstep")


def phase_from_text(text: str) -> Phase | None:
    """The phase a WanGP status line names, or ``None`` when it names none."""
    lowered = text.lower()
    if "loading model" in lowered or "loading" in lowered and "model" in lowered:
        return Phase.LOADING_MODEL
    if "decod" in lowered:
        return Phase.DECODING
    if "encod" in lowered and "prompt" in lowered:
        return Phase.ENCODING
    if "denois" in lowered or _STEP_WORD.search(lowered):
        return Phase.INFERRING
    if "generating" in lowered:
        return Phase.STARTING
    return None


def _feed_text(update: Any) -> dict[str, Any]:
    outputs = update.outputs
    text = update_value(outputs[0] if isinstance(outputs, (list, tuple)) and outputs else outputs)
    if not isinstance(text, str) or not text.strip():
        return {}
    changes: dict[str, Any] = {"message": text.strip()}
    phase = phase_from_text(text)
    if phase is not None:
        changes["phase"] = phase
        if phase is not Phase.INFERRING:
            changes.update(step=None, total_steps=None)
        match = _STEPS.search(text)
        if match and phase is Phase.INFERRING:
            changes.update(step=int(match[1]), total_steps=int(match[2]))
    return changes


def changes_for(update: Any, *, from_status_feed: bool, phase: Phase) -> dict[str, Any]:
    """The snapshot fields ``update`` changes.

    :param update: a gradio_client ``StatusUpdate`` or ``OutputUpdate``.
    :param from_status_feed: the update comes from ``refresh_status_async`` (its outputs are
        status lines; its queue statuses are the feed's own, not the job's).
    :param phase: the job's phase now (a ``PROCESSING`` status only moves a queued job on).
    """
    if getattr(update, "type", None) == "output":
        # process_tasks' own outputs are timestamps: only the feed's outputs say something.
        return _feed_text(update) if from_status_feed else {}
    changes: dict[str, Any] = {}
    code = getattr(update, "code", None)
    if update.log and not str(update.log[0]).startswith(AUTOSAVE_NOTE):
        changes["message"] = str(update.log[0])
    if not from_status_feed and code == Status.IN_QUEUE:
        changes.update(phase=Phase.QUEUED, queue_position=update.rank, queue_size=update.queue_size, eta=update.eta)
    elif not from_status_feed and code in (Status.PROCESSING, Status.ITERATING) and phase is Phase.QUEUED:
        changes.update(phase=Phase.STARTING, queue_position=None)
    if update.progress_data:
        unit = update.progress_data[-1]
        if unit.index is not None and unit.length:
            changes.update(phase=Phase.INFERRING, step=int(unit.index), total_steps=int(unit.length))
            if unit.desc:
                changes["message"] = unit.desc
    return changes
