"""A vidbridge session to one WanGP server: a small pool of gradio sessions (Clients).

WanGP keeps the task queue, form and gallery per gradio session, and runs one session's tasks one
after the other, so concurrent jobs each need their own Client. The pool hands out an idle Client
(reused across jobs), opens a new one up to ``max_sessions``, and drops broken ones.

Per vidbridge session (its own :class:`ServerLimiter`, created with it and gone with it: two
sessions to one server, e.g. of two Clients with different ``max_sessions``, each keep their own
limit): at most ``max_sessions`` gradio sessions busy at once, and job starts at least
``VIDBRIDGE_WAN2GP_MIN_INTERVAL`` seconds apart (default 0.05; 0 disables the pacing).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from vidbridge import (
    BackendConnectionError,
    ConnectOptions,
    Credentials,
    Endpoint,
    IncompatibleServerError,
    JobTimeoutError,
)
from vidbridge.backend import Deadline, redact_url

from .api import ApiSurface, EndpointNotFound
from .compat import FastClient, end_jobs
from .connection import ApiCache, ServerInfo, UploadCache, build_client, close_client, fetch_server_info
from .flow import SIGNATURES
from .signals import prepare_ssl_context
from .turns import Turns

__all__ = ["PooledClient", "close_pooled", "Wan2GPSession", "ServerLimiter", "MIN_INTERVAL_ENV", "min_interval"]

#: The endpoints (names in flow.SIGNATURES) every job calls; a tuple lists alternatives.
_EVERY_JOB_CALLS = (("save_inputs",), ("fill_inputs",), ("add_tasks",), ("process_tasks",),
                    ("refresh_gallery", "finalize_generation"))

#: Environment variable: seconds between two job starts on one server (the request-rate limit).
MIN_INTERVAL_ENV = "VIDBRIDGE_WAN2GP_MIN_INTERVAL"
DEFAULT_MIN_INTERVAL = 0.05
#: Seconds between checks, by a thread waiting for a slot, that its session was not closed.
_CLOSE_CHECK = 0.1
#: Longest wait for a gradio session that is finishing its job before opening another one.
_FINISHING_WAIT = 10.0
#: Longest wait, in close(), for jobs finishing WanGP's chain.
_CLOSE_SETTLE = 3.0


def min_interval() -> float:
    """The configured pause between job starts per server (``VIDBRIDGE_WAN2GP_MIN_INTERVAL``);
    invalid or negative values fall back to the default, with a warning."""
    raw = os.environ.get(MIN_INTERVAL_ENV)
    if raw is None:
        return DEFAULT_MIN_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        log.warning("%s=%r is not a number of seconds >= 0; using %s", MIN_INTERVAL_ENV, raw, DEFAULT_MIN_INTERVAL)
        return DEFAULT_MIN_INTERVAL
    return value

log = logging.getLogger("vidbridge.plugins.wan2gp")


@dataclass(eq=False)
class PooledClient:
    """One gradio session and what we know of its server-side state."""

    client: FastClient
    model: str | None = None  # the model this gradio session is on, once we set it
    choices: frozenset[str] = frozenset()  # model dropdown choices of this session
    forms: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> form from fill_inputs
    resolutions: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    broken: bool = False
    jobs: int = 0
    gallery: set[str] | None = None  # server paths this session's gallery listed (None: not read yet)
    feeds: set[Any] = field(default_factory=set)  # status-feed gradio jobs not yet ended
    finishing: bool = False  # its job has ended; WanGP's chain is being finished (released soon)


def close_pooled(pooled: PooledClient) -> None:
    """Close a gradio session: first stop its status feeds (their event stream would otherwise
    stay open for as long as the server keeps them), then the Client. Never raises."""
    end_jobs(list(pooled.feeds))
    pooled.feeds.clear()
    close_client(pooled.client)


class ServerLimiter:
    """One session's caps on its server: concurrent gradio sessions in use, and a minimum
    interval between job starts (request rate)."""

    def __init__(self, slots: int, min_interval: float) -> None:
        self.slots = threading.BoundedSemaphore(max(1, slots))
        self.min_interval = min_interval
        self._next = 0.0
        self._rate_lock = threading.Lock()

    def pace(self) -> None:
        """Sleep as needed so job starts are at least ``min_interval`` apart."""
        with self._rate_lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.min_interval
        if wait > 0:
            time.sleep(wait)


class Wan2GPSession:
    """The object ``vidbridge_connect`` returns: a pool of gradio sessions to one WanGP server."""

    def __init__(self, endpoint: Endpoint, credentials: Credentials, options: ConnectOptions) -> None:
        self.endpoint = endpoint
        self.url = endpoint.url
        self.shown_url = redact_url(self.url)  # for messages, logs and error.endpoint (no user info)
        self.credentials = credentials
        self.options = options
        self._own_http = options.http is None
        self.http = options.http or httpx.Client(verify=options.verify_tls)
        self.uploads = UploadCache()
        #: Server folders this server's outputs were seen in (where a job's output is looked up by
        #: its name after a restart: :mod:`.recovery`).
        self.output_folders: list[str] = []
        self._lock = threading.Condition()
        self._idle: list[PooledClient] = []
        self._busy: set[PooledClient] = set()
        self._closed = False
        self.limiter = ServerLimiter(options.max_sessions, min_interval())
        #: Jobs queue their tasks here one at a time, in submission order (:mod:`.turns`).
        self.turns = Turns()
        self.api_cache = ApiCache(options.cache_dir)
        prepare_ssl_context(options.verify_tls)  # while the server answers (for the gradio sessions)
        self.server: ServerInfo = fetch_server_info(self.http, self.url, credentials,
                                                    timeout=options.connect_timeout, cache=self.api_cache)
        self.api = ApiSurface(self.server.info, self.server.config)
        #: The gradio ``app_id`` of the server process last seen (new for every process).
        self.server_id: str | None = None if self.server.config.get("app_id") is None else str(self.server.config["app_id"])
        self._refuse_unusable()
        # Open the first gradio session now: connect fails early on bad auth or a broken server.
        self._idle.append(self._new_client())

    def _refuse_unusable(self) -> None:
        """Refuse, at connect, a server without the endpoints every job calls (another gradio
        app, or a WanGP version whose generation chain differs): nothing would run on it.

        :raises IncompatibleServerError: naming each missing endpoint and why every copy of it was
            refused.
        """
        missing: list[str] = []
        reasons: list[str] = []
        for needs in _EVERY_JOB_CALLS:
            refused = []
            for need in needs:
                try:
                    self.api.resolve(SIGNATURES[need])
                    break
                except EndpointNotFound as exc:
                    refused.append(str(exc))
            else:
                missing.append(" or ".join(SIGNATURES[need].base for need in needs))
                reasons.extend(refused)
        if missing:
            if self._own_http:
                self.http.close()
            raise IncompatibleServerError(f"{self.shown_url}: not a usable WanGP server: {'; '.join(reasons)}",
                                          endpoint=self.shown_url, missing=tuple(missing))

    def __repr__(self) -> str:  # no credentials, ever
        return f"<Wan2GPSession {self.shown_url} idle={len(self._idle)} busy={len(self._busy)}>"

    @property
    def src_prefixed(self) -> str:
        """Base URL of the gradio routes (``.../gradio_api/``)."""
        return self.server.src_prefixed

    def _new_client(self) -> PooledClient:
        client = build_client(self.server, self.credentials, verify_tls=self.options.verify_tls,
                              connect_timeout=self.options.connect_timeout, upload_cache=self.uploads)
        choices = self.api_model_choices()
        return PooledClient(client, choices=frozenset(choices))

    def api_model_choices(self) -> list[str]:
        """Model choices of a fresh gradio session, from ``view_api`` (they follow the server's
        model at start-up)."""
        try:
            name = self.api.resolve(SIGNATURES["add_tasks"])
        except LookupError:
            return []
        parameter = self.api.parameter(name, "model_choice")
        return [str(c) for c in (parameter.choices or ())] if parameter else []

    def default_model(self) -> str | None:
        """The model a fresh gradio session starts on, per ``view_api``."""
        try:
            name = self.api.resolve(SIGNATURES["add_tasks"])
        except LookupError:
            return None
        parameter = self.api.parameter(name, "model_choice")
        return str(parameter.default) if parameter and parameter.default else None

    def closed_error(self) -> BackendConnectionError:
        """The error of a call on this session after :meth:`close`."""
        return BackendConnectionError(f"{self.shown_url}: the session is closed", endpoint=self.shown_url)

    def _wait_for_slot(self, timeout: float | None) -> bool:
        """Take one of the server's slots; False after ``timeout`` (``None``: no limit).

        :meth:`close` does not release the semaphore for waiters: wait in short slices and give up
        once closed.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if self._closed:
                raise self.closed_error()
            left = _CLOSE_CHECK if deadline is None else min(_CLOSE_CHECK, deadline - time.monotonic())
            if self.limiter.slots.acquire(timeout=max(0.0, left)):  # never -1: that gives up at once
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def acquire(self, timeout: float | None = None, *, fresh: bool = False) -> PooledClient:
        """An idle gradio session (a new one if none is idle, or ``fresh``), waiting for a free slot.

        :raises JobTimeoutError: no slot within ``timeout``.
        :raises BackendConnectionError: the session is closed (also when closed while waiting).
        """
        if not self._wait_for_slot(timeout):
            raise JobTimeoutError(f"{self.shown_url}: no free gradio session within {timeout} s",
                                  endpoint=self.shown_url)
        try:
            with self._lock:
                if self._closed:  # closed while this thread waited: no new gradio session on it
                    raise self.closed_error()
                if not fresh:
                    self._await_finishing()
                pooled = self._idle.pop() if self._idle and not fresh else None
            if pooled is None:
                pooled = self._new_client()
            with self._lock:
                closed = self._closed  # closed meanwhile: close() did not see this gradio session
                if not closed:
                    self._busy.add(pooled)
            if closed:
                close_pooled(pooled)
                raise self.closed_error()
            self.limiter.pace()
            return pooled
        except BaseException:
            self.limiter.slots.release()
            raise

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def _await_finishing(self) -> None:
        """With no idle gradio session but one whose job is finishing WanGP's chain (a fraction of
        a second), wait for it: cheaper than opening a new one. Called holding ``_lock``."""
        deadline = time.monotonic() + _FINISHING_WAIT
        while not self._idle and not self._closed and any(p.finishing for p in self._busy):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._lock.wait(remaining)

    def release(self, pooled: PooledClient, *, broken: bool = False) -> None:
        """Give a gradio session back; a broken one is closed and dropped. Idempotent per job."""
        with self._lock:
            if pooled not in self._busy:
                return
            self._busy.discard(pooled)
            pooled.finishing = False
            keep = not (broken or pooled.broken or self._closed)
            if keep:
                self._idle.append(pooled)
            self._lock.notify_all()
        if not keep:
            close_pooled(pooled)
            if broken:
                # The server may have restarted: its upload folder and our cached paths are gone.
                self.uploads.clear()
        self.limiter.slots.release()

    def close(self) -> None:
        """Close every gradio session and release threads; harmless to call twice.

        Threads waiting in :meth:`acquire` give up within ``_CLOSE_CHECK`` seconds (or as soon as
        they get a slot) with :class:`BackendConnectionError`; none opens a new gradio session."""
        with self._lock:
            if self._closed:
                return
            # A job that just ended is finishing WanGP's chain (finalize_generation ends the
            # server's "generation in progress"): let it, briefly, rather than cut it off.
            deadline = time.monotonic() + _CLOSE_SETTLE
            while any(p.finishing for p in self._busy) and (remaining := deadline - time.monotonic()) > 0:
                self._lock.wait(remaining)
            self._closed = True
            self.turns.close()
            clients = self._idle + list(self._busy)
            self._idle.clear()
        for pooled in clients:
            close_pooled(pooled)
        self.api_cache.flush(timeout=_CLOSE_SETTLE)
        if self._own_http:
            self.http.close()

    def server_down(self, timeout: float = 3.0) -> bool:
        """True when nothing listens at the server's address (connection refused): its process is
        gone, and with it every gradio session's state. Idle pooled sessions are dropped then.

        Any answer, even an error status or a reset, means the process is up."""
        try:
            self.http.get(f"{self.url}/config", timeout=timeout, headers=self.credentials.header_values())
            return False
        except (httpx.ConnectError, httpx.ConnectTimeout):
            pass
        except httpx.HTTPError:
            return False
        with self._lock:
            stale, self._idle = self._idle, []
        for pooled in stale:
            close_pooled(pooled)
        return True

    def wait_until_up(self, deadline: Deadline, error: Exception, *,
                      stop_event: threading.Event | None = None) -> None:
        """Wait (probing with back-off) until the server answers again; raise ``error`` when
        ``deadline`` passes first, the session closes or ``stop_event`` is set (cancel)."""
        delay = 0.25
        stop = stop_event or threading.Event()
        while self.server_down(timeout=max(0.5, min(3.0, deadline.remaining()))):
            if self._closed or delay >= deadline.remaining() or stop.wait(delay):
                raise error
            delay = min(delay * 2, 2.0)

    def probe(self, timeout: float = 3.0) -> bool:
        """True when the server answers ``/config`` (used to tell a dead server from a slow one)."""
        try:
            response = self.http.get(f"{self.url}/config", timeout=timeout, cookies=None,
                                     headers=self.credentials.header_values())
            return response.status_code < 500
        except httpx.HTTPError:
            return False
