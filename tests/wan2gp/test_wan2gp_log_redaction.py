"""Done-when for issue 14 item 2: with every logger at DEBUG, a real login and generation against the
mock WanGP behind gradio auth leaves no cookie value, password, token or header value in any log line:
the CLI in a subprocess with ``-vv``, and the Python API in this process under caplog."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

import vidbridge
from vidbridge import redaction
from vidbridge.plugins.mock_backend.fixtures import vidbridge_mock_mcp, vidbridge_mock_mcp_server  # noqa: F401
from vidbridge.plugins.wan2gp.connection import login

pytestmark = pytest.mark.integration

USER = "ann"
PASSWORD = "canary-Pw-5e1b77"
TOKEN = "hf_canaryTok9d2f"
HEADER_NAME, HEADER_VALUE = "X-Proxy-Pass", "canary-Hdr-3a8c40"
LOGGERS = ("", "vidbridge", "httpx", "httpcore", "httpcore.http11", "httpcore.connection", "gradio_client",
           "huggingface_hub")

# Run the CLI with every logger at DEBUG, not only the root that -vv sets: a library that sets its
# own logger's level (huggingface_hub does) would otherwise stay quiet and prove nothing.
_CLI = f"""
import logging, sys
import gradio_client, httpcore, httpx, huggingface_hub
from vidbridge.cli import main
for name in {LOGGERS!r} + tuple(logging.Logger.manager.loggerDict):
    logging.getLogger(name).setLevel(logging.DEBUG)
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A mock WanGP behind gradio auth with the canary password, in this process."""
    from vidbridge.plugins.mock_backend.server import MockServer

    with MockServer(port=0, auth=(USER, PASSWORD), state_dir=tmp_path_factory.mktemp("auth")) as server:
        yield server


def issued_tokens(server: Any) -> set[str]:
    """The login cookie values the gradio app handed out (its ``tokens`` table): what to search for."""
    import gradio.routes

    fastapi_app = server._server.config.app.app  # uvicorn config -> fault middleware -> FastAPI
    [gradio_app] = [route.app for route in fastapi_app.routes if isinstance(getattr(route, "app", None),
                                                                            gradio.routes.App)]
    return set(gradio_app.tokens)


def _assert_no_secret(text: str, cookies: set[str]) -> None:
    assert cookies, "no login happened: the test would prove nothing"
    for secret in (PASSWORD, TOKEN, HEADER_VALUE, *cookies):
        assert secret not in text, f"a secret ({len(secret)} characters) is in the log"


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIDBRIDGE_")}
    env.update({"VIDBRIDGE_PASSWORD": PASSWORD, "VIDBRIDGE_TOKEN": TOKEN, "VIDBRIDGE_WAN2GP_PROBE_PORTS": "",
                "VIDBRIDGE_CACHE_DIR": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})
    return env


def test_cli_debug_output_has_no_secret(auth_server: Any, tmp_path: Path) -> None:
    before = issued_tokens(auth_server)
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "generate", "canary prompt", "--frames", "5", "--url", auth_server.url,
         "--username", USER, "--header", f"{HEADER_NAME}: {HEADER_VALUE}", "-vv", "--json",
         "--output", str(tmp_path / "out")],
        env=_isolated_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["status"] == "completed"
    cookies = issued_tokens(auth_server) - before
    _assert_no_secret(done.stdout + done.stderr, cookies)
    # The trace that leaked the cookie before is there, redacted: the check above was not vacuous.
    assert f"(b'set-cookie', b'{redaction.REDACTED}')" in done.stderr
    assert "DEBUG httpcore.http11" in done.stderr and "INFO httpx: HTTP Request: POST" in done.stderr


def _all_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(message)s")
    return caplog.text + "\n".join(formatter.format(record) for record in caplog.records)


def test_python_api_debug_logging_has_no_secret(auth_server: Any, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    credentials = vidbridge.Credentials(username=USER, password=PASSWORD, token=TOKEN,
                                        headers={HEADER_NAME: HEADER_VALUE})
    with vidbridge.connect(auth_server.url, credentials=credentials, cache_dir=tmp_path / "cache") as session:
        cookies = set(session.native.server.cookies.values())  # what this login received
        [artifact] = session.generate(prompt="canary prompt", frames=5, steps=1, output_dir=tmp_path)
        assert artifact.path.is_file()
        # A user's own log line quoting them is redacted as well, by value.
        logging.getLogger("host.app").info("using %s and %s", credentials.header_values(), sorted(cookies))
    assert cookies and cookies <= issued_tokens(auth_server)
    assert any("set-cookie" in record.getMessage() for record in caplog.records if record.name.startswith("httpcore"))
    _assert_no_secret(_all_text(caplog), cookies)
    # Not kept forever: the credentials are forgotten when the session closes.
    assert PASSWORD in redaction.redact_text(PASSWORD) and HEADER_VALUE in redaction.redact_text(HEADER_VALUE)


def test_login_cookies_are_redacted_while_held(auth_server: Any) -> None:
    registered = len(redaction._registry)
    credentials = vidbridge.Credentials(username=USER, password=PASSWORD)
    with httpx.Client() as http:
        cookies = login(http, auth_server.url.rstrip("/"), credentials, headers={}, timeout=10)
    values = set(cookies.values())
    assert values and values <= issued_tokens(auth_server)
    line = f"a host's own line: {sorted(values)}"
    assert not any(value in redaction.redact_text(line) for value in values)
    del cookies  # the session's ServerInfo holds them as long as it lives; here nothing else does
    gc.collect()
    assert len(redaction._registry) <= registered  # (an earlier test's session may be collected meanwhile)
    assert all(value in redaction.redact_text(line) for value in values)


def test_refused_login_logs_no_secret_and_keeps_nothing(auth_server: Any, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    registered = len(redaction._registry)
    wrong = "canary-Wrong-0c4d11"
    with pytest.raises(vidbridge.AuthenticationError):
        vidbridge.connect(auth_server.url, credentials={"username": USER, "password": wrong},
                          cache_dir=tmp_path / "cache", retry_attempts=1)
    assert wrong not in _all_text(caplog) and len(redaction._registry) <= registered


def test_mcp_face_debug_logging_has_no_secret(vidbridge_mock_mcp: Any, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """The MCP face sends the token and headers on every SDK request and media transfer (for a
    proxy in front of WanGP): with the mcp SDK's loggers at DEBUG too, no value reaches a log."""
    for name in (*LOGGERS, "mcp", "mcp.client", "mcp.client.streamable_http"):
        caplog.set_level(logging.DEBUG, logger=name or None)
    credentials = vidbridge.Credentials(token=TOKEN, headers={HEADER_NAME: HEADER_VALUE})
    with vidbridge.connect(vidbridge_mock_mcp.url, credentials=credentials, cache_dir=tmp_path / "cache", ledger=None) as session:
        [artifact] = session.generate(prompt="canary prompt", model="t2v_1.3B", frames=5, steps=1,
                                      output_dir=tmp_path)
        assert artifact.path.is_file()
    text = _all_text(caplog)
    assert any(record.name.startswith("mcp") for record in caplog.records)  # the SDK did log
    for secret in (TOKEN, HEADER_VALUE):
        assert secret not in text, f"a secret ({len(secret)} characters) is in the log"
