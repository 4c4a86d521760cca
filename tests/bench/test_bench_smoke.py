"""Smoke test of the bench scripts: they run, print one JSON object with the documented keys, and
their invariants hold. No timing is asserted (numbers come from bench/, never from tests).

Both scripts run at once as subprocesses (they start their own fake servers in child processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench"
TIMEOUT = 180


@pytest.fixture(scope="module")
def outputs() -> dict[str, dict]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_OFFLINE": "1"}
    commands = {
        "soak": [sys.executable, str(BENCH / "soak.py"), "--jobs", "3", "--json"],
        "run": [sys.executable, str(BENCH / "run.py"), "--only", "status_call", "--json"],
        "pool": [sys.executable, str(BENCH / "run.py"), "--only", "pool", "--quick", "--json"],
    }
    running = {name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for name, cmd in commands.items()}
    results = {}
    try:
        for name, process in running.items():
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, f"{name} failed:\n{stderr[-3000:]}"
            results[name] = json.loads(stdout)
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def test_soak_json_keys_and_invariants(outputs: dict[str, dict]) -> None:
    soak = outputs["soak"]
    for key in ("jobs", "completed", "failed", "duplicates", "verified", "lost", "seconds"):
        assert key in soak, key
    assert soak["jobs"] == 3
    assert soak["completed"] + soak["failed"] == soak["jobs"]
    assert soak["lost"] == 0
    assert 0 <= soak["verified"] <= soak["completed"] * 1  # one artifact per t2v job
    assert soak["duplicates"] >= 0


def test_run_only_status_call(outputs: dict[str, dict]) -> None:
    run = outputs["run"]
    assert "status_call" in run
    assert not {"connect_cold", "connect_warm", "job_overhead", "download", "scale"} & run.keys()
    status = run["status_call"]
    assert status["vidbridge"] > 0
    assert status["network_requests_by_status_calls"] == 0
    assert "machine" in run


def test_sampled_figures_report_their_spread() -> None:
    """Every sampled figure carries medians, minima, maxima and the back-to-back pair ratios."""
    sys.path.insert(0, str(BENCH))
    try:
        from _common import ratio_of_samples
    finally:
        sys.path.remove(str(BENCH))
    figure = ratio_of_samples([1.0, 3.0, 2.0], [2.0, 2.0, 4.0])
    assert figure["vidbridge"] == 2.0 and figure["baseline"] == 2.0 and figure["ratio"] == 1.0
    assert figure["min_ratio"] == 0.5 and figure["max_vidbridge"] == 3.0 and figure["max_baseline"] == 4.0
    assert figure["paired_ratios"] == [0.5, 0.5, 1.5]


def test_run_only_pool_keys_and_invariants(outputs: dict[str, dict]) -> None:
    pool = outputs["pool"]["pool"]
    for key in ("ratio", "client_cpu_ms_per_job", "baseline_cpu_ms_per_job", "peak_threads", "ratio_to_server_busy"):
        assert key in pool, key
    assert pool["failed"] == 0  # raw gradio_client (the baseline) may lose a job under load: the JSON says why
    assert len(pool["baseline_failures"]) == min(5, pool["baseline_failed"])
    assert sum(pool["spread"]) == pool["jobs"] == pool["server_busy"]["runs"]
    assert pool["baseline_server_busy"]["runs"] <= pool["jobs"]
    # every run happened inside the makespan: no schedule beats the servers' own busy time
    assert pool["ratio_to_server_busy"] >= 1.0 and pool["baseline_ratio_to_server_busy"] >= 1.0
    assert pool["server_busy"]["per_job_s"] >= pool["generation_seconds"]  # the steps alone take that long
