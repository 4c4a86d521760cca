"""The plugin contract: pluggy hook specifications every backend plugin implements.

A backend plugin is a module (or object) registered under the entry-point group ``vidbridge``::

    [project.entry-points.vidbridge]
    mybackend = "mybackend_vidbridge.plugin"

and decorated functions marked with :data:`vidbridge.hookimpl`. The entry-point name is the
plugin's name, and that name is the ``backend`` of every :class:`~vidbridge.Endpoint` it owns.

**Routing.** ``vidbridge_discover`` goes to every plugin and the results are merged. Every other
backend hook is called *only on the plugin that owns the endpoint or session*: a plugin never sees,
and never has to decline, calls meant for another backend.

**Arguments.** Implementations may accept any subset of a hook's parameters, by name. pluggy does
*not* pass arguments that an implementation declares with a default value: never give hook
parameters defaults.

**Errors.** Raise the classes of :mod:`vidbridge.errors`. Anything else escaping a hook is wrapped
in :class:`~vidbridge.PluginError` naming the plugin.

**Threads.** Hooks are called from worker threads: ``submit``/``status``/``fetch`` of one job run
on that job's monitor thread; ``cancel`` may be called from any thread while ``status`` is waiting.
Sessions must allow several jobs at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import argparse
    from contextlib import AbstractContextManager
    from pathlib import Path

    from .context import ConnectOptions, DiscoverOptions
    from .models import Artifact, CancelResult, Credentials, Endpoint, GenerationRequest, JobStatus
    from .refs import JobRef, OutputRef

PROJECT_NAME = "vidbridge"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorator marking a plugin's hook implementations: ``@vidbridge.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -------------------------------------------------------------------------------------------------
# Finding servers
# -------------------------------------------------------------------------------------------------


@hookspec
def vidbridge_discover(options: DiscoverOptions) -> list[Endpoint] | None:
    """Find endpoints of this plugin's backend.

    Check each URL in ``options.urls`` (given by the user) and, when ``options.probe_local`` is
    true, the backend's usual local addresses. Probe in parallel and finish within
    ``options.timeout`` seconds in total. Use ``options.http`` (a pooled :class:`httpx.Client`)
    for requests and send ``options.credentials``.

    :param options: what to look for, how long, and with which credentials and HTTP client.
    :returns: an :class:`~vidbridge.Endpoint` per server found, with ``backend`` set to this
        plugin's name (set by the core if left empty) and as much as is known (version, models,
        queue size, latency). A server that answers but is not this backend may be reported with
        ``healthy=False`` and a ``note`` such as ``"not Wan2GP"``; the core drops such a note when
        another plugin claims the URL. Return ``None`` or ``[]`` when nothing is found.
    :raises: nothing for unreachable servers (leave them out); the core isolates other errors.

    Called on every plugin; results are merged.
    """


# -------------------------------------------------------------------------------------------------
# Sessions and jobs (called only on the plugin that owns the endpoint / session)
# -------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def vidbridge_connect(endpoint: Endpoint, credentials: Credentials, options: ConnectOptions) -> Any:
    """Open a live session to ``endpoint``.

    :param endpoint: an endpoint this plugin owns (``endpoint.backend`` is this plugin's name).
    :param credentials: secrets to authenticate with (may be empty).
    :param options: timeouts, TLS verification, the pooled HTTP client, the cache folder and a
        per-server concurrency limit.
    :returns: a session object of the plugin's own type. It must have a ``close()`` method that
        releases everything it holds (threads, HTTP clients, temporary folders) and is harmless
        to call twice. The core passes it back to the other hooks.
    :raises AuthenticationError: credentials missing or refused (say which).
    :raises BackendConnectionError: the server cannot be reached (retryable: the core retries).
    :raises IncompatibleServerError: the server answers but is not one this plugin can use
        (another application, or the endpoints a job needs are missing).
    :raises JobTimeoutError: the server did not answer within ``options.connect_timeout`` (the
        core reports every timeout of a connect as ``reason="connect"``).

    Make **one** attempt: the core retries this hook on retryable errors, exactly
    ``options.retry_attempts`` attempts within ``options.connect_deadline()``, and stops at once
    when the client closes. A plugin that retried too would multiply the attempts.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def vidbridge_validate(session: Any, request: GenerationRequest) -> None:
    """Check ``request`` for this backend without any network call (optional hook).

    Called by ``Session.submit()`` on the host's own thread, before it returns the job, so bad
    input fails there: use only what the session already knows (its cached API description,
    model rules). :func:`vidbridge_submit` runs later, on the job's thread, when a slot is free.

    :param session: the object returned by :func:`vidbridge_connect`.
    :param request: the request.
    :raises InvalidRequestError: naming the field and what is allowed.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def vidbridge_submit(session: Any, request: GenerationRequest, job_id: str) -> Any:
    """Validate ``request`` for this backend and start generating it.

    Runs on the job's own thread, once the core's local queue gave the job a slot (at most
    ``ConnectOptions.max_sessions`` jobs of one client run at once per endpoint): it may block
    for the requests that start the job, never for the generation itself.

    Validate everything that can be checked locally *before* any network call and raise
    :class:`~vidbridge.InvalidRequestError` naming the field and what is allowed. Never retry a
    call that may have reached the server: it could generate twice.

    :param session: the object returned by :func:`vidbridge_connect`.
    :param request: the validated, backend-neutral request.
    :param job_id: the core's id for this job (for logs, per-task ids and manifests). A job's
        second attempt (the backend lost the first with no possible output, or a resume with
        ``resubmit=True``) is submitted again with the same ``job_id``.
    :returns: a job handle of the plugin's own type, passed back to ``status``, ``fetch`` and
        ``cancel``.
    :raises InvalidRequestError: before the network, for anything the backend cannot accept.
    :raises RejectedError: the backend refused the request; nothing is left queued.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def vidbridge_status(session: Any, handle: Any, current: JobStatus, wait: float) -> JobStatus | None:
    """Return the job's newest normalised status.

    The core calls this in a loop on the job's monitor thread until the phase is terminal.
    Block up to ``wait`` seconds for something to change (push-based backends wait on an event;
    poll-based ones poll once), then return ``current.evolve(...)`` with what changed, or
    ``current`` itself if nothing did. Report ``completed`` only when ``fetch`` can run.

    :param session: the object returned by :func:`vidbridge_connect`.
    :param handle: the job handle returned by :func:`vidbridge_submit`.
    :param current: the latest status the core holds (its ``job_id`` is the core's id).
    :param wait: seconds this call may block.
    :returns: a :class:`~vidbridge.JobStatus`. A failed job is returned with phase ``failed``
        and ``error`` filled, or by raising the matching :class:`~vidbridge.BackendError`.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def vidbridge_fetch(
    session: Any, handle: Any, destination: Path, progress: Callable[[int, int | None], None]
) -> list[Artifact] | None:
    """Download the finished job's own artifacts into ``destination`` and verify them.

    Use :func:`vidbridge.download.download_verified` (streamed to a temporary name in
    ``destination``, size/SHA-256/container checked, renamed atomically, name sanitised, sidecar
    manifest). Only this job's outputs, never earlier outputs of the same session.

    :param session: the object returned by :func:`vidbridge_connect`.
    :param handle: the job handle returned by :func:`vidbridge_submit`.
    :param destination: an existing folder.
    :param progress: call with ``(bytes_so_far, total_bytes_or_None)`` while downloading.
    :returns: the verified :class:`~vidbridge.Artifact` list (at least one).
    :raises IntegrityError: a download kept failing verification.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def vidbridge_cancel(session: Any, handle: Any) -> CancelResult | None:
    """Stop the job, on the server if the backend allows it.

    May be called from any thread, at any phase, and more than once. After it returns, ``status``
    must soon report ``cancelled`` (unless the job already ended).

    :param session: the object returned by :func:`vidbridge_connect`.
    :param handle: the job handle returned by :func:`vidbridge_submit`.
    :returns: :class:`~vidbridge.CancelResult` whose ``server_stopped`` says whether the backend
        stopped the work (``False``: only the client stopped waiting).

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def vidbridge_job_ref(session: Any, handle: Any) -> dict[str, Any] | None:
    """The backend's own ids for this job, to find its work again later (optional hook).

    The core calls it after ``submit``, at each phase change and at completion, and stores the
    latest answer as ``job.ref.data`` (so ids the backend gives later, such as output names,
    reach the reference). Return only JSON values (no secrets: references are
    written to files and ledgers), or ``None`` while the backend has not given its ids yet.

    :param session: the object returned by :func:`vidbridge_connect`.
    :param handle: the job handle returned by :func:`vidbridge_submit`.
    :returns: a JSON-able dict, or ``None``.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def vidbridge_attach(session: Any, ref: JobRef) -> Any:
    """Follow again the work a job reference names, from a new session (optional hook).

    ``ref.data`` is what :func:`vidbridge_job_ref` returned, possibly in another process. Return a
    job handle that ``status``, ``fetch``, ``outputs`` and ``cancel`` accept, in the state the
    backend reports now (it may be already completed). Without this hook the core raises
    :class:`~vidbridge.NotAttachableError` with ``reason="unsupported"``.

    :param session: the object returned by :func:`vidbridge_connect`.
    :param ref: the reference (``ref.backend`` is this plugin, ``ref.endpoint`` this endpoint).
    :returns: a job handle.
    :raises NotAttachableError: the backend cannot find this work again; ``reason`` says why
        (``"session_bound"``, ``"unknown"``, ``"invalid"``...).

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def vidbridge_outputs(session: Any, handle: Any) -> list[OutputRef] | None:
    """The finished job's outputs as they are on the backend, without downloading (optional hook).

    Called for jobs submitted with ``download=False`` once ``status`` reported ``completed``
    (``job.outputs()``); ``job.fetch(destination)`` then downloads through ``vidbridge_fetch``.

    :param session: the object returned by :func:`vidbridge_connect`.
    :param handle: the job handle.
    :returns: :class:`~vidbridge.OutputRef` list (name, URL, size when known).

    Stops at the first non-None result.
    """


# -------------------------------------------------------------------------------------------------
# Extras: command line and an embedded local backend
# -------------------------------------------------------------------------------------------------


@hookspec
def vidbridge_register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add sub-commands to the ``vidbridge`` command line.

    Add a parser with ``subparsers.add_parser(name, help=...)`` and set its handler with
    ``parser.set_defaults(handler=function)``; the handler receives the parsed
    :class:`argparse.Namespace` and returns the exit code. Keep imports inside the handler so the
    CLI starts fast.

    :param subparsers: the ``vidbridge`` parser's sub-command collection.
    """


@hookspec(firstresult=True)
def vidbridge_embedded_backend(options: dict[str, Any]) -> AbstractContextManager[str] | None:
    """Offer a local backend to use when no server is configured or found.

    :param options: hints such as ``{"step_delay": 0.0}``; ignore unknown keys.
    :returns: a context manager that starts the backend and yields its URL, and stops it on
        exit; ``None`` if this plugin has none.

    Stops at the first non-None result.
    """
