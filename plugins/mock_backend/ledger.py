"""The generation counter: proof of what the server actually ran.

Tests use it to show that nothing was generated twice (e.g. after a retried submit): every
generation that started is recorded with its prompt, seed, client_id, model and outcome.

Like WanGP's ``outputs/`` folder (and unlike its sessions), the counter survives a restart of the
server: :meth:`Ledger.persist_to` appends every record to a JSON-lines file in the server's state
folder and replays it when the next process starts. A generation still ``running`` when its
process died is replayed as ``interrupted`` (the process that ran it is gone).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any


class Ledger:
    """Thread-safe record of generations and of other events worth counting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[dict[str, Any]] = []
        self._events: Counter[str] = Counter()
        self._calls: dict[str, list[str]] = {}
        self._file: IO[str] | None = None
        self._path: Path | None = None

    def persist_to(self, path: Path) -> None:
        """Replay the records a previous process of this server left in ``path``, then append
        every new one there (flushed at once: a killed process loses nothing it recorded)."""
        with self._lock:
            self._path = Path(path)
            if self._path.exists():
                for line in self._path.read_text(encoding="utf-8").splitlines():
                    self._replay(line)
            for run in self._runs:
                if run["outcome"] == "running":
                    run["outcome"] = "interrupted"
            self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def _replay(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:  # a line cut by a kill: nothing after it was written either
            return
        op = record.get("op")
        if op == "start":
            self._runs.append(record["run"])
        elif op == "finish" and 0 <= record["index"] < len(self._runs):
            self._runs[record["index"]].update(outcome=record["outcome"], file=record["file"],
                                               ended=record.get("ended"))
        elif op == "event":
            self._events[record["name"]] += 1

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()

    def close(self) -> None:
        """Stop appending to the file (idempotent)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def start(self, *, prompt: str, seed: int, client_id: str, model_type: str, session: str) -> int:
        """Record a generation that started; returns its index for :meth:`finish`."""
        with self._lock:
            run = {"prompt": prompt, "seed": seed, "client_id": client_id, "model_type": model_type,
                   "session": session, "outcome": "running", "file": None,
                   "started": time.time(), "ended": None}
            self._runs.append(run)
            self._write({"op": "start", "run": run})
            return len(self._runs) - 1

    def finish(self, index: int, outcome: str, file: str | None = None) -> None:
        """Set a generation's outcome: ``completed``, ``failed`` or ``aborted``."""
        with self._lock:
            ended = time.time()
            self._runs[index].update(outcome=outcome, file=file, ended=ended)
            self._write({"op": "finish", "index": index, "outcome": outcome, "file": file, "ended": ended})

    def event(self, name: str) -> None:
        """Count a named event (e.g. ``settings_overwritten``)."""
        with self._lock:
            self._events[name] += 1
            self._write({"op": "event", "name": name})

    def call(self, session: str, function: str) -> None:
        """Record that ``function`` (an implemented endpoint, any copy) ran in ``session``
        (in memory only: sessions end with the process)."""
        with self._lock:
            self._calls.setdefault(session, []).append(function)

    def reset(self) -> None:
        """Forget everything, the file's records included."""
        with self._lock:
            self._runs.clear()
            self._events.clear()
            self._calls.clear()
            if self._file is not None:
                self._file.seek(0)
                self._file.truncate()
                self._file.flush()

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "completed", "failed", "aborted", "interrupted", "by_prompt", "by_seed",
        "by_client_id", "by_model", "events", "runs", "calls"}``; counts are of generations that
        started (``interrupted``: still running when an earlier process of the server died);
        each run has its ``started`` and ``ended`` wall-clock times (``time.time()``; ``ended`` is
        ``None`` while it runs), so a bench can tell how long the server itself was busy;
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
                "interrupted": outcomes["interrupted"],
                "by_prompt": by("prompt"), "by_seed": by("seed"),
                "by_client_id": by("client_id"), "by_model": by("model_type"),
                "events": events, "runs": runs, "calls": calls}
