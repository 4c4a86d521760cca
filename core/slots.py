"""The local job queue: at most ``limit`` jobs of one client run at once per endpoint.

``Session.submit()`` never waits for the backend: it takes a :class:`Ticket` (first come, first
served) and returns the job at once, in phase ``queued`` with its local position. The job's own
thread waits for the ticket to be granted, then submits to the backend. A job cancelled while it
waits here leaves the queue without any request to the server.

Limits belong to a :class:`~vidbridge.Client` (``max_sessions``) and die with it: two clients never
share one.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

__all__ = ["SlotQueue", "Ticket"]


class Ticket:
    """One job's place in a :class:`SlotQueue`."""

    __slots__ = ("granted", "left")

    def __init__(self) -> None:
        self.granted = False
        self.left = False


class SlotQueue:
    """A fair (FIFO) counting semaphore whose waiters can see their position and give up."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._running = 0
        self._waiting: list[Ticket] = []
        self._changed = threading.Condition()

    def enter(self) -> Ticket:
        """A ticket at the end of the queue (granted at once when a slot is free).

        Nobody else is woken: a job joining behind moves no one ahead of it, so ``submit()`` stays
        O(1) however many jobs wait (waking every waiter here made N submits cost O(N^2)).
        """
        ticket = Ticket()
        with self._changed:
            self._waiting.append(ticket)
            self._grant(notify=False)
        return ticket

    def position(self, ticket: Ticket) -> tuple[int, int] | None:
        """``(jobs ahead, jobs waiting)`` for a waiting ticket, ``None`` once granted or left."""
        with self._changed:
            if ticket not in self._waiting:
                return None
            return self._waiting.index(ticket), len(self._waiting)

    def wait(self, ticket: Ticket, *, stop: Callable[[], bool],
             moved: Callable[[int, int], None] = lambda ahead, size: None,
             deadline: float | None = None) -> bool:
        """Block until ``ticket`` is granted (True) or ``stop()`` is true (False: it left the queue).

        ``moved(ahead, size)`` is called, outside the lock, each time the position (``ahead``)
        changes, with the queue's size at that moment (jobs joining behind move no one). Call
        :meth:`wake` after making ``stop()`` true. ``stop()`` is also checked at ``deadline``
        (a ``time.monotonic()`` value), so a condition that becomes true with time is seen.
        """
        last: tuple[int, int] | None = None
        while True:
            with self._changed:
                while True:
                    if ticket.granted:
                        return True
                    if stop():
                        self._remove(ticket)
                        return False
                    now = (self._waiting.index(ticket), len(self._waiting))
                    if last is None or now[0] != last[0]:
                        break
                    self._changed.wait(None if deadline is None else max(0.0, deadline - time.monotonic()) + 0.001)
            last = now
            moved(*now)

    def leave(self, ticket: Ticket) -> None:
        """Give the slot back (granted) or leave the queue (waiting). Idempotent."""
        with self._changed:
            if ticket.left:
                return
            if ticket.granted:
                ticket.left = True
                self._running -= 1
                self._grant()
            else:
                self._remove(ticket)

    def wake(self) -> None:
        """Make waiters re-check their ``stop()``."""
        with self._changed:
            self._changed.notify_all()

    @property
    def running(self) -> int:
        """Jobs holding a slot now."""
        with self._changed:
            return self._running

    def _remove(self, ticket: Ticket) -> None:
        if ticket in self._waiting:
            self._waiting.remove(ticket)
        ticket.left = True
        self._grant()

    def _grant(self, *, notify: bool = True) -> None:
        while self._waiting and self._running < self.limit:
            self._waiting.pop(0).granted = True
            self._running += 1
        if notify:
            self._changed.notify_all()
