"""Every use of gradio_client's (and huggingface_hub's) non-public parts, in one place.

gradio_client has no API for what a long-running host needs, so this module reaches into it:

=================================  ===================================================================
what                               why
=================================  ===================================================================
:class:`FastClient`                a ``Client`` built from an already fetched ``/config`` and API
                                   description (overrides ``_get_config`` and ``_get_api_info``), with
                                   lazily built ``endpoints`` (replaces ``Client.endpoints``), uploads
                                   through an upload cache (overrides ``Endpoint._upload_file``),
                                   update queues that wake listeners (overrides ``new_helper``), no
                                   telemetry thread (overrides ``_telemetry_thread``)
:func:`use_daemon_workers`         replaces ``executor``, ``helper_executor``, ``stream_executor``
:func:`stop_client`                sets ``_kill_heartbeat``, joins ``heartbeat``, shuts the pools down
:func:`drain`, :func:`listen`      read and watch ``Job.communicator.updates``
:func:`joined_queue`               ``Job.communicator.event_id``: whether the server accepted the call
:func:`session_hash`               ``Client.session_hash``: the gradio session, for job references
:func:`end_jobs`                   ``Job.cancel()`` on calls that have not ended
:func:`quiet_environment`          ``huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY``
=================================  ===================================================================

and re-exports the gradio_client types the plugin reads (``Status``, its exceptions). Nothing else
in the plugin imports ``gradio_client`` except its public ``Client`` type and ``handle_file``.

:func:`check` verifies, against the installed release, every attribute, method and signature
listed here, and raises :class:`GradioClientChanged` naming each one that changed. A test runs it
(``tests/wan2gp/test_compat.py``), so a gradio_client release that breaks one fails CI loudly
instead of hanging hosts; ``pyproject.toml`` bounds gradio_client to the releases checked
(:data:`SUPPORTED`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import threading
from typing import Any, Iterator, Mapping

from gradio_client import Client
from gradio_client import client as _client_module
from gradio_client import exceptions as _exceptions
from gradio_client import utils as _utils

from .signals import SignalQueue
from .workers import DaemonExecutor

__all__ = ["GradioClientChanged", "SUPPORTED", "EXECUTORS", "Status", "AppError", "GradioAuthenticationError",
           "TooManyRequestsError", "QueueError", "FastClient", "check", "check_client", "use_daemon_workers",
           "stop_client", "session_hash", "drain", "listen", "joined_queue", "end_jobs", "quiet_environment"]

#: gradio_client releases this module was checked against: ``>=`` lowest, ``<`` bound (pyproject.toml).
SUPPORTED = ("2.7.0", "2.8")

#: The Client attributes holding its thread pools, and the workers each gets (x max_workers).
EXECUTORS = {"executor": 1, "helper_executor": 2, "stream_executor": 0}

Status = _utils.Status
AppError = _exceptions.AppError
GradioAuthenticationError = _exceptions.AuthenticationError
TooManyRequestsError = _utils.TooManyRequestsError
QueueError = _utils.QueueError

# -- what check() verifies ---------------------------------------------------------------------------

#: Client methods overridden or called here, with the parameters our overrides/calls rely on.
_CLIENT_METHODS: dict[str, tuple[str, ...]] = {
    "__init__": ("src", "token", "max_workers", "verbose", "httpx_kwargs", "headers", "download_files",
                 "ssl_verify", "analytics_enabled"),
    "_get_config": (),
    "_get_api_info": (),
    "new_helper": ("fn_index", "headers"),
    "_telemetry_thread": (),
    "submit": ("args", "api_name"),
    "close": (),
}
#: Attributes Client.__init__ sets that we read or replace (checked in its source, and on an
#: instance by :func:`check_client`).
_CLIENT_ATTRIBUTES = ("config", "endpoints", "protocol", "_info", "session_hash", "_kill_heartbeat", "heartbeat",
                      *EXECUTORS)
_ENDPOINT_METHODS: dict[str, tuple[str, ...]] = {
    "__init__": ("client", "fn_index", "dependency", "protocol"),
    "_upload_file": ("f", "data_index"),
}
_DATACLASS_FIELDS: dict[str, tuple[str, ...]] = {
    "Communicator": ("updates", "event_id"),
    "StatusUpdate": ("code", "rank", "queue_size", "eta", "progress_data", "log", "type"),
    "OutputUpdate": ("outputs", "type"),
    "ProgressUnit": ("index", "length", "desc"),
}
_STATUS_MEMBERS = ("IN_QUEUE", "PROCESSING", "ITERATING")


class GradioClientChanged(RuntimeError):
    """The installed gradio_client no longer has an internal part vidbridge relies on."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradio_client")
    except PackageNotFoundError:  # pragma: no cover - only from a source tree without metadata
        return "unknown"


def _signature_problems(owner: type, methods: Mapping[str, tuple[str, ...]]) -> list[str]:
    problems = []
    for name, parameters in methods.items():
        method = getattr(owner, name, None)
        if not callable(method):
            problems.append(f"{owner.__name__}.{name} is gone")
            continue
        try:
            present = set(inspect.signature(method).parameters)
        except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
            problems.append(f"{owner.__name__}.{name} has no readable signature")
            continue
        missing = [p for p in parameters if p not in present]
        if missing:
            problems.append(f"{owner.__name__}.{name}() no longer takes {', '.join(missing)}")
    return problems


def problems() -> list[str]:
    """What this module uses that the installed gradio_client lacks (empty when all is there)."""
    found = _signature_problems(Client, _CLIENT_METHODS)
    try:
        init_source = inspect.getsource(Client.__init__)
    except (OSError, TypeError):  # pragma: no cover - no source shipped
        init_source = ""
    found += [f"Client.__init__ no longer sets self.{name}" for name in _CLIENT_ATTRIBUTES
              if f"self.{name} " not in init_source and f"self.{name}:" not in init_source
              and f"self.{name}=" not in init_source]
    endpoint = getattr(_client_module, "Endpoint", None)
    job = getattr(_client_module, "Job", None)
    if not isinstance(endpoint, type):
        found.append("gradio_client.client.Endpoint is gone")
    else:
        found += _signature_problems(endpoint, _ENDPOINT_METHODS)
    if not isinstance(job, type) or "communicator" not in inspect.signature(job.__init__).parameters:
        found.append("gradio_client.client.Job no longer takes a communicator")
    else:
        found += [f"Job.{name} is gone" for name in ("cancel", "done", "result", "add_done_callback")
                  if not callable(getattr(job, name, None))]
    for name, fields in _DATACLASS_FIELDS.items():
        cls = getattr(_utils, name, None)
        if cls is None or not dataclasses.is_dataclass(cls):
            found.append(f"gradio_client.utils.{name} is gone (or no longer a dataclass)")
            continue
        present = {f.name for f in dataclasses.fields(cls)}
        found += [f"gradio_client.utils.{name} has no field {field}" for field in fields if field not in present]
    communicator = getattr(_utils, "Communicator", None)
    if communicator is not None and dataclasses.is_dataclass(communicator):
        updates = next((f for f in dataclasses.fields(communicator) if f.name == "updates"), None)
        if updates is not None and getattr(updates, "default_factory", None) is not asyncio.Queue:
            found.append("gradio_client.utils.Communicator.updates is no longer an asyncio.Queue")
    found += [f"gradio_client.utils.Status.{member} is gone" for member in _STATUS_MEMBERS
              if member not in Status.__members__]
    from huggingface_hub import constants

    if not hasattr(constants, "HF_HUB_DISABLE_TELEMETRY"):
        found.append("huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY is gone")
    return found


def check() -> None:
    """Raise :class:`GradioClientChanged` listing every internal part used here that the installed
    gradio_client (or huggingface_hub) no longer has."""
    found = problems()
    if found:
        raise GradioClientChanged(
            f"gradio_client {_version()} changed what vidbridge.plugins.wan2gp.compat relies on: "
            + "; ".join(found) + f" (checked against {SUPPORTED[0]} <= gradio_client < {SUPPORTED[1]})")


def check_client(client: Any) -> None:
    """Raise :class:`GradioClientChanged` unless a built ``client`` has every attribute used here."""
    missing = [name for name in _CLIENT_ATTRIBUTES if not hasattr(client, name)]
    if missing:
        raise GradioClientChanged(
            f"gradio_client {_version()}: Client has no {', '.join(missing)}; "
            "vidbridge.plugins.wan2gp.compat must be updated for this release")


# -- the Client ---------------------------------------------------------------------------------------


class _LazyEndpoints(dict):
    """gradio_client's ``endpoints`` map, building each ``Endpoint`` on first use.

    ``Client()`` builds one ``Endpoint`` per event, each scanning the component list for every
    input and output: quadratic, ~0.28 s of CPU on a server of WanGP's size, for the handful of
    endpoints this plugin calls.
    """

    def __init__(self, client: FastClient, endpoint_class: type) -> None:
        super().__init__()
        self._client = client
        self._class = endpoint_class
        self._deps = {d.get("id", i): d for i, d in enumerate(client.config["dependencies"])}

    def __missing__(self, fn_index: int) -> Any:
        dependency = self._deps[fn_index]  # KeyError as the plain dict would raise
        endpoint = self._class(self._client, fn_index, dependency, self._client.protocol)
        self[fn_index] = endpoint
        return endpoint

    def _fill(self) -> None:
        for fn_index in self._deps:
            if not dict.__contains__(self, fn_index):
                self[fn_index]  # noqa: B018 - builds it

    def __contains__(self, fn_index: object) -> bool:
        return fn_index in self._deps

    def values(self):  # type: ignore[override]
        self._fill()
        return super().values()

    def items(self):  # type: ignore[override]
        self._fill()
        return super().items()


class _CachingEndpoint(_client_module.Endpoint):
    """An Endpoint whose uploads go through the client's upload cache (each file once)."""

    def _upload_file(self, f: dict, data_index: int) -> dict[str, Any]:  # gradio_client's upload path
        import os

        path = f.get("path")
        cache = getattr(self.client, "upload_cache", None)
        if cache is None or not isinstance(path, str) or not os.path.isfile(path):
            return super()._upload_file(f, data_index)
        return cache.get_or_upload(path, lambda: super(_CachingEndpoint, self)._upload_file(f, data_index))


class FastClient(Client):
    """A gradio ``Client`` built from an already fetched ``/config`` and API description.

    Behaves as ``Client`` for everything this plugin uses (``submit``, ``predict``, ``view_api``,
    heartbeat, uploads); endpoints are built on first use, on daemon worker threads.

    :param config: the server's ``/config``.
    :param info: its API description (``/info``, filtered as gradio_client filters it).
    :param upload_cache: an object with ``get_or_upload(path, upload)`` (see ``UploadCache``).
    :param kwargs: ``Client``'s own keyword arguments.
    """

    def __init__(self, url: str, *, config: dict[str, Any], info: dict[str, Any], upload_cache: Any,
                 **kwargs: Any) -> None:
        self._given_config = config
        self._given_info = info
        self.upload_cache = upload_cache
        super().__init__(url, **kwargs)
        use_daemon_workers(self, kwargs.get("max_workers", 40))  # never block the host's exit
        # Construction ran with an empty dependency list (see _get_config); put the real one back.
        self.config = config
        self.endpoints = _LazyEndpoints(self, _CachingEndpoint)

    def new_helper(self, fn_index: int, headers: dict[str, str] | None = None) -> Any:
        """gradio_client's per-call helper, with an update queue that wakes listeners (no polling)."""
        helper = super().new_helper(fn_index, headers)
        helper.updates = SignalQueue()
        return helper

    def _get_config(self) -> dict:
        light = dict(self._given_config)
        light["dependencies"] = []  # no Endpoint objects built during construction
        return light

    def _get_api_info(self) -> dict:
        return self._given_info

    def _telemetry_thread(self) -> None:
        # gradio_client starts this unless GRADIO_ANALYTICS_ENABLED says otherwise, whatever
        # analytics_enabled=False says (it ORs the two): a HEAD to huggingface.co per Client.
        return None


def use_daemon_workers(client: Any, max_workers: int) -> None:
    """Give ``client`` thread pools of daemon threads (see :mod:`.workers`), before any call.

    The sizes keep gradio_client's own rule: a call's two helpers have their own pool, the event
    stream reader its own thread, so no pool can starve the others.
    """
    check_client(client)
    for name, per_worker in EXECUTORS.items():
        old = getattr(client, name)
        setattr(client, name, DaemonExecutor(max(1, per_worker * max_workers), f"wan2gp-{name}"))
        old.shutdown(wait=False)  # never used: it has no threads yet


def session_hash(client: Any) -> str:
    """The gradio session a Client is (WanGP keeps a session's form, queue and gallery under it)."""
    return str(client.session_hash)


def app_id(client: Any) -> str | None:
    """The gradio ``app_id`` in the config a Client read at connect: random for every server
    process, so a different one later means the server restarted. None when absent."""
    config = getattr(client, "config", None)
    value = config.get("app_id") if isinstance(config, dict) else None
    return None if value is None else str(value)


def stop_client(client: Any) -> None:
    """Stop a Client's heartbeat and thread pools without ``Client.close()``'s 1 s join. Never raises."""
    kill = getattr(client, "_kill_heartbeat", None)
    if kill is not None:
        kill.set()
    heartbeat = getattr(client, "heartbeat", None)
    if heartbeat is not None and heartbeat.is_alive():
        heartbeat.join(timeout=0.2)  # it notices the flag at its next beat; daemon meanwhile
    for name in EXECUTORS:
        pool = getattr(client, name, None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


# -- jobs (gradio_client.Job) -------------------------------------------------------------------------


def drain(job: Any) -> list[Any]:
    """Every update gradio_client queued for ``job`` since the last call (``StatusUpdate`` and
    ``OutputUpdate``), oldest first. Non-blocking."""
    communicator = getattr(job, "communicator", None)
    if communicator is None:
        return []
    found = []
    # An asyncio.Queue used only with put_nowait/get_nowait: plain deque operations, thread-safe
    # enough under the GIL as gradio_client itself uses it.
    while True:
        try:
            found.append(communicator.updates.get_nowait())
        except asyncio.QueueEmpty:
            return found


def listen(job: Any, wake: Any) -> None:
    """Call ``wake()`` on every update of ``job`` and when it ends (no polling)."""
    updates = getattr(getattr(job, "communicator", None), "updates", None)
    if isinstance(updates, SignalQueue):
        updates.listen(wake)
    job.add_done_callback(lambda _: wake())


def joined_queue(job: Any) -> bool:
    """True once the server accepted ``job``'s call into its queue (it has an event id): from then
    on the call may run, and repeating it may run it twice."""
    return getattr(getattr(job, "communicator", None), "event_id", None) is not None


def end_jobs(jobs: list[Any]) -> None:
    """Stop following gradio jobs that have not ended: each is cancelled the way gradio_client does
    it (the server is asked to stop the event and completes it; the local helpers end), so the
    event stream they held closes. Never raises; a failure is logged with its reason."""
    import logging

    for job in jobs:
        try:
            if job is not None and not job.done():
                job.cancel()
        except Exception as exc:  # noqa: BLE001 - best effort while closing
            logging.getLogger("vidbridge.plugins.wan2gp").debug(
                "stopping a gradio call failed (%s: %s); its daemon threads end with the stream",
                type(exc).__name__, exc)


# -- huggingface_hub ------------------------------------------------------------------------------------

_HUB_FLAG_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_environment() -> Iterator[None]:
    """While a gradio ``Client`` is built: no request to huggingface.co, and no environment change.

    ``Client()`` builds its User-Agent with huggingface_hub's ``build_hf_headers``; huggingface_hub
    2.x then looks for "AI agent" harnesses in a registry it fetches from huggingface.co
    (``GET /api/agent-harnesses``, 3 s timeout, once per process, cached 24 h in ``HF_HOME``) unless
    its telemetry is off. Only ``HF_HUB_OFFLINE`` / ``HF_HUB_DISABLE_TELEMETRY`` switch that off,
    and huggingface_hub reads them once, at import: setting them later does nothing, setting them
    before would change every huggingface_hub user in the host process (and its children). So the
    flag huggingface_hub reads them into is turned on for the construction only (the lock keeps
    concurrent constructions from restoring each other's value). Another thread of the host that
    builds Hub headers in that instant gets a User-Agent without the agent and torch parts.
    gradio_client's own telemetry thread is switched off in :class:`FastClient`.
    """
    from huggingface_hub import constants

    with _HUB_FLAG_LOCK:
        saved = constants.HF_HUB_DISABLE_TELEMETRY
        constants.HF_HUB_DISABLE_TELEMETRY = True
        try:
            yield
        finally:
            constants.HF_HUB_DISABLE_TELEMETRY = saved
