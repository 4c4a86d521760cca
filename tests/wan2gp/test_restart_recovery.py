"""A WanGP server that restarts mid-job (real child-process servers on 127.0.0.1): the job's output
is found by its own name on the restarted server, or the job is provably lost and submitted once
more as a recorded second attempt; never a second generation of a task that produced an output."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

import vidbridge
from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration


def _client(tmp_path: Path) -> vidbridge.Client:
    # connect_timeout x retry_attempts is the budget for the server to come back (a child
    # process restart takes a few seconds on a busy machine).
    return vidbridge.Client(cache_dir=tmp_path / "cache", ledger=tmp_path / "jobs.sqlite3",
                            connect_timeout=20, retry_attempts=3, request_timeout=10)


def _run_through_exit(server: Any, tmp_path: Path, fault: str, prompt: str) -> tuple[Any, Any, list]:
    """Submit a job, make the server exit with ``fault``, restart it once it has exited; returns
    ``(client, job, artifacts)``."""
    faults.add_faults(server.url, fault)
    client = _client(tmp_path)
    session = client.connect(server.url, backend="wan2gp")
    job = session.submit(prompt=prompt, seed=7, frames=17, steps=3, output_dir=tmp_path / "out", timeout=300)
    assert server.process.wait(timeout=120) == 3  # the fault ended the server process
    server.restart()
    return client, job, job.result(timeout=300)


def test_restart_after_the_output_was_written_completes_from_it(
        vidbridge_mock_subprocess_factory: Callable[..., Any], tmp_path: Path) -> None:
    server = vidbridge_mock_subprocess_factory()
    client, job, artifacts = _run_through_exit(server, tmp_path, "exit:at=output,count=1", "written then gone")
    with client:
        [artifact] = artifacts
        name = artifact.provenance.original_name or ""
        assert "_vb-" in name and name.startswith("written_then_gone_seed7"), name
        assert job.attempt == 1
        counter = faults.read_counter(server.url)  # the counter survived the restart
        assert [(r["prompt"], r["outcome"]) for r in counter["runs"]] == [("written then gone", "completed")]
        record = client.job(job.id)
        assert record.status == "completed" and record.attempt == 1
        assert record.ref is not None and record.ref.data["output_stem"] in name


def test_restart_before_the_output_resubmits_once_as_attempt_two(
        vidbridge_mock_subprocess_factory: Callable[..., Any], tmp_path: Path) -> None:
    server = vidbridge_mock_subprocess_factory()
    client, job, artifacts = _run_through_exit(server, tmp_path, "exit:after_step=2,count=1", "gone mid way")
    with client:
        assert len(artifacts) == 1 and job.attempt == 2
        counter = faults.read_counter(server.url)
        assert [(r["prompt"], r["outcome"]) for r in counter["runs"]] == [("gone mid way", "interrupted"),
                                                                          ("gone mid way", "completed")]
        record = client.job(job.id)
        assert record.status == "completed" and record.attempt == 2


def test_a_gallery_that_never_answers_after_the_generation_finds_the_output_by_its_name(
        vidbridge_mock_subprocess_factory: Callable[..., Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The soak's ``failed_but_generated`` case: the gallery read after a finished generation ran
    out of retries (429s, resets) while the server kept running. The output is named after the
    job, so it is fetched by that name from WanGP's ``outputs`` folder: delivered, generated once."""
    from vidbridge import TransientServerError
    from vidbridge.plugins.wan2gp.flow import WanGPFlow

    server = vidbridge_mock_subprocess_factory()
    real = WanGPFlow.gallery

    def unanswered_after(self: Any, step: str) -> Any:
        if "after" in step:
            raise TransientServerError(f"{step}: HTTP 503 (retries exhausted)", endpoint=server.url)
        return real(self, step)

    monkeypatch.setattr(WanGPFlow, "gallery", unanswered_after)
    with _client(tmp_path) as client:
        session = client.connect(server.url, backend="wan2gp")
        job = session.submit(prompt="gallery never answers", seed=7, frames=17, steps=2,
                             output_dir=tmp_path / "out", timeout=300)
        [artifact] = job.result(timeout=300)
        assert (artifact.provenance.original_name or "").startswith("gallery_never_answers_seed7_vb-")
        assert job.attempt == 1
        counter = faults.read_counter(server.url)
        assert [(r["prompt"], r["outcome"]) for r in counter["runs"]] == [("gallery never answers", "completed")]


def test_restart_while_the_output_was_half_written_resubmits_once(
        vidbridge_mock_subprocess_factory: Callable[..., Any], tmp_path: Path) -> None:
    """The soak's last failure: the server died while writing the video. The restarted server
    serves a file of that name, but cut short (no ``moov`` box): not a video, and the process that
    wrote it is gone. The job is submitted once more (attempt 2) instead of failing its download."""
    server = vidbridge_mock_subprocess_factory()
    client, job, artifacts = _run_through_exit(server, tmp_path, "exit:at=writing,count=1", "cut while writing")
    with client:
        [artifact] = artifacts
        assert job.attempt == 2 and artifact.size > 0
        counter = faults.read_counter(server.url)
        assert [(r["prompt"], r["outcome"]) for r in counter["runs"]] == [("cut while writing", "interrupted"),
                                                                          ("cut while writing", "completed")]
