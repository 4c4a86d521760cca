"""The ledger under kill -9 and under two writing processes (real child processes, real SQLite)."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from vidbridge.ledger import LEDGER_STATUSES, Ledger

# A child that records whole job lifecycles (as a Job does) into the ledger at argv[1]. With a
# kill point K > 0 it SIGKILLs itself when SQLite is about to run its K-th statement: inside a
# transaction as often as between two, which a kill from outside would rarely hit.
WRITER = r"""
import os, signal, sys
from pathlib import Path
from vidbridge.ledger import Ledger
from vidbridge.ledger_recorder import JobRecorder
from vidbridge.models import Artifact, Provenance
from vidbridge.refs import JobRef

path, prefix, jobs, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ledger = Ledger(path)
count = 0
def trace(statement):
    global count
    count += 1
    if kill_at and count >= kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
ledger._connect().set_trace_callback(trace)
for number in range(jobs):
    job_id = f"{prefix}-{number}"
    recorder = JobRecorder(ledger, job_id, backend="b", endpoint="http://h")
    recorder.created(None, status="queued")
    ref = JobRef(backend="b", endpoint="http://h", job_id=job_id, data={"n": number})
    recorder.submitted(ref)
    for phase in ("loading_model", "inferring", "decoding", "downloading"):
        recorder.phase(phase, phase, ref)
    artifacts = [Artifact(path=Path(f"/x/{job_id}-{i}.mp4"), size=1, sha256="b" * 64, media_type="video/mp4",
                          provenance=Provenance(backend="b", endpoint="http://h", job_id=job_id)) for i in range(2)]
    recorder.finished("completed", message="done", error=None, artifacts=artifacts, ref=ref)
print(ledger.failures, flush=True)
"""


def _writer(path: Path, prefix: str, jobs: int, kill_at: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, str(jobs), str(kill_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_consistent(path: Path) -> list[tuple[str, str, int]]:
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        jobs = connection.execute("SELECT id, status, attempt FROM jobs").fetchall()
        for job_id, status, attempt in jobs:
            assert status in LEDGER_STATUSES
            assert connection.execute("SELECT count(*) FROM attempts WHERE job_id = ? AND number = ?",
                                      (job_id, attempt)).fetchone()[0] == 1, job_id
            artifacts = connection.execute("SELECT count(*) FROM artifacts WHERE job_id = ?", (job_id,)).fetchone()[0]
            # a job's end (status + artifacts) is one transaction: both or neither
            assert artifacts == (2 if status == "completed" else 0), (job_id, status, artifacts)
        return jobs
    finally:
        connection.close()


def test_kill_9_at_random_points_never_corrupts_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    rng = random.Random(20261202)
    killed = 0
    for round_number in range(12):
        # a few statements per write, 8 writes per job: the kill comes within the first jobs
        child = _writer(path, f"r{round_number}", jobs=10, kill_at=rng.randint(1, 160))
        child.wait(timeout=60)
        killed += child.returncode == -signal.SIGKILL
        _check_consistent(path)
    assert killed == 12  # every round died mid-way
    # and the file stays usable: a normal writer after all that succeeds, then reads back
    child = _writer(path, "after", jobs=2)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    records = Ledger(path).jobs(status="completed", limit=None)
    assert {"after-0", "after-1"} <= {record.id for record in records}


def test_two_processes_writing_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    children = [_writer(path, name, jobs=25) for name in ("left", "right")]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert out.strip() == "0"  # no write failed (each waited for the other's transactions)
    jobs = _check_consistent(path)
    assert len(jobs) == 50 and {status for _, status, _ in jobs} == {"completed"}
