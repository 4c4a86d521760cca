"""The host-facing entry point: plugins, discovery and connections.

:class:`Client` owns the plugin manager and one pooled :class:`httpx.Client` shared by every
plugin for its own HTTP calls (probes, downloads). :func:`connect` and :func:`discover` are
shortcuts that use a private client for the duration of the call or session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import httpx

from .context import ConnectOptions, DiscoverOptions
from .errors import (
    BackendConnectionError,
    IncompatibleServerError,
    InvalidRequestError,
    JobTimeoutError,
    NotAttachableError,
    PluginError,
    VidbridgeError,
)
from .models import Credentials, Endpoint, build
from .manager import PluginInfo, PluginManager, get_plugin_manager
from .redaction import install_log_redaction, register_credentials
from .retry import retrying
from .job import Job
from .ledger import DEFAULT as _DEFAULT_LEDGER, JobRecord, Ledger, resolve_ledger
from .refs import JobRef
from .session import CLOSE_TIMEOUT, Session
from .slots import SlotQueue

__all__ = ["Client", "connect", "discover", "default_cache_dir"]

log = logging.getLogger("vidbridge.client")


def default_cache_dir() -> Path:
    """The per-user cache folder (``VIDBRIDGE_CACHE_DIR`` overrides it)."""
    override = os.environ.get("VIDBRIDGE_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("vidbridge"))


_UNRECOGNISED = "no plugin recognised this server"


def _reachability(url: str, timeout: float) -> str | None:
    """Why nothing answers at ``url`` (refused, unknown host, unreachable), or ``None`` if a TCP
    connection opens: a server is there."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return f"connection refused (nothing listens on {host}:{port})"
    except socket.gaierror:
        return f"cannot resolve host {host!r}"
    except OSError as exc:  # timed out, no route to host...
        return f"unreachable ({exc.strerror or type(exc).__name__})"


def _credentials(value: Credentials | Mapping[str, Any] | None) -> Credentials:
    if value is None:
        return Credentials()
    if isinstance(value, Credentials):
        return value
    return build(Credentials, **value)


class Client:
    """Plugins, discovery and sessions. Thread-safe; close it (``with``) when done.

    :param plugin_manager: defaults to :func:`vidbridge.get_plugin_manager` (installed plugins).
    :param http: a pooled :class:`httpx.Client` to share with plugins; by default the client
        makes (and closes) its own.
    :param verify_tls: verify HTTPS certificates.
    :param cache_dir: cache folder (API descriptions, upload records).
    :param connect_timeout: seconds per connection attempt; a connect (retries included) has
        ``connect_timeout x retry_attempts`` seconds in all.
    :param request_timeout: seconds per ordinary request (generation streams are not cut).
    :param max_sessions: backend sessions at once per server (parallel jobs).
    :param retry_attempts: attempts, exactly, at connect and at each retried call (only
        transient errors of repeatable operations are retried; 1 = no retry).
    :param poll_interval: longest wait of one status call (the status hook may return sooner).
    :param ledger: the job ledger (:mod:`vidbridge.ledger`): by default the user's
        (``VIDBRIDGE_LEDGER``, else ``<user data dir>/vidbridge/jobs.sqlite3``), or a file path,
        or ``None`` for no ledger (then :meth:`jobs`, :meth:`resume` and ``reuse`` have nothing).
    """

    def __init__(
        self,
        *,
        plugin_manager: PluginManager | None = None,
        http: httpx.Client | None = None,
        verify_tls: bool = True,
        cache_dir: str | Path | None = None,
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        max_sessions: int = 4,
        retry_attempts: int = 4,
        poll_interval: float = 0.5,
        ledger: str | Path | Ledger | None = _DEFAULT_LEDGER,
    ) -> None:
        if max_sessions < 1:
            raise InvalidRequestError("max_sessions must be at least 1", field="max_sessions", allowed=">= 1")
        install_log_redaction()  # before any HTTP client logs: cookies and auth headers never reach a log line
        self.plugin_manager = plugin_manager or get_plugin_manager()
        self._owns_http = http is None
        self._http = http or httpx.Client(
            verify=verify_tls,
            timeout=httpx.Timeout(request_timeout, read=request_timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            follow_redirects=True,
        )
        self._options = ConnectOptions(
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            verify_tls=verify_tls,
            http=self._http,
            cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(),
            max_sessions=max_sessions,
            retry_attempts=retry_attempts,
        )
        self._poll_interval = poll_interval
        self._ledger = resolve_ledger(ledger)  # opened on first use
        self._owns_ledger = not isinstance(ledger, Ledger)
        self._sessions: list[Session] = []
        self._slots: dict[str, SlotQueue] = {}  # the local job queue of each endpoint URL
        self._lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()  # set by close(): ends connect retries' back-off at once
        self._shut = threading.Event()

    def __repr__(self) -> str:
        names = ", ".join(info.name for info in self.plugins() if not info.error)
        return f"<vidbridge.Client plugins=[{names}]>"

    @property
    def http(self) -> httpx.Client:
        """The pooled HTTP client shared with plugins."""
        return self._http

    def plugins(self) -> list[PluginInfo]:
        """The loaded plugins (and the ones that failed to load, with their error)."""
        return self.plugin_manager.plugin_infos()

    # -- discovery ------------------------------------------------------------------------------

    def discover(
        self,
        urls: Iterable[str] = (),
        *,
        probe_local: bool = True,
        timeout: float = 2.0,
        credentials: Credentials | Mapping[str, Any] | None = None,
    ) -> list[Endpoint]:
        """Ask every plugin which endpoints it can reach; results merged by URL.

        :param urls: URLs to check (in addition to what plugins find themselves).
        :param probe_local: let plugins probe their backend's usual local ports.
        :param timeout: seconds the discovery may take (only a server that accepts the
            connection and answers slowly costs time: a busy WanGP can take over a second).
        """
        checked = tuple(build(Endpoint, url=url).url for url in urls)
        options = DiscoverOptions(
            urls=checked,
            probe_local=probe_local,
            timeout=timeout,
            credentials=_credentials(credentials),
            http=self._http,
        )
        merged: dict[str, Endpoint] = {}
        with register_credentials(options.credentials):  # hidden in logs while plugins use them
            answers = self.plugin_manager.broadcast("vidbridge_discover", options=options)
        for plugin_name, found in answers:
            for endpoint in found or ():
                if not isinstance(endpoint, Endpoint):
                    log.warning("plugin %r returned %r from discover; ignored", plugin_name, endpoint)
                    continue
                if endpoint.healthy and not endpoint.backend:
                    endpoint = endpoint.model_copy(update={"backend": plugin_name})
                known = merged.get(endpoint.url)
                if known is None or (endpoint.healthy and endpoint.backend and not (known.healthy and known.backend)):
                    merged[endpoint.url] = endpoint
        for url in checked:
            merged.setdefault(url, Endpoint(url=url, healthy=False, note=_UNRECOGNISED))
        return sorted(merged.values(), key=lambda endpoint: (not endpoint.healthy, endpoint.url))

    def identify(self, url: str, credentials: Credentials | Mapping[str, Any] | None = None) -> Endpoint:
        """Find which plugin owns the server at ``url``.

        :raises BackendConnectionError: nothing answers there, or the plugin that recognised it
            cannot use it now (the message says why).
        :raises IncompatibleServerError: a server answers, but no plugin recognised it.
        """
        endpoints = self.discover([url], probe_local=False, timeout=max(2.0, self._options.connect_timeout),
                                  credentials=credentials)
        wanted = build(Endpoint, url=url).url
        endpoint = next(item for item in endpoints if item.url == wanted)
        if not (endpoint.healthy and endpoint.backend):
            note = endpoint.note or "unreachable"
            if note == _UNRECOGNISED:  # plugins leave out what does not answer: say which it is
                unreachable = _reachability(wanted, self._options.connect_timeout)
                if unreachable is None:  # not retryable: asking again gets the same answer
                    raise IncompatibleServerError(
                        f"cannot use {wanted}: it answers, but {_UNRECOGNISED} "
                        f"(backends: {', '.join(self.plugin_manager.backend_names())})", endpoint=wanted)
                note = unreachable
            raise BackendConnectionError(f"cannot use {wanted}: {note}", endpoint=wanted)
        return endpoint

    async def adiscover(self, urls: Iterable[str] = (), **kwargs: Any) -> list[Endpoint]:
        """Async twin of :meth:`discover`."""
        return await asyncio.to_thread(lambda: self.discover(list(urls), **kwargs))

    # -- sessions -------------------------------------------------------------------------------

    def connect(
        self,
        target: str | Endpoint | Sequence[str | Endpoint],
        *,
        credentials: Credentials | Mapping[str, Any] | None = None,
        backend: str | None = None,
        **pool_options: Any,
    ) -> Session:
        """Open a :class:`Session` to ``target`` (a URL or a discovered :class:`Endpoint`), or,
        given a list of them, a :class:`~vidbridge.pool.PoolSession` over all of them (same API;
        ``pool_options``: ``policy``, a :class:`~vidbridge.routing.RoutingPolicy`, and the
        :class:`~vidbridge.health.HealthService` options; see :mod:`vidbridge.pool`).

        :param backend: the plugin to use; by default the one that recognises the server.
        :raises AuthenticationError: credentials missing or refused.
        :raises BackendConnectionError: the server cannot be reached or no plugin recognises it.
        """
        if self._closed:
            raise VidbridgeError("this vidbridge.Client is closed")
        creds = _credentials(credentials)
        if not isinstance(target, (str, Endpoint)):
            from .pool import connect_pool

            pool = connect_pool(self, list(target), credentials=creds, backend=backend, **pool_options)
            with self._lock:
                self._sessions.append(pool)
            pool.add_close_callback(lambda: self._forget(pool))
            return pool
        # Their values are hidden in every log line until the session closes (or, left unclosed,
        # until the credentials are garbage-collected).
        secrets = register_credentials(creds, owner=creds)
        try:
            session = self._open(target, creds, backend)
        except BaseException:
            secrets.release()
            raise
        session.add_close_callback(secrets.release)
        return session

    def _open(self, target: str | Endpoint, creds: Credentials, backend: str | None) -> Session:
        if isinstance(target, Endpoint):
            endpoint = target
        elif backend:
            endpoint = build(Endpoint, url=target, backend=backend)
        else:
            endpoint = self.identify(target, creds)
        if backend and endpoint.backend != backend:
            endpoint = endpoint.model_copy(update={"backend": backend})
        if endpoint.backend not in self.plugin_manager.backend_names():
            raise PluginError(
                f"no loaded plugin can connect to {endpoint.backend or 'unidentified'} endpoint {endpoint.url} "
                f"(backends: {', '.join(self.plugin_manager.backend_names()) or 'none'})",
                plugin=endpoint.backend or None,
            )
        # The one retry layer of connect (plugins make one attempt per hook call): exactly
        # retry_attempts attempts within one deadline, and close() ends the back-off at once.
        options = self._options

        def attempt() -> Any:
            try:
                return self.plugin_manager.call_owner(
                    endpoint.backend, "vidbridge_connect", endpoint=endpoint, credentials=creds, options=options)
            except JobTimeoutError as exc:
                if exc.reason == "connect":
                    raise
                # nothing is submitted yet: any timeout here means no session in time
                raise JobTimeoutError(f"{exc.message} (connecting; {options.connect_timeout:g} s per attempt)",
                                      endpoint=exc.endpoint, reason="connect") from exc

        native = retrying(
            attempts=options.retry_attempts,
            deadline=options.connect_deadline(),
            stop_event=self._closing,
            on_stop=lambda last: VidbridgeError("this vidbridge.Client was closed while connecting"),
        )(attempt)
        session = Session(self.plugin_manager, endpoint, native, poll_interval=self._poll_interval,
                          slots=self._slot_queue(endpoint.url, endpoint.max_jobs), ledger=self._ledger)
        with self._lock:
            self._sessions.append(session)
        session.add_close_callback(lambda: self._forget(session))
        return session

    def _slot_queue(self, url: str, max_jobs: int | None = None) -> SlotQueue:
        """The local queue of jobs to ``url``, shared by this client's sessions to it: at most
        ``max_sessions`` of them run at once (each client has its own), fewer when the endpoint
        declares ``max_jobs``."""
        with self._lock:
            queue = self._slots.get(url)
            if queue is None:
                limit = min(self._options.max_sessions, max_jobs or self._options.max_sessions)
                queue = self._slots[url] = SlotQueue(limit)
            return queue

    def attach(
        self,
        ref: JobRef | str | dict[str, Any],
        *,
        credentials: Credentials | Mapping[str, Any] | None = None,
        **job_options: Any,
    ) -> Job:
        """Follow again, as a :class:`Job`, the work a job reference names (``job.ref`` or its
        JSON), from this process or another one.

        Uses an open session of this client to the reference's endpoint, or opens one (closed with
        the client). ``job_options`` are those of :meth:`Session.attach` (``output_dir``,
        ``timeout``, ``on_status``, ``download``).

        :raises NotAttachableError: the reference is malformed, or its backend cannot find the
            work again (``error.reason``: ``"invalid"``, ``"unsupported"``, ``"session_bound"``,
            ``"unknown"``...).
        :raises BackendConnectionError, AuthenticationError: the endpoint cannot be reached.
        """
        if not isinstance(ref, JobRef):
            ref = JobRef.from_json(ref)
        if ref.backend not in self.plugin_manager.backend_names():
            raise NotAttachableError(f"{ref.job_id}: no loaded plugin for backend {ref.backend!r}",
                                     endpoint=ref.endpoint, reason="unsupported")
        wanted = ref.endpoint.rstrip("/")
        with self._lock:
            open_ = [s for s in self._sessions if not s.closed and s.backend == ref.backend
                     and s.endpoint.url.rstrip("/") == wanted]
        session = open_[0] if open_ else self.connect(build(Endpoint, url=ref.endpoint, backend=ref.backend),
                                                      credentials=credentials)
        return session.attach(ref, **job_options)

    # -- the job ledger -------------------------------------------------------------------------

    @property
    def ledger(self) -> Ledger | None:
        """This client's job ledger (``None`` when it has none)."""
        return self._ledger

    def jobs(self, status: str | None = None, limit: int | None = 50) -> list[JobRecord]:
        """The ledger's jobs, most recently updated first (of every process of this user).

        :param status: a phase value, ``"interrupted"``, or ``"unfinished"`` / ``"finished"``.
        :param limit: at most this many (``None``: all).
        :raises InvalidRequestError: an unknown status or a bad limit.
        :raises LedgerError: the client has no ledger, or it cannot be read.
        """
        from .resume import require_ledger

        return require_ledger(self).jobs(status=status, limit=limit)

    def job(self, job_id: str) -> JobRecord:
        """The ledger's record of ``job_id``.

        :raises InvalidRequestError: no job of that id in the ledger.
        :raises LedgerError: the client has no ledger, or it cannot be read.
        """
        from .resume import record_of

        return record_of(self, job_id)

    def resume(self, job_id: str, *, resubmit: bool = False, output_dir: str | Path | None = None,
               credentials: Credentials | Mapping[str, Any] | None = None, **job_options: Any) -> Job:
        """Finish a job of the ledger that another (or an ended) process started.

        * completed: its artifacts are verified again (size and SHA-256) and returned as a
          completed job, without any network call (copied into ``output_dir`` if given);
        * unfinished: the job is attached through its reference (:meth:`attach`) and followed to
          the end (download and verification included), with no second generation;
        * the backend cannot find the work (``NotAttachableError``, e.g. ``reason="session_bound"``
          for a WanGP web-UI task): the ledger marks it ``interrupted`` with the reason and the
          error is raised, unless ``resubmit=True``: then the request runs again as the job's
          next attempt (same id).

        ``job_options`` are those of :meth:`Session.attach` (``timeout``, ``on_status``, ``download``).

        :raises InvalidRequestError: no such job, or (with ``resubmit``) it has no request to run.
        :raises NotAttachableError: the work cannot be found again (the job is now ``interrupted``).
        :raises LedgerError: the client has no ledger, or it cannot be read.
        """
        from .resume import resume

        return resume(self, job_id, resubmit=resubmit, output_dir=output_dir, credentials=credentials,
                      **job_options)

    def cancel_job(self, job_id: str, credentials: Credentials | Mapping[str, Any] | None = None) -> Any:
        """Cancel a ledger job that another (or an ended) process started: the backend is asked
        to stop it where the work can be found again, and the ledger records it ``cancelled``.
        Returns the :class:`CancelResult` (``server_stopped`` says whether the backend stopped it).

        :raises InvalidRequestError: no such job, or it has finished already.
        """
        from .resume import cancel_job

        return cancel_job(self, job_id, credentials=credentials)

    async def aattach(self, ref: JobRef | str | dict[str, Any], **kwargs: Any) -> Job:
        """Async twin of :meth:`attach` (connecting, when needed, runs on a worker thread)."""
        return await asyncio.to_thread(lambda: self.attach(ref, **kwargs))

    def _forget(self, session: Session) -> None:
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)

    async def aconnect(self, target: str | Endpoint, **kwargs: Any) -> Session:
        """Async twin of :meth:`connect`."""
        return await asyncio.to_thread(lambda: self.connect(target, **kwargs))

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Start closing every session opened through this client; returns at once. Idempotent.

        The pooled HTTP client is closed once the sessions are (in the background);
        :meth:`wait_closed` waits for it all, and leaving ``with`` does both.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        threading.Thread(target=self._shutdown, args=(sessions,), name="vidbridge-client-close", daemon=True).start()

    def _shutdown(self, sessions: list[Session]) -> None:
        try:
            for session in sessions:
                session._native_closed.wait(CLOSE_TIMEOUT)
            if self._owns_http:
                self._http.close()
            if self._ledger is not None and self._owns_ledger:
                self._ledger.close()
        finally:
            self._shut.set()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until :meth:`close` has finished; ``True`` if it did within ``timeout`` seconds."""
        return self._shut.wait(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        if not self.wait_closed(CLOSE_TIMEOUT):
            log.warning("vidbridge.Client still closing after %s s", CLOSE_TIMEOUT)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await asyncio.to_thread(self.wait_closed, CLOSE_TIMEOUT)


def connect(
    target: str | Endpoint | Sequence[str | Endpoint],
    *,
    credentials: Credentials | Mapping[str, Any] | None = None,
    backend: str | None = None,
    policy: Any = None,
    **client_options: Any,
) -> Session:
    """Open a session with a private :class:`Client`, closed together with the session; a list
    of targets gives a pool over them (:mod:`vidbridge.pool`; ``policy``: its routing policy).

    ``client_options`` are :class:`Client`'s keyword arguments.
    """
    client = Client(**client_options)
    try:
        pool_options = {} if policy is None else {"policy": policy}
        session = client.connect(target, credentials=credentials, backend=backend, **pool_options)
    except BaseException:
        client.close()
        raise
    session.add_close_callback(lambda: (client.close(), client.wait_closed(CLOSE_TIMEOUT)))
    return session


def discover(urls: Iterable[str] = (), **kwargs: Any) -> list[Endpoint]:
    """Discover endpoints with a private :class:`Client` (see :meth:`Client.discover`)."""
    with Client() as client:
        return client.discover(urls, **kwargs)
