"""One generation job on one gradio session: taking the session, following the run, the outcome.

The calls and their order are :mod:`.flow`'s (WanGP's Generate chain:
[change_model_from_target, fill_inputs, refresh_model_dropdowns] -> save_inputs(target="state")
-> refresh_gallery (before) -> process_prompt_and_add_tasks -> activate_status ->
refresh_status_async beside process_tasks -> refresh_gallery (after; the diff is this job's
output) -> finalize_generation -> unload_model_if_needed; read that module's docstring before
changing anything here: ``activate_status`` must be answered before ``process_tasks`` is
submitted, and every activation is followed by a ``process_tasks`` that is never cancelled, or
WanGP's status feed loops forever for every client of the server). What an update means is
:mod:`.feed`'s; the job's state is :mod:`.state`'s immutable snapshots.

A consumer thread drains every gradio update of ``process_tasks`` and the status stream (no update
is missed, no extra round trip) into the job's :class:`~.state.JobState`, which
``vidbridge_status`` waits on. The steps after the output is known (finalize, waiting for the feed
to end) run after the job is reported complete, before its gradio session goes back to the pool.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import Any

from vidbridge import (
    BackendConnectionError,
    GenerationRequest,
    JobCancelledError,
    JobFailedError,
    JobStatus,
    Phase,
    TransportError,
    VidbridgeError,
)
from vidbridge.backend import redact_url

from . import compat
from .attach import status_from
from .errors import cancelled, translate
from .feed import changes_for
from .flow import Restart, WanGPFlow, prepare
from .gallery import GalleryItem
from .recovery import ServerGone, find_output, output_stem, recover, remember_folders
from .session import PooledClient, Wan2GPSession
from .state import JobSnapshot, JobState

__all__ = ["Wan2GPJob"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

#: Seconds the status feed may take to end after process_tasks did (WanGP checks every 0.5 s).
_FEED_END_GRACE = 5.0


class Wan2GPJob:
    """A running job: the handle ``vidbridge_submit`` returns."""

    def __init__(self, session: Wan2GPSession, request: GenerationRequest, job_id: str) -> None:
        self.session = session
        self.request = request
        self.job_id = job_id
        self.client_id = f"vb-{job_id}"[:64]
        self.state = JobState()
        self._wake = threading.Event()
        self.flow = WanGPFlow(session, job_id, self.client_id, wake=self._wake.set,
                              on_submitted=lambda: self.state.mark("submitted"))
        # The output's own name on the server: how it is found after a restart (:mod:`.recovery`).
        self.flow.output_stem = output_stem(request.prompt or "", request.seed)
        #: The server process this job's task went to (gradio app_id), and whether it went away.
        self.server_id = session.server_id
        self.server_gone = False
        self._consumer: threading.Thread | None = None
        #: Set once the job is over on this side: outcome reported, WanGP's chain finished and the
        #: gradio session back in the pool (or closed).
        self.settled = threading.Event()
        self.started_at = time.time()

    def __repr__(self) -> str:
        return f"<Wan2GPJob {self.job_id} {self.state.snapshot().phase.value} on {redact_url(self.session.url)}>"

    @property
    def pooled(self) -> PooledClient | None:
        """The gradio session this job runs on (``None`` before it got one and after a restart)."""
        return self.flow.pooled

    @property
    def model(self) -> str | None:
        """The model generating (known once the task is queued)."""
        return self.flow.model

    @property
    def settings_sent(self) -> dict[str, Any]:
        """The form values sent to the server (media as local paths)."""
        return self.flow.settings_sent

    def snapshot(self) -> JobSnapshot:
        """The job's current state (immutable)."""
        return self.state.snapshot()

    # -- submit ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Validate, take a gradio session, queue the task and start following it.

        Every step before ``process_tasks`` is safe to repeat: transient errors are retried, and
        when the server is down (it restarts) or lost the gradio session's state, the whole
        preparation continues on a fresh gradio session once the server answers again (within
        ``connect_timeout x retry_attempts``). Anything this job may have queued on an abandoned
        session never runs: only ``process_tasks`` runs a session's queue, and it is never called
        there. The server's jobs queue their tasks one at a time, in the order they got here
        (:mod:`.turns`).

        :raises InvalidRequestError: before any network call.
        :raises RejectedError: the server refused the task (nothing is left queued).
        """
        flow = self.flow
        plan, model, save = prepare(self.session, self.request)
        flow.model = model
        deadline = self.session.options.connect_deadline()  # for the server to answer again after a restart
        restarts = 0
        while True:
            # In line before taking a gradio session: opening one takes time, and must not reorder jobs.
            with self.session.turns.line_up(flow.stop, self._stopped_waiting) as place:
                flow.pooled = self.session.acquire(timeout=None, fresh=restarts > 0)
                flow.pooled.jobs += 1
                try:
                    place.wait()
                    flow.queue_task(plan, model, save)
                    break
                except Restart as restart:
                    error = restart.error
                except BaseException as exc:
                    # Cancelled part-way: what the gradio session holds is unknown, so it is not reused.
                    self.session.release(flow.pooled, broken=isinstance(exc, (BackendConnectionError,
                                                                              JobCancelledError)))
                    raise
            # Out of the line while the server comes back: the jobs behind this one wait for it
            # side by side, not one deadline after the other.
            restarts += 1
            log.info("%s: continuing %s on a fresh gradio session (%s)", redact_url(self.session.url),
                     self.job_id, error)
            self.session.release(flow.pooled, broken=True)
            flow.pooled = None
            if restarts > flow.attempts():
                raise error from None
            self.session.wait_until_up(deadline, error, stop_event=flow.stop)
        self._consumer = threading.Thread(target=self._consume, name=f"wan2gp-{self.job_id}", daemon=True)
        self._consumer.start()

    def _stopped_waiting(self) -> VidbridgeError:
        """Why this job stopped waiting for its turn: the session closed, or it was cancelled."""
        if self.session.closed:
            return self.session.closed_error()
        return cancelled(self.session.url, False)

    # -- following ---------------------------------------------------------------------------------

    def _apply(self, update: Any, from_status_feed: bool) -> None:
        self.state.apply(lambda snapshot: changes_for(update, from_status_feed=from_status_feed,
                                                      phase=snapshot.phase))

    def _wait_for(self, tasks: Any) -> None:
        """Apply every update of ``tasks`` and the status feed until ``tasks`` ends; wakes on
        events only. A long silence is checked with a probe: a dead server ends the wait."""
        stall = max(self.session.options.request_timeout, 5.0)
        last_event = time.monotonic()
        while True:
            self._wake.clear()
            got = False
            for update in compat.drain(tasks):
                got = True
                self._apply(update, from_status_feed=False)
            status = self.flow.status_job
            for update in compat.drain(status) if status is not None else ():
                got = True
                self._apply(update, from_status_feed=True)
            now = time.monotonic()
            if got:
                last_event = now
            if tasks.done():
                for update in compat.drain(tasks):
                    self._apply(update, from_status_feed=False)
                return
            if now - last_event > stall:
                if self.session.server_down():
                    raise self._lost("the server stopped answering during the generation")
                last_event = now
            self._wake.wait(stall - (now - last_event) + 0.01)

    def _lost(self, what: str) -> ServerGone:
        shown = redact_url(self.session.url)
        return ServerGone(f"{shown}: {what}", endpoint=shown)

    def _consume(self) -> None:
        """Follow ``process_tasks`` to its end, recover what a cut stream hides, collect outputs,
        report the outcome, then finish WanGP's chain before the gradio session is reused."""
        error: VidbridgeError | None = None
        try:
            try:
                outputs = self._follow()
            except ServerGone as gone:  # its output may be on the restarted server, under its name
                outputs = recover(self, gone)
            self._finish(outputs)
        except VidbridgeError as exc:
            error = exc
        except Exception as exc:  # never leave the job hanging; the error says what happened
            log.debug("%s: following the generation raised %s", self.job_id, type(exc).__name__, exc_info=True)
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
          with its process (:class:`~.recovery.ServerGone`; :func:`~.recovery.recover` looks
          for the output on the restarted server).
        """
        flow = self.flow
        recoveries = 0
        cut: VidbridgeError | None = None
        while True:
            self._wait_for(flow.tasks_job)
            error: VidbridgeError | None = None
            try:
                flow.tasks_job.result(timeout=0)
            except Exception as exc:
                snapshot = self.state.snapshot()
                if snapshot.cancel_requested:
                    raise cancelled(self.session.url, snapshot.server_stopped) from None
                error = translate(exc, endpoint=self.session.url,
                                  step=f"generating with model {flow.model!r} (process_tasks)")
                if not error.retryable:
                    raise error from None
            snapshot = self.state.snapshot()
            if snapshot.cancel_requested:
                raise cancelled(self.session.url, snapshot.server_stopped)
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
                                     f"(last status: {snapshot.message or 'none'})", endpoint=shown)
            recoveries += 1
            if recoveries > flow.attempts():
                raise error
            cut = error
            log.info("%s: %s: %s; following the generation again", redact_url(self.session.url), self.job_id, error)
            retry_after = getattr(error, "retry_after", None)
            if retry_after and flow.stop.wait(min(retry_after, 20.0)):
                raise cancelled(self.session.url, self.state.snapshot().server_stopped)
            flow.tasks_job = flow.submit_tasks()

    #: Rounds of (gallery, then look-up by name) after a generation before its output is given up
    #: on: a server under transient faults can leave both unanswered once.
    OUTPUT_ROUNDS = 2

    def _new_outputs(self) -> list[GalleryItem]:
        assert self.pooled is not None
        for round_ in range(1, self.OUTPUT_ROUNDS + 1):
            try:
                after = self.flow.gallery("reading the gallery after the job")
            except TransportError:
                if self.session.server_down():
                    raise self._lost("the server went away before its output was read") from None
                if not self.flow.output_stem:
                    raise
                found = self._outputs_by_name()
                if found is not None:
                    return found
                if round_ == self.OUTPUT_ROUNDS or self.flow.stop.is_set():
                    raise
                continue  # unclear: neither answered; ask both again
            known = self.pooled.gallery or set()
            return [item for item in after if item.path not in known]
        raise AssertionError("unreachable")  # pragma: no cover

    def _outputs_by_name(self) -> list[GalleryItem] | None:
        """The server runs but its gallery did not answer: the output, if it was written, is still
        found under its own name (never regenerate what exists); a name every candidate folder
        answered "no such file" for means no output yet (``[]``); None: no telling answer."""
        lookup = find_output(self.session, self.flow.output_stem, self.session.output_folders, stop=self.flow.stop)
        if lookup.item is None and not lookup.answered:
            return None
        log.info("%s: %s: the gallery did not answer; by its name the output is %s",
                 redact_url(self.session.url), self.job_id, lookup.item.path if lookup.item else "not there")
        return [lookup.item] if lookup.item else []

    def _finish(self, outputs: list[GalleryItem]) -> None:
        assert self.pooled is not None
        self.pooled.gallery = (self.pooled.gallery or set()) | {item.path for item in outputs}
        remember_folders(self.session, outputs)
        self.state.finish(outputs)

    def _fail(self, error: VidbridgeError) -> None:
        # What the gradio session still holds after a failed generation is unknown: not reused.
        if self.pooled is not None:
            self.pooled.broken = True
        self.state.fail(error)

    def _wind_down(self, error: VidbridgeError | None) -> None:
        """The end of WanGP's chain, after the job was reported: ``finalize_generation`` (ends
        ``in_progress``), ``unload_model_if_needed`` (the server's unload policy), and the status
        feed's own end, before the gradio session goes back to the pool. A feed that does not end
        is stopped and its gradio session dropped. Skipped when the server is gone."""
        pooled = self.pooled
        if pooled is None:
            return
        pooled.finishing = True
        gone = isinstance(error, BackendConnectionError) or self.server_gone
        broken = gone
        if self.flow.started_processing and not gone and not self.session.closed:
            broken = not self.flow.finish_chain()
        feed = self.flow.status_job
        if feed is not None and not gone:
            try:
                feed.result(timeout=_FEED_END_GRACE)
            except concurrent.futures.TimeoutError:
                log.warning("%s: %s: WanGP's status feed did not end with the job; stopping it",
                            self.job_id, redact_url(self.session.url))
                broken = True
            except Exception as exc:  # noqa: BLE001 - the feed only reports; its end is what matters
                log.debug("%s: status feed ended with %s: %s", self.job_id, type(exc).__name__, exc)
        self._release(broken=broken)

    def _release(self, *, broken: bool) -> None:
        pooled = self.pooled
        if pooled is not None:
            feed = self.flow.status_job
            if feed is not None:
                pooled.feeds.discard(feed)
                if broken or pooled.broken:
                    compat.end_jobs([feed])
            self.session.release(pooled, broken=broken)

    # -- status and cancel -------------------------------------------------------------------------

    def wait_status(self, current: JobStatus, wait: float) -> JobStatus:
        """Block up to ``wait`` s for a change, then ``current`` evolved with the newest snapshot."""
        return status_from(self.state.wait_for_change(wait), current)

    def cancel(self) -> tuple[bool, str]:
        """Abort through WanGP's own abort endpoints: ``(server_stopped, message)``."""
        if not self.state.request_cancel():
            return False, "the job had already ended"
        self.flow.stop.set()  # no further retry or wait of this job
        self.session.turns.wake()
        stopped = queued_abort = False
        message = ""
        if self.pooled is not None and self.flow.started_processing:
            try:
                queued_abort = self.flow.abort(queued=self.state.snapshot().phase is Phase.QUEUED)
                stopped = True
                message = "WanGP aborted the generation"
            except VidbridgeError as exc:
                message = f"the server's abort failed ({exc}); stopped waiting"
        else:
            message = "the job had not reached the server's queue"
        self.state.note_server_stopped(stopped)
        if not self.flow.started_processing or queued_abort:
            # Nothing runs for this job any more; the consumer still sees process_tasks end.
            self.state.cancelled(message, server_stopped=stopped)
        return stopped, message

    # -- results -----------------------------------------------------------------------------------

    def outputs(self) -> list[GalleryItem]:
        """This job's own new gallery items (after completion)."""
        return list(self.state.snapshot().outputs)

