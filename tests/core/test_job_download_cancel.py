"""A job cancelled while its artifacts download (issue 14, item 12): the download stops within a
read, its partial file and writer thread are gone, files already named are reported, and the
backend (which has finished) is not asked to cancel. Against an inline backend whose fetch uses
``download_verified`` over an ``httpx.MockTransport`` driven by events, not time."""

from __future__ import annotations

import threading
from pathlib import Path
import httpx
import pytest
from test_containers import mp4_bytes

from vidbridge import (
    BackendError,
    CancelResult,
    Endpoint,
    JobCancelledError,
    Phase,
    Provenance,
    hookimpl,
)
from vidbridge.download import current_fetch_scope, download_verified

URL = "http://files.local:7860"
BODY = mp4_bytes(b"\x03" * (256 * 1024))


class Handle:
    def __init__(self, job_id: str, files: list[str]) -> None:
        self.job_id = job_id
        self.files = files


class DownloadingBackend:
    """Generation completes at once; ``vidbridge_fetch`` downloads ``files`` one after the other.

    The file named ``stall`` sends one piece, then sets :attr:`stalled` and sends the rest only once
    the job's fetch scope is cancelled (a slow network the test can step); ``missing`` is a 404.
    """

    def __init__(self) -> None:
        self.cancel_calls: list[str] = []
        self.stalled = threading.Event()
        self.gate: threading.Event | None = None  # if set: status waits for it (a busy backend)
        self.in_status = threading.Event()
        self.requests: list[str] = []

    def _answer(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("=", 1)[-1]
        self.requests.append(name)
        if name == "missing.mp4":
            return httpx.Response(404)
        if name != "stall.mp4":
            return httpx.Response(200, content=BODY)
        scope = self._scope

        def pieces():
            yield BODY[:1000]
            self.stalled.set()
            assert scope is not None and scope.cancelled.wait(30)
            yield BODY[1000:]

        return httpx.Response(200, headers={"Content-Length": str(len(BODY))}, content=pieces())

    @hookimpl
    def vidbridge_connect(self, endpoint):
        return object()

    @hookimpl
    def vidbridge_submit(self, request, job_id):
        return Handle(job_id, list(request.settings["files"]))

    @hookimpl
    def vidbridge_status(self, current):
        self.in_status.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        return current.evolve(phase=Phase.COMPLETED)

    @hookimpl
    def vidbridge_fetch(self, handle, destination, progress):
        self._scope = current_fetch_scope()
        artifacts = []
        with httpx.Client(transport=httpx.MockTransport(self._answer)) as http:
            for name in handle.files:
                artifacts.append(download_verified(
                    http, f"{URL}/file={name}", destination, original_name=name, attempts=1, progress=progress,
                    provenance=Provenance(backend="files", endpoint=URL, job_id=handle.job_id),
                ))
        return artifacts

    @hookimpl
    def vidbridge_cancel(self, handle):
        self.cancel_calls.append(handle.job_id)
        if self.gate is not None:
            self.gate.set()  # too late: the generation has finished
        return CancelResult(server_stopped=False, message="nothing to stop")


@pytest.fixture
def backend(vidbridge_register_plugin) -> DownloadingBackend:
    plugin = DownloadingBackend()
    vidbridge_register_plugin(plugin, name="files")
    return plugin


@pytest.fixture
def session(vidbridge_thread_guard, backend, vidbridge_client):
    return vidbridge_client.connect(Endpoint(url=URL, backend="files"))


def _submit(session, out: Path, *files: str, **options):
    return session.submit(prompt="p", settings={"files": list(files)}, output_dir=out, **options)


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _writer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "vidbridge-download-writer"]


def _assert_cancelled_keeping_first(job, out: Path, backend: DownloadingBackend) -> None:
    assert job.status().phase is Phase.CANCELLED
    assert isinstance(job.error, JobCancelledError) and job.error.server_stopped is False
    assert [artifact.path.name for artifact in job.artifacts] == ["first.mp4"]
    assert _names(out) == ["first.mp4", "first.mp4.json"]  # no .part, no stall.mp4
    assert backend.cancel_calls == []  # the backend had finished: only the download stopped
    assert _writer_threads() == []
    with pytest.raises(JobCancelledError):
        job.result(timeout=30)


def test_cancel_from_another_thread_stops_the_download_and_keeps_the_finished_file(session, backend, tmp_path):
    out = tmp_path / "out"
    job = _submit(session, out, "first.mp4", "stall.mp4", "never.mp4")
    assert backend.stalled.wait(30), (job.status(), job.error)
    assert any(name.endswith(".part") for name in _names(out))  # really mid-download
    result = job.cancel()
    job.wait(timeout=30)  # the job ends on its own thread (cancel need not wait for it)
    assert result == CancelResult(server_stopped=False, message="the backend had finished; the download was stopped")
    _assert_cancelled_keeping_first(job, out, backend)
    assert backend.requests == ["first.mp4", "stall.mp4"]  # the next file was not even asked for
    assert job.cancel() == result  # a second cancel is harmless


def test_closing_the_session_stops_a_download(session, backend, tmp_path):
    out = tmp_path / "out"
    job = _submit(session, out, "first.mp4", "stall.mp4")
    assert backend.stalled.wait(30), (job.status(), job.error)
    session.close()
    job.wait(timeout=30)
    _assert_cancelled_keeping_first(job, out, backend)


def test_a_status_callback_can_cancel_during_the_download(session, backend, tmp_path):
    out = tmp_path / "out"
    seen: list[Phase] = []
    holder: list = []
    submitted = threading.Event()

    def on_status(status) -> None:  # runs on the job's own thread, which cannot join itself
        seen.append(status.phase)
        assert submitted.wait(30)
        if status.phase is Phase.DOWNLOADING and status.downloaded_bytes == status.total_bytes == len(BODY):
            holder[0].cancel()

    job = _submit(session, out, "first.mp4", "second.mp4", on_status=on_status)
    holder.append(job)
    submitted.set()
    job.wait(timeout=30)
    # The cancel came after all bytes of first.mp4 were in: it is not named, nothing is left
    assert job.status().phase is Phase.CANCELLED and seen[-1] is Phase.CANCELLED
    assert job.artifacts == [] and _names(out) == [] and backend.requests == ["first.mp4"]


def test_a_failed_fetch_reports_the_files_already_named(session, backend, tmp_path):
    out = tmp_path / "out"
    job = _submit(session, out, "first.mp4", "missing.mp4")
    with pytest.raises(BackendError):
        job.result(timeout=30)
    assert job.status().phase is Phase.FAILED
    assert [artifact.path.name for artifact in job.artifacts] == ["first.mp4"]
    assert _names(out) == ["first.mp4", "first.mp4.json"]


def test_a_job_cancelled_before_its_fetch_downloads_nothing(session, backend, tmp_path):
    """The server is asked to cancel, but reports completed anyway: no download starts."""
    out = tmp_path / "out"
    backend.gate = threading.Event()
    job = _submit(session, out, "first.mp4")
    assert backend.in_status.wait(30)
    result = job.cancel()  # the backend's cancel opens the gate: status then says completed
    job.wait(timeout=30)
    assert result.message == "nothing to stop" and backend.cancel_calls == [job.id]
    assert job.status().phase is Phase.CANCELLED and isinstance(job.error, JobCancelledError)
    assert backend.requests == [] and job.artifacts == []
    assert not out.exists() or _names(out) == []
