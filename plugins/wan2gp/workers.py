"""A thread pool whose threads never keep the interpreter alive.

gradio_client runs each call on ``ThreadPoolExecutor`` threads that block on the server's event
stream. The standard pool's threads are joined at interpreter exit, so one server-side stream that
never ends (WanGP's status feed activated too late, a hung proxy) kept vidbridge processes alive
after they had printed their result. :class:`DaemonExecutor` runs the same work on daemon threads:
:meth:`close` on a vidbridge session ends what it can on the server, and whatever a server still
holds open can no longer stop the host process from exiting.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from typing import Any, Callable

__all__ = ["DaemonExecutor"]

#: Seconds an idle worker waits for work before it ends (threads come back on demand).
IDLE_SECONDS = 30.0


class DaemonExecutor(concurrent.futures.Executor):
    """``concurrent.futures.Executor`` on at most ``max_workers`` daemon threads, started on demand
    and ended after :data:`IDLE_SECONDS` without work."""

    def __init__(self, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # workers waiting for work, not yet promised a queued item
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._work.put((future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._worker, name=f"{self._name}-{len(self._threads)}",
                                          daemon=True)
                self._threads.add(thread)
                thread.start()
        return future

    def _worker(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                item = self._work.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # nobody was promised this worker: end it
                        self._idle -= 1
                        self._threads.discard(me)
                        return
                continue  # a submit counted on this worker; its item is on the way
            if item is None:  # shutdown
                with self._lock:
                    self._threads.discard(me)
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 - delivered to the future's owner
                    future.set_exception(exc)
                del future, fn, args, kwargs  # do not keep the last job's objects alive while idle
            with self._lock:
                if self._shutdown:
                    self._threads.discard(me)
                    return
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; ``cancel_futures`` cancels what has not started. Running calls
        finish on their own (``wait=True`` waits for them)."""
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    @property
    def threads(self) -> int:
        """Worker threads alive now."""
        with self._lock:
            return len(self._threads)
