"""The example backend run through vidbridge's conformance kit, and through its real entry point.

Run after ``pip install ./tests/example_plugin``::

    pytest tests/example_plugin/tests
"""

from __future__ import annotations

import pytest

pytest.importorskip("vidbridge_example", reason="install it: pip install ./tests/example_plugin")

from vidbridge import GenerationRequest, get_plugin_manager  # noqa: E402
from vidbridge.testing import BackendConformance  # noqa: E402
from vidbridge_example import plugin  # noqa: E402


class TestExampleBackend(BackendConformance):
    """The whole contract suite, against the in-process example backend."""

    conformance_timeout = 30.0

    @pytest.fixture
    def conformance_plugin(self):
        return "example", plugin

    @pytest.fixture
    def conformance_endpoint(self):
        return "http://example.invalid/studio"

    @pytest.fixture
    def conformance_request(self):
        return GenerationRequest(prompt="a red fox in snow", resolution="48x32", seed=7,
                                 settings={"steps": 3, "step_delay": 0.01})

    @pytest.fixture
    def conformance_slow_request(self):
        # Long enough never to finish on its own during a test: the cancel ends it.
        return GenerationRequest(prompt="a slow fox", settings={"steps": 100, "step_delay": 5.0})

    @pytest.fixture
    def conformance_invalid_request_fields(self):
        return [
            {"prompt": "x", "model": "not-a-model"},
            {"prompt": "x", "resolution": "4096x4096"},
            {"prompt": "x", "settings": {"colour": "red"}},
            {"prompt": "x", "settings": {"steps": 0}},
            {"prompt": "x", "settings": {"step_delay": "fast"}},
        ]


def test_loads_through_its_entry_point(monkeypatch):
    """``VIDBRIDGE_LOAD_PLUGINS=example`` loads the installed distribution's entry point."""
    monkeypatch.setenv("VIDBRIDGE_LOAD_PLUGINS", "example")
    manager = get_plugin_manager()
    assert manager.get_plugin("example") is plugin
    assert "example" not in manager.load_errors
    info = next(info for info in manager.plugin_infos() if info.name == "example")
    assert info.distribution == "vidbridge-example-backend"
    assert not info.builtin
    assert set(info.hooks) >= {"vidbridge_discover", "vidbridge_connect", "vidbridge_cancel"}


def test_left_out_when_not_selected(monkeypatch):
    """``VIDBRIDGE_LOAD_PLUGINS=""`` loads only the built-in plugins: the example is absent."""
    monkeypatch.setenv("VIDBRIDGE_LOAD_PLUGINS", "")
    manager = get_plugin_manager()
    assert not manager.has_plugin("example")
    assert "example" not in manager.load_errors
    # The built-ins are still attempted (they may fail to import while being developed).
    attempted = {name for name, _ in manager.list_name_plugin()} | set(manager.load_errors)
    assert {"wan2gp", "mock_backend"} & attempted
