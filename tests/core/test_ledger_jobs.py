"""Jobs and the ledger, through the host API, with a test backend registered in-process: what is
written when, automatic resubmission of a lost job, result reuse, resume, cancel."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from vidbridge import (
    Artifact,
    CancelResult,
    Client,
    Endpoint,
    InvalidRequestError,
    JobLostError,
    JobRef,
    JobStatus,
    LedgerError,
    NotAttachableError,
    OutputRef,
    Phase,
    Provenance,
    hookimpl,
)
from vidbridge.ledger import Ledger

URL = "http://lossy.invalid/"


class Backend:
    """A backend the test steers: ``lose`` lists, per status call, the ``output_possible`` of a
    JobLostError to raise (consumed in order); ``hold`` keeps jobs running until set."""

    def __init__(self, ledger_path: Path) -> None:
        self.ledger_path = ledger_path
        self.submits: list[str] = []
        self.seen_at_submit: list[Any] = []
        self.lose: list[bool] = []
        self.hold = threading.Event()
        self.hold.set()
        self.alive: dict[int, dict[str, Any]] = {}
        self.cancelled: list[int] = []

    @hookimpl
    def vidbridge_discover(self, options: Any) -> list[Endpoint]:
        return [Endpoint(url=url, backend="lossy", version="1", models=("m",)) for url in options.urls
                if "lossy.invalid" in url]

    @hookimpl
    def vidbridge_connect(self, endpoint: Endpoint) -> Any:
        return self

    @hookimpl
    def vidbridge_submit(self, request: Any, job_id: str) -> dict[str, Any]:
        # what another process would read in the ledger at the job's first network call
        reader = Ledger(self.ledger_path)
        self.seen_at_submit.append(reader.get(job_id))
        reader.close()
        self.submits.append(job_id)
        handle = {"n": len(self.submits), "job_id": job_id, "seed": request.seed}
        self.alive[handle["n"]] = handle
        return handle

    @hookimpl
    def vidbridge_status(self, handle: dict[str, Any], current: JobStatus, wait: float) -> JobStatus:
        if self.lose:
            raise JobLostError("the server restarted and no longer has the task", output_possible=self.lose.pop(0))
        if handle["n"] in self.cancelled:
            return current.evolve(phase=Phase.CANCELLED)
        if not self.hold.wait(wait):
            return current.evolve(phase=Phase.INFERRING, step=1, total_steps=2)
        return current.evolve(phase=Phase.COMPLETED)

    @hookimpl
    def vidbridge_job_ref(self, handle: dict[str, Any]) -> dict[str, Any]:
        return {"n": handle["n"]}

    @hookimpl
    def vidbridge_attach(self, ref: JobRef) -> dict[str, Any]:
        handle = self.alive.get(ref.data.get("n", -1))
        if handle is None:
            raise NotAttachableError("the backend does not know it", reason="unknown")
        return handle

    @hookimpl
    def vidbridge_fetch(self, handle: dict[str, Any], destination: Path, progress: Any) -> list[Artifact]:
        data = f"video of {handle['job_id']} seed {handle['seed']}".encode()
        path = destination / f"out-{handle['n']}.bin"
        path.write_bytes(data)
        return [Artifact(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                         media_type="application/octet-stream",
                         provenance=Provenance(backend="lossy", endpoint=URL, job_id=handle["job_id"],
                                               original_name=f"server-{handle['n']}.bin"))]

    @hookimpl
    def vidbridge_outputs(self, handle: dict[str, Any]) -> list[OutputRef]:
        return [OutputRef(name=f"server-{handle['n']}.bin", url=f"{URL}files/{handle['n']}")]

    @hookimpl
    def vidbridge_cancel(self, handle: dict[str, Any]) -> CancelResult:
        self.cancelled.append(handle["n"])
        return CancelResult(server_stopped=True, message="stopped")


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.sqlite3"


@pytest.fixture
def backend(vidbridge_register_plugin: Any, ledger_path: Path) -> Backend:
    plugin = Backend(ledger_path)
    vidbridge_register_plugin(plugin, name="lossy")
    return plugin


@pytest.fixture
def client(vidbridge_plugin_manager: Any, backend: Backend, ledger_path: Path, tmp_path: Path) -> Any:
    with Client(plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path / "cache", poll_interval=0.02,
                retry_attempts=1, ledger=ledger_path) as made:
        yield made


def _submit(client: Client, out: Path, **fields: Any) -> Any:
    session = client.connect(URL)
    return session.submit(prompt="a fox", model="m", output_dir=out, **fields)


def test_the_row_exists_before_the_first_network_call_and_follows_the_job(client: Client, backend: Backend,
                                                                          tmp_path: Path) -> None:
    backend.hold.clear()
    job = _submit(client, tmp_path / "out", seed=4)
    queued = client.job(job.id)  # right after submit returned
    assert not queued.finished and queued.request["prompt"] == "a fox" and queued.attempt == 1
    backend.hold.set()
    [artifact] = job.result(timeout=10)
    [seen] = backend.seen_at_submit
    assert seen.status == "queued" and seen.request["seed"] == 4 and not seen.attempts[0].submitted
    record = client.job(job.id)
    assert record.status == "completed" and record.ref.data == {"n": 1} and record.outputs == ("server-1.bin",)
    assert record.attempts[0].submitted
    assert [(a.path, a.sha256) for a in record.artifacts] == [(artifact.path, artifact.sha256)]
    assert [r.id for r in client.jobs(status="completed")] == [job.id] and client.ledger.failures == 0


def test_a_first_attempt_lost_with_no_possible_output_runs_once_more(client: Client, backend: Backend,
                                                                     tmp_path: Path) -> None:
    backend.lose = [False]
    job = _submit(client, tmp_path / "out")
    assert job.result(timeout=10) and job.attempt == 2 and len(backend.submits) == 2
    record = client.job(job.id)
    assert record.status == "completed" and record.attempt == 2
    first, second = record.attempts
    assert (first.status, first.error.type, first.error.output_possible) == ("failed", "JobLostError", False)
    assert (second.reason, second.status) == ("lost", "completed") and record.ref.data == {"n": 2}


@pytest.mark.parametrize("lose", [[True], [False, False]], ids=["output-possible", "lost-twice"])
def test_no_resubmission_when_output_is_possible_or_for_a_second_attempt(client: Client, backend: Backend,
                                                                         tmp_path: Path, lose: list[bool]) -> None:
    backend.lose = list(lose)
    job = _submit(client, tmp_path / "out")
    with pytest.raises(JobLostError):
        job.result(timeout=10)
    assert len(backend.submits) == len(lose)
    record = client.job(job.id)
    assert record.status == "failed" and record.error.type == "JobLostError"


def test_reuse_serves_verified_files_without_asking_the_backend(client: Client, backend: Backend,
                                                                tmp_path: Path) -> None:
    [first] = _submit(client, tmp_path / "a", seed=7).result(timeout=10)
    second = _submit(client, tmp_path / "b", seed=7, reuse=True)
    [copy] = second.result(timeout=10)
    assert second.status().cached and len(backend.submits) == 1
    assert copy.sha256 == first.sha256 and copy.path.parent == tmp_path / "b" and copy.path.read_bytes()
    record = client.job(second.id)
    assert record.cached and record.reused_from == record.reused_from and record.status == "completed"
    # a random seed, or reuse not asked: generated
    _submit(client, tmp_path / "c", seed=-1, reuse=True).result(timeout=10)
    _submit(client, tmp_path / "c", seed=7).result(timeout=10)
    assert len(backend.submits) == 3
    # every file with that key changed: generated again
    for path in (first.path, copy.path, *(tmp_path / "c").iterdir()):
        path.write_bytes(b"changed")
    third = _submit(client, tmp_path / "d", seed=7, reuse=True)
    third.result(timeout=10)
    assert not third.status().cached and len(backend.submits) == 4


def test_resume_of_a_completed_job_reverifies_its_files(client: Client, backend: Backend, tmp_path: Path,
                                                        vidbridge_plugin_manager: Any, ledger_path: Path) -> None:
    job = _submit(client, tmp_path / "out", seed=1)
    [artifact] = job.result(timeout=10)
    with Client(plugin_manager=vidbridge_plugin_manager, ledger=ledger_path, poll_interval=0.02) as other:
        again = other.resume(job.id)
        assert [a.sha256 for a in again.result(timeout=5)] == [artifact.sha256] and again.id == job.id
        copied = other.resume(job.id, output_dir=tmp_path / "copy")
        assert copied.result(timeout=5)[0].path.parent == tmp_path / "copy"
        artifact.path.write_bytes(b"tampered")
        fetched = other.resume(job.id)  # changed: attached and downloaded again, not generated
        assert fetched.result(timeout=5)[0].path.read_bytes() != b"tampered"
        assert len(backend.submits) == 1
        with pytest.raises(Exception, match="not connected"):
            copied.outputs()


def _crafted(ledger_path: Path, job_id: str, *, status: str = "inferring", submitted: bool = True,
             n: int = 999) -> None:
    ledger = Ledger(ledger_path)
    ledger.record_job(job_id, backend="lossy", endpoint=URL.rstrip("/"), status="queued",
                      request={"prompt": "again", "model": "m", "seed": 3}, output_dir=str(ledger_path.parent / "o"))
    ref = JobRef(backend="lossy", endpoint=URL.rstrip("/"), job_id=job_id, data={"n": n})
    ledger.update_job(job_id, attempt=1, status=status, ref=ref, submitted=submitted)
    ledger.close()


def test_resume_follows_work_the_backend_still_has(client: Client, backend: Backend, ledger_path: Path) -> None:
    backend.alive[5] = {"n": 5, "job_id": "job-kept", "seed": 3}
    _crafted(ledger_path, "job-kept", n=5)
    job = client.resume("job-kept")
    assert job.result(timeout=10) and backend.submits == []
    assert client.job("job-kept").status == "completed"


def test_resume_of_lost_work_marks_it_interrupted_then_resubmits_as_attempt_2(client: Client, backend: Backend,
                                                                             ledger_path: Path) -> None:
    _crafted(ledger_path, "job-gone")
    with pytest.raises(NotAttachableError) as caught:
        client.resume("job-gone")
    assert caught.value.reason == "unknown" and "resubmit=True" in caught.value.message
    assert "vidbridge jobs" not in caught.value.message  # host-neutral: no CLI command in the core's words
    record = client.job("job-gone")
    assert record.status == "interrupted" and record.error.reason == "unknown"
    assert [r.id for r in client.jobs(status="interrupted")] == ["job-gone"]
    job = client.resume("job-gone", resubmit=True)
    assert job.result(timeout=10) and job.attempt == 2 and backend.submits == ["job-gone"]
    record = client.job("job-gone")
    assert record.status == "completed" and [a.reason for a in record.attempts] == ["submit", "resubmit"]


def test_resume_and_cancel_refuse_what_they_cannot_do(client: Client, backend: Backend, ledger_path: Path,
                                                      vidbridge_plugin_manager: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.resume("job-nothing")
    assert caught.value.field == "job_id" and "vidbridge jobs list" in caught.value.allowed
    _crafted(ledger_path, "job-failed", status="failed")
    with pytest.raises(InvalidRequestError, match="resubmit"):
        client.resume("job-failed")
    with pytest.raises(InvalidRequestError, match="nothing to cancel"):
        client.cancel_job("job-failed")
    with pytest.raises(InvalidRequestError):
        client.job("")
    with Client(plugin_manager=vidbridge_plugin_manager, ledger=None) as bare:
        with pytest.raises(LedgerError):
            bare.jobs()


def test_cancel_job_stops_attachable_work_and_records_it(client: Client, backend: Backend,
                                                         ledger_path: Path) -> None:
    backend.hold.clear()
    backend.alive[6] = {"n": 6, "job_id": "job-stop", "seed": 3}
    _crafted(ledger_path, "job-stop", n=6)
    result = client.cancel_job("job-stop")
    assert result.server_stopped and backend.cancelled == [6]
    record = client.job("job-stop")
    assert record.status == "cancelled"
    _crafted(ledger_path, "job-unknown")
    assert not client.cancel_job("job-unknown").server_stopped
    assert client.job("job-unknown").error.type == "JobCancelledError"


def test_a_broken_ledger_never_fails_a_job(vidbridge_plugin_manager: Any, backend: Backend, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    backend.ledger_path = tmp_path / "elsewhere.sqlite3"
    with Client(plugin_manager=vidbridge_plugin_manager, ledger=tmp_path / "dir", poll_interval=0.02) as client:
        job = _submit(client, tmp_path / "out", seed=2, reuse=True)
        assert job.result(timeout=10) and job.status().phase is Phase.COMPLETED
        assert client.ledger.failures >= 3


def test_outputs_and_a_later_fetch_are_recorded(client: Client, backend: Backend, tmp_path: Path) -> None:
    job = _submit(client, tmp_path / "unused", download=False)
    assert job.wait(timeout=10).phase is Phase.COMPLETED and client.job(job.id).artifacts == ()
    assert [item.name for item in job.outputs()] == ["server-1.bin"]
    assert client.job(job.id).outputs == ("server-1.bin",)
    [artifact] = job.fetch(tmp_path / "later")
    assert [a.path for a in client.job(job.id).artifacts] == [artifact.path]


def test_resubmission_after_a_loss_works_without_a_ledger(vidbridge_plugin_manager: Any, backend: Backend,
                                                          tmp_path: Path) -> None:
    backend.lose = [False]
    with Client(plugin_manager=vidbridge_plugin_manager, ledger=None, poll_interval=0.02) as client:
        job = _submit(client, tmp_path / "out")
        assert job.result(timeout=10) and job.attempt == 2 and len(backend.submits) == 2


def test_resume_of_a_reused_job_says_cached(client: Client, backend: Backend, tmp_path: Path) -> None:
    _submit(client, tmp_path / "a", seed=8).result(timeout=10)
    reused = _submit(client, tmp_path / "b", seed=8, reuse=True)
    reused.result(timeout=10)
    again = client.resume(reused.id)
    assert again.wait(timeout=5).cached and again.result() and len(backend.submits) == 1
