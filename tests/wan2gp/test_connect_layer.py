"""Connect against real local servers: ``retry_attempts=N`` is exactly N connection attempts
(counted by the mock's fault counter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vidbridge import Client, Endpoint, TransientServerError
from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration


def _attempts_seen(url: str, fault_count: int) -> int:
    """How many /config requests the 503 fault answered (each connect attempt reads /config once)."""
    active = faults.list_faults(url)
    return fault_count - (active[0]["remaining"] if active else 0)


@pytest.mark.parametrize("attempts", [1, 3, 4])
def test_retry_attempts_is_the_number_of_connection_attempts(vidbridge_mock: Any, tmp_path: Path,
                                                             attempts: int) -> None:
    faults.add_faults(vidbridge_mock.url, "503:route=config,count=99,retry_after=0")
    with Client(cache_dir=tmp_path, retry_attempts=attempts) as client:
        with pytest.raises(TransientServerError, match="reading /config"):
            client.connect(Endpoint(url=vidbridge_mock.url, backend="wan2gp"))
    assert _attempts_seen(vidbridge_mock.url, 99) == attempts  # not attempts x attempts


def test_a_connect_recovers_within_its_attempts(vidbridge_mock: Any, tmp_path: Path) -> None:
    faults.add_faults(vidbridge_mock.url, "503:route=config,count=2,retry_after=0")
    with Client(cache_dir=tmp_path, retry_attempts=3) as client:
        session = client.connect(Endpoint(url=vidbridge_mock.url, backend="wan2gp"))
        assert session.backend == "wan2gp"
    assert faults.list_faults(vidbridge_mock.url) == []  # both refusals were spent, the third attempt connected
