"""Per-session state: what WanGP keeps in its ``gr.State`` for one browser tab / one Client.

gradio gives every session its own copy of the State's initial value (an empty dict); the
:class:`Session` object is created lazily inside it on the first call, so two clients never see
each other's form values, queue or gallery.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_task_ids = itertools.count(1)


@dataclass
class Task:
    """One queued generation: the form values it was queued with (plus model, prompt, seed)."""

    params: dict[str, Any]
    id: int = field(default_factory=lambda: next(_task_ids))

    @property
    def prompt(self) -> str:
        return self.params["prompt"]

    @property
    def client_id(self) -> str:
        return str(self.params.get("client_id") or "")


@dataclass
class Progress:
    """What the status feed reports, as WanGP keeps it in its per-session ``gen`` dict.

    ``status`` is the pending status text (WanGP's ``gen["status"]``): the feed yields it once and
    clears it. ``step``/``total`` are the latest denoising progress (``gen["progress_args"]``),
    also consumed by the feed.
    """

    status: str = ""
    step: int = 0
    total: int = 0


class Session:
    """The state of one session: current model, saved forms per model, queue, gallery, progress.

    Methods are called from several gradio worker threads at once (process_tasks runs while
    abort/status calls arrive), hence the condition variable guarding everything.
    """

    def __init__(self, session_id: str, model_type: str) -> None:
        self.id = session_id
        self.model_type = model_type
        self.forms: dict[str, dict[str, Any]] = {}
        self.queue: list[Task] = []
        self.gallery: list[tuple[str, str]] = []
        self.progress = Progress()
        self.generating = False
        self.ran = False  # process_tasks has run at least once in this session
        # WanGP's flags, with its names: ``validate_success`` is set to 1 by a
        # process_prompt_and_add_tasks that queued a task (0 otherwise) and gates activate_status;
        # ``status_display`` is set by activate_status and cleared only when process_tasks ends
        # (or finds the queue empty): refresh_status_async loops for as long as it is set.
        # ``in_progress`` is set by process_tasks and cleared only by finalize_generation.
        self.validate_success = 0
        self.status_display = False
        self.in_progress = False
        self.abort_requested = False
        self.early_stop_requested = False
        self.changed = threading.Condition()
        self.created = time.time()

    def __deepcopy__(self, memo: dict) -> "Session":
        # gradio may deep-copy State values; a session must stay one shared object.
        return self

    def notify(self, **progress: Any) -> None:
        """Update the progress fields and wake status watchers."""
        with self.changed:
            for key, value in progress.items():
                setattr(self.progress, key, value)
            self.changed.notify_all()

    def wait_for_change(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)


def get_session(state: dict[str, Any], session_id: str, default_model: str) -> Session:
    """The session stored in a ``gr.State`` dict, created on first use."""
    session = state.get("session")
    if session is None:
        session = state["session"] = Session(session_id, default_model)
    return session
