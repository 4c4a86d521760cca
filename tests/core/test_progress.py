"""Progress for humans (``core/progress.py``): the one-line ``describe`` and ``ProgressDisplay`` in
line mode (logs, CI) and live mode (a terminal)."""

from __future__ import annotations

import io
import re
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


# -- the bars: never backwards, download bytes, full at completion (issue 14, item 10) -------------


def _job_statuses() -> list[JobStatus]:
    """What a real job records (the mock backend through the Wan2GP plugin and Job): inference
    steps, decoding and downloading without a progress of the job, bytes, completed."""
    statuses = [_status(Phase.QUEUED, queue_position=0, queue_size=1)]
    statuses.append(statuses[-1].evolve(phase=Phase.STARTING))
    for step in range(1, 30):
        statuses.append(statuses[-1].evolve(phase=Phase.INFERRING, step=step, total_steps=30, progress=step / 30))
    statuses.append(statuses[-1].evolve(phase=Phase.DECODING, message="Decoding..."))
    statuses.append(statuses[-1].evolve(phase=Phase.DOWNLOADING, message="downloading artifacts"))
    for done in (0, 4000, 8000, 11308):  # the Job puts the file's fraction in ``progress``
        statuses.append(statuses[-1].evolve(downloaded_bytes=done, total_bytes=11308, progress=done / 11308))
    statuses.append(statuses[-1].evolve(phase=Phase.COMPLETED, message="1 artifact(s) verified", progress=1.0))
    return statuses


BAR_WIDTH = 40  # rich's BarColumn default


def _frames(output: str) -> list[list[str]]:
    """The screens a live display drew: each one its lines (rich rewinds with CR + erase line)."""
    screens = re.split(r"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)*", output.replace("\x1b[?25l", "").replace("\x1b[?25h", ""))
    return [screen.rstrip("\n").split("\n") for screen in screens if screen.strip()]


def _filled(line: str) -> float:
    """How much of the bar on ``line`` is filled, 0..1 (no colour: only the filled part is drawn)."""
    return (2 * line.count("━") + line.count("╸")) / (2 * BAR_WIDTH)


def _live_render(statuses: list[JobStatus]) -> list[list[str]]:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system=None, width=120)
    with ProgressDisplay(console=console) as display:
        for status in statuses:
            display.update(status)
    return _frames(buffer.getvalue())


def test_live_job_bar_never_goes_back_and_is_full_at_completion() -> None:
    frames = _live_render(_job_statuses())
    job_lines = [frame[0] for frame in frames]
    fills = [_filled(line) for line in job_lines]
    assert fills == sorted(fills), list(zip(fills, job_lines))  # never backwards
    decoding = next(line for line in job_lines if line.startswith("decoding"))
    assert _filled(decoding) == pytest.approx(29 / 30, abs=1 / BAR_WIDTH)  # keeps the inference bar
    assert all(_filled(line) >= 29 / 30 - 1 / BAR_WIDTH for line in job_lines if line.startswith("downloading"))
    assert job_lines[-1].startswith("completed") and _filled(job_lines[-1]) == 1.0
    assert "1 artifact(s) verified" in job_lines[-1]


def test_live_download_bar_shows_bytes_of_the_total() -> None:
    frames = _live_render(_job_statuses())
    downloads = [frame[1] for frame in frames if len(frame) == 2]
    assert [line.split()[-3] for line in downloads[:4]] == ["0/11,308", "4,000/11,308", "8,000/11,308",
                                                            "11,308/11,308"]
    assert [_filled(line) for line in downloads[:4]] == pytest.approx([0, 4000 / 11308, 8000 / 11308, 1],
                                                                      abs=1 / BAR_WIDTH)
    assert all(line.startswith("download ") for line in downloads)
    assert frames[-1][1].split()[-3] == "11,308/11,308" and _filled(frames[-1][1]) == 1.0
    assert all(len(frame) == 1 for frame in frames if frame[0].startswith(("inferring", "decoding")))


def test_live_download_without_a_total_is_indeterminate_and_the_bar_still_ends_full() -> None:
    statuses = _job_statuses()[:-6]  # up to decoding
    statuses.append(statuses[-1].evolve(phase=Phase.DOWNLOADING, downloaded_bytes=0))
    statuses.append(statuses[-1].evolve(downloaded_bytes=5000))
    statuses.append(statuses[-1].evolve(phase=Phase.COMPLETED, progress=1.0))
    frames = _live_render(statuses)
    assert [frame[1].split()[-3] for frame in frames if len(frame) == 2][:2] == ["0", "5,000"]
    assert _filled(frames[-1][0]) == 1.0


def test_live_bars_start_again_for_another_job() -> None:
    first = _job_statuses()
    second = [JobStatus(job_id="j2", phase=Phase.INFERRING, step=1, total_steps=4, progress=0.25)]
    frames = _live_render(first + second)
    assert frames[-1][0].startswith("inferring") and _filled(frames[-1][0]) == pytest.approx(0.25)
    assert len(frames[-1]) == 1  # the first job's download bar is gone


def test_line_mode_shows_download_quarters_and_the_final_count() -> None:
    stream = io.StringIO()
    statuses = _job_statuses()
    # a big file: progress every 256 KiB; a retry starts again from 0
    downloading = statuses[-2]
    for done in (0, 100, 260, 500, 510, 760, 1000, 0, 1000):
        statuses.insert(-1, downloading.evolve(downloaded_bytes=done, total_bytes=1000))
    with ProgressDisplay(stream=stream) as display:
        for status in statuses:
            display.update(status)
    lines = stream.getvalue().splitlines()
    download_lines = [line for line in lines if line.startswith("downloading")]
    assert download_lines == [
        "downloading",
        "downloading  0/11,308 bytes", "downloading  4,000/11,308 bytes", "downloading  8,000/11,308 bytes",
        "downloading  11,308/11,308 bytes",
        "downloading  0/1,000 bytes", "downloading  260/1,000 bytes", "downloading  500/1,000 bytes",
        "downloading  760/1,000 bytes", "downloading  1,000/1,000 bytes",
        "downloading  0/1,000 bytes", "downloading  1,000/1,000 bytes",
    ]
    assert lines[-1] == "completed  11,308/11,308 bytes  - 1 artifact(s) verified"
    assert "decoding  - Decoding..." in lines


def test_line_mode_download_without_a_total_prints_the_phase_once() -> None:
    stream = io.StringIO()
    base = _status(Phase.DECODING)
    with ProgressDisplay(stream=stream) as display:
        for done in (None, 0, 5000):
            display.update(base.evolve(phase=Phase.DOWNLOADING, downloaded_bytes=done))
    assert stream.getvalue().splitlines() == ["downloading"]
