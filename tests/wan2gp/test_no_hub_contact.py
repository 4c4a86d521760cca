"""Connecting to a WanGP server contacts that server only: never huggingface.co.

gradio_client's ``Client()`` builds its User-Agent with huggingface_hub's ``build_hf_headers``,
which (huggingface_hub 2.x) fetches an "AI agent harness" registry from huggingface.co unless
telemetry is off, and starts a telemetry thread unless ``GRADIO_ANALYTICS_ENABLED`` says no
(``analytics_enabled=False`` alone does not). The test suite sets ``HF_HUB_OFFLINE=1`` and friends,
which hides all of that, so this runs a child process without them and with an empty ``HF_HOME``
(no cached registry), records every name lookup and connection it makes, and refuses those that
are not loopback (nothing leaves the machine even when the fix regresses). It also checks that the
fix changes nothing process-wide: no environment variable, no huggingface_hub setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CHILD = r'''
import json, socket, sys, threading

attempts = []
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect


def getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else str(host)
    attempts.append(name)
    if name not in LOOPBACK:
        raise socket.gaierror(socket.EAI_NONAME, "refused by the test: not loopback")
    return real_getaddrinfo(host, *args, **kwargs)


def connect(self, address):
    host = address[0] if isinstance(address, tuple) else str(address)
    attempts.append(host)
    if isinstance(address, tuple) and host not in LOOPBACK:
        raise ConnectionRefusedError("refused by the test: not loopback")
    return real_connect(self, address)


socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect

import vidbridge
from gradio_client import Client

with vidbridge.connect(sys.argv[1]) as session:
    pass
# What gradio_client and huggingface_hub send in the background must have happened by now.
for thread in threading.enumerate():
    target = getattr(thread, "_target", None)
    if target is not None and "_telemetry_thread" in getattr(target, "__qualname__", ""):
        thread.join(timeout=30)
try:
    from huggingface_hub.utils import _telemetry
except ImportError:
    pass
else:
    if _telemetry._TELEMETRY_THREAD is not None:
        _telemetry._TELEMETRY_QUEUE.join()
import os
from huggingface_hub import constants

switches = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "GRADIO_ANALYTICS_ENABLED")}
print(json.dumps({"attempts": sorted(set(attempts)), "environment": switches,
                  "hub_telemetry_disabled": constants.HF_HUB_DISABLE_TELEMETRY}))
'''

_HUB_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "DISABLE_TELEMETRY",
                 "DO_NOT_TRACK", "GRADIO_ANALYTICS_ENABLED", "HF_ENDPOINT")
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def test_connecting_contacts_only_the_server_even_without_hf_hub_offline(vidbridge_mock: Any, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in (*_HUB_SWITCHES, *_PROXIES)}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no cached registry that would hide the fetch
    env["VIDBRIDGE_CACHE_DIR"] = str(tmp_path / "cache")
    child = subprocess.run([sys.executable, "-c", CHILD, vidbridge_mock.url], env=env, capture_output=True,
                           text=True, timeout=180)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["attempts"], "the child made no connection at all: the recording does not work"
    assert set(report["attempts"]) <= {"127.0.0.1", "localhost", "::1"}, report["attempts"]
    # and the host process is left as it was: no environment variable set, huggingface_hub's own
    # telemetry setting unchanged (the host may use huggingface_hub for itself)
    assert report["environment"] == {"HF_HUB_OFFLINE": None, "HF_HUB_DISABLE_TELEMETRY": None,
                                     "GRADIO_ANALYTICS_ENABLED": None}
    assert report["hub_telemetry_disabled"] is False


def test_gradio_clients_telemetry_thread_sends_nothing(vidbridge_mock: Any, connect: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """In process and deterministic: with ``GRADIO_ANALYTICS_ENABLED`` unset gradio_client starts its
    telemetry thread although the plugin passes ``analytics_enabled=False``; that thread must not
    send (its sender is replaced by a recorder here, so nothing would leave the machine anyway)."""
    import threading

    from gradio_client import client as gradio_client_module

    sent: list[Any] = []
    created: list[tuple[str, threading.Thread]] = []

    class RecordedThread(threading.Thread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append((getattr(kwargs.get("target"), "__qualname__", ""), self))  # run() forgets it

    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    monkeypatch.setattr(gradio_client_module, "send_telemetry", lambda *a, **k: sent.append((a, k)))
    monkeypatch.setattr(gradio_client_module.threading, "Thread", RecordedThread)  # to join it below
    session = connect(vidbridge_mock.url)
    monkeypatch.undo()
    telemetry = [thread for target, thread in created if "_telemetry_thread" in target]
    session.close()
    for thread in telemetry:
        thread.join(timeout=30)
    assert telemetry, "gradio_client started no telemetry thread: this test no longer tests anything"
    assert sent == []
