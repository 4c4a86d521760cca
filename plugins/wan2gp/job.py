"""One generation job on one gradio session: WanGP's multi-call flow and its status feed.

Flow (every call on the same Client, see CONTRACT.md): [change_model_from_target, fill_inputs,
refresh_model_dropdowns] -> save_inputs(target="state") -> refresh_gallery (before) ->
process_prompt_and_add_tasks -> activate_status + refresh_status_async beside process_tasks ->
refresh_gallery (after; the diff is this job's output).

A consumer thread drains every gradio update of ``process_tasks`` and the status stream (no update
is missed, no extra round trip) into a :class:`JobState` that ``vidbridge_status`` waits on.
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

from vidbridge.errors import (
    BackendConnectionError,
    InvalidRequestError,
    JobFailedError,
    RejectedError,
    VidbridgeError,
)
from vidbridge.models import GenerationRequest, JobStatus, Phase

from .api import EndpointNotFound, update_value
from .catalog import family_of
from .errors import cancelled, translate
from .gallery import GalleryFormatError, GalleryItem, new_items, parse_gallery
from .payload import FormPlan, media_value, plan_form, validate_for_model
from .session import PooledClient, Wan2GPSession

__all__ = ["Wan2GPJob", "JobState", "prepare"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

_POLL = 0.05  # seconds between drains of gradio_client's local update queues (no network)


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
        raise JobFailedError(f"{session.url}: not a usable WanGP server ({exc})", endpoint=session.url) from None
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
        self._before: list[GalleryItem] = []
        self._cancel_requested = False
        self._server_stopped = False
        self._started_processing = False
        self._consumer: threading.Thread | None = None
        self.started_at = time.time()

    def __repr__(self) -> str:
        return f"<Wan2GPJob {self.job_id} {self.state.phase.value} on {self.session.url}>"

    # -- calls -------------------------------------------------------------------------------------

    def _call(self, step: str, api_name: str, *args: Any, timeout: float | None = None) -> tuple[Any, list[str]]:
        """One blocking call on this job's Client: ``(result, info messages seen)``."""
        assert self.pooled is not None
        timeout = self.session.options.request_timeout if timeout is None else timeout
        try:
            job = self.pooled.client.submit(*args, api_name=api_name)
            result = job.result(timeout=timeout)
        except Exception as exc:
            error = translate(exc, endpoint=self.session.url, step=f"{step} ({api_name})")
            if isinstance(error, BackendConnectionError):
                self.pooled.broken = True
            raise error from None
        logs = [u.log[0] for u in _drain(job) if getattr(u, "log", None)]
        return result, logs

    # -- submit ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Validate, take a gradio session, queue the task and start following it.

        :raises InvalidRequestError: before any network call.
        :raises RejectedError: the server refused the task (nothing is left queued).
        """
        plan, model, save = prepare(self.session, self.request)
        self.model = model
        self.pooled = self.session.acquire(timeout=None)
        self.pooled.jobs += 1
        try:
            self._queue_task(plan, model, save)
        except BaseException as exc:
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
        outputs, _ = self._call("reading the model's form", fill)
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
        dropdowns, _ = self._call("reading the model lists", refresh)
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
                        self.session.url, model)
            api = self.session.api
            self._call("switching model", api.find("change_model_from_target", requires=["model_type"]), model)
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
        self._call("saving the form", save, *api.positional(save, values))
        self._before = self._gallery("reading the gallery before the job")
        add = api.find("process_prompt_and_add_tasks", requires=["model_choice"])
        args = {"current_gallery_tab": 0, "model_choice": model}
        _, messages = self._call("queueing the task", add, *api.positional(add, args))
        if messages:
            self._clear_queue()
            text = " ".join(messages)
            raise RejectedError(f"{self.session.url} refused the request: {text}", endpoint=self.session.url,
                                server_message=text)
        self._start_processing()

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
        result, _ = self._call(step, name)
        values = result if isinstance(result, (list, tuple)) else [result]
        for value in values:
            candidate = value.get("value") if isinstance(value, dict) and value.get("__type__") == "update" else value
            if isinstance(candidate, list):
                try:
                    return parse_gallery(value)
                except GalleryFormatError as exc:
                    raise JobFailedError(f"{self.session.url}: {step}: {exc}", endpoint=self.session.url) from None
        return []

    def _start_processing(self) -> None:
        pooled = self.pooled
        assert pooled is not None
        api = self.session.api
        client = pooled.client
        if api.has("activate_status") and api.has("refresh_status_async"):
            try:
                self._call("activating the status feed", api.find("activate_status", exact=[]))
                self._status_job = client.submit(api_name=api.find("refresh_status_async", exact=[]))
            except VidbridgeError as exc:  # progress is optional; generation is not
                log.debug("status feed unavailable: %s", exc)
        try:
            self._tasks_job = client.submit(api_name=api.find("process_tasks", exact=[]))
        except Exception as exc:
            raise translate(exc, endpoint=self.session.url, step="starting the generation (process_tasks)") from None
        self._started_processing = True
        self.state.timings["submitted"] = time.time()

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
            if update.log:
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

    def _consume(self) -> None:
        """Drain both streams until process_tasks ends, then collect this job's outputs."""
        tasks, status = self._tasks_job, self._status_job
        stall = max(self.session.options.request_timeout, 5.0)
        last_event = time.monotonic()
        try:
            while True:
                got = False
                for update in _drain(tasks):
                    got = True
                    self._apply(update, from_status_feed=False)
                for update in _drain(status) if status is not None else ():
                    got = True
                    self._apply(update, from_status_feed=True)
                if got:
                    last_event = time.monotonic()
                if tasks.done():
                    for update in _drain(tasks):
                        self._apply(update, from_status_feed=False)
                    break
                if time.monotonic() - last_event > stall:
                    # Nothing heard for a while: a slow step is fine, a dead server is not.
                    if not self.session.probe():
                        raise BackendConnectionError(f"{self.session.url}: the server stopped answering during "
                                                     "the generation", endpoint=self.session.url)
                    last_event = time.monotonic()
                time.sleep(_POLL)
            self._finish()
        except VidbridgeError as exc:
            self._fail(exc)
        except Exception as exc:  # never leave the job hanging
            self._fail(translate(exc, endpoint=self.session.url, step="following the generation"))

    def _finish(self) -> None:
        try:
            self._tasks_job.result(timeout=0)
        except Exception as exc:
            if self._cancel_requested:
                raise cancelled(self.session.url, self._server_stopped) from None
            raise translate(exc, endpoint=self.session.url, step="generating (process_tasks)") from None
        self._stop_status_feed()
        if self._cancel_requested:
            raise cancelled(self.session.url, self._server_stopped)
        self._update(phase=Phase.DECODING if self.state.phase is not Phase.DECODING else Phase.DECODING)
        after = self._gallery("reading the gallery after the job")
        outputs = new_items(self._before, after)
        if not outputs:
            raise JobFailedError(f"{self.session.url}: the generation ended without a new output "
                                 f"(last status: {self.state.message or 'none'})", endpoint=self.session.url)
        self.state.timings["finished"] = time.time()
        self._release(broken=False)
        self._update(outputs=outputs, phase=Phase.COMPLETED, message=f"{len(outputs)} output(s) ready")

    def _stop_status_feed(self) -> None:
        if self._status_job is not None and not self._status_job.done():
            try:
                self._status_job.result(timeout=2)  # it ends by itself once the session is idle
            except Exception:
                pass

    def _fail(self, error: VidbridgeError) -> None:
        broken = isinstance(error, BackendConnectionError)
        if self.pooled is not None and broken:
            self.pooled.broken = True
        self._release(broken=broken)
        phase = Phase.CANCELLED if self._cancel_requested else Phase.FAILED
        self._update(error=error, phase=phase)

    def _release(self, *, broken: bool) -> None:
        if self.pooled is not None:
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
        stopped = False
        message = ""
        if self.pooled is not None and self._started_processing:
            try:
                if self.state.phase is Phase.QUEUED and api.has("abort_generation"):
                    # Not running yet: remove our task by id (the session-wide abort fails
                    # opaquely when nothing runs).
                    self._call("cancelling the queued task",
                               api.find("abort_generation", requires=["client_id"]), self.client_id)
                    if self._tasks_job is not None:
                        self._tasks_job.cancel()  # frees the gradio queue slot
                else:
                    self._call("aborting the generation", api.find("abort_generation", exact=[]))
                stopped = True
                message = "WanGP aborted the generation"
            except (VidbridgeError, LookupError) as exc:
                message = f"the server's abort failed ({exc}); stopped waiting"
        else:
            message = "the job had not reached the server's queue"
        self._server_stopped = stopped
        if not self._started_processing:
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
