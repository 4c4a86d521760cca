"""A pool over real mock WanGP servers (child processes on 127.0.0.1): spreading, failover when one
is killed, rejoining, model-aware routing. Every assertion comes from the servers' own generation
counters or from states the pool reports; none depends on timing."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import vidbridge
from vidbridge import BackendConnectionError, InvalidRequestError, JobLostError, Phase
from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration

WAIT = 120  # seconds a test waits for an event before it fails (never reached when all is well)


def _counters(servers: list[Any]) -> list[dict[str, Any]]:
    return [faults.read_counter(server.url) for server in servers]


def _reset(servers: list[Any]) -> None:
    for server in servers:
        faults.clear_faults(server.url)
        faults.reset_counter(server.url)


class EndCounter:
    """A status callback counting the jobs that ended; ``reached(n)`` waits for n of them."""

    def __init__(self) -> None:
        self.ended = 0
        self._changed = threading.Condition()

    def __call__(self, status: vidbridge.JobStatus) -> None:
        if status.is_terminal:
            with self._changed:
                self.ended += 1
                self._changed.notify_all()

    def reached(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.ended >= count, WAIT)


def test_24_jobs_keep_every_server_busy_and_run_once(three_servers, pool_client, tmp_path: Path) -> None:
    _reset(three_servers)
    client = pool_client(max_sessions=2)
    samples: list[tuple[int, dict[str, int]]] = []
    with client.connect([server.url for server in three_servers], interval=0.5) as pool:
        urls = list(pool.urls)

        def sample(status: vidbridge.JobStatus) -> None:
            samples.append(pool.queue.snapshot())

        jobs = [pool.submit(prompt=f"spread {i}", frames=5, steps=4, seed=i, output_dir=tmp_path,
                            on_status=sample) for i in range(24)]
        assert sum(job.locally_queued for job in jobs) >= 24 - 3 * 2  # submit returned at once
        for job in jobs:
            assert job.result(WAIT)
        placed = Counter(job.server for job in jobs)
        refs = {job.ref.endpoint for job in jobs}
    counters = _counters(three_servers)
    # every prompt generated exactly once, where the pool says it ran
    assert sum(c["total"] for c in counters) == 24
    assert all(c["completed"] == c["total"] for c in counters)
    prompts = Counter()
    for counter in counters:
        prompts.update(counter["by_prompt"])
    assert prompts == Counter({f"spread {i}": 1 for i in range(24)})
    assert [placed[url] for url in urls] == [c["total"] for c in counters]
    assert {ref.rstrip("/") for ref in refs} == {url.rstrip("/") for url in urls}  # job.ref names its server
    # no server idled while jobs waited: whenever a job waited locally, every server was full
    waiting = [in_flight for queued, in_flight in samples if queued]
    assert waiting, "some jobs waited in the local queue"
    assert all(all(in_flight.get(url, 0) == 2 for url in urls) for in_flight in waiting)
    assert all(c["total"] >= 2 for c in counters)


def test_a_model_a_server_lacks_never_goes_there(three_servers, pool_client, tmp_path: Path) -> None:
    _reset(three_servers)
    client = pool_client(max_sessions=1)
    with client.connect([server.url for server in three_servers], interval=0.5) as pool:
        assert "hunyuan" not in pool.servers()[2].models and "hunyuan" in pool.servers()[0].models
        jobs = [pool.submit(prompt=f"hunyuan {i}", model="hunyuan", frames=5, steps=2, output_dir=tmp_path)
                for i in range(6)]
        jobs += [pool.submit(prompt=f"wan {i}", model="t2v", frames=5, steps=2, output_dir=tmp_path)
                 for i in range(3)]
        for job in jobs:
            job.result(WAIT)
        with pytest.raises(InvalidRequestError):
            pool.submit(prompt="nowhere", model="no_such_model", frames=5)
    counters = _counters(three_servers)
    assert "hunyuan" not in counters[2]["by_model"]
    assert sum(c["by_model"].get("hunyuan", 0) for c in counters) == 6
    assert sum(c["total"] for c in counters) == 9


def test_kill_one_after_six_jobs_every_job_completes_once(vidbridge_mock_subprocess_factory, pool_client,
                                                          tmp_path: Path) -> None:
    servers = vidbridge_mock_subprocess_factory.many(3, step_delay=0.02)
    victim = servers[1]
    client = pool_client(max_sessions=2)
    ended = EndCounter()
    with client.connect([server.url for server in servers], interval=0.3) as pool:
        victim_url = pool.urls[1]
        jobs = [pool.submit(prompt=f"kill {i}", frames=5, steps=4, seed=i, output_dir=tmp_path, on_status=ended)
                for i in range(24)]
        assert ended.reached(6)
        # Its accepted jobs end first (they could not move: they may have produced output)...
        assert pool.drain(victim_url, timeout=WAIT)
        before_kill = faults.read_counter(victim.url)
        victim.kill()
        # ...then it may take jobs again: the ones sent before the pool knows it is dead move on.
        pool.undrain(victim_url)
        for job in jobs:
            assert job.wait(WAIT).phase is Phase.COMPLETED, job.error
        down = pool.health.get(victim_url)
        moved = [job for job in jobs if job.server != victim_url and client.job(job.id).endpoint != victim_url]
        assert down.state == "down" and down.reason
        assert len(moved) == 24 - before_kill["total"]
        for job in jobs:
            assert client.job(job.id).endpoint.rstrip("/") == job.server.rstrip("/")  # the ledger says where
    survivors = _counters([servers[0], servers[2]])
    prompts: Counter[str] = Counter(before_kill["by_prompt"])
    for counter in survivors:
        prompts.update(counter["by_prompt"])
    assert prompts == Counter({f"kill {i}": 1 for i in range(24)})


def test_an_accepted_job_on_a_killed_server_fails_and_is_not_rerun(vidbridge_mock_subprocess_factory,
                                                                  pool_client, tmp_path: Path) -> None:
    servers = vidbridge_mock_subprocess_factory.many(2, step_delay=0.2)
    client = pool_client(max_sessions=1)
    inferring = threading.Event()
    with client.connect([server.url for server in servers], interval=0.3) as pool:
        job = pool.submit(prompt="accepted", frames=5, steps=100, output_dir=tmp_path,
                          on_status=lambda s: ((s.step or 0) >= 1 or s.is_terminal) and inferring.set())
        assert inferring.wait(WAIT)
        assert not job.done(), job.error
        victim = servers[pool.urls.index(job.server)]
        other = servers[1 - servers.index(victim)]
        victim.kill()
        status = job.wait(WAIT)
        assert status.phase is Phase.FAILED
        assert isinstance(job.error, BackendConnectionError) or (
            isinstance(job.error, JobLostError) and job.error.output_possible)
        assert job.attempt == 1
        assert client.job(job.id).status in ("failed", "interrupted")
    assert faults.read_counter(other.url)["total"] == 0


def test_a_server_that_comes_back_rejoins(vidbridge_mock_subprocess_factory, pool_client, tmp_path: Path) -> None:
    servers = vidbridge_mock_subprocess_factory.many(2, step_delay=0.02)
    client = pool_client(max_sessions=1)
    with client.connect([server.url for server in servers], interval=0.2, max_backoff=0.5,
                        breaker_cooldown=1.0) as pool:
        url = pool.urls[1]
        states: dict[str, threading.Event] = {"down": threading.Event(), "healthy": threading.Event()}
        events: list[vidbridge.HealthEvent] = []

        def follow(event: vidbridge.HealthEvent) -> None:
            if event.url == url:
                events.append(event)
                if event.after.state == "down":
                    states["down"].set()
                elif states["down"].is_set() and event.after.state == "healthy":
                    states["healthy"].set()

        unsubscribe = pool.health.subscribe(follow)
        servers[1].kill()
        assert states["down"].wait(WAIT)
        assert pool.health.get(url).reason
        servers[1].restart()
        assert states["healthy"].wait(WAIT)
        unsubscribe()
        # two jobs at once with one slot per server: the second goes to the server that came back
        jobs = [pool.submit(prompt=f"back {i}", frames=5, steps=2, output_dir=tmp_path) for i in range(2)]
        for job in jobs:
            job.result(WAIT)
        assert {job.server for job in jobs} == set(pool.urls)
    assert faults.read_counter(servers[1].url)["total"] == 1
    assert any(event.before is not None and event.before.state == "down" for event in events)
