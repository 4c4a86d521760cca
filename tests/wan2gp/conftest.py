"""Fixtures for the wan2gp plugin tests: the mock WanGP server (in-process and subprocess), a
pooled httpx client, and a helper that drives a job through the hooks like the core does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

for _key, _value in {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1",
                     "HF_HUB_OFFLINE": "1"}.items():
    os.environ.setdefault(_key, _value)

from vidbridge.plugins.mock_backend.fixtures import (  # noqa: E402,F401 - fixtures
    vidbridge_mock,
    vidbridge_mock_server,
    vidbridge_mock_subprocess,
    vidbridge_mock_subprocess_factory,
)

from vidbridge import ConnectOptions, Credentials, Endpoint, JobStatus  # noqa: E402
from vidbridge.plugins.wan2gp import plugin  # noqa: E402


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def connect(http: httpx.Client, tmp_path: Path) -> Iterator[Any]:
    """``connect(url, credentials=None, **options)`` -> a wan2gp session, closed after the test."""
    sessions = []

    def make(url: str, credentials: Credentials | None = None, **options: Any) -> Any:
        options.setdefault("cache_dir", tmp_path / "cache")
        options.setdefault("retry_attempts", 1)
        session = plugin.vidbridge_connect(endpoint=Endpoint(url=url, backend="wan2gp"),
                                           credentials=credentials or Credentials(),
                                           options=ConnectOptions(http=http, **options))
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def empty_api_memory() -> Iterator[None]:
    """The process's memory of API descriptions and configs (``apicache.py``), empty before and
    after the test (it is shared by every session of the process, tests included)."""
    from vidbridge.plugins.wan2gp.apicache import CONFIGS, MEMORY

    for memory in (MEMORY, CONFIGS):
        memory.clear()
    yield
    for memory in (MEMORY, CONFIGS):
        memory.clear()
