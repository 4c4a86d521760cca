"""The host API (``vidbridge.connect``) against the mock WanGP: sync and async status streams."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import check_artifact, frame_count

import vidbridge
from vidbridge import Phase

pytestmark = pytest.mark.integration


def test_updates_then_result(mock: Any, tmp_path: Path) -> None:
    with vidbridge.connect(mock.url, cache_dir=tmp_path / "cache") as session:
        job = session.submit(prompt="a red fox", frames=17, steps=3, output_dir=tmp_path)
        phases = [status.phase for status in job.updates()]
        [artifact] = job.result()
    assert phases[0] is Phase.QUEUED and phases[-1] is Phase.COMPLETED
    assert Phase.FAILED not in phases and phases.index(Phase.DOWNLOADING) < phases.index(Phase.COMPLETED)
    assert frame_count(check_artifact(artifact.to_summary())) == 17
    assert artifact.provenance.backend == "wan2gp" and artifact.provenance.model == "t2v"


def test_async_for_updates(mock: Any, tmp_path: Path) -> None:
    async def generate() -> tuple[list[Phase], list[Any]]:
        session = await asyncio.to_thread(vidbridge.connect, mock.url, cache_dir=tmp_path / "cache")
        try:
            job = await asyncio.to_thread(session.submit, prompt="async fox", frames=17, steps=2,
                                          output_dir=tmp_path)
            phases = [status.phase async for status in job.aupdates()]
            return phases, await job.aresult()
        finally:
            await asyncio.to_thread(session.close)

    phases, artifacts = asyncio.run(generate())
    assert phases[-1] is Phase.COMPLETED and len(artifacts) == 1
    check_artifact(artifacts[0].to_summary())
