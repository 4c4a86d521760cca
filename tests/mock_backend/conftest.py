"""Fixtures of the mock backend tests (the package's pytest plugin module plus a client)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from mock_helpers import open_client

from vidbridge.plugins.mock_backend.fixtures import (  # noqa: F401 - fixtures
    vidbridge_mock,
    vidbridge_mock_server,
    vidbridge_mock_subprocess,
    vidbridge_mock_subprocess_factory,
)


@pytest.fixture
def client(vidbridge_mock: Any) -> Iterator[Any]:
    with open_client(vidbridge_mock.url) as c:
        yield c


