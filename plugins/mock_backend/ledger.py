"""The generation counter: proof of what the server actually ran.

Tests use it to show that nothing was generated twice (e.g. after a retried submit): every
generation that started is recorded with its prompt, seed, client_id, model and outcome.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Ledger:
    """Thread-safe record of generations and of other events worth counting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[dict[str, Any]] = []
        self._events: Counter[str] = Counter()
        self._calls: dict[str, list[str]] = {}

    def start(self, *, prompt: str, seed: int, client_id: str, model_type: str, session: str) -> int:
        """Record a generation that started; returns its index for :meth:`finish`."""
        with self._lock:
            self._runs.append({"prompt": prompt, "seed": seed, "client_id": client_id,
                               "model_type": model_type, "session": session,
                               "outcome": "running", "file": None})
            return len(self._runs) - 1

    def finish(self, index: int, outcome: str, file: str | None = None) -> None:
        """Set a generation's outcome: ``completed``, ``failed`` or ``aborted``."""
        with self._lock:
            self._runs[index].update(outcome=outcome, file=file)

    def event(self, name: str) -> None:
        """Count a named event (e.g. ``settings_overwritten``)."""
        with self._lock:
            self._events[name] += 1

    def call(self, session: str, function: str) -> None:
        """Record that ``function`` (an implemented endpoint, any copy) ran in ``session``."""
        with self._lock:
            self._calls.setdefault(session, []).append(function)

    def reset(self) -> None:
        with self._lock:
            self._runs.clear()
            self._events.clear()
            self._calls.clear()

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "completed", "failed", "aborted", "by_prompt", "by_seed", "by_client_id",
        "by_model", "events", "runs", "calls"}``; counts are of generations that started;
        ``calls`` maps each session id to the functions it ran, in the order they started."""
        with self._lock:
            runs = [dict(r) for r in self._runs]
            events = dict(self._events)
            calls = {session: list(names) for session, names in self._calls.items()}
        outcomes = Counter(r["outcome"] for r in runs)

        def by(key: str) -> dict[str, int]:
            return dict(Counter(str(r[key]) for r in runs))

        return {"total": len(runs), "completed": outcomes["completed"],
                "failed": outcomes["failed"], "aborted": outcomes["aborted"],
                "by_prompt": by("prompt"), "by_seed": by("seed"),
                "by_client_id": by("client_id"), "by_model": by("model_type"),
                "events": events, "runs": runs, "calls": calls}
