"""Ledger cost per job: every ledger write one job makes, in milliseconds (figure ``ledger``).

    python bench/ledger_cost.py [--jobs N] [--json]

One job's writes are those a :class:`vidbridge.Job` makes through its recorder: created, accepted
(with its reference), four phase changes (loading_model, inferring, decoding, downloading), and
its end with one artifact: 7 transactions. Measured on a ledger file (WAL, synchronous=NORMAL, as
used), against two baselines in the same run: the same writes to an in-memory SQLite database
(the cost of vidbridge's code and SQLite itself, without the file), and one bare ``INSERT`` +
``COMMIT`` per write on a WAL file (the cheapest durable write SQLite offers). Target: median
<= 2 ms per job.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, interleaved, log, ratio_of_samples  # noqa: E402

WRITES_PER_JOB = 7


def _one_job(ledger: Any, number: int) -> float:
    """Seconds spent in the 7 ledger writes of one job."""
    from vidbridge.ledger_recorder import JobRecorder
    from vidbridge.models import Artifact, GenerationRequest, Provenance
    from vidbridge.refs import JobRef

    job_id = f"job-bench-{number}"
    request = GenerationRequest(prompt="a fox in the snow", frames=17, seed=abs(number))
    ref = JobRef(backend="wan2gp", endpoint="http://127.0.0.1:7860", job_id=job_id,
                 data={"face": "gradio", "session_hash": "abc", "client_id": f"vb-{job_id}", "outputs": []})
    artifact = Artifact(path=Path(f"/tmp/{job_id}.mp4"), size=123456, sha256="c" * 64, media_type="video/mp4",
                        provenance=Provenance(backend="wan2gp", endpoint="http://127.0.0.1:7860", job_id=job_id,
                                              original_name=f"{job_id}.mp4"))
    start = time.perf_counter()
    recorder = JobRecorder(ledger, job_id, backend="wan2gp", endpoint="http://127.0.0.1:7860")
    recorder.created(request, status="queued", message="waiting for a free slot: next", output_dir="/tmp/out")
    recorder.submitted(ref)
    for phase in ("loading_model", "inferring", "decoding", "downloading"):
        recorder.phase(phase, phase, ref)
    recorder.finished("completed", message="1 artifact(s) verified", error=None, artifacts=[artifact], ref=ref)
    return time.perf_counter() - start


def _bare_inserts(connection: sqlite3.Connection, number: int) -> float:
    start = time.perf_counter()
    for write in range(WRITES_PER_JOB):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO t VALUES (?, ?)", (number, write))
        connection.execute("COMMIT")
    return time.perf_counter() - start


def bench_ledger(jobs: int = 200) -> dict[str, Any]:
    """The ``ledger`` figure: median ms of one job's writes, file vs in-memory (and bare inserts)."""
    from vidbridge.ledger import Ledger

    folder = Path(tempfile.mkdtemp(prefix="vidbridge-bench-ledger-"))
    on_file, in_memory = Ledger(folder / "jobs.sqlite3"), Ledger(":memory:")
    bare = sqlite3.connect(folder / "bare.sqlite3", isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL"):
        bare.execute(f"PRAGMA {pragma}")
    bare.execute("CREATE TABLE t (job INTEGER, write INTEGER)")
    for warm in range(5):  # open, migrate, warm the caches (not measured)
        _one_job(on_file, -1 - warm)
        _one_job(in_memory, -1 - warm)
    counter = iter(range(10**9))
    xs, ys = interleaved(jobs, lambda: _one_job(on_file, next(counter)), lambda: _one_job(in_memory, next(counter)))
    bare_samples = [_bare_inserts(bare, number) for number in range(jobs)]
    failures = on_file.failures + in_memory.failures
    on_file.close()
    in_memory.close()
    bare.close()
    to_ms = [1000 * x for x in xs], [1000 * y for y in ys]
    figure = ratio_of_samples(*to_ms, unit="ms per job (7 writes)", target="median <= 2 ms", jobs=jobs,
                              writes_per_job=WRITES_PER_JOB, failures=failures)
    import statistics

    figure["bare_insert_ms_per_job"] = round(1000 * statistics.median(bare_samples), 4)
    figure["meets_target"] = figure["vidbridge"] <= 2.0
    log(f"ledger: {figure['vidbridge']:.3f} ms/job on file, {figure['baseline']:.3f} in memory, "
        f"{figure['bare_insert_ms_per_job']:.3f} bare inserts")
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200, help="jobs per side (default 200)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    emit({"ledger": bench_ledger(args.jobs)}, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
