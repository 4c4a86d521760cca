"""The wan2gp plugin through vidbridge's conformance kit (:class:`vidbridge.testing.BackendConformance`),
as a third-party plugin author runs it, once per WanGP face of the mock: the web UI (gradio) and
the MCP server.

Each face is a mock in a child process (module-wide), so the kit's thread-leak check sees only
the client's threads, with no prefix to ignore. Where the faces differ by design the kit already
allows it: the web UI face refuses ``attach`` with a reason (its tasks belong to the gradio
session that queued them), the MCP face follows the job again; the MCP face runs one generation
at a time, so "several jobs at once" are queued by the core and run in turn. The kit's offline
check cannot see the MCP face's traffic (its SDK session has an HTTP client of its own), so
:class:`TestMcpFace` adds the same check on the server's tool log.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from vidbridge import GenerationRequest, InvalidRequestError
from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.server import SubprocessMockServer
from vidbridge.plugins.wan2gp import plugin
from vidbridge.testing import BackendConformance

pytestmark = pytest.mark.integration

STEP_DELAY = 0.5  # seconds per denoising step: the slow request (100 steps, the form's maximum) outlasts each test


def _server(tmp_path_factory: pytest.TempPathFactory, *, mcp: bool) -> Iterator[SubprocessMockServer]:
    server = SubprocessMockServer(port=0, step_delay=STEP_DELAY, mcp=mcp,
                                  state_dir=tmp_path_factory.mktemp("conformance-mcp" if mcp else "conformance-ui"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def web_ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubprocessMockServer]:
    """The mock's web UI face in a child process, for this module."""
    yield from _server(tmp_path_factory, mcp=False)


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubprocessMockServer]:
    """The mock's MCP face in a child process, for this module (``.url`` ends in ``/mcp``)."""
    yield from _server(tmp_path_factory, mcp=True)


class _Wan2GPConformance(BackendConformance):
    """The fixtures both faces share: the plugin, a quick and a slow request, invalid requests."""

    conformance_timeout = 60.0

    @pytest.fixture
    def conformance_plugin(self) -> tuple[str, object]:
        return "wan2gp", plugin

    @pytest.fixture
    def conformance_request(self) -> GenerationRequest:
        return GenerationRequest(prompt="a red fox in snow", model="t2v", frames=17, steps=2, seed=7)

    @pytest.fixture
    def conformance_slow_request(self) -> GenerationRequest:
        return GenerationRequest(prompt="a slow fox", model="t2v", frames=17, steps=100)

    @pytest.fixture
    def conformance_invalid_request_fields(self) -> list[dict[str, Any]]:
        return [
            {"prompt": "x", "model": "t2v", "frames": 18},  # t2v makes 4k+1 frames
            {"prompt": "x", "model": "t2v", "settings": {"num_inference_step": 3}},  # a typo
            {"prompt": "x", "model": "t2v", "preset": "no-such-preset"},
        ]


class TestWebUiFace(_Wan2GPConformance):
    """The kit against WanGP's web UI face (gradio)."""

    @pytest.fixture
    def conformance_endpoint(self, web_ui_server: SubprocessMockServer) -> str:
        return web_ui_server.url


class TestMcpFace(_Wan2GPConformance):
    """The kit against WanGP's MCP face."""

    @pytest.fixture
    def conformance_endpoint(self, mcp_server: SubprocessMockServer) -> str:
        return mcp_server.url

    def test_invalid_requests_reach_only_read_only_tools(
        self, conformance_session: Any, conformance_invalid_request_fields: list[dict[str, Any]],
        mcp_server: SubprocessMockServer, tmp_path: Any,
    ) -> None:
        """The kit's offline check counts the client's pooled HTTP requests, which the MCP face's
        SDK session does not use: the server's own tool log shows what the invalid requests
        reached (the model's cached defaults and schema, never an upload or a generation)."""
        faults.reset_counter(mcp_server.url)
        for fields in conformance_invalid_request_fields:
            with pytest.raises(InvalidRequestError):
                conformance_session.submit(GenerationRequest(**fields), output_dir=tmp_path / "out")
        counter = faults.read_counter(mcp_server.url)
        assert counter["total"] == 0
        assert set(counter["calls"].get("mcp", [])) <= {"wangp_get_default_settings", "wangp_get_model_schema"}
