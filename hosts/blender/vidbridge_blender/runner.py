"""The worker side: vidbridge calls off Blender's main thread, results back through a queue.

Nothing here touches Blender data (that is only allowed on the main thread): every worker puts
an :class:`Event` on :attr:`Runner.events`, and the main thread drains it (:mod:`.pump`). The
vidbridge ``Client`` and its sessions are created on first use, so merely enabling the add-on
starts nothing.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "Runner"]

log = logging.getLogger("vidbridge.blender")


@dataclass(frozen=True)
class Event:
    """Something for the main thread: ``kind`` is ``submitted``, ``status``, ``finished``,
    ``failed``, ``interrupted`` (a resume found no work to follow), ``cancelled_request``,
    ``health``, ``ledger`` or ``report``."""

    kind: str
    token: str = ""
    data: Any = None
    extra: dict = field(default_factory=dict)


def _message(exc: BaseException) -> str:
    """The text an artist sees: vidbridge's message, or the type and text of anything else."""
    from vidbridge import VidbridgeError

    if isinstance(exc, VidbridgeError):
        return f"{type(exc).__name__}: {exc.message}" if getattr(exc, "message", None) else f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Runner:
    """The add-on's vidbridge client, its sessions, jobs and worker threads.

    Thread-safe. :meth:`close` cancels unfinished jobs and waits for every thread it started.
    """

    def __init__(self, ledger: Any = "default") -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self._ledger = ledger
        self._lock = threading.Lock()
        self._client: Any = None
        self._sessions: dict[tuple, Any] = {}
        self._connecting: dict[tuple, threading.Lock] = {}  # one connect at a time per server
        self._jobs: dict[str, Any] = {}       # token -> vidbridge Job
        self._cancel_wanted: set[str] = set()  # cancelled before the job existed
        self._threads: set[threading.Thread] = set()
        self._open: set[str] = set()          # tokens whose end has not been pumped yet
        self._unchecked: set[str] = set()     # landed, but no run_pending has looked at them yet
        self._closed = False

    # -- bookkeeping --------------------------------------------------------------------------

    def outstanding(self) -> set[str]:
        """Tokens of jobs that have not ended on the main thread yet."""
        with self._lock:
            return set(self._open)

    def landed(self, token: str) -> None:
        """The main thread handled ``token``'s end."""
        with self._lock:
            if token in self._open:
                self._open.discard(token)
                self._unchecked.add(token)

    def take_landed(self) -> set[str]:
        """Tokens that landed since the last call (how each ended is for the caller to judge)."""
        with self._lock:
            taken, self._unchecked = self._unchecked, set()
            return taken

    def busy(self) -> bool:
        """True while any job is open, any worker runs or any event waits."""
        with self._lock:
            threads = any(thread.is_alive() for thread in self._threads)
            return bool(self._open) or threads or not self.events.empty()

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # nothing raised in a thread is lost: log it and tell the host
                log.exception("vidbridge worker %s failed", name)
                self.events.put(Event("report", args[0] if args and isinstance(args[0], str) else "",
                                      f"vidbridge worker failed: {_message(exc)}"))
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"vidbridge-blender-{name}", daemon=True)
        with self._lock:
            if self._closed:
                raise RuntimeError("the vidbridge add-on is shutting down")
            self._threads.add(thread)
        thread.start()

    def client(self) -> Any:
        """The vidbridge ``Client`` (created on first use; ledger from ``VIDBRIDGE_LEDGER`` or the user's)."""
        with self._lock:
            if self._client is None:
                import vidbridge

                options = {} if self._ledger == "default" else {"ledger": self._ledger}
                self._client = vidbridge.Client(**options)
            return self._client

    def _session(self, url: str, credentials: dict) -> Any:
        key = (url, tuple(sorted((k, hash(v)) for k, v in credentials.items())))
        with self._lock:
            connecting = self._connecting.setdefault(key, threading.Lock())
        with connecting:  # two jobs queued at once share one session instead of opening two
            with self._lock:
                session = self._sessions.get(key)
            if session is not None and not session.closed:
                return session
            session = self.client().connect(url, credentials=credentials or None)
            with self._lock:
                self._sessions[key] = session
            return session

    def _forget_session(self, url: str) -> None:
        with self._lock:
            for key in [key for key in self._sessions if key[0] == url]:
                self._sessions.pop(key).close()

    # -- work -----------------------------------------------------------------------------------

    def submit(self, token: str, url: str, credentials: dict, request: Any, output_dir: str,
               timeout: float | None = None) -> None:
        """Connect and submit on a worker thread; events follow. Returns at once."""
        with self._lock:
            self._open.add(token)
        try:
            self._spawn(f"job-{token}", self._run_job, token, url, credentials, request, output_dir, timeout)
        except RuntimeError:
            self.landed(token)
            raise

    def _run_job(self, token: str, url: str, credentials: dict, request: Any, output_dir: str,
                 timeout: float | None) -> None:
        try:
            session = self._session(url, credentials)
            job = session.submit(request, output_dir=output_dir, timeout=timeout,
                                 on_status=lambda status: self.events.put(Event("status", token, status)))
        except Exception as exc:  # noqa: BLE001 - every failure becomes the artist's report
            from vidbridge import BackendConnectionError

            if isinstance(exc, BackendConnectionError):
                self._forget_session(url)
            self.events.put(Event("failed", token, _message(exc)))
            return
        self._follow(token, job)

    def resume(self, token: str, job_id: str, output_dir: str, credentials: dict, resubmit: bool = False) -> None:
        """Follow a ledger job again (``Client.resume``; ``resubmit``: run it again when its work
        cannot be found) on a worker thread. Returns at once."""
        with self._lock:
            self._open.add(token)
        try:
            self._spawn(f"resume-{token}", self._run_resume, token, job_id, output_dir, credentials, resubmit)
        except RuntimeError:
            self.landed(token)
            raise

    def _run_resume(self, token: str, job_id: str, output_dir: str, credentials: dict, resubmit: bool) -> None:
        from vidbridge import NotAttachableError

        try:
            job = self.client().resume(job_id, resubmit=resubmit, output_dir=output_dir,
                                       credentials=credentials or None,
                                       on_status=lambda status: self.events.put(Event("status", token, status)))
        except NotAttachableError as exc:  # the ledger now says interrupted: the artist decides
            self.events.put(Event("interrupted", token, exc.message, {"reason": exc.reason}))
            return
        except Exception as exc:  # noqa: BLE001
            self.events.put(Event("failed", token, _message(exc)))
            return
        self._follow(token, job)

    def _follow(self, token: str, job: Any) -> None:
        with self._lock:
            self._jobs[token] = job
            cancel = token in self._cancel_wanted
        self.events.put(Event("submitted", token, job.id, {"seed": getattr(job.request, "seed", None)}))
        if cancel:
            job.cancel()
        job.wait()  # an event wait on the job's end; this worker exists for this job only
        status = job.status()
        artifacts = list(job.artifacts) if status.phase.value == "completed" else []
        error = job.error
        self.events.put(Event("finished", token, status,
                              {"artifacts": artifacts, "error": None if error is None else _message(error)}))

    def cancel(self, token: str) -> None:
        """Ask the server to cancel ``token``'s job, on a worker thread. Returns at once."""
        with self._lock:
            job = self._jobs.get(token)
            if job is None:
                self._cancel_wanted.add(token)
                return
        self._spawn(f"cancel-{token}", self._run_cancel, token, job)

    def _run_cancel(self, token: str, job: Any) -> None:
        try:
            result = job.cancel()
            self.events.put(Event("cancelled_request", token, result.message or
                                  ("stopped on the server" if result.server_stopped else "stopped waiting")))
        except Exception as exc:  # noqa: BLE001
            self.events.put(Event("report", token, f"cancel failed: {_message(exc)}"))

    def check_health(self, urls: tuple[str, ...], credentials: dict, announce: bool = False) -> None:
        """Probe ``urls`` (``Client.discover``) on a worker thread; a ``health`` event follows
        (``announce``: the main thread reports each server's state to the artist)."""
        self._spawn("health", self._run_health, "", urls, credentials, announce)

    def _run_health(self, _token: str, urls: tuple[str, ...], credentials: dict, announce: bool) -> None:
        rows = []
        try:
            # Generous: this runs in the background, and a loaded server's config can take seconds.
            timeout = float(os.environ.get("VIDBRIDGE_DISCOVER_TIMEOUT") or 10.0)
            endpoints = {e.url: e for e in self.client().discover(urls, probe_local=False, timeout=timeout,
                                                                   credentials=credentials or None)}
        except Exception as exc:  # noqa: BLE001
            self.events.put(Event("health", "", [{"url": url, "reachable": False, "note": _message(exc)}
                                                 for url in urls], {"announce": announce}))
            return
        for url in urls:
            found = endpoints.get(url) or endpoints.get(url.rstrip("/"))
            if found is None:
                found = next((e for e in endpoints.values() if e.url.rstrip("/") == url.rstrip("/")), None)
            if found is None:
                rows.append({"url": url, "reachable": False, "note": "no answer"})
                continue
            rows.append({"url": url, "reachable": bool(found.healthy), "backend": found.backend,
                         "version": found.version or "", "face": found.transport,
                         "models": list(found.models), "queue_size": found.queue_size,
                         "note": found.note or ""})
        self.events.put(Event("health", "", rows, {"announce": announce}))

    def list_ledger(self, limit: int = 10) -> None:
        """Read the ledger's unfinished jobs (``Client.jobs``) on a worker thread; a ``ledger`` event follows."""
        self._spawn("ledger", self._run_ledger, "", limit)

    def _run_ledger(self, _token: str, limit: int) -> None:
        try:
            records = self.client().jobs(status="unfinished", limit=limit)
        except Exception as exc:  # noqa: BLE001
            self.events.put(Event("report", "", f"reading the job ledger failed: {_message(exc)}"))
            return
        rows = []
        for record in records:
            request = record.request or {}
            rows.append({"id": record.id, "status": record.status, "endpoint": record.endpoint,
                         "prompt": str(request.get("prompt") or ""), "frames": request.get("frames"),
                         "seed": request.get("seed"), "model": request.get("model"),
                         "output_dir": record.output_dir or ""})
        self.events.put(Event("ledger", "", rows))

    # -- shutdown -------------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> bool:
        """Cancel unfinished jobs, close the client and join every worker; True if all ended in time."""
        import time

        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            jobs = list(self._jobs.values())
            self._sessions.clear()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if not job.done():
                try:
                    job.cancel()
                except Exception:  # noqa: BLE001 - closing anyway
                    log.exception("cancel at shutdown failed")
        if client is not None:
            client.close()
            client.wait_closed(max(0.1, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)
