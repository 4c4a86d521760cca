"""Wake-ups for job consumers, without polling gradio_client's update queues."""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
from typing import Any, Callable

import httpx

__all__ = ["SignalQueue", "shared_ssl_context", "prepare_ssl_context"]


class SignalQueue(asyncio.Queue):
    """A drop-in for gradio_client's per-call update queue (``Communicator.updates``) that also
    calls listeners on every put, so a job waits on an event instead of polling the queue."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: list[Callable[[], None]] = []

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every put (and once now, for updates that came first)."""
        self._listeners.append(listener)
        listener()

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        for listener in list(self._listeners):
            listener()


@functools.lru_cache(maxsize=2)
def shared_ssl_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per process (and per ``verify`` choice).

    gradio_client builds a new ``httpx.Client`` for every queue join and result stream, passing
    its ``ssl_verify`` as httpx's ``verify``; with a bool, httpx parses the CA bundle each time
    (measured: 44% of a job loop's client CPU). A ready context is reused as is.
    """
    return httpx.create_ssl_context(verify=verify)


def prepare_ssl_context(verify: bool) -> None:
    """Build :func:`shared_ssl_context` on a daemon thread (returns at once when already built).

    A connect calls it before its first request: parsing the CA bundle (~25 ms) releases the GIL,
    so it overlaps the wait for ``/config`` and ``/info`` instead of adding to the connect. (Should
    the connect need the context first, it builds one itself: two builds are harmless.)
    """
    threading.Thread(target=shared_ssl_context, args=(verify,), name="wan2gp-ssl-context", daemon=True).start()
