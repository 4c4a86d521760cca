"""The host API (Client, Session, Job) against an inline fake backend driven by events, not time."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import vidbridge
from vidbridge import (
    Artifact,
    BackendConnectionError,
    CancelResult,
    Client,
    Endpoint,
    ErrorInfo,
    GenerationRequest,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    Phase,
    PluginError,
    Provenance,
    RateLimitedError,
    VidbridgeError,
    hookimpl,
)

# -------------------------------------------------------------------------------------------------
# The fake backend: a job completes at once ("complete"), or waits for release() or cancel ("hold")
# -------------------------------------------------------------------------------------------------


class FakeJob:
    def __init__(self, request: GenerationRequest, job_id: str) -> None:
        self.request = request
        self.job_id = job_id
        self.mode = request.settings.get("mode", "complete")
        self.wake = threading.Event()
        self.released = self.mode != "hold"
        self.cancelled = False

    def release(self) -> None:
        self.released = True
        self.wake.set()


class FakeSession:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.close_calls = 0
        self.handles: list[FakeJob] = []
        self.submitted = threading.Condition()  # submit runs on the job's thread: tests wait on it

    def close(self) -> None:
        self.close_calls += 1


class FakeBackend:
    """Implements the six backend hooks; records what it was asked."""

    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []
        self.cancelled: list[str] = []
        self.connect_failures: list[Exception] = []
        self.lock = threading.Lock()

    @hookimpl
    def vidbridge_discover(self, options):
        return [Endpoint(url=url, backend="fake", version="1") for url in options.urls if "fake" in url]

    @hookimpl
    def vidbridge_connect(self, endpoint, credentials, options):
        if self.connect_failures:
            raise self.connect_failures.pop(0)
        session = FakeSession(endpoint)
        self.sessions.append(session)
        return session

    @hookimpl
    def vidbridge_validate(self, request):
        if request.settings.get("mode") == "reject":
            raise InvalidRequestError("frames must be 4n+1 for this model", field="frames", allowed="4n+1")

    @hookimpl
    def vidbridge_submit(self, session, request, job_id):
        handle = FakeJob(request, job_id)
        with session.submitted:
            session.handles.append(handle)
            session.submitted.notify_all()
        return handle

    @hookimpl
    def vidbridge_status(self, handle, current, wait):
        if handle.cancelled:
            return current.evolve(phase=Phase.CANCELLED)
        if current.phase is Phase.QUEUED:
            return current.evolve(phase=Phase.INFERRING, step=0, total_steps=2, progress=0.0)
        if not handle.released:
            handle.wake.wait(wait)
            return current
        if handle.mode == "fail":
            return current.evolve(phase=Phase.FAILED, error=ErrorInfo(type="JobFailedError", message="out of memory"))
        if handle.mode == "bad_status":
            return "not a status"
        if handle.mode == "crash":
            raise RuntimeError("plugin bug")
        if current.step == 0:
            return current.evolve(step=1, progress=0.5)
        return current.evolve(phase=Phase.COMPLETED)

    @hookimpl
    def vidbridge_fetch(self, session, handle, destination, progress):
        if handle.mode == "no_artifacts":
            return []
        data = f"video of {handle.request.prompt}".encode()
        path = destination / f"{handle.job_id}.mp4"
        path.write_bytes(data)
        progress(len(data), len(data))
        provenance = Provenance(backend="fake", endpoint=session.endpoint.url, job_id=handle.job_id)
        return [Artifact(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(), media_type="video/mp4",
                         provenance=provenance)]

    @hookimpl
    def vidbridge_cancel(self, session, handle):
        with self.lock:
            self.cancelled.append(handle.job_id)
        handle.cancelled = True
        handle.wake.set()
        return CancelResult(server_stopped=True, message="stopped")


URL = "http://fake.local:7860"


@pytest.fixture
def backend(vidbridge_register_plugin) -> FakeBackend:
    plugin = FakeBackend()
    vidbridge_register_plugin(plugin, name="fake")
    return plugin


@pytest.fixture
def session(vidbridge_thread_guard, backend, vidbridge_client):
    """A session to the fake backend; the thread guard checks no job thread outlives the test."""
    return vidbridge_client.connect(URL)


@pytest.fixture
def out(tmp_path) -> Path:
    return tmp_path / "out"


def hold(prompt: str = "wait for me") -> GenerationRequest:
    return GenerationRequest(prompt=prompt, settings={"mode": "hold"})


def handle_of(session, job) -> FakeJob:
    """The backend's handle of ``job``, once the job's thread submitted it."""
    native = session.native
    with native.submitted:
        assert native.submitted.wait_for(lambda: any(h.job_id == job.id for h in native.handles), timeout=30)
        return next(handle for handle in native.handles if handle.job_id == job.id)


# -------------------------------------------------------------------------------------------------
# Updates: history replay, callbacks, async
# -------------------------------------------------------------------------------------------------


def test_updates_replay_the_whole_history(session, out):
    job = session.submit(prompt="a fox", output_dir=out)
    first = [status.phase for status in job.updates(timeout=30)]
    assert first[0] is Phase.QUEUED and first[-1] is Phase.COMPLETED
    assert Phase.INFERRING in first and Phase.DOWNLOADING in first
    again = [status.phase for status in job.updates(timeout=30)]  # a late iterator misses nothing
    assert again == first
    (artifact,) = job.result()
    assert artifact.path.read_bytes() == b"video of a fox"
    assert job.done() and job.error is None
    assert repr(job).startswith(f"<Job {job.id} completed")


def test_callbacks_run_off_the_main_thread_and_cannot_kill_the_job(session, out):
    seen: list[tuple[Phase, threading.Thread]] = []

    def record(status):
        seen.append((status.phase, threading.current_thread()))

    def explode(status):
        raise RuntimeError("host bug in a callback")

    job = session.submit(hold(), output_dir=out, on_status=explode)
    job.add_callback(record)
    handle_of(session, job).release()
    assert job.result(timeout=30)
    assert job.status().phase is Phase.COMPLETED
    assert seen[-1][0] is Phase.COMPLETED
    assert all(thread is not threading.main_thread() for _, thread in seen)


def test_async_updates_and_result(session, out):
    async def main():
        job = await session.asubmit(prompt="async fox", output_dir=out)
        phases = [status.phase async for status in job.aupdates()]
        artifacts = await job.aresult(timeout=30)
        final = await job.await_done(timeout=30)
        late = [status.phase async for status in job.aupdates()]  # replay of a finished job
        return phases, artifacts, final, late

    phases, artifacts, final, late = asyncio.run(main())
    assert phases[-1] is Phase.COMPLETED and late == phases
    assert final.phase is Phase.COMPLETED and artifacts[0].provenance.backend == "fake"


def test_async_cancel(session, backend, out):
    async def main():
        job = await session.asubmit(hold(), output_dir=out)
        result = await job.acancel()
        with pytest.raises(JobCancelledError):
            await job.aresult(timeout=30)
        return job, result

    job, result = asyncio.run(main())
    assert result.server_stopped and job.id in backend.cancelled


def test_async_client_session_and_generate(backend, vidbridge_plugin_manager, tmp_path, out):
    async def main():
        async with Client(plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path, poll_interval=0.05) as client:
            found = await client.adiscover([URL], probe_local=False)
            async with await client.aconnect(URL) as session:
                return found, await session.agenerate(prompt="async generate", output_dir=out)

    found, artifacts = asyncio.run(main())
    assert found[0].backend == "fake"
    assert artifacts[0].path.exists()


# -------------------------------------------------------------------------------------------------
# Failures, timeouts, cancels
# -------------------------------------------------------------------------------------------------


def test_failed_job_raises_job_failed_error(session, out):
    job = session.submit(prompt="x", settings={"mode": "fail"}, output_dir=out)
    with pytest.raises(JobFailedError, match="out of memory"):
        job.result(timeout=30)
    assert job.status().phase is Phase.FAILED
    assert job.status().error.type == "JobFailedError"
    assert job.artifacts == []


@pytest.mark.parametrize("mode", ["bad_status", "crash", "no_artifacts"])
def test_plugin_contract_breaches_fail_the_job_with_plugin_error(session, out, mode):
    job = session.submit(prompt="x", settings={"mode": mode}, output_dir=out)
    with pytest.raises(PluginError, match="fake"):
        job.result(timeout=30)
    assert job.status().phase is Phase.FAILED


def test_job_timeout_cancels_on_the_backend(session, backend, out):
    job = session.submit(hold(), output_dir=out, timeout=0.2)
    with pytest.raises(JobTimeoutError, match="cancel requested") as caught:
        job.result(timeout=30)
    assert isinstance(caught.value, TimeoutError) and caught.value.retryable
    assert job.id in backend.cancelled
    assert job.status().phase is Phase.FAILED


def test_waiting_gives_up_without_stopping_the_job(session, out):
    job = session.submit(hold(), output_dir=out)
    with pytest.raises(JobTimeoutError):
        job.wait(timeout=0.05)
    with pytest.raises(JobTimeoutError):
        list(job.updates(timeout=0.05))
    assert not job.done()
    handle_of(session, job).release()
    assert job.wait(timeout=30).phase is Phase.COMPLETED


def test_cancel_is_idempotent_and_harmless_after_the_end(session, backend, out):
    job = session.submit(hold(), output_dir=out)
    # on the backend first (a cancel while it still waits locally makes no request: test_host_api_promises)
    next(update for update in job.updates(timeout=30) if update.phase is Phase.INFERRING)
    first = job.cancel()
    assert first.server_stopped
    assert job.cancel() is first
    assert backend.cancelled == [job.id]
    with pytest.raises(JobCancelledError) as caught:
        job.result()
    assert caught.value.server_stopped is True
    done = session.submit(prompt="x", output_dir=out)
    done.wait(30)
    assert done.cancel().server_stopped is False
    assert done.status().phase is Phase.COMPLETED


def test_leaving_a_job_block_cancels_it(session, backend, out):
    with session.submit(hold(), output_dir=out) as job:
        handle_of(session, job)  # it reached the backend
    assert job.wait(timeout=30).phase is Phase.CANCELLED and job.id in backend.cancelled


# -------------------------------------------------------------------------------------------------
# Concurrency and lifecycle
# -------------------------------------------------------------------------------------------------


def test_twenty_jobs_from_several_threads(session, out):
    def generate(index: int):
        return session.generate(prompt=f"fox number {index}", output_dir=out)

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(generate, range(20)))
    job_ids = {artifacts[0].provenance.job_id for artifacts in results}
    assert len(job_ids) == 20
    for index, artifacts in enumerate(results):
        assert artifacts[0].path.read_bytes() == f"video of fox number {index}".encode()


def test_closing_the_session_cancels_running_jobs(session, backend, out):
    jobs = [session.submit(hold(f"job {index}"), output_dir=out) for index in range(3)]
    assert len(session.jobs) == 3
    for job in jobs:
        handle_of(session, job)
    session.close()  # returns at once; the jobs are cancelled at once, not one after the other
    assert session.wait_closed(timeout=30)
    assert [job.status().phase for job in jobs] == [Phase.CANCELLED] * 3
    assert sorted(backend.cancelled) == sorted(job.id for job in jobs)
    assert session.native.close_calls == 1
    session.close()
    assert session.native.close_calls == 1
    assert session.closed and "closed" in repr(session)
    with pytest.raises(VidbridgeError, match="closed"):
        session.submit(prompt="too late")


def test_closing_the_client_closes_its_sessions(backend, vidbridge_plugin_manager, tmp_path, out):
    client = Client(plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path, poll_interval=0.05)
    session = client.connect(URL)
    job = session.submit(hold(), output_dir=out)
    client.close()
    client.close()
    assert client.wait_closed(timeout=30)
    assert job.status().phase is Phase.CANCELLED
    assert session.closed and session.native.close_calls == 1
    with pytest.raises(VidbridgeError, match="closed"):
        client.connect(URL)


def test_module_level_connect_owns_its_client(backend, vidbridge_plugin_manager, tmp_path, out):
    with vidbridge.connect(URL, plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path,
                           poll_interval=0.05) as session:
        assert session.generate(prompt="x", output_dir=out)
    assert session.closed


# -------------------------------------------------------------------------------------------------
# Input checks, discovery and connection errors
# -------------------------------------------------------------------------------------------------


def test_submit_refuses_bad_input_before_the_plugin(session, out):
    with pytest.raises(InvalidRequestError) as caught:
        session.submit(prompt="", output_dir=out)
    assert caught.value.field == "prompt"
    with pytest.raises(InvalidRequestError) as caught:
        session.submit(GenerationRequest(prompt="x"), frames=5)
    assert caught.value.field == "frames"
    with pytest.raises(InvalidRequestError) as caught:
        session.submit({"prompt": "x"})
    assert caught.value.field == "request"
    with pytest.raises(InvalidRequestError) as caught:
        session.submit(prompt="x", timeout=0)
    assert caught.value.field == "timeout"
    with pytest.raises(InvalidRequestError) as caught:
        session.submit(prompt="x", settings={"mode": "reject"})
    assert caught.value.field == "frames"
    assert session.native.handles == []
    assert not out.exists()


def test_discover_merges_and_reports_unknown_urls(backend, vidbridge_client):
    endpoints = vidbridge_client.discover([URL, "http://other.local:1"], probe_local=False)
    by_url = {endpoint.url: endpoint for endpoint in endpoints}
    assert by_url[URL].healthy and by_url[URL].backend == "fake"
    assert not by_url["http://other.local:1"].healthy
    assert by_url["http://other.local:1"].note == "no plugin recognised this server"
    assert endpoints[0].url == URL  # healthy first


def test_connect_errors(backend, vidbridge_client):
    with pytest.raises(BackendConnectionError, match="cannot resolve host 'other.local'"):
        vidbridge_client.connect("http://other.local:1")
    with pytest.raises(PluginError, match="no loaded plugin can connect to ghost"):
        vidbridge_client.connect("http://other.local:1", backend="ghost")
    with pytest.raises(InvalidRequestError):
        vidbridge_client.connect("not a url", backend="fake")
    backend.connect_failures.append(BackendConnectionError("refused", endpoint=URL))
    with pytest.raises(BackendConnectionError):  # retry_attempts=1 in the fixture: no retry
        vidbridge_client.connect(URL)


def test_connect_retries_transient_failures(backend, vidbridge_plugin_manager, tmp_path):
    backend.connect_failures += [RateLimitedError("busy", retry_after=0), BackendConnectionError("refused")]
    with Client(plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path, retry_attempts=3) as client:
        session = client.connect(Endpoint(url=URL, backend="fake"))
        assert session.backend == "fake" and session.endpoint.url == URL
        assert "fake" in repr(client)
        assert [info.name for info in client.plugins()] == ["fake"]


def test_client_refuses_bad_settings():
    with pytest.raises(InvalidRequestError) as caught:
        Client(max_sessions=0)
    assert caught.value.field == "max_sessions"


# -------------------------------------------------------------------------------------------------
# Importing is cheap
# -------------------------------------------------------------------------------------------------


IMPORT_PROBE = """
import sys, threading
before = threading.active_count()
import vidbridge
import vidbridge.testing.pytest_plugin
assert vidbridge.__version__
heavy = sorted(name for name in ("pydantic", "httpx", "gradio_client", "gradio", "tenacity") if name in sys.modules)
plugins = sorted(name for name in sys.modules if name.startswith("vidbridge.plugins."))
print(threading.active_count() - before, heavy, plugins)
"""


def test_import_vidbridge_is_cheap():
    output = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["0", "[]", "[]"]


def test_lazy_namespace():
    assert vidbridge.Client is Client
    assert "Client" in dir(vidbridge)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        vidbridge.Nope


def test_final_callback_has_run_when_result_returns(session, out):
    """Regression: result() used to return before the callbacks had seen the terminal status."""
    for _ in range(5):
        seen: list[Phase] = []
        delivered = threading.Event()

        def slow_callback(status, seen=seen):
            if status.is_terminal:
                delivered.wait(0.01)  # widen the window between recording and delivering
            seen.append(status.phase)

        job = session.submit(prompt="x", output_dir=out, on_status=slow_callback)
        job.result(timeout=30)
        assert seen[-1] is Phase.COMPLETED


def test_discover_merging_prefers_a_claiming_plugin(vidbridge_register_plugin, vidbridge_client, caplog):
    class Unsure:
        @hookimpl
        def vidbridge_discover(self, options):
            return [Endpoint(url=URL, healthy=False, note="not Unsure's backend"), "garbage"]

    class Claims:
        @hookimpl
        def vidbridge_discover(self, options):
            return [Endpoint(url=URL)]  # backend left empty: the core fills in the plugin name

    vidbridge_register_plugin(Unsure(), name="unsure")
    vidbridge_register_plugin(Claims(), name="claims")
    (endpoint,) = vidbridge_client.discover([URL], probe_local=False)
    assert endpoint.healthy and endpoint.backend == "claims" and endpoint.note is None
    assert "garbage" in caplog.text


def test_connect_with_credentials_and_explicit_backend(backend, vidbridge_client):
    from vidbridge import Credentials

    session = vidbridge_client.connect(URL, backend="fake", credentials={"token": "t0ken"})
    assert session.backend == "fake"
    other = vidbridge_client.connect(Endpoint(url=URL, backend="wrong"), backend="fake",
                                     credentials=Credentials(username="u", password="p"))
    assert other.backend == "fake"


def test_module_level_helpers_use_a_private_client(backend, vidbridge_plugin_manager, monkeypatch, tmp_path):
    import vidbridge.client as client_module

    monkeypatch.setenv("VIDBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    assert client_module.default_cache_dir() == tmp_path / "cache"
    monkeypatch.setattr(client_module, "get_plugin_manager", lambda: vidbridge_plugin_manager)
    assert [endpoint.backend for endpoint in vidbridge.discover([URL], probe_local=False)] == ["fake"]
    with pytest.raises(BackendConnectionError):
        vidbridge.connect("http://nobody.local:1")
    monkeypatch.delenv("VIDBRIDGE_CACHE_DIR")
    assert client_module.default_cache_dir().name == "vidbridge"


def test_testing_namespace_is_lazy():
    import vidbridge.testing as testing

    assert "BackendConformance" in dir(testing)
    assert testing.BACKEND_HOOKS[0] == "vidbridge_discover"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        testing.Nope


# -------------------------------------------------------------------------------------------------
# The local queue, job references, attach, download=False
# -------------------------------------------------------------------------------------------------


def test_slot_queue_positions_grants_and_leaving():
    from vidbridge.slots import SlotQueue

    queue = SlotQueue(1)
    first, second, third = queue.enter(), queue.enter(), queue.enter()
    assert first.granted and queue.running == 1
    assert queue.position(first) is None and queue.position(second) == (0, 2) and queue.position(third) == (1, 2)
    queue.leave(second)  # a waiting ticket leaves: the next moves up
    assert queue.position(third) == (0, 1)
    moves = []
    stop = threading.Event()
    waiter = threading.Thread(target=lambda: moves.append(queue.wait(third, stop=stop.is_set,
                                                                     moved=lambda a, n: moves.append((a, n)))))
    waiter.start()
    queue.leave(first)
    waiter.join(30)
    assert moves[-1] is True and third.granted
    queue.leave(third)
    queue.leave(third)  # idempotent
    assert queue.running == 0
    fourth, fifth = queue.enter(), queue.enter()
    stop.set()
    assert queue.wait(fifth, stop=stop.is_set) is False and queue.position(fifth) is None
    with pytest.raises(ValueError):
        SlotQueue(0)


def test_jobs_joining_behind_move_no_waiter():
    """submit() stays O(1): a job joining the queue wakes no waiter (their position is unchanged)."""
    from vidbridge.slots import SlotQueue

    queue = SlotQueue(1)
    running, waiting = queue.enter(), queue.enter()
    moves: list = []
    seen = threading.Event()

    def moved(ahead: int, size: int) -> None:
        moves.append((ahead, size))
        seen.set()

    waiter = threading.Thread(target=lambda: moves.append(queue.wait(waiting, stop=lambda: False, moved=moved)))
    waiter.start()
    assert seen.wait(30)
    later = [queue.enter() for _ in range(20)]
    assert queue.position(later[-1]) == (20, 21)
    queue.leave(running)
    waiter.join(30)
    assert moves == [(0, 1), True]  # told once where it stood, then granted; never woken by the 20 joins


def test_a_queued_job_past_its_deadline_fails_without_reaching_the_backend(backend, vidbridge_plugin_manager,
                                                                         tmp_path, out):
    with Client(plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path, poll_interval=0.05,
                max_sessions=1) as client:
        session = client.connect(URL)
        busy = session.submit(hold(), output_dir=out)
        late = session.submit(prompt="never starts", output_dir=out, timeout=0.2)
        assert late.wait(timeout=30).phase is Phase.FAILED
        assert isinstance(late.error, JobTimeoutError) and late.error.reason == "deadline"
        assert late.error.server_cancelled is False
        assert all(handle.job_id != late.id for handle in session.native.handles)
        busy.cancel()


def test_job_reference_is_json_and_refuses_what_is_not(session, out):
    from vidbridge import JobRef, NotAttachableError

    job = session.submit(prompt="a fox", output_dir=out)
    job.result(timeout=30)
    ref = job.ref
    assert ref.backend == "fake" and ref.job_id == job.id and ref.data == {}
    assert JobRef.from_json(ref.to_json()) == ref == JobRef.from_json(ref.model_dump())
    for bad in ("not json", '{"backend": "fake"}', '{"backend": "x", "endpoint": "y", "job_id": "z", "extra": 1}'):
        with pytest.raises(NotAttachableError) as caught:
            JobRef.from_json(bad)
        assert caught.value.reason == "invalid"
    with pytest.raises(ValueError, match="JSON"):
        JobRef(backend="x", endpoint="y", job_id="z", data={"value": float("nan")})


def test_attach_says_why_it_cannot(session, vidbridge_client, out):
    from vidbridge import JobRef, NotAttachableError

    job = session.submit(prompt="a fox", output_dir=out)
    job.result(timeout=30)
    with pytest.raises(NotAttachableError) as caught:
        vidbridge_client.attach(job.ref.to_json())
    assert caught.value.reason == "unsupported"  # the fake backend has no vidbridge_attach
    other = JobRef(backend="fake", endpoint="http://elsewhere.fake:1", job_id="job-x")
    with pytest.raises(NotAttachableError) as caught:
        session.attach(other)
    assert caught.value.reason == "mismatch"
    with pytest.raises(NotAttachableError) as caught:
        vidbridge_client.attach(JobRef(backend="nobody", endpoint=URL, job_id="job-x"))
    assert caught.value.reason == "unsupported"


def test_download_false_then_fetch(session, out, tmp_path):
    job = session.submit(hold("later"), output_dir=out, download=False)
    with pytest.raises(VidbridgeError, match="must be completed"):
        job.fetch(tmp_path / "early")
    handle_of(session, job).release()
    assert job.wait(timeout=30).phase is Phase.COMPLETED
    assert job.artifacts == [] and not out.exists()
    with pytest.raises(PluginError, match="vidbridge_outputs"):
        job.outputs()  # the fake backend cannot list outputs
    (artifact,) = job.fetch(tmp_path / "later")
    assert artifact.path.parent == tmp_path / "later" and artifact.path.read_bytes() == b"video of later"
    assert job.artifacts == [artifact]


def test_async_close_and_cancel_of_a_locally_queued_job(backend, vidbridge_plugin_manager, tmp_path, out):
    async def main():
        async with Client(plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path, poll_interval=0.05,
                          max_sessions=1) as client:
            session = await client.aconnect(URL)
            busy = await session.asubmit(hold(), output_dir=out)
            queued = await session.asubmit(hold("queued"), output_dir=out)
            assert queued.locally_queued
            result = await queued.acancel()
            assert result.server_stopped and (await queued.await_(timeout=30)).phase is Phase.CANCELLED
            assert (await busy.acancel()).server_stopped
            await session.aclose()
            assert session.wait_closed(0) and busy.done()

    asyncio.run(main())
