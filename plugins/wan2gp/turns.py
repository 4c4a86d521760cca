"""Jobs of one server queue their tasks one at a time, in the order they asked.

Gradio runs each of WanGP's endpoints one call at a time per server (its default concurrency
limit), and queueing a task takes a job several calls (``save_inputs``, ``refresh_gallery``,
``process_prompt_and_add_tasks``, ``activate_status``, then ``process_tasks``). Jobs preparing at
once interleave those calls in gradio's per-endpoint queues: every job's task reaches WanGP's
queue late (measured: four jobs on a server delayed the first generation from 0.8 s to 1.8 s),
and in whatever order the interleaving gives. Taking turns, the first job's task is queued after
its own calls only, and tasks reach the server's queue in the order the jobs were submitted. The
next job prepares while the first generates, so the server does not wait for it.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["Place", "Turns"]


class Turns:
    """A first-come, first-served line for queueing tasks on one server.

    ::

        with turns.line_up(stop, on_stop) as place:   # in line from here (submission order)
            ...                                       # work that needs no turn (take a session)
            place.wait()                              # first in line now
            ...                                       # queue the task
        # out of the line: the next job's turn

    A waiting job gives up when its ``stop`` event is set (cancel; whoever sets it calls
    :meth:`wake`) or the line is closed.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._line: deque[Place] = deque()
        self._closed = False

    def __len__(self) -> int:
        with self._changed:
            return len(self._line)

    @contextmanager
    def line_up(self, stop: threading.Event, on_stop: Callable[[], BaseException]) -> Iterator[Place]:
        """Join the end of the line for the ``with`` block; :meth:`Place.wait` waits for the turn."""
        place = Place(self, stop, on_stop)
        with self._changed:
            self._line.append(place)
        try:
            yield place
        finally:
            with self._changed:
                self._line.remove(place)
                self._changed.notify_all()

    def _wait(self, place: Place) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._line[0] is place or place.stop.is_set() or self._closed)
            if self._line[0] is not place or place.stop.is_set() or self._closed:
                raise place.on_stop()

    def wake(self) -> None:
        """Make waiting jobs check their ``stop`` event again (call it after setting one)."""
        with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        """Jobs waiting give up (``on_stop``), and so does every later wait."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class Place:
    """One job's place in a :class:`Turns` line."""

    def __init__(self, turns: Turns, stop: threading.Event, on_stop: Callable[[], BaseException]) -> None:
        self._turns = turns
        self.stop = stop
        self.on_stop = on_stop

    def wait(self) -> None:
        """Block until this job is first in line (at once if it is already).

        :raises: ``on_stop()``: ``stop`` was set or the line closed before the turn came.
        """
        self._turns._wait(self)
