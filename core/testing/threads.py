"""Thread bookkeeping for tests: notice threads a test left running, without fixed sleeps."""

from __future__ import annotations

import threading
import time
from typing import Iterable

__all__ = ["snapshot_threads", "leaked_threads", "wait_for_threads"]


def snapshot_threads() -> frozenset[threading.Thread]:
    """The threads alive right now (compare with :func:`leaked_threads` later)."""
    return frozenset(threading.enumerate())


def leaked_threads(
    baseline: Iterable[threading.Thread], *, ignore_prefixes: Iterable[str] = ()
) -> list[threading.Thread]:
    """Threads alive now that were not in ``baseline`` (names starting with ``ignore_prefixes`` excepted)."""
    known = set(baseline)
    prefixes = tuple(ignore_prefixes)
    return [
        thread
        for thread in threading.enumerate()
        if thread not in known and thread.is_alive() and not (prefixes and thread.name.startswith(prefixes))
    ]


def wait_for_threads(
    baseline: Iterable[threading.Thread], *, timeout: float = 10.0, ignore_prefixes: Iterable[str] = ()
) -> list[threading.Thread]:
    """Wait, up to ``timeout`` seconds in total, until no thread outside ``baseline`` is alive.

    Threads that end on their own (a job's monitor thread finishing after ``close()``) are awaited
    with :meth:`threading.Thread.join`, bounded by the deadline: no fixed sleeps. Returns the
    threads still alive at the deadline (empty when everything settled), and the baseline's count
    must then be reached by :func:`threading.active_count` too.
    """
    baseline = frozenset(baseline)
    prefixes = tuple(ignore_prefixes)
    deadline = time.monotonic() + timeout
    while True:
        leaked = leaked_threads(baseline, ignore_prefixes=prefixes)
        remaining = deadline - time.monotonic()
        if not leaked or remaining <= 0:
            return leaked
        leaked[0].join(remaining)
