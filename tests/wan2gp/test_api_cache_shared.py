"""The process-wide memory of API descriptions (``plugins/wan2gp/apicache.py``) against a real
mock server: every session and Client of the process reuses a description (no ``/info``), each
keeps its own limits, and nothing a job does changes the shared, read-only entries."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from vidbridge import Client, Phase
from vidbridge.plugins.wan2gp.apicache import CONFIGS, MEMORY

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("empty_api_memory")]


def test_sessions_of_any_client_share_descriptions_not_limits(vidbridge_mock: Any, connect: Any,
                                                               tmp_path: Path) -> None:
    first = connect(vidbridge_mock.url, max_sessions=1, cache_dir=None)
    assert first.server.api_cached is False  # the first connect of the process asked /info
    # Another Client's session (other options, no disk cache at all): served from memory.
    second = connect(vidbridge_mock.url, max_sessions=3, cache_dir=None)
    assert second.server.api_cached is True
    assert second.server.info is first.server.info and second.server.config is first.server.config
    assert MEMORY.keys() == [first.server.fingerprint]
    # The limits stay each session's own.
    assert first.limiter is not second.limiter
    assert [first.limiter.slots.acquire(blocking=False) for _ in range(2)] == [True, False]
    assert [second.limiter.slots.acquire(blocking=False) for _ in range(4)] == [True, True, True, False]


def test_a_job_leaves_the_shared_description_unchanged(vidbridge_mock: Any, tmp_path: Path) -> None:
    with Client(cache_dir=tmp_path / "cache") as client:
        session = client.connect(vidbridge_mock.url, backend="wan2gp")
        [fingerprint] = MEMORY.keys()
        info, config = MEMORY.get(fingerprint), CONFIGS.get(fingerprint)
        before = copy.deepcopy(info), copy.deepcopy(config)
        job = session.submit(prompt="read-only cache", model="t2v", frames=5, steps=1, output_dir=tmp_path / "out")
        assert job.wait(timeout=120).phase is Phase.COMPLETED, job.error
        again = client.connect(vidbridge_mock.url, backend="wan2gp")  # a second session of this Client
        assert again.submit(prompt="second session", model="t2v", frames=5, steps=1,
                            output_dir=tmp_path / "out").wait(timeout=120).phase is Phase.COMPLETED
    assert MEMORY.get(fingerprint) is info and CONFIGS.get(fingerprint) is config
    assert (info, config) == before
