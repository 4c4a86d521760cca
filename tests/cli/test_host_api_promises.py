"""The host API's promises against real backends (issue 9's done-when): submit never waits, the
local queue reports positions and cancels offline, limits belong to a Client, and awaited jobs
hold no executor thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path
from typing import Any

import pytest

from vidbridge import Client, GenerationRequest, JobCancelledError, Phase
from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration


def slow(prompt: str) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, frames=5, steps=4)


def test_ten_submits_return_while_the_first_generates(mock: Any, tmp_path: Path) -> None:
    faults.set_options(mock.url, step_delay=0.25)
    with Client(max_sessions=1, cache_dir=tmp_path / "cache", poll_interval=0.05) as client:
        session = client.connect(mock.url)
        first = session.submit(slow("job 0"), output_dir=tmp_path / "out")
        for status in first.updates(timeout=60):  # the first one reaches the server and runs
            if status.phase in (Phase.INFERRING, Phase.LOADING_MODEL) or status.is_terminal:
                break
        jobs = [first] + [session.submit(slow(f"job {n}"), output_dir=tmp_path / "out") for n in range(1, 10)]
        assert not first.done(), "the first job ended before the other submits returned"
        waiting = jobs[1:]
        assert [job.status().phase for job in waiting] == [Phase.QUEUED] * 9
        assert [job.status().queue_position for job in waiting] == list(range(9))
        assert all(job.locally_queued for job in waiting)

        dropped = jobs[4]
        result = dropped.cancel()
        assert result.server_stopped and dropped.wait(timeout=60).phase is Phase.CANCELLED
        assert jobs[5].locally_queued  # positions moved up behind it
        for status in jobs[5].updates(timeout=60):
            if status.queue_position == 3:
                break

        for job in jobs:
            if job is not dropped:
                assert job.result(timeout=120), job.error
    counter = faults.read_counter(mock.url)
    assert "job 4" not in counter["by_prompt"]  # it never reached the server
    expected = [f"job {n}" for n in range(10) if n != 4]
    assert [run["prompt"] for run in counter["runs"]] == expected  # one each, in submission order
    saves = sum(names.count("save_inputs") for names in counter["calls"].values())
    assert saves == 9  # no request of any kind was made for the cancelled one


def test_two_clients_on_one_server_each_keep_their_own_limit(mock: Any, tmp_path: Path) -> None:
    faults.set_options(mock.url, step_delay=0.2)
    with Client(max_sessions=1, cache_dir=tmp_path / "a") as small, \
            Client(max_sessions=3, cache_dir=tmp_path / "b") as large:
        one, three = small.connect(mock.url), large.connect(mock.url)
        small_jobs = [one.submit(slow(f"small {n}"), output_dir=tmp_path / "out") for n in range(3)]
        large_jobs = [three.submit(slow(f"large {n}"), output_dir=tmp_path / "out") for n in range(4)]
        assert [job.locally_queued for job in small_jobs] == [False, True, True]
        assert [job.locally_queued for job in large_jobs] == [False, False, False, True]
        for job in small_jobs + large_jobs:
            job.cancel()
        for job in small_jobs + large_jobs:
            job.wait(timeout=60)


def test_a_hundred_awaited_jobs_leave_the_default_executor_free(tmp_path: Path) -> None:
    """Each ``await job.aresult()`` waits on the job's own event: with a 2-thread default executor
    and 100 awaited jobs, an unrelated ``asyncio.to_thread`` call still runs while every job runs.

    The jobs are long (100 steps of 5 s) and end only when the test cancels them, so the order
    does not depend on how fast the machine is."""
    events: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        async with Client(max_sessions=200, cache_dir=tmp_path / "cache") as client:
            session = client.connect("http://example.invalid/promises")
            request = GenerationRequest(prompt="slow", settings={"steps": 100, "step_delay": 5.0})
            jobs = [await session.asubmit(request, output_dir=tmp_path / "out") for _ in range(100)]

            async def awaited(job: Any) -> None:
                with pytest.raises(JobCancelledError):
                    await job.aresult()
                events.append("job")

            waiting = [asyncio.create_task(awaited(job)) for job in jobs]
            await asyncio.sleep(0)  # every awaiter is parked on its job now
            await asyncio.to_thread(lambda: None)
            events.append("to_thread")
            assert not any(job.done() for job in jobs)
            for job in jobs:
                await job.acancel()
            await asyncio.gather(*waiting)

    asyncio.run(main())
    assert events[0] == "to_thread" and events.count("job") == 100
