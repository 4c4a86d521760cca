"""One generation job on one gradio session: WanGP's multi-call flow and its status feed.

Flow (every call on the same Client, see CONTRACT.md), in the order of WanGP's own Generate chain
(wgp.py): [change_model_from_target, fill_inputs, refresh_model_dropdowns] ->
save_inputs(target="state") -> refresh_gallery (before) -> process_prompt_and_add_tasks ->
activate_status -> refresh_status_async beside process_tasks -> refresh_gallery (after; the diff
is this job's output) -> finalize_generation -> unload_model_if_needed.

Why the order matters: ``activate_status`` turns the session's status display on and only
``process_tasks`` turns it off, when it ends. Activated after the task ended, WanGP's status feed
loops forever and, as gradio runs one feed at a time, every later feed on the server waits behind
it. So the display is activated, and acknowledged, before ``process_tasks`` is submitted, and
every activation is followed by a ``process_tasks`` that is never cancelled. ``finalize_generation``
ends WanGP's ``in_progress``: without it a later abort or clear_queue in this gradio session would
fire WanGP's model-wide interrupt, stopping whatever another user generates.

A consumer thread drains every gradio update of ``process_tasks`` and the status stream (no update
is missed, no extra round trip) into a :class:`JobState` that ``vidbridge_status`` waits on. The
steps after the output is known (finalize, waiting for the feed to end) run after the job is
reported complete, before its gradio session goes back to the pool.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from gradio_client.utils import Status

from vidbridge import (
    BackendConnectionError,
    GenerationRequest,
    InvalidRequestError,
    JobFailedError,
    JobStatus,
    Phase,
    RateLimitedError,
    RejectedError,
    TransientServerError,
    VidbridgeError,
)
from vidbridge.backend import redact_url, retrying

from .api import EndpointNotFound, update_value
from .catalog import family_of
from .compat import end_jobs
from .errors import cancelled, translate
from .gallery import GalleryFormatError, GalleryItem, new_items, parse_gallery
from .payload import FormPlan, media_value, plan_form, validate_for_model
from .session import PooledClient, Wan2GPSession

__all__ = ["Wan2GPJob", "JobState", "prepare"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

#: Seconds the status feed may take to end after process_tasks did (WanGP checks every 0.5 s).
_FEED_END_GRACE = 5.0
_AUTOSAVE_NOTE = "Error Queue autosaved"  # WanGP's info after a failed task: not the failure's cause
_RESTARTED = "has been restarted"  # WanGP's gr.Error when the session's form state is gone


class _ServerDown(Exception):
    """Internal: a step failed and nothing listens at the server's address."""


class _Restart(Exception):
    """Internal: continue on a fresh gradio session. Raised only while nothing of this job can run
    on the current one (before ``process_tasks`` was ever called on it)."""

    def __init__(self, error: VidbridgeError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class JobState:
    """What the consumer thread knows; guarded by ``Wan2GPJob.changed``."""

    phase: Phase = Phase.QUEUED
    queue_position: int | None = None
    queue_size: int | None = None
    eta: float | None = None
    step: int | None = None
    total_steps: int | None = None
    message: str | None = None
    error: VidbridgeError | None = None
    outputs: list[GalleryItem] = field(default_factory=list)
    version: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _drain(job: Any) -> list[Any]:
    # gradio_client pushes every StatusUpdate/OutputUpdate into communicator.updates (an
    # asyncio.Queue used only with put_nowait/get_nowait here: plain deque operations).
    communicator = getattr(job, "communicator", None)
    if communicator is None:
        return []
    found = []
    while True:
        try:
            found.append(communicator.updates.get_nowait())
        except Exception:  # asyncio.QueueEmpty
            return found


def _phase_from_text(text: str) -> Phase | None:
    lowered = text.lower()
    if "loading model" in lowered or "loading" in lowered and "model" in lowered:
        return Phase.LOADING_MODEL
    if "decod" in lowered:
        return Phase.DECODING
    if "encod" in lowered and "prompt" in lowered:
        return Phase.ENCODING
    if "denois" in lowered or re.search(r"\bstep", lowered):
        return Phase.INFERRING
    if "generating" in lowered:
        return Phase.STARTING
    return None


def prepare(session: Wan2GPSession, request: GenerationRequest) -> tuple[FormPlan, str, str]:
    """Everything checked before any network call: ``(plan, model, save_inputs endpoint name)``.

    :raises InvalidRequestError: unknown preset, unknown settings field, bad frames/resolution.
    """
    plan = plan_form(request)
    try:
        save = session.api.find("save_inputs", requires=["target", "prompt"])
    except EndpointNotFound as exc:
        shown = redact_url(session.url)
        raise JobFailedError(f"{shown}: not a usable WanGP server ({exc})", endpoint=shown) from None
    session.api.check_known(save, request.settings)
    known = {p.name for p in session.api.parameters(save)}
    for name in [n for n in plan.values if n not in known]:
        # Keys of an imported settings file this server does not have (another WanGP version).
        log.info("settings file key %r is not a field of this server's form; ignored", name)
        plan.values.pop(name)
    model = plan.model or session.default_model()
    if not model:
        raise InvalidRequestError("model: the server does not say which model it runs; name one", field="model")
    choices = session.api_model_choices()
    default = session.default_model()
    resolutions = None
    parameter = session.api.parameter(save, "resolution")
    # view_api's choices follow the server's start-up model: only trust them for its family.
    if parameter is not None and default and family_of(model) is not None and family_of(model) == family_of(default) \
            and ("720" in model) == ("720" in default):
        resolutions = parameter.choices
    if choices and model not in choices and family_of(model) is None:
        log.info("model %r is unknown to this client; the server will validate it", model)
    validate_for_model(plan, model, resolutions)
    return plan, model, save


class Wan2GPJob:
    """A running job: the handle ``vidbridge_submit`` returns."""

    def __init__(self, session: Wan2GPSession, request: GenerationRequest, job_id: str) -> None:
        self.session = session
        self.request = request
        self.job_id = job_id
        self.client_id = f"vb-{job_id}"[:64]
        self.changed = threading.Condition()
        self.state = JobState()
        self.model: str | None = None
        self.settings_sent: dict[str, Any] = {}
        self.pooled: PooledClient | None = None
        self._tasks_job: Any = None
        self._status_job: Any = None
        self._wake = threading.Event()
        self._cancel_requested = False
        self._server_stopped = False
        self._started_processing = False
        self._consumer: threading.Thread | None = None
        #: Set once the job is over on this side: outcome reported, WanGP's chain finished and the
        #: gradio session back in the pool (or closed).
        self.settled = threading.Event()
        self.started_at = time.time()

    def __repr__(self) -> str:
        return f"<Wan2GPJob {self.job_id} {self.state.phase.value} on {redact_url(self.session.url)}>"

    # -- calls -------------------------------------------------------------------------------------

    def _call(self, step: str, api_name: str, *args: Any, timeout: float | None = None) -> tuple[Any, list[str]]:
        """One blocking call on this job's Client: ``(result, info messages seen)``."""
        assert self.pooled is not None
        timeout = self.session.options.request_timeout if timeout is None else timeout
        job = None
        try:
            job = self.pooled.client.submit(*args, api_name=api_name)
            result = job.result(timeout=timeout)
        except Exception as exc:
            error = translate(exc, endpoint=self.session.url, step=f"{step} ({api_name})")
            error.__dict__["_joined"] = getattr(getattr(job, "communicator", None), "event_id", None) is not None
            raise error from None
        logs = [u.log[0] for u in _drain(job) if getattr(u, "log", None)]
        return result, logs

    def _attempts(self) -> int:
        # Idempotent reads and form saves are free to repeat: twice the configured attempts.
        return max(1, self.session.options.retry_attempts) * 2

    def _step(self, step: str, api_name: str, *args: Any, before_queue: bool = True) -> tuple[Any, list[str]]:
        """An idempotent call, retried on transient errors (429 Retry-After honoured).

        :raises _Restart: ``before_queue`` and the server is down or has lost this gradio
            session's state (it restarted): the caller continues on a fresh session.
        """
        options = self.session.options
        try:
            for attempt in retrying(attempts=self._attempts(), max_delay=max(options.request_timeout, 10.0)):
                with attempt:
                    try:
                        return self._call(step, api_name, *args)
                    except BackendConnectionError:
                        if self.session.server_down():
                            raise _ServerDown() from None
                        raise
        except _ServerDown:
            shown = redact_url(self.session.url)
            error = BackendConnectionError(f"{shown}: {step}: the server is not running (connection refused)",
                                           endpoint=shown)
            if before_queue:
                raise _Restart(error) from None
            raise error from None
        except JobFailedError as exc:
            if before_queue and _RESTARTED in str(exc):
                raise _Restart(exc) from None
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- submit ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Validate, take a gradio session, queue the task and start following it.

        Every step before ``process_tasks`` is safe to repeat: transient errors are retried, and
        when the server is down (it restarts) or lost the gradio session's state, the whole
        preparation continues on a fresh gradio session once the server answers again (within
        ``connect_timeout x retry_attempts``). Anything this job may have queued on an abandoned
        session never runs: only ``process_tasks`` runs a session's queue, and it is never called
        there.

        :raises InvalidRequestError: before any network call.
        :raises RejectedError: the server refused the task (nothing is left queued).
        """
        plan, model, save = prepare(self.session, self.request)
        self.model = model
        options = self.session.options
        deadline = time.monotonic() + options.connect_timeout * max(1, options.retry_attempts)
        self.pooled = self.session.acquire(timeout=None)
        self.pooled.jobs += 1
        restarts = 0
        try:
            while True:
                try:
                    self._queue_task(plan, model, save)
                    break
                except _Restart as restart:
                    restarts += 1
                    log.info("%s: continuing %s on a fresh gradio session (%s)", redact_url(self.session.url),
                             self.job_id, restart.error)
                    self.session.release(self.pooled, broken=True)
                    self.pooled = None
                    if restarts > self._attempts():
                        raise restart.error from None
                    self.session.wait_until_up(deadline, restart.error)
                    self.pooled = self.session.acquire(timeout=None, fresh=True)
                    self.pooled.jobs += 1
        except BaseException as exc:
            if self.pooled is not None:
                self.session.release(self.pooled, broken=isinstance(exc, BackendConnectionError))
            raise
        self._consumer = threading.Thread(target=self._consume, name=f"wan2gp-{self.job_id}", daemon=True)
        self._consumer.start()

    def _read_form(self, model: str) -> None:
        """Store ``model``'s form and resolution choices from ``fill_inputs`` (no server side effect;
        the gradio session must be on ``model``)."""
        pooled = self.pooled
        assert pooled is not None
        api = self.session.api
        fill = api.find("fill_inputs", exact=[])
        outputs, _ = self._step("reading the model's form", fill)
        values = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        mapped = api.map_outputs_to_inputs(fill, api.find("save_inputs", requires=["target", "prompt"]), values)
        pooled.forms[model] = {name: update_value(v) for name, v in mapped.items()
                               if not (isinstance(v, dict) and v.get("__type__") == "update" and "value" not in v)}
        resolution = mapped.get("resolution")
        if isinstance(resolution, dict) and resolution.get("choices"):
            pooled.resolutions[model] = tuple(c[1] if isinstance(c, (list, tuple)) else c
                                              for c in resolution["choices"])

    def _read_dropdowns(self) -> str | None:
        """Refresh the session's model dropdowns (this widens its choices, nothing else) and return
        the model the session is on, or ``None`` when the server does not tell."""
        pooled = self.pooled
        assert pooled is not None
        api = self.session.api
        if not api.has("refresh_model_dropdowns"):
            return None
        refresh = api.find("refresh_model_dropdowns", exact=[])
        dropdowns, _ = self._step("reading the model lists", refresh)
        values = dropdowns if isinstance(dropdowns, (list, tuple)) else [dropdowns]
        add = api.find("process_prompt_and_add_tasks", requires=["model_choice"])
        selector = api.map_outputs_to_inputs(refresh, add, values).get("model_choice")
        current = update_value(selector)
        if isinstance(selector, dict) and selector.get("choices"):
            pooled.choices = frozenset(str(c[1] if isinstance(c, (list, tuple)) else c) for c in selector["choices"])
        return str(current) if isinstance(current, str) and current else None

    def _target_model(self, requested: str | None, fallback: str) -> str:
        """The model to generate with; switches the gradio session only when it must.

        A fresh gradio session starts on the server's last used model, which may differ from what
        the cached ``view_api`` says, so it is read first. Without a requested model the session's
        own model is used: switching would rewrite the server's remembered model for everyone.
        """
        pooled = self.pooled
        assert pooled is not None
        if pooled.model is None:
            pooled.model = self._read_dropdowns()
        model = requested or pooled.model or fallback
        if requested and pooled.model != requested:
            log.warning("switching %s to model %r: WanGP also makes it the server's remembered default model",
                        redact_url(self.session.url), model)
            api = self.session.api
            self._step("switching model", api.find("change_model_from_target", requires=["model_type"]), model)
            pooled.model = model
            self._read_form(model)
            self._read_dropdowns()
        elif model not in pooled.forms:
            self._read_form(model)
        return model

    def _queue_task(self, plan: FormPlan, model: str, save: str) -> None:
        pooled = self.pooled
        assert pooled is not None
        api = self.session.api
        model = self.model = self._target_model(plan.model, model)
        validate_for_model(plan, model, pooled.resolutions.get(model))
        values = {**api.defaults(save), **pooled.forms.get(model, {}), **plan.values}
        values["target"] = "state"  # never "settings": that overwrites the server's saved defaults
        values["client_id"] = self.client_id
        values["mode"] = values.get("mode") or ""
        for name, paths in plan.media.items():
            values[name] = media_value(api, save, name, paths)
        self.settings_sent = {k: v for k, v in values.items() if k not in plan.media and k != "target"}
        self.settings_sent.update({k: [str(p) for p in v] for k, v in plan.media.items()})
        self._step("saving the form", save, *api.positional(save, values))
        if pooled.gallery is None:  # a fresh gradio session: what its gallery already lists is not ours
            pooled.gallery = {item.path for item in self._gallery("reading the gallery of a new session")}
        add = api.find("process_prompt_and_add_tasks", requires=["model_choice"])
        args = {"current_gallery_tab": 0, "model_choice": model}
        messages = self._add_task(add, api.positional(add, args))
        if messages:
            self._clear_queue()
            text = " ".join(messages)
            shown = redact_url(self.session.url)
            raise RejectedError(f"{shown} refused the request: {text}", endpoint=shown,
                                server_message=text)
        self._start_processing()

    def _add_task(self, add: str, args: list[Any]) -> list[str]:
        """``process_prompt_and_add_tasks``: queues the task in this gradio session.

        Repeated here only when the server refused the call itself (HTTP 429/503 on the queue
        join, so no event exists). Any other failure may have queued the task: the session is
        abandoned (:class:`_Restart`), so that task can never run.
        """
        for attempt in range(self._attempts()):
            try:
                _, messages = self._call("queueing the task", add, *args)
                return messages
            except VidbridgeError as error:
                if isinstance(error, JobFailedError) and _RESTARTED in str(error):
                    raise _Restart(error) from None
                if not error.retryable:
                    raise
                refused = isinstance(error, (RateLimitedError, TransientServerError)) and \
                    getattr(error, "status_code", 429) in (429, 503) and not error.__dict__.get("_joined")
                if not refused or attempt + 1 >= self._attempts():
                    raise _Restart(error) from None
                retry_after = getattr(error, "retry_after", None)
                time.sleep(min(retry_after if retry_after is not None else 0.2 * 2 ** attempt, 20.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _clear_queue(self) -> None:
        api = self.session.api
        try:
            if api.has("clear_queue_action"):
                self._call("clearing the queue", api.find("clear_queue_action", exact=[]))
        except VidbridgeError as exc:
            log.debug("clearing the queue after a rejection failed: %s", exc)

    def _gallery(self, step: str) -> list[GalleryItem]:
        api = self.session.api
        name = api.find("refresh_gallery", exact=[]) if api.has("refresh_gallery") else \
            api.find("finalize_generation", exact=[])
        result, _ = self._step(step, name, before_queue=not self._started_processing)
        values = result if isinstance(result, (list, tuple)) else [result]
        for value in values:
            candidate = value.get("value") if isinstance(value, dict) and value.get("__type__") == "update" else value
            if isinstance(candidate, list):
                try:
                    return parse_gallery(value)
                except GalleryFormatError as exc:
                    shown = redact_url(self.session.url)
                    raise JobFailedError(f"{shown}: {step}: {exc}", endpoint=shown) from None
        return []

    def _start_processing(self) -> None:
        """WanGP's chain from here: activate the status display, then the feed beside
        ``process_tasks`` (it runs this session's queue: our one task).

        ``activate_status`` is answered before ``process_tasks`` is submitted (see the module
        docstring). It is repeated on transient errors (only the display flag is at stake, and
        the ``process_tasks`` that always follows turns it off again); the server being down
        still counts as "before the queue", since nothing of this gradio session can run.
        """
        self._start_status_feed()
        self._started_processing = True
        self._tasks_job = self._submit_tasks()
        self.state.timings["submitted"] = time.time()

    def _submit_tasks(self) -> Any:
        assert self.pooled is not None
        try:
            job = self.pooled.client.submit(api_name=self.session.api.find("process_tasks", exact=[]))
        except Exception as exc:
            raise translate(exc, endpoint=self.session.url, step="starting the generation (process_tasks)") from None
        self._listen(job)
        return job

    def _listen(self, job: Any) -> None:
        """Wake the consumer on every update of ``job`` and when it ends (no polling)."""
        updates = getattr(getattr(job, "communicator", None), "updates", None)
        if hasattr(updates, "listen"):
            updates.listen(self._wake.set)
        job.add_done_callback(lambda _: self._wake.set())

    def _start_status_feed(self) -> None:
        """``activate_status``, answered, then ``refresh_status_async`` submitted (not awaited).

        WanGP answers ``None`` when the last add-task call queued nothing: then no feed is started.
        """
        api = self.session.api
        if self.pooled is None or not (api.has("activate_status") and api.has("refresh_status_async")):
            return
        activated, _ = self._step("activating the status feed", api.find("activate_status", exact=[]))
        if activated is None:
            log.debug("%s: WanGP did not activate the status display", self.job_id)
            return
        try:
            self._status_job = self.pooled.client.submit(api_name=api.find("refresh_status_async", exact=[]))
        except Exception as exc:  # noqa: BLE001 - progress is optional; generation is not
            log.info("%s: no status feed: %s", self.job_id, translate(exc, endpoint=self.session.url,
                                                                       step="starting the status feed"))
            return
        self.pooled.feeds.add(self._status_job)
        self._listen(self._status_job)

    # -- following ---------------------------------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        with self.changed:
            for key, value in changes.items():
                setattr(self.state, key, value)
            self.state.version += 1
            self.changed.notify_all()

    def _apply(self, update: Any, from_status_feed: bool) -> None:
        changes: dict[str, Any] = {}
        if getattr(update, "type", None) == "output":
            if from_status_feed:
                outputs = update.outputs
                text = outputs[0] if isinstance(outputs, (list, tuple)) and outputs else outputs
                text = update_value(text)
                if isinstance(text, str) and text.strip():
                    changes["message"] = text.strip()
                    phase = _phase_from_text(text)
                    if phase is not None:
                        changes["phase"] = phase
                        if phase is not Phase.INFERRING:
                            changes.update(step=None, total_steps=None)
                    match = re.search(r"(\d+)\s*/\s*(\d+)", text)
                    if match and phase is Phase.INFERRING:
                        changes.update(step=int(match[1]), total_steps=int(match[2]))
        else:
            code = getattr(update, "code", None)
            if update.log and not str(update.log[0]).startswith(_AUTOSAVE_NOTE):
                changes["message"] = str(update.log[0])
            if not from_status_feed and code == Status.IN_QUEUE:
                changes.update(phase=Phase.QUEUED, queue_position=update.rank, queue_size=update.queue_size,
                               eta=update.eta)
            elif not from_status_feed and code in (Status.PROCESSING, Status.ITERATING) and \
                    self.state.phase is Phase.QUEUED:
                changes.update(phase=Phase.STARTING, queue_position=None)
            if update.progress_data:
                unit = update.progress_data[-1]
                if unit.index is not None and unit.length:
                    changes.update(phase=Phase.INFERRING, step=int(unit.index), total_steps=int(unit.length))
                    if unit.desc:
                        changes["message"] = unit.desc
        if changes:
            self._update(**changes)

    def _wait_for(self, tasks: Any) -> None:
        """Apply every update of ``tasks`` and the status feed until ``tasks`` ends; wakes on
        events only. A long silence is checked with a probe: a dead server ends the wait."""
        stall = max(self.session.options.request_timeout, 5.0)
        last_event = time.monotonic()
        while True:
            self._wake.clear()
            got = False
            for update in _drain(tasks):
                got = True
                self._apply(update, from_status_feed=False)
            status = self._status_job
            for update in _drain(status) if status is not None else ():
                got = True
                self._apply(update, from_status_feed=True)
            now = time.monotonic()
            if got:
                last_event = now
            if tasks.done():
                for update in _drain(tasks):
                    self._apply(update, from_status_feed=False)
                return
            if now - last_event > stall:
                if self.session.server_down():
                    raise self._lost("the server stopped answering during the generation")
                last_event = now
            self._wake.wait(stall - (now - last_event) + 0.01)

    def _lost(self, what: str) -> BackendConnectionError:
        shown = redact_url(self.session.url)
        return BackendConnectionError(
            f"{shown}: {what}; this job's task and output were lost with the server's gradio "
            "session (a restarted WanGP does not keep them)", endpoint=shown)

    def _consume(self) -> None:
        """Follow ``process_tasks`` to its end, recover what a cut stream hides, collect outputs,
        report the outcome, then finish WanGP's chain before the gradio session is reused."""
        error: VidbridgeError | None = None
        try:
            self._finish(self._follow())
        except VidbridgeError as exc:
            error = exc
        except Exception as exc:  # never leave the job hanging
            error = translate(exc, endpoint=self.session.url, step="following the generation")
        if error is not None:
            self._fail(error)
        try:
            self._wind_down(error)
        finally:
            self.settled.set()

    def _follow(self) -> list[GalleryItem]:
        """This job's outputs, recovering from a cut result stream.

        * ``process_tasks`` ends normally: the outputs are the gallery's new items.
        * Its stream is cut or refused (transient error) while the server keeps running: the
          gallery is read; if the output is there, it is this job's. If not, ``process_tasks``
          (the same endpoint copy) is submitted again. That cannot generate twice: it runs only
          what the session's queue holds (our one task, removed once generated), and gradio runs
          one call of an endpoint at a time (concurrency limit 1), so a second call waits for a
          first one still running and then finds the queue empty.
        * The server is down (connection refused): the gradio session and the task are gone
          with its process; the job fails with :class:`BackendConnectionError`.
        """
        recoveries = 0
        cut: VidbridgeError | None = None
        while True:
            self._wait_for(self._tasks_job)
            error: VidbridgeError | None = None
            try:
                self._tasks_job.result(timeout=0)
            except Exception as exc:
                if self._cancel_requested:
                    raise cancelled(self.session.url, self._server_stopped) from None
                error = translate(exc, endpoint=self.session.url,
                                  step=f"generating with model {self.model!r} (process_tasks)")
                if not error.retryable:
                    raise error from None
            if self._cancel_requested:
                raise cancelled(self.session.url, self._server_stopped)
            if error is not None and self.session.server_down():
                raise self._lost("the server went away during the generation")
            outputs = self._new_outputs()
            if outputs:
                return outputs
            if error is None:
                if cut is not None:
                    raise self._lost(f"the result stream was cut ({cut}) and the server no longer has the task")
                shown = redact_url(self.session.url)
                raise JobFailedError(f"{shown}: the generation ended without a new output "
                                     f"(last status: {self.state.message or 'none'})", endpoint=shown)
            recoveries += 1
            if recoveries > self._attempts():
                raise error
            cut = error
            log.info("%s: %s: %s; following the generation again", redact_url(self.session.url), self.job_id, error)
            retry_after = getattr(error, "retry_after", None)
            if retry_after:
                time.sleep(min(retry_after, 20.0))
            self._tasks_job = self._submit_tasks()

    def _new_outputs(self) -> list[GalleryItem]:
        assert self.pooled is not None
        try:
            after = self._gallery("reading the gallery after the job")
        except BackendConnectionError:
            if self.session.server_down():
                raise self._lost("the server went away before its output was read") from None
            raise
        known = self.pooled.gallery or set()
        return [item for item in after if item.path not in known]

    def _finish(self, outputs: list[GalleryItem]) -> None:
        assert self.pooled is not None
        self.pooled.gallery = (self.pooled.gallery or set()) | {item.path for item in outputs}
        self.state.timings["finished"] = time.time()
        self._update(outputs=outputs, phase=Phase.COMPLETED, message=f"{len(outputs)} output(s) ready")

    def _fail(self, error: VidbridgeError) -> None:
        # What the gradio session still holds after a failed generation is unknown: not reused.
        if self.pooled is not None:
            self.pooled.broken = True
        phase = Phase.CANCELLED if self._cancel_requested else Phase.FAILED
        # The message is the cause (WanGP's last info after a failure is only its queue autosave).
        self._update(error=error, phase=phase, message=str(error))

    def _wind_down(self, error: VidbridgeError | None) -> None:
        """The end of WanGP's chain, after the job was reported: ``finalize_generation`` (ends
        ``in_progress``), ``unload_model_if_needed`` (the server's unload policy), and the status
        feed's own end, before the gradio session goes back to the pool. A feed that does not end
        is stopped and its gradio session dropped. Skipped when the server is gone."""
        pooled = self.pooled
        if pooled is None:
            return
        pooled.finishing = True
        gone = isinstance(error, BackendConnectionError)
        broken = gone
        if self._started_processing and not gone and not self.session.closed:
            api = self.session.api
            for name, step in (("finalize_generation", "finishing the generation"),
                               ("unload_model_if_needed", "applying the server's model unload policy")):
                if not api.has(name):
                    continue
                try:
                    self._call(step, api.find(name, exact=[]))
                except VidbridgeError as exc:
                    log.info("%s: %s: %s; this gradio session is not reused", self.job_id, step, exc)
                    broken = True
                    break
        feed = self._status_job
        if feed is not None and not gone:
            try:
                feed.result(timeout=_FEED_END_GRACE)
            except concurrent.futures.TimeoutError:
                log.warning("%s: %s: WanGP's status feed did not end with the job; stopping it",
                            self.job_id, redact_url(self.session.url))
                broken = True
            except Exception as exc:  # noqa: BLE001 - the feed only reports; its end is what matters
                log.debug("%s: status feed ended with %s", self.job_id, type(exc).__name__)
        self._release(broken=broken)

    def _release(self, *, broken: bool) -> None:
        if self.pooled is not None:
            if self._status_job is not None:
                self.pooled.feeds.discard(self._status_job)
                if broken or self.pooled.broken:
                    end_jobs([self._status_job])
            self.session.release(self.pooled, broken=broken)

    # -- status and cancel -------------------------------------------------------------------------

    def wait_status(self, current: JobStatus, wait: float) -> JobStatus:
        """Block up to ``wait`` s for a change, then ``current`` evolved with the newest state."""
        deadline = time.monotonic() + max(0.0, wait)
        with self.changed:
            seen = getattr(current, "_wan2gp_version", None)
            while not self.state.phase.is_terminal and self._reported == self.state.version:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.changed.wait(remaining)
            state = self.state
            self._reported = state.version
        del seen
        if state.phase is Phase.FAILED and state.error is not None:
            raise state.error
        if state.phase is Phase.CANCELLED:
            return current.evolve(phase=Phase.CANCELLED, message=state.message)
        changes: dict[str, Any] = {"phase": state.phase, "message": state.message}
        if state.phase is Phase.QUEUED:
            changes.update(queue_position=state.queue_position, queue_size=state.queue_size,
                           eta_seconds=state.eta if state.eta is None or state.eta >= 0 else None)
        if state.phase is Phase.INFERRING and state.total_steps:
            step = min(state.step or 0, state.total_steps)
            changes.update(step=step, total_steps=state.total_steps, progress=step / state.total_steps)
        candidate = current.evolve(**changes)
        return current if candidate.same_state(current) else candidate

    _reported = -1

    def cancel(self) -> tuple[bool, str]:
        """Abort through WanGP's own abort endpoints: ``(server_stopped, message)``."""
        with self.changed:
            if self.state.phase.is_terminal:
                return False, "the job had already ended"
            self._cancel_requested = True
        api = self.session.api
        stopped = queued_abort = False
        message = ""
        if self.pooled is not None and self._started_processing:
            try:
                if self.state.phase is Phase.QUEUED and api.has("abort_generation"):
                    # Not running yet: remove our task by id (the session-wide abort fails
                    # opaquely when nothing runs).
                    # process_tasks is never cancelled: it must run, even on an empty queue, to turn
                    # off the status display activate_status turned on (see the module docstring).
                    self._call("cancelling the queued task",
                               api.find("abort_generation", requires=["client_id"]), self.client_id)
                    queued_abort = True
                else:
                    self._call("aborting the generation", api.find("abort_generation", exact=[]))
                stopped = True
                message = "WanGP aborted the generation"
            except (VidbridgeError, LookupError) as exc:
                message = f"the server's abort failed ({exc}); stopped waiting"
        else:
            message = "the job had not reached the server's queue"
        self._server_stopped = stopped
        if not self._started_processing or queued_abort:
            # Nothing runs for this job any more; the consumer still sees process_tasks end.
            self._update(phase=Phase.CANCELLED, message=message)
        return stopped, message

    # -- results -----------------------------------------------------------------------------------

    def outputs(self) -> list[GalleryItem]:
        """This job's own new gallery items (after completion)."""
        return list(self.state.outputs)


def file_url(session: Wan2GPSession, item: GalleryItem) -> str:
    """Download URL of a server file built from the Client's base (FileData ``url`` may bypass
    a reverse proxy)."""
    return f"{session.src_prefixed}file={item.path}"


Callback = Callable[[int, int | None], None]
