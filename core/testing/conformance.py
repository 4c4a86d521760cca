"""The backend conformance suite: subclass :class:`BackendConformance` to test a plugin against the contract.

::

    # tests/test_conformance.py of a plugin
    import pytest
    from vidbridge import GenerationRequest
    from vidbridge.testing import BackendConformance

    from mybackend_vidbridge import plugin


    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def conformance_plugin(self):
            return "mybackend", plugin

        @pytest.fixture
        def conformance_endpoint(self, my_server_url):   # a fixture of yours that starts a server
            return my_server_url

        @pytest.fixture
        def conformance_request(self):
            return GenerationRequest(prompt="a red fox", frames=5, steps=2)

The class does not start with ``Test``, so pytest collects its tests only in subclasses.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import httpx
import pytest

from ..context import DiscoverOptions
from ..errors import InvalidRequestError, JobCancelledError, PluginError, VidbridgeError
from ..manager import PluginManager, get_plugin_manager
from ..models import CancelResult, Credentials, Endpoint, GenerationRequest, JobStatus, Phase
from .threads import snapshot_threads, wait_for_threads

__all__ = ["BackendConformance", "BACKEND_HOOKS", "CountingTransport"]

#: The hooks every backend plugin implements.
BACKEND_HOOKS = (
    "vidbridge_discover",
    "vidbridge_connect",
    "vidbridge_submit",
    "vidbridge_status",
    "vidbridge_fetch",
    "vidbridge_cancel",
)

#: Names a download in progress typically has; none may be left behind.
_TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".download", ".crdownload")


class CountingTransport(httpx.BaseTransport):
    """An httpx transport that forwards to a real one and counts the requests it sends.

    The kit gives the client's pooled :class:`httpx.Client` this transport, so it can tell
    whether a plugin used the network where the contract forbids it (invalid requests).
    """

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Record ``request`` and send it with the wrapped transport."""
        with self._lock:
            self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


def _closed_port_url() -> str:
    """A loopback URL on which nothing listens (a port just released by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class BackendConformance:
    """Contract tests for a backend plugin. Subclass it in a test module and override the fixtures.

    Required fixtures:

    * ``conformance_plugin``: ``(name, plugin)``; the name is the entry-point name, the plugin the
      module or object holding the hook implementations;
    * ``conformance_endpoint``: an :class:`~vidbridge.Endpoint` or a URL of a running backend the
      plugin can connect to (start it in a fixture of yours);
    * ``conformance_request``: a :class:`~vidbridge.GenerationRequest` that completes quickly.

    Optional fixtures (the tests that need them are skipped while they return ``None``):

    * ``conformance_slow_request``: a request that runs long enough to be cancelled;
    * ``conformance_invalid_request_fields``: a list of dicts of :class:`GenerationRequest` fields
      that the core accepts but this backend must refuse before any network call.

    Other knobs: ``conformance_unreachable_endpoint`` (an endpoint of this backend where no server
    answers; default a closed loopback port), ``conformance_client_options`` (keyword arguments
    for :class:`vidbridge.Client`), ``conformance_ignored_threads`` (name prefixes of threads
    that may outlive a client, e.g. a test server's), and the class attribute
    ``conformance_timeout`` (seconds any single wait may take before the test fails, a guard
    against hangs, not a performance assertion).
    """

    conformance_timeout: float = 60.0

    # ---------------------------------------------------------------------------------------------
    # Fixtures a plugin author overrides
    # ---------------------------------------------------------------------------------------------

    @pytest.fixture
    def conformance_plugin(self) -> tuple[str, object]:
        """``(name, plugin)`` of the plugin under test. Override it."""
        raise NotImplementedError("override the conformance_plugin fixture: return (name, plugin)")

    @pytest.fixture
    def conformance_endpoint(self) -> Endpoint | str:
        """An endpoint (or URL) of a running backend. Override it."""
        raise NotImplementedError("override the conformance_endpoint fixture: return an Endpoint or URL")

    @pytest.fixture
    def conformance_request(self) -> GenerationRequest:
        """A request that completes quickly. Override it."""
        raise NotImplementedError("override the conformance_request fixture: return a GenerationRequest")

    @pytest.fixture
    def conformance_slow_request(self) -> GenerationRequest | None:
        """A request that runs long enough to be cancelled; ``None`` skips the cancel tests."""
        return None

    @pytest.fixture
    def conformance_invalid_request_fields(self) -> Sequence[Mapping[str, Any]] | None:
        """Request fields the backend must refuse before the network; ``None`` skips that test."""
        return None

    @pytest.fixture
    def conformance_unreachable_endpoint(self, conformance_plugin: tuple[str, object]) -> Endpoint:
        """An endpoint of this backend where nothing answers (default: a closed loopback port)."""
        return Endpoint(url=_closed_port_url(), backend=conformance_plugin[0])

    @pytest.fixture
    def conformance_client_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`vidbridge.Client` (a short poll interval by default)."""
        return {"poll_interval": 0.05}

    @pytest.fixture
    def conformance_ignored_threads(self) -> Sequence[str]:
        """Name prefixes of threads allowed to outlive a closed client (none by default)."""
        return ()

    # ---------------------------------------------------------------------------------------------
    # Fixtures the kit builds from those
    # ---------------------------------------------------------------------------------------------

    @pytest.fixture
    def conformance_manager(self, conformance_plugin: tuple[str, object]) -> Iterator[PluginManager]:
        """A fresh plugin manager holding only the plugin under test (unregistered afterwards)."""
        name, plugin = conformance_plugin
        manager = get_plugin_manager(load_entry_points=False, plugins=[(name, plugin)])
        try:
            yield manager
        finally:
            if manager.is_registered(plugin):
                manager.unregister(plugin)

    @pytest.fixture
    def conformance_transport(self) -> CountingTransport:
        """The counting transport behind the client's pooled HTTP client."""
        return CountingTransport()

    @pytest.fixture
    def conformance_client(
        self,
        conformance_manager: PluginManager,
        conformance_transport: CountingTransport,
        conformance_client_options: dict[str, Any],
        tmp_path: Path,
    ) -> Iterator[Any]:
        """A :class:`vidbridge.Client` on the plugin under test; closed at teardown."""
        from ..client import Client

        http = httpx.Client(transport=conformance_transport, follow_redirects=True)
        options = {"cache_dir": tmp_path / "cache", "retry_attempts": 1, "ledger": tmp_path / "jobs.sqlite3",
                   **conformance_client_options}
        client = Client(plugin_manager=conformance_manager, http=http, **options)
        try:
            yield client
        finally:
            client.close()
            http.close()

    @pytest.fixture
    def conformance_session(self, conformance_client: Any, conformance_endpoint: Endpoint | str) -> Any:
        """An open :class:`vidbridge.Session` to the endpoint (closed with the client)."""
        return conformance_client.connect(self._endpoint(conformance_endpoint, conformance_client))

    @pytest.fixture
    def conformance_output_dir(self, tmp_path: Path) -> Path:
        """Where jobs write their artifacts (not created in advance: the core creates it)."""
        return tmp_path / "outputs"

    # ---------------------------------------------------------------------------------------------
    # Helpers
    # ---------------------------------------------------------------------------------------------

    def _endpoint(self, endpoint: Endpoint | str, client: Any) -> Endpoint:
        if isinstance(endpoint, Endpoint):
            return endpoint
        return client.identify(endpoint)

    def _name(self, conformance_plugin: tuple[str, object]) -> str:
        return conformance_plugin[0]

    def _run_to_completion(self, session: Any, request: GenerationRequest, output_dir: Path) -> tuple[Any, list[JobStatus]]:
        job = session.submit(request, output_dir=output_dir)
        statuses = list(job.updates(timeout=self.conformance_timeout))
        job.wait(self.conformance_timeout)
        return job, statuses

    def _assert_no_leftovers(self, output_dir: Path, artifacts: Sequence[Any]) -> None:
        """Only artifacts, their manifests and the folders holding them may be in ``output_dir``."""
        if not output_dir.exists():
            return
        kept = {Path(artifact.path).resolve() for artifact in artifacts}
        kept |= {Path(artifact.manifest_path).resolve() for artifact in artifacts if artifact.manifest_path}
        folders = {parent for path in kept for parent in path.parents}
        for item in output_dir.rglob("*"):
            resolved = item.resolve()
            if item.is_dir():
                assert resolved in folders, f"folder {item} left in the output folder (a temporary folder?)"
            elif resolved not in kept:
                name = item.name.lower()
                assert not name.endswith(_TEMPORARY_SUFFIXES), f"temporary file {item} left in the output folder"
                assert not name.startswith((".", "tmp")), f"temporary file {item} left in the output folder"

    # ---------------------------------------------------------------------------------------------
    # Registration
    # ---------------------------------------------------------------------------------------------

    def test_registers_without_unknown_hooks(self, conformance_plugin: tuple[str, object]) -> None:
        """The plugin registers on a fresh manager and implements no unknown hook."""
        name, plugin = conformance_plugin
        manager = get_plugin_manager(load_entry_points=False, plugins=[(name, plugin)])
        try:
            manager.check_pending()
            assert manager.get_plugin(name) is plugin
            assert name in manager.backend_names()
        finally:
            manager.unregister(plugin)
        assert not manager.has_plugin(name)

    def test_implements_every_backend_hook(self, conformance_manager: PluginManager, conformance_plugin: tuple[str, object]) -> None:
        """All six backend hooks are implemented, none with parameters pluggy would not pass."""
        name, plugin = conformance_plugin
        implemented = {caller.name for caller in conformance_manager.get_hookcallers(plugin) or ()}
        missing = [hook for hook in BACKEND_HOOKS if hook not in implemented]
        assert not missing, f"plugin {name!r} does not implement {', '.join(missing)}"
        for hook in BACKEND_HOOKS:
            for impl in getattr(conformance_manager.hook, hook).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                defaults = [
                    parameter.name
                    for parameter in inspect.signature(impl.function).parameters.values()
                    if parameter.default is not inspect.Parameter.empty
                ]
                assert not defaults, (
                    f"{name}.{hook} gives {', '.join(defaults)} a default value: pluggy never passes such arguments"
                )

    # ---------------------------------------------------------------------------------------------
    # Discovery and connection
    # ---------------------------------------------------------------------------------------------

    def test_discover_returns_only_endpoints(
        self, conformance_manager: PluginManager, conformance_client: Any, conformance_endpoint: Endpoint | str,
        conformance_plugin: tuple[str, object],
    ) -> None:
        """discover answers ``None`` or a list of Endpoints, and recognises the endpoint's URL as its own."""
        name = self._name(conformance_plugin)
        url = conformance_endpoint.url if isinstance(conformance_endpoint, Endpoint) else conformance_endpoint
        options = DiscoverOptions(
            urls=(Endpoint(url=url).url,), probe_local=False, timeout=self.conformance_timeout,
            credentials=Credentials(), http=conformance_client.http,
        )
        answers = conformance_manager.hook.vidbridge_discover(options=options)
        for answer in answers:
            assert isinstance(answer, list), f"discover returned {type(answer).__name__}, not a list or None"
            for endpoint in answer:
                assert isinstance(endpoint, Endpoint), f"discover returned {endpoint!r}, not an Endpoint"
                assert endpoint.backend in ("", name), f"discover claimed an endpoint for {endpoint.backend!r}"

        found = {endpoint.url: endpoint
                 for endpoint in conformance_client.discover([url], probe_local=False, timeout=5.0)}
        endpoint = found[Endpoint(url=url).url]
        assert endpoint.healthy, f"the plugin did not recognise its own endpoint {url}: {endpoint.note}"
        assert endpoint.backend == name

    def test_discover_does_not_claim_a_dead_url(self, conformance_client: Any, conformance_plugin: tuple[str, object]) -> None:
        """A URL where nothing listens is not reported as a healthy endpoint of this backend."""
        url = _closed_port_url()
        endpoints = conformance_client.discover([url], probe_local=False, timeout=5.0)
        claimed = [endpoint for endpoint in endpoints if endpoint.url == url and endpoint.healthy]
        assert not claimed, f"discover reported a server at {url}, where nothing listens"

    def test_connect_returns_closable_session(
        self, conformance_manager: PluginManager, conformance_client: Any, conformance_endpoint: Endpoint | str,
        conformance_plugin: tuple[str, object],
    ) -> None:
        """connect returns an object with ``close()``, and closing it twice is harmless."""
        name = self._name(conformance_plugin)
        endpoint = self._endpoint(conformance_endpoint, conformance_client)
        from ..context import ConnectOptions

        native = conformance_manager.call_owner(
            name, "vidbridge_connect", endpoint=endpoint, credentials=Credentials(),
            options=ConnectOptions(http=conformance_client.http),
        )
        assert callable(getattr(native, "close", None)), "the session object has no close() method"
        native.close()
        native.close()

    def test_unreachable_endpoint_raises_a_vidbridge_error(
        self, conformance_client: Any, conformance_unreachable_endpoint: Endpoint
    ) -> None:
        """Connecting where no server answers raises a vidbridge error, not a library's exception."""
        with pytest.raises(VidbridgeError) as caught:
            conformance_client.connect(conformance_unreachable_endpoint)
        error = caught.value
        leaked = isinstance(error, PluginError) and error.__cause__ is not None
        assert not leaked, f"the plugin let {type(error.__cause__).__name__} escape: {error.__cause__}"

    # ---------------------------------------------------------------------------------------------
    # Jobs
    # ---------------------------------------------------------------------------------------------

    def test_job_completes_with_normalised_statuses(
        self, conformance_session: Any, conformance_request: GenerationRequest, conformance_output_dir: Path
    ) -> None:
        """A job goes through Phase values only, ends completed, with sane progress and timestamps."""
        callback_threads: list[threading.Thread] = []
        job = conformance_session.submit(
            conformance_request,
            output_dir=conformance_output_dir,
            on_status=lambda status: callback_threads.append(threading.current_thread()),
        )
        statuses = list(job.updates(timeout=self.conformance_timeout))
        job.result(timeout=self.conformance_timeout)
        assert statuses[-1].phase is Phase.COMPLETED, f"job ended {statuses[-1].phase.value}: {statuses[-1].error}"
        for earlier, later in zip(statuses, statuses[1:]):
            assert later.updated_at >= earlier.updated_at, "status timestamps went backwards"
        for status in statuses:
            assert isinstance(status.phase, Phase)
            assert status.job_id == job.id
            if status.progress is not None:
                assert 0.0 <= status.progress <= 1.0
            if status.step is not None and status.total_steps is not None:
                assert status.step <= status.total_steps, f"step {status.step} of {status.total_steps}"
        assert [status.phase for status in statuses if status.is_terminal] == [Phase.COMPLETED]
        assert threading.main_thread() not in callback_threads

    def test_artifacts_are_verified_files(
        self, conformance_session: Any, conformance_request: GenerationRequest, conformance_output_dir: Path,
        conformance_plugin: tuple[str, object],
    ) -> None:
        """Artifacts exist in the output folder, with matching size and SHA-256, a media type and provenance."""
        job, _ = self._run_to_completion(conformance_session, conformance_request, conformance_output_dir)
        artifacts = job.result(timeout=self.conformance_timeout)
        assert artifacts, "a completed job returned no artifacts"
        for artifact in artifacts:
            path = Path(artifact.path)
            assert path.is_file(), f"artifact {path} does not exist"
            assert conformance_output_dir.resolve() in path.resolve().parents, f"{path} is outside the output folder"
            data = path.read_bytes()
            assert artifact.size == len(data)
            assert artifact.sha256 == hashlib.sha256(data).hexdigest()
            assert artifact.media_type and "/" in artifact.media_type
            assert artifact.provenance.backend == self._name(conformance_plugin)
            assert artifact.provenance.job_id == job.id
        self._assert_no_leftovers(conformance_output_dir, artifacts)

    def test_several_jobs_at_once(
        self, conformance_session: Any, conformance_request: GenerationRequest, conformance_output_dir: Path
    ) -> None:
        """A session runs several jobs at once, each with its own artifacts."""
        jobs = [conformance_session.submit(conformance_request, output_dir=conformance_output_dir) for _ in range(3)]
        results = [job.result(timeout=self.conformance_timeout) for job in jobs]
        for job, artifacts in zip(jobs, results):
            assert {artifact.provenance.job_id for artifact in artifacts} == {job.id}
        paths = [Path(artifact.path) for artifacts in results for artifact in artifacts]
        assert len(set(paths)) == len(paths), "two jobs wrote the same file"

    def test_async_updates_reach_completed(
        self, conformance_session: Any, conformance_request: GenerationRequest, conformance_output_dir: Path
    ) -> None:
        """``async for`` over the job's updates ends with completed."""

        async def follow() -> list[JobStatus]:
            job = await conformance_session.asubmit(conformance_request, output_dir=conformance_output_dir)
            seen = [status async for status in job.aupdates()]
            await job.aresult(timeout=self.conformance_timeout)
            return seen

        seen = asyncio.run(asyncio.wait_for(follow(), self.conformance_timeout))
        assert seen[-1].phase is Phase.COMPLETED

    # ---------------------------------------------------------------------------------------------
    # Cancelling
    # ---------------------------------------------------------------------------------------------

    def test_cancel_running_job(
        self, conformance_session: Any, conformance_slow_request: GenerationRequest | None, conformance_output_dir: Path
    ) -> None:
        """Cancelling a running job ends it ``cancelled``; ``result()`` raises JobCancelledError."""
        if conformance_slow_request is None:
            pytest.skip("no conformance_slow_request fixture")
        job = conformance_session.submit(conformance_slow_request, output_dir=conformance_output_dir)
        for status in job.updates(timeout=self.conformance_timeout):
            if status.phase is not Phase.QUEUED or status.is_terminal:
                break
        result = job.cancel()
        assert isinstance(result, CancelResult)
        job.wait(self.conformance_timeout)  # cancel() returns at once; the job then ends
        assert job.status().phase is Phase.CANCELLED, f"job ended {job.status().phase.value} after cancel"
        with pytest.raises(JobCancelledError):
            job.result(timeout=self.conformance_timeout)
        assert isinstance(job.cancel(), CancelResult), "a second cancel must be harmless"
        self._assert_no_leftovers(conformance_output_dir, [])

    def test_cancel_finished_job_is_harmless(
        self, conformance_manager: PluginManager, conformance_session: Any, conformance_request: GenerationRequest,
        conformance_output_dir: Path, conformance_plugin: tuple[str, object],
    ) -> None:
        """The cancel hook on a job that already completed returns a CancelResult and changes nothing."""
        name = self._name(conformance_plugin)
        native = conformance_session.native
        handle = conformance_manager.call_owner(name, "vidbridge_submit", session=native, request=conformance_request,
                                                job_id="job-conformance")
        status = JobStatus(job_id="job-conformance")
        deadline = time.monotonic() + self.conformance_timeout
        while time.monotonic() < deadline:
            status = conformance_manager.call_owner(name, "vidbridge_status", session=native, handle=handle,
                                                    current=status, wait=0.05)
            if status.is_terminal:
                break
        assert status.phase is Phase.COMPLETED, f"job ended {status.phase.value}: {status.error}"
        conformance_output_dir.mkdir(parents=True, exist_ok=True)
        artifacts = conformance_manager.call_owner(
            name, "vidbridge_fetch", session=native, handle=handle, destination=conformance_output_dir,
            progress=lambda done, total: None,
        )
        result = conformance_manager.call_owner(name, "vidbridge_cancel", session=native, handle=handle)
        assert isinstance(result, CancelResult)
        result = conformance_manager.call_owner(name, "vidbridge_cancel", session=native, handle=handle)
        assert isinstance(result, CancelResult)
        for artifact in artifacts:
            assert Path(artifact.path).is_file(), "cancelling a finished job removed its artifact"

        job, _ = self._run_to_completion(conformance_session, conformance_request, conformance_output_dir)
        assert isinstance(job.cancel(), CancelResult)
        assert job.status().phase is Phase.COMPLETED

    def test_closing_the_session_cancels_running_jobs(
        self, conformance_session: Any, conformance_slow_request: GenerationRequest | None, conformance_output_dir: Path
    ) -> None:
        """Closing a session with a job still running ends that job cancelled."""
        if conformance_slow_request is None:
            pytest.skip("no conformance_slow_request fixture")
        job = conformance_session.submit(conformance_slow_request, output_dir=conformance_output_dir)
        conformance_session.close()
        assert conformance_session.wait_closed(self.conformance_timeout), "the session did not finish closing"
        assert job.status().phase is Phase.CANCELLED
        conformance_session.close()

    # ---------------------------------------------------------------------------------------------
    # The host API's promises: submit never waits, local queue, references, outputs
    # ---------------------------------------------------------------------------------------------

    def test_submit_returns_at_once_and_a_locally_queued_cancel_reaches_no_backend(
        self, conformance_manager: PluginManager, conformance_endpoint: Endpoint | str,
        conformance_slow_request: GenerationRequest | None, conformance_client_options: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        """With every slot busy (``max_sessions=1``), ``submit()`` returns a job ``queued`` with its
        local position; cancelling it makes no call to the plugin's submit or cancel."""
        if conformance_slow_request is None:
            pytest.skip("no conformance_slow_request fixture")
        from ..client import Client

        calls: list[str] = []
        undo = conformance_manager.add_hookcall_monitoring(lambda name, impls, kwargs: calls.append(name),
                                                           lambda outcome, name, impls, kwargs: None)
        options = {"cache_dir": tmp_path / "cache", "retry_attempts": 1, "ledger": tmp_path / "jobs.sqlite3",
                   **conformance_client_options, "max_sessions": 1}
        try:
            with Client(plugin_manager=conformance_manager, **options) as client:
                session = client.connect(self._endpoint(conformance_endpoint, client))
                first = session.submit(conformance_slow_request, output_dir=tmp_path / "out")
                waiting = [session.submit(conformance_slow_request, output_dir=tmp_path / "out") for _ in range(2)]
                assert [job.status().queue_position for job in waiting] == [0, 1]
                assert all(job.status().phase is Phase.QUEUED and job.locally_queued for job in waiting)
                submits = calls.count("vidbridge_submit")
                result = waiting[1].cancel()
                assert result.server_stopped and waiting[1].wait(self.conformance_timeout).phase is Phase.CANCELLED
                assert calls.count("vidbridge_submit") == submits <= 1, "a locally queued job reached the backend"
                for update in waiting[0].updates(timeout=self.conformance_timeout):
                    if update.queue_position == 0 or update.is_terminal:
                        break
                first.cancel()
                waiting[0].cancel()
                first.wait(self.conformance_timeout)
                waiting[0].wait(self.conformance_timeout)
        finally:
            undo()

    def test_job_reference_round_trips_and_attach_says_what_it_can(
        self, conformance_manager: PluginManager, conformance_endpoint: Endpoint | str,
        conformance_request: GenerationRequest, conformance_slow_request: GenerationRequest | None,
        conformance_client_options: dict[str, Any], conformance_plugin: tuple[str, object], tmp_path: Path,
    ) -> None:
        """``job.ref`` survives JSON. With ``vidbridge_attach``, a second client's ``attach(ref)``
        follows the running job (cancelling it there stops the same work) and fetches a finished
        one; without it (or when the backend cannot), :class:`NotAttachableError` says why."""
        if conformance_slow_request is None:
            pytest.skip("no conformance_slow_request fixture")
        from ..client import Client
        from ..errors import NotAttachableError
        from ..refs import JobRef

        options = {"cache_dir": tmp_path / "cache", "retry_attempts": 1, "ledger": tmp_path / "jobs.sqlite3",
                   **conformance_client_options}
        with Client(plugin_manager=conformance_manager, **options) as first, \
                Client(plugin_manager=conformance_manager, **options) as second:
            session = first.connect(self._endpoint(conformance_endpoint, first))
            running = session.submit(conformance_slow_request, output_dir=tmp_path / "first")
            for status in running.updates(timeout=self.conformance_timeout):
                if status.is_terminal or (status.phase is not Phase.QUEUED and running.ref.data):
                    break
            saved = running.ref.to_json()
            ref = JobRef.from_json(saved)
            assert ref == running.ref and ref.backend == self._name(conformance_plugin) and ref.job_id == running.id
            try:
                follower = second.attach(saved, output_dir=tmp_path / "second")
            except NotAttachableError as error:
                assert error.reason, "NotAttachableError must say why (reason)"
                if hasattr(conformance_plugin[1], "vidbridge_attach"):
                    assert error.reason != "unsupported"
                running.cancel()
                running.wait(self.conformance_timeout)
                return
            assert follower.id == running.id and not follower.done()
            follower.cancel()  # through the second client: the same work stops
            assert follower.wait(self.conformance_timeout).phase is Phase.CANCELLED
            assert running.wait(self.conformance_timeout).phase is Phase.CANCELLED

            finished = session.submit(conformance_request, output_dir=tmp_path / "first")
            assert finished.wait(self.conformance_timeout).phase is Phase.COMPLETED, finished.error
            artifacts = second.attach(finished.ref, output_dir=tmp_path / "again").result(self.conformance_timeout)
            assert artifacts and all(Path(a.path).is_file() and Path(a.path).parent == tmp_path / "again"
                                     for a in artifacts)

    def test_download_false_leaves_outputs_to_fetch_later(
        self, conformance_session: Any, conformance_request: GenerationRequest, conformance_plugin: tuple[str, object],
        tmp_path: Path,
    ) -> None:
        """``download=False``: the job completes with no artifact; ``outputs()`` lists them (when the
        plugin implements ``vidbridge_outputs``) and ``fetch(folder)`` downloads and verifies them."""
        job = conformance_session.submit(conformance_request, output_dir=tmp_path / "unused", download=False)
        assert job.wait(self.conformance_timeout).phase is Phase.COMPLETED, job.error
        assert job.artifacts == [] and not (tmp_path / "unused").exists()
        if hasattr(conformance_plugin[1], "vidbridge_outputs"):
            outputs = job.outputs()
            assert outputs and all(output.name and output.url for output in outputs)
        artifacts = job.fetch(tmp_path / "later")
        assert artifacts and all(Path(a.path).parent == tmp_path / "later" and Path(a.path).is_file() for a in artifacts)
        assert job.artifacts == artifacts

    # ---------------------------------------------------------------------------------------------
    # Input validation and resources
    # ---------------------------------------------------------------------------------------------

    def test_invalid_request_refused_before_the_network(
        self, conformance_session: Any, conformance_invalid_request_fields: Sequence[Mapping[str, Any]] | None,
        conformance_transport: CountingTransport, conformance_output_dir: Path,
    ) -> None:
        """Requests this backend cannot run raise InvalidRequestError at submit, naming the field, offline."""
        if not conformance_invalid_request_fields:
            pytest.skip("no conformance_invalid_request_fields fixture")
        for fields in conformance_invalid_request_fields:
            request = GenerationRequest(**fields)  # the core must accept it: only the backend refuses it
            sent = len(conformance_transport.requests)
            with pytest.raises(InvalidRequestError) as caught:
                conformance_session.submit(request, output_dir=conformance_output_dir)
            error = caught.value
            assert error.field, f"InvalidRequestError for {dict(fields)} names no field: {error}"
            root = error.field.split(".")[0].split("[")[0]
            assert root in fields, f"error names field {error.field!r}, not one of {sorted(fields)}"
            assert len(conformance_transport.requests) == sent, "the plugin used the network for an invalid request"
            assert not conformance_session.jobs
        assert not conformance_output_dir.exists() or not any(conformance_output_dir.iterdir())

    def test_resources_released_on_close(
        self, conformance_manager: PluginManager, conformance_endpoint: Endpoint | str,
        conformance_request: GenerationRequest, conformance_slow_request: GenerationRequest | None,
        conformance_client_options: dict[str, Any], conformance_ignored_threads: Sequence[str], tmp_path: Path,
    ) -> None:
        """After the client closes, no thread it started is alive and no temporary file is left."""
        from ..client import Client

        output_dir = tmp_path / "cleanup"
        baseline = snapshot_threads()
        before = threading.active_count()
        options = {"cache_dir": tmp_path / "cache", "retry_attempts": 1, "ledger": tmp_path / "jobs.sqlite3",
                   **conformance_client_options}
        with Client(plugin_manager=conformance_manager, **options) as client:
            session = client.connect(self._endpoint(conformance_endpoint, client))
            artifacts = session.submit(conformance_request, output_dir=output_dir).result(self.conformance_timeout)
            if conformance_slow_request is not None:
                session.submit(conformance_slow_request, output_dir=output_dir)  # left running: close cancels it
        leaked = wait_for_threads(baseline, timeout=self.conformance_timeout, ignore_prefixes=conformance_ignored_threads)
        assert not leaked, f"threads still running after close: {', '.join(thread.name for thread in leaked)}"
        if not conformance_ignored_threads:
            assert threading.active_count() <= before
        self._assert_no_leftovers(output_dir, artifacts)
