"""The status-feed parser (``feed.py``) on gradio_client's own update types, and the job state
machine (``state.py``): immutable snapshots replaced under one lock."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from gradio_client.utils import OutputUpdate, ProgressUnit, Status, StatusUpdate

from vidbridge import JobFailedError, Phase
from vidbridge.plugins.wan2gp.feed import changes_for, phase_from_text
from vidbridge.plugins.wan2gp.gallery import GalleryItem
from vidbridge.plugins.wan2gp.state import JobSnapshot, JobState


def status(code: Status, *, rank: int | None = None, size: int | None = None, eta: float | None = None,
           log: tuple[str, str] | None = None, progress: list[ProgressUnit] | None = None) -> StatusUpdate:
    return StatusUpdate(code=code, rank=rank, queue_size=size, eta=eta, success=None, time=None,
                        progress_data=progress, log=log)


def feed_line(text: object) -> OutputUpdate:
    return OutputUpdate(outputs=[text], success=True)


@pytest.mark.parametrize(("text", "phase"), [
    ("Loading model Wan2.1 text2video 14B...", Phase.LOADING_MODEL),
    ("loading the model weights", Phase.LOADING_MODEL),
    ("Decoding...", Phase.DECODING),
    ("Encoding the prompt", Phase.ENCODING),
    ("Encoding video", None),
    ("Denoising 3/30", Phase.INFERRING),
    ("Step 4 of 9", Phase.INFERRING),
    ("Generating...", Phase.STARTING),
    ("Total Generation Time: 3.1s", None),
])
def test_phase_from_text(text: str, phase: Phase | None) -> None:
    assert phase_from_text(text) is phase


def test_feed_lines_set_the_message_phase_and_steps() -> None:
    assert changes_for(feed_line("Denoising 3/30"), from_status_feed=True, phase=Phase.STARTING) == {
        "message": "Denoising 3/30", "phase": Phase.INFERRING, "step": 3, "total_steps": 30}
    assert changes_for(feed_line({"__type__": "update", "value": " Decoding... "}), from_status_feed=True,
                       phase=Phase.INFERRING) == {"message": "Decoding...", "phase": Phase.DECODING,
                                                  "step": None, "total_steps": None}
    assert changes_for(feed_line("Total Generation Time: 2s"), from_status_feed=True,
                       phase=Phase.DECODING) == {"message": "Total Generation Time: 2s"}
    assert changes_for(feed_line("   "), from_status_feed=True, phase=Phase.QUEUED) == {}
    assert changes_for(feed_line(None), from_status_feed=True, phase=Phase.QUEUED) == {}
    assert changes_for(OutputUpdate(outputs="Denoising 1/2", success=True), from_status_feed=True,
                       phase=Phase.QUEUED)["step"] == 1


def test_process_tasks_outputs_are_timestamps_and_say_nothing() -> None:
    assert changes_for(feed_line("1733000000.1"), from_status_feed=False, phase=Phase.INFERRING) == {}


def test_queue_statuses_move_only_the_job_and_only_from_its_own_call() -> None:
    queued = status(Status.IN_QUEUE, rank=2, size=5, eta=12.5)
    assert changes_for(queued, from_status_feed=False, phase=Phase.QUEUED) == {
        "phase": Phase.QUEUED, "queue_position": 2, "queue_size": 5, "eta": 12.5}
    assert changes_for(queued, from_status_feed=True, phase=Phase.QUEUED) == {}  # the feed's own queue
    running = status(Status.PROCESSING)
    assert changes_for(running, from_status_feed=False, phase=Phase.QUEUED) == {
        "phase": Phase.STARTING, "queue_position": None}
    assert changes_for(running, from_status_feed=False, phase=Phase.INFERRING) == {}  # never backwards
    assert changes_for(status(Status.ITERATING), from_status_feed=False, phase=Phase.QUEUED)["phase"] is Phase.STARTING


def test_info_logs_become_the_message_except_wangps_autosave_note() -> None:
    assert changes_for(status(Status.LOG, log=("Prompt is empty", "info")), from_status_feed=False,
                       phase=Phase.QUEUED) == {"message": "Prompt is empty"}
    autosave = status(Status.LOG, log=("Error Queue autosaved successfully to error_queue.zip", "info"))
    assert changes_for(autosave, from_status_feed=False, phase=Phase.INFERRING) == {}


def test_progress_bars_give_steps() -> None:
    bar = [ProgressUnit(index=None, length=None, unit=None, progress=None, desc=None),
           ProgressUnit(index=4, length=8, unit="steps", progress=None, desc="Denoising")]
    assert changes_for(status(Status.PROGRESS, progress=bar), from_status_feed=True, phase=Phase.STARTING) == {
        "phase": Phase.INFERRING, "step": 4, "total_steps": 8, "message": "Denoising"}
    no_length = [ProgressUnit(index=1, length=0, unit=None, progress=None, desc=None)]
    assert changes_for(status(Status.PROGRESS, progress=no_length), from_status_feed=True,
                       phase=Phase.STARTING) == {}
    undescribed = [ProgressUnit(index=1, length=3, unit=None, progress=None, desc=None)]
    assert "message" not in changes_for(status(Status.PROGRESS, progress=undescribed), from_status_feed=False,
                                        phase=Phase.STARTING)


# -- the state machine ----------------------------------------------------------------------------


def test_snapshots_are_frozen_and_replaced() -> None:
    state = JobState()
    before = state.snapshot()
    state.update(phase=Phase.INFERRING, step=1, total_steps=4)
    after = state.snapshot()
    assert before.phase is Phase.QUEUED and before.version == 0  # a reader's snapshot never changes
    assert (after.phase, after.step, after.version) == (Phase.INFERRING, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.step = 2  # type: ignore[misc]
    state.update()  # nothing to change: no new version
    assert state.snapshot() is after


def test_an_ended_job_ignores_late_updates_but_records_its_outcome() -> None:
    state = JobState()
    assert state.request_cancel()
    state.cancelled("aborted", server_stopped=True)
    state.update(phase=Phase.INFERRING, message="Denoising 9/9")  # a late line of the stream
    state.apply(lambda snapshot: {"phase": Phase.DECODING})
    snapshot = state.snapshot()
    assert (snapshot.phase, snapshot.message, snapshot.server_stopped) == (Phase.CANCELLED, "aborted", True)
    assert not state.request_cancel()  # already ended
    state.cancelled("again", server_stopped=False)  # no second cancellation
    assert state.snapshot().message == "aborted"
    error = JobFailedError("stopped")
    state.fail(error)  # the consumer's outcome: cancelled, since cancel was asked
    assert (state.snapshot().phase, state.snapshot().error) == (Phase.CANCELLED, error)


def test_outcomes_and_milestones() -> None:
    state = JobState()
    state.mark("submitted")
    item = GalleryItem(path="/out/a.mp4", kind="video")
    state.finish([item])
    snapshot = state.snapshot()
    assert snapshot.phase is Phase.COMPLETED and snapshot.outputs == (item,)
    assert [name for name, _ in snapshot.timings] == ["submitted", "finished"]
    assert snapshot.message == "1 output(s) ready"
    failing = JobState()
    failing.note_server_stopped(False)
    failing.fail(JobFailedError("boom"))
    assert failing.snapshot().phase is Phase.FAILED and failing.snapshot().message == "boom"


def test_apply_reads_and_writes_under_one_lock() -> None:
    state = JobState()
    seen: list[JobSnapshot] = []
    state.apply(lambda snapshot: seen.append(snapshot) or {"queue_position": 3})
    state.apply(lambda snapshot: {})
    assert seen[0].version == 0 and state.snapshot().queue_position == 3 and state.snapshot().version == 1


def test_wait_for_change_returns_each_new_snapshot_once_and_wakes_on_changes() -> None:
    state = JobState()
    first = state.wait_for_change(0)
    assert first.version == 0
    assert state.wait_for_change(0) is first  # nothing new: returns after the wait
    waiting = threading.Event()
    got: list[JobSnapshot] = []

    def reader() -> None:
        waiting.set()
        got.append(state.wait_for_change(60))

    thread = threading.Thread(target=reader)
    thread.start()
    waiting.wait(10)
    state.update(message="Denoising 1/2")  # wakes the reader (no 60 s wait)
    thread.join(30)
    assert not thread.is_alive() and got[0].message == "Denoising 1/2"
    state.finish([])
    assert state.wait_for_change(60).phase is Phase.COMPLETED
    assert state.wait_for_change(60).phase is Phase.COMPLETED  # terminal: never blocks
