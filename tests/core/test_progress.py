"""Progress for humans (``core/progress.py``): the one-line ``describe`` and ``ProgressDisplay`` in
line mode (logs, CI) and live mode (a terminal)."""

from __future__ import annotations

import io
import threading

import pytest

from vidbridge.models import JobStatus, Phase
from vidbridge.progress import ProgressDisplay, describe


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _status(phase: Phase, **fields: object) -> JobStatus:
    return JobStatus(job_id="j1", phase=phase, **fields)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (_status(Phase.QUEUED), "queued"),
        (_status(Phase.QUEUED, queue_position=2, queue_size=5), "queued  position 2/5"),
        (_status(Phase.QUEUED, queue_position=0), "queued  position 0"),
        (_status(Phase.QUEUED, queue_position=0, queue_size=0), "queued  position 0"),
        (_status(Phase.LOADING_MODEL, message="loading t2v"), "loading model  - loading t2v"),
        (_status(Phase.INFERRING, step=3, total_steps=10, eta_seconds=12.4), "inferring  step 3/10  ETA 12s"),
        (_status(Phase.INFERRING, step=3), "inferring"),  # no total: a bare step says nothing
        (_status(Phase.INFERRING, step=0, total_steps=0), "inferring"),
        (_status(Phase.DOWNLOADING, downloaded_bytes=1234567, total_bytes=9876543, message="video.mp4"),
         "downloading  1,234,567/9,876,543 bytes"),
        (_status(Phase.DOWNLOADING, downloaded_bytes=0), "downloading  0 bytes"),
        (_status(Phase.COMPLETED, eta_seconds=0.0), "completed  ETA 0s"),
        (_status(Phase.FAILED, message="out of memory"), "failed  - out of memory"),
    ],
    ids=["queued", "queued-position", "position-no-size", "size-zero", "loading-message", "steps-eta",
         "step-without-total", "zero-total", "download-bytes", "download-no-total", "eta-zero", "failed"],
)
def test_describe(status: JobStatus, text: str) -> None:
    assert describe(status) == text


def test_queue_position_is_shown_only_while_queued() -> None:
    # A status object keeps fields given to it; describe only shows the position for QUEUED.
    assert "position" not in describe(_status(Phase.STARTING, queue_position=1, queue_size=3))


def test_line_mode_prints_one_line_per_phase_change() -> None:
    stream = io.StringIO()
    statuses = [
        _status(Phase.QUEUED, queue_position=1, queue_size=2),
        _status(Phase.QUEUED, queue_position=0, queue_size=2),  # queue moves are always shown
        _status(Phase.INFERRING, step=1, total_steps=4),
        _status(Phase.INFERRING, step=2, total_steps=4),  # same phase: no new line
        _status(Phase.DOWNLOADING, downloaded_bytes=10, total_bytes=20),
        _status(Phase.COMPLETED),
    ]
    with ProgressDisplay(stream=stream) as display:
        for status in statuses:
            display.update(status)
    assert stream.getvalue().splitlines() == [
        "queued  position 1/2",
        "queued  position 0/2",
        "inferring  step 1/4",
        "downloading  10/20 bytes",
        "completed",
    ]


def test_disabled_display_prints_nothing_even_on_a_terminal() -> None:
    stream = _Terminal()
    with ProgressDisplay(enabled=False, stream=stream) as display:
        display.update(_status(Phase.INFERRING, step=1, total_steps=2))
    assert stream.getvalue() == ""


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressDisplay() as display:
        display.update(_status(Phase.STARTING))
    captured = capsys.readouterr()
    assert captured.err == "starting\n" and captured.out == ""


def test_live_mode_on_a_terminal_renders_the_bar() -> None:
    stream = _Terminal()
    display = ProgressDisplay(stream=stream)
    with display:
        display.update(_status(Phase.QUEUED, queue_position=3, queue_size=4))
        display.update(_status(Phase.INFERRING, step=5, total_steps=10, progress=0.5, eta_seconds=7))
        display.update(_status(Phase.COMPLETED, progress=1.0))
    output = stream.getvalue()
    assert "completed" in output  # the final state stays on screen (not transient)
    assert "\x1b[" in output  # drawn with terminal control sequences, not as plain lines
    assert display._progress is None  # stopped on exit
    display.__exit__(None, None, None)  # a second exit is harmless


def test_live_mode_updates_from_many_threads() -> None:
    stream = _Terminal()
    start = threading.Barrier(4)
    problems: list[BaseException] = []

    def feed(display: ProgressDisplay, offset: int) -> None:
        try:
            start.wait(10)
            for step in range(1, 21):
                display.update(_status(Phase.INFERRING, step=step, total_steps=20, progress=step / 20,
                                       message=f"worker {offset}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            problems.append(exc)

    with ProgressDisplay(stream=stream) as display:
        threads = [threading.Thread(target=feed, args=(display, i)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not problems
    assert "inferring" in stream.getvalue()


def test_line_mode_from_many_threads_keeps_lines_whole() -> None:
    stream = io.StringIO()
    start = threading.Barrier(4)

    def feed(display: ProgressDisplay) -> None:
        start.wait(10)
        for _ in range(50):
            display.update(_status(Phase.QUEUED, queue_position=1, queue_size=9))

    with ProgressDisplay(stream=stream) as display:
        threads = [threading.Thread(target=feed, args=(display,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 200 and set(lines) == {"queued  position 1/9"}
