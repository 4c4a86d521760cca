"""WanGP's call sequence for one job on one gradio session: the endpoints it needs, and their order.

Every call goes to the same gradio ``Client`` (a gradio session: WanGP keeps form, queue and
gallery per session; see CONTRACT.md), in the order of WanGP's own Generate chain (wgp.py)::

    [change_model_from_target, fill_inputs, refresh_model_dropdowns]   model and its form, if needed
    save_inputs(target="state")                                         the form
    refresh_gallery                                                     what the gallery held before
    process_prompt_and_add_tasks                                        queue the task
    activate_status                        answered before process_tasks (see below)
    refresh_status_async  beside  process_tasks                         the feed and the run
    refresh_gallery                                                     after: the diff is the output
    finalize_generation, unload_model_if_needed                         after the job is reported

Why the order matters: ``activate_status`` turns the session's status display on and only
``process_tasks`` turns it off, when it ends. Activated after the task ended, WanGP's status feed
loops forever and, as gradio runs one feed at a time, every later feed on the server waits behind
it. So the display is activated, and acknowledged, before ``process_tasks`` is submitted, and
every activation is followed by a ``process_tasks`` that is never cancelled. ``finalize_generation``
ends WanGP's ``in_progress``: without it a later abort or clear_queue in this gradio session would
fire WanGP's model-wide interrupt, stopping whatever another user generates.

Endpoints are resolved by the whole signature the flow needs (:data:`SIGNATURES`): WanGP may
carry other handlers with the same function names (its plugins, other versions).
:class:`WanGPFlow` makes the calls; following the job and its state is :mod:`.job`'s work.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from vidbridge import (
    BackendConnectionError,
    GenerationRequest,
    InvalidRequestError,
    JobFailedError,
    RateLimitedError,
    RejectedError,
    TransientServerError,
    TransportError,
    VidbridgeError,
)
from vidbridge.backend import redact_url, retrying

from . import compat
from .api import ApiSurface, EndpointNotFound, Signature, update_value
from .catalog import family_of
from .errors import cancelled, translate
from .recovery import output_stem
from .gallery import GalleryFormatError, GalleryItem, parse_gallery
from .payload import FormPlan, drop_unknown, media_value, plan_form, validate_for_model

if TYPE_CHECKING:  # pragma: no cover
    from .session import PooledClient, Wan2GPSession

__all__ = ["SIGNATURES", "WanGPFlow", "Restart", "prepare", "not_usable", "needs_fresh_session"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

_RESTARTED = "has been restarted"  # WanGP's gr.Error when the session's form state is gone

#: The form fields the payload builder always sends (payload.plan_form's typed fields and the
#: flow's own): a save_inputs copy without one of them is not WanGP's form.
FORM_FIELDS = ("target", "client_id", "mode", "prompt", "negative_prompt", "resolution", "video_length",
               "num_inference_steps", "guidance_scale", "seed")
#: Fields sent when a request uses them (media, LoRAs, sampler).
FORM_OPTIONAL = ("sample_solver", "loras_choices", "loras_multipliers", "image_prompt_type", "image_start",
                 "image_end", "video_prompt_type", "video_guide", "image_refs", "audio_guide")


def _feeds(producer_param: tuple[str, str]) -> Callable[[ApiSurface, str], str | None]:
    """A check: the endpoint's outputs include the component feeding ``(signature name, parameter)``."""
    def check(api: ApiSurface, api_name: str) -> str | None:
        consumer = api.resolve(SIGNATURES[producer_param[0]])
        inputs = api.input_ids(consumer) or []
        names = [p.name for p in api.parameters(consumer)]
        wanted = dict(zip(names, inputs)).get(producer_param[1]) if len(inputs) == len(names) else None
        outputs = api.output_ids(api_name)
        if wanted is None or outputs is None:
            return None  # the config does not tell: the signature alone decides
        if wanted not in outputs:
            return f"does not return the {producer_param[1]} field of {consumer}"
        return None
    return check


#: Every endpoint the flow calls, by the signature it needs.
SIGNATURES: dict[str, Signature] = {
    "save_inputs": Signature("save_inputs", FORM_FIELDS, preferred=FORM_OPTIONAL),
    "add_tasks": Signature("process_prompt_and_add_tasks", ("current_gallery_tab", "model_choice"), exact=True),
    "activate_status": Signature("activate_status", (), exact=True, min_returns=1),
    "status_feed": Signature("refresh_status_async", (), exact=True, min_returns=1),
    "process_tasks": Signature("process_tasks", (), exact=True, min_returns=1),
    "refresh_gallery": Signature("refresh_gallery", (), exact=True, returns=("gallery",)),
    "finalize_generation": Signature("finalize_generation", (), exact=True, returns=("gallery",)),
    "unload_model": Signature("unload_model_if_needed", (), exact=True),
    "abort_task": Signature("abort_generation", ("client_id",), exact=True),
    "abort": Signature("abort_generation", (), exact=True),
    "clear_queue": Signature("clear_queue_action", (), exact=True),
    "change_model": Signature("change_model_from_target", ("model_type",), exact=True),
    "fill_inputs": Signature("fill_inputs", (), exact=True, check=_feeds(("save_inputs", "resolution"))),
    "model_dropdowns": Signature("refresh_model_dropdowns", (), exact=True,
                                 check=_feeds(("add_tasks", "model_choice"))),
}


class Restart(Exception):
    """Continue on a fresh gradio session. Raised only while nothing of this job can run on the
    current one (before ``process_tasks`` was ever called on it)."""

    def __init__(self, error: VidbridgeError) -> None:
        super().__init__(str(error))
        self.error = error


class _ServerDown(Exception):
    """Internal: a step failed and nothing listens at the server's address."""


class _CallFailed(Exception):
    """Internal: a call failed with ``error``; ``joined`` says whether the server had accepted it
    into its queue (it may have run)."""

    def __init__(self, error: VidbridgeError, joined: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.joined = joined


def needs_fresh_session(error: VidbridgeError, *, may_have_queued: bool) -> bool:
    """The one rule for continuing a job, before ``process_tasks``, on a fresh gradio session:
    only when the one it has cannot be used any more.

    * the server lost this session's state (WanGP's "has been restarted"); a server that went
      down is the same case, told by a probe (:meth:`WanGPFlow.step`);
    * a call that may have queued the task failed in a retryable way: repeating it could queue
      the task twice, and whatever an abandoned session holds never runs.

    Transient errors that outlast their retries while the server runs (a 502, a reset, a 429, a
    full queue) are raised instead: a fresh session would only be more attempts, and
    ``retry_attempts`` is the number of attempts of a call.
    """
    if isinstance(error, JobFailedError) and _RESTARTED in str(error):
        return True
    return may_have_queued and error.retryable


def not_usable(session: Wan2GPSession, exc: EndpointNotFound) -> JobFailedError:
    """The error for a server that lacks an endpoint the flow needs."""
    shown = redact_url(session.url)
    return JobFailedError(f"{shown}: not a usable WanGP server ({exc})", endpoint=shown)


def prepare(session: Wan2GPSession, request: GenerationRequest) -> tuple[FormPlan, str, str]:
    """Everything checked before any network call: ``(plan, model, save_inputs endpoint name)``.

    :raises InvalidRequestError: unknown preset, unknown settings field, bad frames/resolution.
    """
    plan = plan_form(request)
    try:
        save = session.api.resolve(SIGNATURES["save_inputs"])
    except EndpointNotFound as exc:
        raise not_usable(session, exc) from None
    session.api.check_known(save, request.settings)
    drop_unknown(plan, (p.name for p in session.api.parameters(save)))
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


class WanGPFlow:
    """The calls of one job on one gradio session (``pooled``, which the job may swap for a fresh
    one while nothing of it runs yet).

    :param wake: called on every update of the gradio calls the job follows, and when they end.
    :param on_submitted: called once ``process_tasks`` is submitted.

    :attr:`stop` is the job's stop signal (set by cancel): retries before the task runs end at once
    (:class:`~vidbridge.JobCancelledError`), and so do the job's waits between recoveries.
    """

    def __init__(self, session: Wan2GPSession, job_id: str, client_id: str, *, wake: Callable[[], None],
                 on_submitted: Callable[[], None]) -> None:
        self.session = session
        self.job_id = job_id
        self.client_id = client_id
        self.pooled: PooledClient | None = None
        self.model: str | None = None
        self.settings_sent: dict[str, Any] = {}
        #: The literal ``output_filename`` this job asks WanGP to name its output (None: not sent).
        self.output_stem: str | None = None
        self.started_processing = False
        self.tasks_job: Any = None
        self.status_job: Any = None
        self._wake = wake
        self._on_submitted = on_submitted
        self.stop = threading.Event()

    def endpoint(self, need: str) -> str:
        """The api name of the copy fitting ``SIGNATURES[need]``.

        :raises JobFailedError: none fits (naming each copy and why).
        """
        try:
            return self.session.api.resolve(SIGNATURES[need])
        except EndpointNotFound as exc:
            raise not_usable(self.session, exc) from None

    def offers(self, need: str) -> bool:
        """True when the server has a copy fitting ``SIGNATURES[need]`` (optional steps)."""
        return self.session.api.fits(SIGNATURES[need])

    # -- calls -------------------------------------------------------------------------------------

    def _attempt(self, step: str, api_name: str, *args: Any, timeout: float | None = None) -> tuple[Any, list[str]]:
        assert self.pooled is not None
        timeout = self.session.options.request_timeout if timeout is None else timeout
        job = None
        try:
            job = self.pooled.client.submit(*args, api_name=api_name)
            result = job.result(timeout=timeout)
        except Exception as exc:
            error = translate(exc, endpoint=self.session.url, step=f"{step} ({api_name})")
            raise _CallFailed(error, joined=job is not None and compat.joined_queue(job)) from None
        logs = [u.log[0] for u in compat.drain(job) if getattr(u, "log", None)]
        return result, logs

    def call(self, step: str, api_name: str, *args: Any, timeout: float | None = None) -> tuple[Any, list[str]]:
        """One blocking call on this job's Client: ``(result, info messages seen)``."""
        try:
            return self._attempt(step, api_name, *args, timeout=timeout)
        except _CallFailed as failed:
            raise failed.error from None

    def attempts(self) -> int:
        """Attempts of one retried call (``retry_attempts``, exactly), and restarts or stream
        recoveries allowed per job."""
        return max(1, self.session.options.retry_attempts)

    def _cancelled(self, last: BaseException) -> BaseException:
        return cancelled(self.session.url, False)

    def step(self, step: str, api_name: str, *args: Any, before_queue: bool = True,
             interruptible: bool = True) -> tuple[Any, list[str]]:
        """An idempotent call, retried on transient errors (429 Retry-After honoured) within one
        request deadline: ``retry_attempts`` attempts in all. Cancel ends the retries
        (``interruptible``).

        :raises Restart: ``before_queue`` and this gradio session cannot be used any more (see
            :func:`needs_fresh_session`): the caller continues on a fresh one.
        :raises TransportError: the retries ran out while the server runs (a fresh session would
            only be more attempts).
        :raises JobCancelledError: cancelled while waiting to retry.
        """
        options = self.session.options
        stop = {"stop_event": self.stop, "on_stop": self._cancelled} if interruptible else {}
        try:
            for attempt in retrying(attempts=self.attempts(), deadline=options.request_deadline(), **stop):
                with attempt:
                    try:
                        return self.call(step, api_name, *args)
                    except BackendConnectionError:
                        if self.session.server_down():
                            raise _ServerDown() from None
                        raise
        except _ServerDown:
            shown = redact_url(self.session.url)
            error = BackendConnectionError(f"{shown}: {step}: the server is not running (connection refused)",
                                           endpoint=shown)
            if before_queue:
                raise Restart(error) from None
            raise error from None
        except JobFailedError as exc:
            if before_queue and needs_fresh_session(exc, may_have_queued=False):
                raise Restart(exc) from None
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the model and its form --------------------------------------------------------------------

    def read_form(self, model: str) -> None:
        """Store ``model``'s form and resolution choices from ``fill_inputs`` (no server side effect;
        the gradio session must be on ``model``)."""
        pooled = self.pooled
        assert pooled is not None
        api = self.session.api
        fill = self.endpoint("fill_inputs")
        outputs, _ = self.step("reading the model's form", fill)
        values = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        mapped = api.map_outputs_to_inputs(fill, self.endpoint("save_inputs"), values)
        pooled.forms[model] = {name: update_value(v) for name, v in mapped.items()
                               if not (isinstance(v, dict) and v.get("__type__") == "update" and "value" not in v)}
        resolution = mapped.get("resolution")
        if isinstance(resolution, dict) and resolution.get("choices"):
            pooled.resolutions[model] = tuple(c[1] if isinstance(c, (list, tuple)) else c
                                              for c in resolution["choices"])

    def read_dropdowns(self) -> str | None:
        """Refresh the session's model dropdowns (this widens its choices, nothing else) and return
        the model the session is on, or ``None`` when the server does not tell."""
        pooled = self.pooled
        assert pooled is not None
        if not self.offers("model_dropdowns"):
            return None
        refresh = self.endpoint("model_dropdowns")
        dropdowns, _ = self.step("reading the model lists", refresh)
        values = dropdowns if isinstance(dropdowns, (list, tuple)) else [dropdowns]
        selector = self.session.api.map_outputs_to_inputs(refresh, self.endpoint("add_tasks"), values).get("model_choice")
        current = update_value(selector)
        if isinstance(selector, dict) and selector.get("choices"):
            pooled.choices = frozenset(str(c[1] if isinstance(c, (list, tuple)) else c) for c in selector["choices"])
        return str(current) if isinstance(current, str) and current else None

    def target_model(self, requested: str | None, fallback: str) -> str:
        """The model to generate with; switches the gradio session only when it must.

        A fresh gradio session starts on the server's last used model, which may differ from what
        the cached ``view_api`` says, so it is read first. Without a requested model the session's
        own model is used: switching would rewrite the server's remembered model for everyone.
        """
        pooled = self.pooled
        assert pooled is not None
        if pooled.model is None:
            pooled.model = self.read_dropdowns()
        model = requested or pooled.model or fallback
        if requested and pooled.model != requested:
            log.warning("switching %s to model %r: WanGP also makes it the server's remembered default model",
                        redact_url(self.session.url), model)
            self.step("switching model", self.endpoint("change_model"), model)
            pooled.model = model
            self.read_form(model)
            self.read_dropdowns()
        elif model not in pooled.forms:
            self.read_form(model)
        return model

    # -- queueing and starting ---------------------------------------------------------------------

    def queue_task(self, plan: FormPlan, model: str, save: str) -> None:
        """Save the form, note the gallery, queue the task and start WanGP's run of it.

        :raises RejectedError: the server refused the task (its queue is cleared again).
        :raises Restart: see :meth:`step`.
        """
        pooled = self.pooled
        assert pooled is not None
        api = self.session.api
        model = self.model = self.target_model(plan.model, model)
        validate_for_model(plan, model, pooled.resolutions.get(model))
        values = {**api.defaults(save), **pooled.forms.get(model, {}), **plan.values}
        values["target"] = "state"  # never "settings": that overwrites the server's saved defaults
        values["client_id"] = self.client_id
        values["mode"] = values.get("mode") or ""
        if "output_filename" in plan.values or api.parameter(save, "output_filename") is None:
            self.output_stem = None  # the user's own template, or a form without one: no name of ours
        elif self.output_stem:
            # Named from what is sent: a seed imported from a settings file names the file too.
            seed = values.get("seed")
            self.output_stem = output_stem(str(values.get("prompt") or ""), seed if isinstance(seed, int) else None,
                                           token=self.output_stem.rsplit("_vb-", 1)[-1])
            values["output_filename"] = self.output_stem
        for name, paths in plan.media.items():
            values[name] = media_value(api, save, name, paths)
        self.settings_sent = {k: v for k, v in values.items() if k not in plan.media and k != "target"}
        self.settings_sent.update({k: [str(p) for p in v] for k, v in plan.media.items()})
        self.step("saving the form", save, *api.positional(save, values))
        if pooled.gallery is None:  # a fresh gradio session: what its gallery already lists is not ours
            pooled.gallery = {item.path for item in self.gallery("reading the gallery of a new session")}
        add = self.endpoint("add_tasks")
        args = {"current_gallery_tab": 0, "model_choice": model}
        messages = self._add_task(add, api.positional(add, args))
        if messages:
            self.clear_queue()
            text = " ".join(messages)
            shown = redact_url(self.session.url)
            raise RejectedError(f"{shown} refused the request: {text}", endpoint=shown, server_message=text)
        self.start_processing()

    def _add_task(self, add: str, args: list[Any]) -> list[str]:
        """``process_prompt_and_add_tasks``: queues the task in this gradio session.

        Repeated here only when the server refused the call itself (HTTP 429/503 on the queue
        join, so no event exists): ``retry_attempts`` attempts in all, then the refusal is raised.
        Any other transient failure may have queued the task: the session is abandoned
        (:class:`Restart`), so that task can never run.
        """
        options = self.session.options
        for attempt in retrying(attempts=self.attempts(), deadline=options.request_deadline(),
                                stop_event=self.stop, on_stop=self._cancelled):
            with attempt:
                try:
                    _, messages = self._attempt("queueing the task", add, *args)
                    return messages
                except _CallFailed as failed:
                    error = failed.error
                    refused = isinstance(error, (RateLimitedError, TransientServerError)) and \
                        getattr(error, "status_code", 429) in (429, 503) and not failed.joined
                    if needs_fresh_session(error, may_have_queued=not refused):
                        raise Restart(error) from None  # it may be queued: never repeated here
                    raise error from None  # refused (retried) or not retryable (raised)
        raise AssertionError("unreachable")  # pragma: no cover

    def clear_queue(self) -> None:
        """Empty this gradio session's queue after a rejection (best effort, logged)."""
        try:
            if self.offers("clear_queue"):
                self.call("clearing the queue", self.endpoint("clear_queue"))
        except VidbridgeError as exc:
            log.info("%s: clearing the queue after a rejection failed: %s", self.job_id, exc)

    def gallery(self, step: str) -> list[GalleryItem]:
        """The gallery of this gradio session (``refresh_gallery``, else ``finalize_generation``)."""
        name = self.endpoint("refresh_gallery") if self.offers("refresh_gallery") else \
            self.endpoint("finalize_generation")
        result, _ = self.step(step, name, before_queue=not self.started_processing)
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

    def start_processing(self) -> None:
        """WanGP's chain from here: activate the status display, then the feed beside
        ``process_tasks`` (it runs this session's queue: our one task).

        ``activate_status`` is answered before ``process_tasks`` is submitted (see the module
        docstring). It is repeated on transient errors (only the display flag is at stake, and
        the ``process_tasks`` that always follows turns it off again); the server being down
        still counts as "before the queue", since nothing of this gradio session can run.
        """
        self.start_status_feed()
        self.started_processing = True
        self.tasks_job = self.submit_tasks()
        self._on_submitted()

    def submit_tasks(self) -> Any:
        """Submit ``process_tasks`` (not awaited) and listen to it."""
        assert self.pooled is not None
        name = self.endpoint("process_tasks")
        try:
            job = self.pooled.client.submit(api_name=name)
        except Exception as exc:
            raise translate(exc, endpoint=self.session.url, step="starting the generation (process_tasks)") from None
        compat.listen(job, self._wake)
        return job

    def start_status_feed(self) -> None:
        """``activate_status``, answered, then ``refresh_status_async`` submitted (not awaited).

        WanGP answers ``None`` when the last add-task call queued nothing: then no feed is started.
        """
        if self.pooled is None or not (self.offers("activate_status") and self.offers("status_feed")):
            return
        # Not interruptible: an activation that reached the server must be followed by process_tasks.
        try:
            # Never abandoned for a fresh session on transient errors: the display it may have
            # turned on is turned off only by this session's process_tasks.
            activated, _ = self.step("activating the status feed", self.endpoint("activate_status"),
                                     interruptible=False)
        except TransportError as exc:
            # Retries ran out while the server runs: the task is queued, so process_tasks still
            # follows (it also turns off a display this call may have turned on). Only the
            # progress feed is given up, never the job.
            log.info("%s: no status feed: %s", self.job_id, exc)
            return
        if activated is None:
            log.debug("%s: WanGP did not activate the status display", self.job_id)
            return
        try:
            self.status_job = self.pooled.client.submit(api_name=self.endpoint("status_feed"))
        except Exception as exc:  # noqa: BLE001 - progress is optional; generation is not
            log.info("%s: no status feed: %s", self.job_id, translate(exc, endpoint=self.session.url,
                                                                       step="starting the status feed"))
            return
        self.pooled.feeds.add(self.status_job)
        compat.listen(self.status_job, self._wake)

    # -- the end of the chain, and aborting --------------------------------------------------------

    def finish_chain(self) -> bool:
        """``finalize_generation`` (ends ``in_progress``), then ``unload_model_if_needed`` (the
        server's unload policy). False when one failed: the gradio session is not reused."""
        for need, step in (("finalize_generation", "finishing the generation"),
                           ("unload_model", "applying the server's model unload policy")):
            if not self.offers(need):
                continue
            try:
                self.call(step, self.endpoint(need))
            except VidbridgeError as exc:
                log.info("%s: %s: %s; this gradio session is not reused", self.job_id, step, exc)
                return False
        return True

    def abort(self, queued: bool) -> bool:
        """WanGP's abort: of our queued task by id (``queued`` and the server offers it), else of
        the session's running generation. Returns whether the task was removed by id.

        :raises VidbridgeError: the server's abort failed.
        """
        if queued and self.offers("abort_task"):
            # Not running yet: remove our task by id (the session-wide abort fails opaquely when
            # nothing runs). process_tasks is never cancelled: it must run, even on an empty
            # queue, to turn off the status display activate_status turned on.
            self.call("cancelling the queued task", self.endpoint("abort_task"), self.client_id)
            return True
        self.call("aborting the generation", self.endpoint("abort"))
        return False
