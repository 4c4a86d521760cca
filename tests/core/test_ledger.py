"""The job ledger's file: schema migrations, writes and reads, where it lives, failures."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from vidbridge import InvalidRequestError, JobRef, LedgerError
from vidbridge import ledger_schema
from vidbridge.ledger import (
    DEFAULT,
    INTERRUPTED,
    LEDGER_STATUSES,
    Ledger,
    default_ledger_path,
    resolve_ledger,
)
from vidbridge.ledger_recorder import JobRecorder
from vidbridge.models import Artifact, Provenance

SHA = "a" * 64


def _artifact(path: Path) -> Artifact:
    return Artifact(path=path, size=3, sha256=SHA, media_type="video/mp4",
                    provenance=Provenance(backend="b", endpoint="http://h", job_id="job-1", original_name="srv.mp4"))


def _tables(connection: sqlite3.Connection) -> dict[str, set[str]]:
    names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: {row[1] for row in connection.execute(f"PRAGMA table_info({name})")} for name in names}


# -- migrations (one test per migration, plus the rules every migration obeys) -------------------


def test_migration_1_creates_jobs_artifacts_and_attempts(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "l.sqlite3", isolation_level=None)
    assert ledger_schema.migrate(connection, target=1) == 0
    assert ledger_schema.schema_version(connection) == 1
    tables = _tables(connection)
    assert {"id", "created", "updated", "backend", "endpoint", "request", "status", "ref", "outputs", "error",
            "attempt", "reuse_key", "cached"} <= tables["jobs"]
    assert {"job_id", "path", "size", "sha256", "attempt"} <= tables["artifacts"]
    assert {"job_id", "number", "reason", "submitted", "status"} <= tables["attempts"]
    indexes = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "jobs_by_reuse_key" in indexes and "jobs_by_status" in indexes


@pytest.mark.parametrize("number", range(1, ledger_schema.SCHEMA_VERSION + 1))
def test_each_migration_runs_once_from_the_previous_version(tmp_path: Path, number: int) -> None:
    connection = sqlite3.connect(tmp_path / "l.sqlite3", isolation_level=None)
    ledger_schema.migrate(connection, target=number - 1)
    assert ledger_schema.migrate(connection, target=number) == number - 1
    assert ledger_schema.migrate(connection, target=number) == number  # already there: nothing done
    assert ledger_schema.schema_version(connection) == number


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("killed mid-migration")

    monkeypatch.setattr(ledger_schema, "MIGRATIONS", (*ledger_schema.MIGRATIONS, broken))
    monkeypatch.setattr(ledger_schema, "SCHEMA_VERSION", len(ledger_schema.MIGRATIONS))
    connection = sqlite3.connect(tmp_path / "l.sqlite3", isolation_level=None)
    with pytest.raises(RuntimeError):
        ledger_schema.migrate(connection)
    assert ledger_schema.schema_version(connection) == 0 and "half_done" not in _tables(connection)


def test_a_ledger_from_a_newer_vidbridge_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {ledger_schema.SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerError) as caught:
        Ledger(path).jobs()
    assert "newer" in caught.value.message and caught.value.path == str(path)


# -- writes and reads ------------------------------------------------------------------------------


def test_a_job_lifecycle_is_recorded_and_read_back(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "sub" / "l.sqlite3")
    recorder = JobRecorder(ledger, "job-1", backend="b", endpoint="http://user:pw@h:1/?token=x")
    recorder.created(None, status="queued")  # no request: an attached job
    ledger.record_job("job-1", backend="b", endpoint="http://h:1", status="queued", request={"prompt": "p"})
    ref = JobRef(backend="b", endpoint="http://h:1", job_id="job-1", data={"id": 7})
    recorder.submitted(ref)
    recorder.phase("inferring", "step 1", ref)
    recorder.ref(ref)  # unchanged: not written again
    recorder.finished("completed", message="done", error=None, artifacts=[_artifact(tmp_path / "x.mp4")], ref=ref)
    record = ledger.get("job-1")
    assert record is not None and record.status == "completed" and record.finished
    assert record.request == {"prompt": "p"} and record.ref == ref and record.outputs == ("srv.mp4",)
    assert [a.sha256 for a in record.artifacts] == [SHA] and record.artifacts[0].path == tmp_path / "x.mp4"
    [attempt] = record.attempts
    assert attempt.submitted and attempt.status == "completed" and attempt.ended is not None
    assert "pw" not in (tmp_path / "sub" / "l.sqlite3").read_bytes().decode("latin-1")
    assert ledger.failures == 0


def test_listing_filters_by_status_and_limits(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    for number, status in enumerate(["queued", "completed", "failed", "inferring"]):
        ledger.record_job(f"job-{number}", backend="b", endpoint="http://h", status=status)
    assert [r.id for r in ledger.jobs()] == ["job-3", "job-2", "job-1", "job-0"]
    assert {r.id for r in ledger.jobs(status="unfinished")} == {"job-0", "job-3"}
    assert {r.id for r in ledger.jobs(status="finished")} == {"job-1", "job-2"}
    assert [r.id for r in ledger.jobs(status="failed")] == ["job-2"]
    assert len(ledger.jobs(limit=2)) == 2 and len(ledger.jobs(limit=None)) == 4
    with pytest.raises(InvalidRequestError) as caught:
        ledger.jobs(status="done")
    assert caught.value.field == "status" and "interrupted" in caught.value.allowed
    with pytest.raises(InvalidRequestError):
        ledger.jobs(limit=0)


def test_interrupted_and_prune(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    for job_id, status in [("old-done", "completed"), ("old-running", "inferring"), ("old-lost", "inferring")]:
        ledger.record_job(job_id, backend="b", endpoint="http://h", status=status)
    ledger.mark_interrupted("old-lost", {"type": "NotAttachableError", "message": "gone", "reason": "session_bound"},
                            "interrupted")
    lost = ledger.get("old-lost")
    assert lost is not None and lost.status == INTERRUPTED and not lost.finished
    assert lost.error is not None and lost.error.reason == "session_bound"
    assert lost.attempts[0].status == INTERRUPTED
    assert ledger.prune(3600) == 0  # all recent
    assert ledger.prune(0) == 2  # finished and interrupted go; a running job stays resumable
    assert [r.id for r in ledger.jobs()] == ["old-running"]
    with pytest.raises(InvalidRequestError):
        ledger.prune(-1)


# -- where it lives ----------------------------------------------------------------------------------


def test_default_path_env_and_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VIDBRIDGE_LEDGER", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_ledger_path() == tmp_path / "data" / "vidbridge" / "jobs.sqlite3"
    monkeypatch.setenv("VIDBRIDGE_LEDGER", str(tmp_path / "mine.sqlite3"))
    assert resolve_ledger(DEFAULT).path == tmp_path / "mine.sqlite3"
    for off in ("off", "", "none"):
        monkeypatch.setenv("VIDBRIDGE_LEDGER", off)
        assert resolve_ledger(DEFAULT) is None
    assert resolve_ledger(None) is None and resolve_ledger(str(tmp_path / "x")).path == tmp_path / "x"
    with pytest.raises(InvalidRequestError) as caught:
        resolve_ledger(3)
    assert caught.value.field == "ledger"
    assert "interrupted" in LEDGER_STATUSES and "completed" in LEDGER_STATUSES


def test_a_broken_ledger_counts_and_warns_but_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "dir.sqlite3").mkdir()  # a folder where the file should be
    ledger = Ledger(tmp_path / "dir.sqlite3")
    recorder = JobRecorder(ledger, "job-1", backend="b", endpoint="http://h")
    with caplog.at_level(logging.WARNING, logger="vidbridge.ledger"):
        recorder.created(None, status="queued")
        recorder.submitted(JobRef(backend="b", endpoint="http://h", job_id="job-1"))
    assert ledger.failures == 2 and "the job goes on" in caplog.text
    with pytest.raises(LedgerError):
        ledger.jobs()


def test_a_closed_ledger_refuses_further_use(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    assert ledger.jobs() == [] and "l.sqlite3" in repr(ledger)
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError):
        ledger.get("x")


def test_ledger_is_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.jobs()
    connection = ledger._connect()
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


# -- reuse keys and file placement -----------------------------------------------------------------


def test_reuse_key_follows_inputs_by_content_and_needs_seed_and_model(tmp_path: Path) -> None:
    from vidbridge import Endpoint, GenerationRequest
    from vidbridge.reuse import reuse_key, server_fingerprint

    image, settings = tmp_path / "start.png", tmp_path / "s.json"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    settings.write_text('{"mode": "t2v"}')
    endpoint = Endpoint(url="http://h:1", backend="b", version="1", models=("m",))
    request = GenerationRequest(prompt="p", model="m", seed=3, image_start=image, settings_file=settings)
    key = reuse_key(request, endpoint)
    assert key is not None and key == reuse_key(request, endpoint)
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(65))
    assert reuse_key(request, endpoint) != key  # same path, other content: another request
    assert reuse_key(request.model_copy(update={"seed": -1}), endpoint) is None
    assert reuse_key(request.model_copy(update={"model": None}), endpoint) is None
    other = endpoint.model_copy(update={"version": "2"})
    assert server_fingerprint(other) != server_fingerprint(endpoint)


def test_materialise_links_or_copies_verified_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import os

    from vidbridge import reuse
    from vidbridge.ledger import ArtifactRecord

    source = tmp_path / "a" / "v.mp4"
    source.parent.mkdir()
    source.write_bytes(b"video")
    record = ArtifactRecord(path=source, size=5, sha256=hashlib.sha256(b"video").hexdigest())
    assert reuse.materialise(record, tmp_path / "a") == source  # already there
    linked = reuse.materialise(record, tmp_path / "b")
    assert linked.read_bytes() == b"video" and os.stat(linked).st_ino == os.stat(source).st_ino

    def no_links(*args: object) -> None:
        raise OSError("no hard links on this filesystem")

    monkeypatch.setattr(os, "link", no_links)
    copied = reuse.materialise(record, tmp_path / "c")
    assert copied.read_bytes() == b"video" and os.stat(copied).st_ino != os.stat(source).st_ino
    changed = record.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(OSError, match="changed"):
        reuse.materialise(changed, tmp_path / "d")
    assert list((tmp_path / "d").iterdir()) == []  # no partial file left
    assert not reuse.verified([]) and not reuse.verified([changed])


def test_recorder_moved_outputs_and_repr(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    recorder = JobRecorder(ledger, "job-9", backend="b", endpoint="http://h")
    recorder.created(None, status="queued")
    recorder.moved(backend="b", endpoint="http://other:2")
    recorder.outputs(["x.mp4"])
    record = ledger.get("job-9")
    assert record.endpoint == "http://other:2" and record.outputs == ("x.mp4",)
    assert "job-9" in repr(recorder)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    import os

    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.record_job("parent", backend="b", endpoint="http://h", status="queued")
    parent_connection = ledger._connection
    pid = os.fork()
    if pid == 0:  # the child: write through the same Ledger object, then leave at once
        try:
            ledger.record_job("child", backend="b", endpoint="http://h", status="queued")
            os._exit(0 if ledger._connection is not parent_connection else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert {r.id for r in ledger.jobs()} == {"parent", "child"} and ledger._connection is parent_connection
