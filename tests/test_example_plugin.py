"""The main suite's view of the example third-party plugin (skipped unless it is installed).

CI installs it (``pip install ./tests/example_plugin``); its own conformance run lives in
``tests/example_plugin/tests``. Here it is used the way a host's test suite would use a plugin:
through the ``vidbridge_*`` pytest fixtures, and through the real entry point.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

example = pytest.importorskip("vidbridge_example.plugin", reason="pip install ./tests/example_plugin")

from vidbridge import InvalidRequestError, JobFailedError, Phase, get_plugin_manager  # noqa: E402

URL = "http://example.invalid/host-tests"


@pytest.fixture
def session(vidbridge_thread_guard, vidbridge_register_plugin, vidbridge_client):
    vidbridge_register_plugin(example, name="example")
    return vidbridge_client.connect(URL)


def test_generates_a_png_through_the_fixtures(session, tmp_path):
    (artifact,) = session.generate(prompt="a fox", resolution="20x10", settings={"steps": 2, "step_delay": 0},
                                   output_dir=tmp_path)
    data = artifact.path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data[16:24] == (20).to_bytes(4, "big") + (10).to_bytes(4, "big")
    assert artifact.media_type == "image/png"
    assert [path.name for path in tmp_path.iterdir()] == [artifact.path.name]


def test_failure_is_reported(session, tmp_path):
    job = session.submit(prompt="x", settings={"steps": 3, "step_delay": 0, "fail_at_step": 2}, output_dir=tmp_path)
    with pytest.raises(JobFailedError, match="failed at step 2"):
        job.result(timeout=30)
    assert job.status().phase is Phase.FAILED


def test_refuses_input_media(session, tmp_path):
    image = tmp_path / "start.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(InvalidRequestError) as caught:
        session.submit(prompt="x", image_start=image)
    assert caught.value.field == "image_start"


def test_register_fixture_always_unregisters(vidbridge_plugin_manager, vidbridge_register_plugin):
    assert vidbridge_register_plugin(example, name="example") == "example"
    assert vidbridge_plugin_manager.has_plugin("example")
    # teardown unregisters it; the next test gets a fresh manager anyway


def test_entry_point_is_installed(monkeypatch):
    monkeypatch.setenv("VIDBRIDGE_LOAD_PLUGINS", "example")
    assert get_plugin_manager().get_plugin("example") is example


def test_conformance_kit_catches_a_broken_plugin(pytester):
    """The kit is not vacuous: a plugin that leaks threads and mislabels artifacts fails it."""
    pytester.makepyfile(
        """
        import threading
        import pytest
        from vidbridge import GenerationRequest, Provenance
        from vidbridge.testing import BackendConformance
        from vidbridge_example import plugin as example


        class Leaky:
            '''The example backend, except that it labels artifacts wrongly and leaks a thread.'''

            def __getattr__(self, name):
                return getattr(example, name)

            @staticmethod
            @example.hookimpl
            def vidbridge_fetch(session, handle, destination, progress):
                artifacts = example.vidbridge_fetch(session, handle, destination, progress)
                stop = threading.Event()
                threading.Thread(target=stop.wait, args=(3,), name="leaked-by-plugin", daemon=True).start()
                wrong = Provenance(backend="someone-else", endpoint="x", job_id="job-0")
                return [a.model_copy(update={"provenance": wrong}) for a in artifacts]

            vidbridge_discover = staticmethod(example.vidbridge_discover)
            vidbridge_connect = staticmethod(example.vidbridge_connect)
            vidbridge_submit = staticmethod(example.vidbridge_submit)
            vidbridge_status = staticmethod(example.vidbridge_status)
            vidbridge_cancel = staticmethod(example.vidbridge_cancel)


        class TestLeaky(BackendConformance):
            conformance_timeout = 1.0

            @pytest.fixture
            def conformance_plugin(self):
                return "example", Leaky()

            @pytest.fixture
            def conformance_endpoint(self):
                return "http://example.invalid/"

            @pytest.fixture
            def conformance_request(self):
                return GenerationRequest(prompt="x", settings={"steps": 1, "step_delay": 0})
        """
    )
    result = pytester.runpytest_inprocess("-q", "-k", "artifacts or resources", "-p", "vidbridge.testing.pytest_plugin")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*provenance*", "*leaked-by-plugin*"])


def test_thread_guard_reports_leaks_and_honours_ignores(pytester):
    """``vidbridge_thread_guard`` fails a test that leaves a thread running, unless told to ignore it."""
    pytester.makepyfile(
        """
        import threading
        import pytest

        STOP = threading.Event()

        @pytest.fixture(scope="module", autouse=True)
        def stop_threads_at_the_end():
            yield
            STOP.set()  # after every function-scoped guard has checked

        def start(name, stop=STOP):
            thread = threading.Thread(target=stop.wait, name=name, daemon=True)
            thread.start()
            return thread

        def test_leaks(vidbridge_thread_guard):
            vidbridge_thread_guard.timeout = 0.05
            start("leaky-worker")

        def test_ignored(vidbridge_thread_guard):
            vidbridge_thread_guard.ignore("server-pool")
            start("server-pool-1")

        def test_ends_in_time(vidbridge_thread_guard):
            stop = threading.Event()
            start("short-lived", stop)
            stop.set()
        """
    )
    result = pytester.runpytest_inprocess("-q", "-p", "vidbridge.testing.pytest_plugin")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*1 thread(s) still running after the test: leaky-worker*"])
