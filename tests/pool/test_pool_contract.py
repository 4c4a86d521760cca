"""The pool's failover rules through the plugin contract: an inline backend plugin whose behaviour
per server is scripted by the request (``settings``), driven by events, not time. The same rules
against real servers: test_pool_servers.py."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Any

import pytest

import vidbridge
from vidbridge import (Artifact, BackendConnectionError, CancelResult, Endpoint, InvalidRequestError,
                       JobCancelledError, JobLostError, NotAttachableError, Phase, Provenance, hookimpl)

A, B, C = "http://fake-a.local:1", "http://fake-b.local:2", "http://fake-c.local:3"
WAIT = 60


class Handle:
    def __init__(self, url: str, request: vidbridge.GenerationRequest, job_id: str) -> None:
        self.url, self.request, self.job_id = url, request, job_id
        self.released = threading.Event()
        self.cancelled = False
        if request.settings.get("hold") != url:
            self.released.set()


class Native:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def close(self) -> None:
        pass


class ScriptedBackend:
    """``settings``: ``refuse_on`` (submit gets no connection there), ``lost_on`` (the server loses
    the job, ``output_possible`` from ``possible``), ``hold`` (waits for release there)."""

    def __init__(self) -> None:
        self.submits: list[tuple[str, str]] = []  # (url, prompt)
        self.models: dict[str, tuple[str, ...]] = {}
        self.down: set[str] = set()
        self.handles: list[Handle] = []
        self.submitted = threading.Condition()

    @hookimpl
    def vidbridge_discover(self, options):
        return [Endpoint(url=url, backend="scripted", version="1", models=self.models.get(url, ("t2v",)),
                         latency_ms=1.0)
                for url in options.urls if "fake" in url and url not in self.down]

    @hookimpl
    def vidbridge_connect(self, endpoint, credentials, options):
        if endpoint.url in self.down:
            raise BackendConnectionError(f"{endpoint.url} refused", endpoint=endpoint.url)
        return Native(endpoint)

    @hookimpl
    def vidbridge_validate(self, request):
        return None

    @hookimpl
    def vidbridge_submit(self, session, request, job_id):
        url = session.endpoint.url
        if request.settings.get("refuse_on") == url:
            raise BackendConnectionError(f"{url}: connection refused", endpoint=url)
        handle = Handle(url, request, job_id)
        with self.submitted:
            self.submits.append((url, request.prompt))
            self.handles.append(handle)
            self.submitted.notify_all()
        return handle

    @hookimpl
    def vidbridge_status(self, handle, current, wait):
        if handle.cancelled:
            return current.evolve(phase=Phase.CANCELLED)
        if handle.request.settings.get("lost_on") == handle.url:
            raise JobLostError(f"{handle.url} restarted", endpoint=handle.url,
                               output_possible=bool(handle.request.settings.get("possible")))
        if not handle.released.wait(wait):
            return current.evolve(phase=Phase.INFERRING)
        return current.evolve(phase=Phase.COMPLETED)

    @hookimpl
    def vidbridge_fetch(self, session, handle, destination, progress):
        data = f"{handle.url} {handle.request.prompt}".encode()
        path = destination / f"{handle.job_id}.mp4"
        path.write_bytes(data)
        return [Artifact(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(), media_type="video/mp4",
                         provenance=Provenance(backend="scripted", endpoint=handle.url, job_id=handle.job_id))]

    @hookimpl
    def vidbridge_cancel(self, session, handle):
        handle.cancelled = True
        handle.released.set()
        return CancelResult(server_stopped=True, message="stopped")

    @hookimpl
    def vidbridge_job_ref(self, session, handle):
        return {"server": handle.url}

    @hookimpl
    def vidbridge_attach(self, session, ref):
        handle = Handle(session.endpoint.url, vidbridge.GenerationRequest(prompt="attached"), ref.job_id)
        return handle


@pytest.fixture
def backend(vidbridge_register_plugin) -> ScriptedBackend:
    plugin = ScriptedBackend()
    vidbridge_register_plugin(plugin, name="scripted")
    return plugin


@pytest.fixture
def client(vidbridge_plugin_manager, tmp_path) -> Any:
    made = vidbridge.Client(plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path / "cache",
                            ledger=tmp_path / "jobs.sqlite3", poll_interval=0.05, retry_attempts=1, max_sessions=1)
    yield made
    made.close()
    made.wait_closed(60)


def test_a_job_lost_with_no_possible_output_runs_again_elsewhere_as_attempt_2(backend, client, tmp_path) -> None:
    with client.connect([A, B]) as pool:
        job = pool.submit(prompt="lost", settings={"lost_on": A}, output_dir=tmp_path)
        assert job.wait(WAIT).phase is Phase.COMPLETED, job.error
        assert job.attempt == 2 and job.server == B
        assert backend.submits == [(A, "lost"), (B, "lost")]
        record = client.job(job.id)
        assert record.attempt == 2 and record.endpoint == B
        assert [attempt.number for attempt in record.attempts] == [1, 2]


def test_a_job_lost_with_possible_output_fails_and_is_not_rerun(backend, client, tmp_path) -> None:
    with client.connect([A, B]) as pool:
        job = pool.submit(prompt="maybe", settings={"lost_on": A, "possible": True}, output_dir=tmp_path)
        assert job.wait(WAIT).phase is Phase.FAILED
        assert isinstance(job.error, JobLostError) and job.error.output_possible
        assert backend.submits == [(A, "maybe")] and job.attempt == 1


def test_a_submit_without_connection_moves_and_degrades_the_server(backend, client, tmp_path) -> None:
    with client.connect([A, B]) as pool:
        job = pool.submit(prompt="moves", settings={"refuse_on": A}, output_dir=tmp_path)
        assert job.result(WAIT)
        assert job.server == B and backend.submits == [(B, "moves")]
        assert pool.health.get(A).state == "degraded" and "connection refused" in pool.health.get(A).reason
        assert client.job(job.id).endpoint == B
        # everywhere refused: it gives up after a bounded number of moves, with the error
        stuck = pool.submit(prompt="nowhere", settings={"refuse_on": A}, output_dir=tmp_path)
        assert stuck.wait(WAIT).phase in (Phase.COMPLETED, Phase.FAILED)


def test_every_server_refusing_the_submit_ends_the_job_with_the_error(backend, client, tmp_path) -> None:
    with client.connect([A], interval=0.05, max_backoff=0.05) as pool:
        job = pool.submit(prompt="never", settings={"refuse_on": A}, output_dir=tmp_path)
        assert job.wait(WAIT).phase is Phase.FAILED
        assert isinstance(job.error, BackendConnectionError) and backend.submits == []


def test_the_session_api_over_a_pool(backend, client, tmp_path) -> None:
    with client.connect([A, B]) as pool:
        assert "2 servers" in repr(pool) and pool.urls == (A, B)
        held = [pool.submit(prompt=f"held {i}", settings={"hold": url}, output_dir=tmp_path)
                for i, url in enumerate((A, B))]
        waiting = pool.submit(prompt="waits", output_dir=tmp_path)
        assert waiting.locally_queued and waiting.server is None
        assert waiting.status().queue_position == 0
        result = waiting.cancel()
        assert result.server_stopped and waiting.wait(WAIT).phase is Phase.CANCELLED
        assert isinstance(waiting.error, JobCancelledError)
        with backend.submitted:
            assert backend.submitted.wait_for(lambda: len(backend.handles) == 2, WAIT)
        for handle in backend.handles:
            handle.released.set()
        assert [job.result(WAIT) and job.server for job in held] == [A, B]
        assert {job.ref.endpoint for job in held} == {A, B} and held[1].ref.data == {"server": B}

        async def twins() -> list[Any]:
            job = await pool.asubmit(prompt="async", output_dir=tmp_path)
            return await job.aresult()

        assert asyncio.run(twins())
        again = pool.attach(held[1].ref.to_json())
        assert again.wait(WAIT).phase is Phase.COMPLETED and again.ref.endpoint == B
        with pytest.raises(NotAttachableError) as refused:
            pool.attach(vidbridge.JobRef(backend="scripted", endpoint=C, job_id="job-x"))
        assert refused.value.reason == "mismatch"


def test_models_route_jobs_and_an_unknown_model_is_refused(backend, client, tmp_path) -> None:
    backend.models = {A: ("t2v",), B: ("t2v", "hunyuan")}
    with client.connect([A, B]) as pool:
        jobs = [pool.submit(prompt=f"h{i}", model="hunyuan", output_dir=tmp_path) for i in range(3)]
        for job in jobs:
            job.result(WAIT)
        assert {url for url, prompt in backend.submits} == {B}
        with pytest.raises(InvalidRequestError) as refused:
            pool.submit(prompt="x", model="flux")
        assert "flux" in str(refused.value)


def test_a_server_down_at_connect_joins_when_it_answers(backend, client, tmp_path) -> None:
    backend.down = {B}
    joined = threading.Event()
    with client.connect([A, B], interval=0.05, max_backoff=0.05) as pool:
        assert pool.health.get(B).state == "down" and pool.health.get(B).reason
        pool.health.subscribe(lambda event: event.url == B and event.after.usable and joined.set())
        backend.down = set()
        assert joined.wait(WAIT)
        with pool.queue._changed:
            assert pool.queue._changed.wait_for(lambda: pool._members.get(B) is not None, WAIT)
        jobs = [pool.submit(prompt=f"j{i}", settings={"hold": A}, output_dir=tmp_path) for i in range(2)]
        assert jobs[1].result(WAIT) and jobs[1].server == B
        jobs[0].cancel()
    assert pool.closed


def test_drain_keeps_new_jobs_away_until_undrained(backend, client, tmp_path) -> None:
    with client.connect([A, B]) as pool:
        assert pool.drain(A, timeout=WAIT)
        first = pool.submit(prompt="d1", output_dir=tmp_path)
        assert first.result(WAIT) and first.server == B
        pool.undrain(A)
        back = pool.submit(prompt="u", output_dir=tmp_path)
        assert back.result(WAIT) and back.server == A  # A takes jobs again (both idle: the first listed)


def test_a_pool_needs_distinct_servers_and_one_that_answers(backend, client) -> None:
    with pytest.raises(InvalidRequestError):
        client.connect([])
    with pytest.raises(InvalidRequestError):
        client.connect([A, A + "/"])
    backend.down = {A, B}
    with pytest.raises(BackendConnectionError):
        client.connect([A, B])


def test_module_connect_takes_a_list_and_a_policy(backend, vidbridge_plugin_manager, tmp_path) -> None:
    policy = vidbridge.SoonestStart(switch_cost=0)
    with vidbridge.connect([A, B], plugin_manager=vidbridge_plugin_manager, ledger=None, policy=policy,
                           cache_dir=tmp_path) as pool:
        assert pool.policy is policy
        assert pool.submit(prompt="m", output_dir=tmp_path).result(WAIT)
