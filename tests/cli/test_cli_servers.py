"""``vidbridge servers`` and ``generate`` with ``--url`` given more than once (a pool)."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from vidbridge.cli import ExitCode, main
from vidbridge.cli_servers import format_health, watch
from vidbridge.health import HealthService, ServerHealth

pytestmark = pytest.mark.integration


_HELD: list[socket.socket] = []


def _dead_url() -> str:
    """A loopback URL where nothing listens: a port bound (so no other process takes it) but not
    listening, which refuses connections."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    _HELD.append(holder)
    return f"http://127.0.0.1:{holder.getsockname()[1]}"


def test_servers_json_names_each_state_and_reason(mock: Any, isolated_discovery: None, capsys) -> None:
    dead = _dead_url()
    code = main(["servers", "--url", mock.url, "--url", dead, "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    alive, gone = document["servers"]
    assert alive["state"] == "healthy" and alive["reason"] is None and alive["models"] > 0
    assert alive["fingerprint"] and alive["version"]
    assert gone["state"] == "down" and gone["reason"] and gone["url"] == dead


def test_servers_text_and_no_server_at_all(mock: Any, isolated_discovery: None, capsys) -> None:
    assert main(["servers", "--url", mock.url]) == ExitCode.OK
    line = capsys.readouterr().out
    assert "healthy" in line and "models:" in line
    assert main(["servers", "--url", _dead_url()]) == ExitCode.CONNECTION
    assert "down" in capsys.readouterr().out
    assert main(["servers", "--json"]) == ExitCode.CONNECTION  # nothing configured or found
    assert json.loads(capsys.readouterr().out) == {"servers": []}


def test_generate_with_two_urls_runs_on_the_live_one(mock: Any, run_cli: Any) -> None:
    result = run_cli("generate", "a pooled fox", "--url", _dead_url(), "--url", mock.url, "--frames", "5",
                     "--steps", "2")
    assert result.code == ExitCode.OK, result
    assert result.document["status"] == "completed"
    assert result.document["endpoint"].rstrip("/") == mock.url.rstrip("/")
    assert result.document["backend"] == "wan2gp"


def test_watch_prints_every_change_until_stopped() -> None:
    answers = iter([RuntimeError("refused")])

    def probe(url: str) -> Any:
        raise next(answers, RuntimeError("still refused"))

    service = HealthService(["http://a:1"], probe, interval=0.01, max_backoff=0.01, breaker_threshold=2,
                            breaker_cooldown=0.01)
    stop = threading.Event()
    seen: list[Any] = []

    def emit(event: Any) -> None:
        seen.append(event)
        if len(seen) >= 2:
            stop.set()

    watch(service, stop=stop, emit=emit)
    assert seen[0].after.state == "down" and "circuit open" in seen[-1].after.reason
    text = format_health(ServerHealth(url="http://a:1", state="healthy", reason=None, latency_ms=3.0, queue_size=1,
                                      version="12.60", models=("t2v",), gpu={"name": "RTX"}))
    assert "queue 1" in text and "gpu: name=RTX" in text and "3 ms" in text


def test_servers_from_the_environment_list_and_watch(mock: Any, isolated_discovery: None, capsys,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import vidbridge.cli_servers as cli_servers

    monkeypatch.setenv("VIDBRIDGE_WAN2GP_URL", f"{mock.url},{_dead_url()}")
    real_watch = cli_servers.watch

    def one_change(service: Any, *, stop: threading.Event, emit: Any) -> None:
        def emit_then_stop(event: Any) -> None:
            emit(event)
            stop.set()

        service.record_probe(service.snapshot()[0].url, None, "gone")  # a change the watch prints
        real_watch(service, stop=stop, emit=emit_then_stop)

    monkeypatch.setattr(cli_servers, "watch", one_change)
    assert main(["servers", "--watch", "--interval", "0.05", "--json"]) == ExitCode.OK
    out = capsys.readouterr().out.strip()
    first, _ = json.JSONDecoder().raw_decode(out)
    lines = out.splitlines()
    assert [server["state"] for server in first["servers"]] == ["healthy"]  # discovery found the live one
    assert json.loads(lines[-1])["event"] == "changed"
    assert main(["servers", "--watch", "--interval", "0.05"]) == ExitCode.OK
    assert "healthy" in capsys.readouterr().out
