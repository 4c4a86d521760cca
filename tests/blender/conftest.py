"""The Blender tests' environments are provisioned in the background from the moment collection
ends, so their downloads overlap the rest of the suite; the Blender tests themselves run last."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_executor: ThreadPoolExecutor | None = None
futures: dict[str, Future] = {}


def _ours(item: pytest.Item) -> bool:
    return HERE in Path(str(item.fspath)).resolve().parents


@pytest.hookimpl(trylast=True)  # after any other reordering
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:  # noqa: D103 - pytest hook
    items.sort(key=_ours)  # stable: everything else keeps its order, the Blender tests go last


def _wait_for_apt() -> None:
    """.ci/run installs Debian's blender in the background: wait until it says it finished."""
    status = os.environ.get("VIDBRIDGE_BLENDER_APT_STATUS")
    if not status:
        return
    deadline = time.monotonic() + 1800
    while not os.path.exists(status) and time.monotonic() < deadline:
        time.sleep(1)  # another process's progress: a file is the only signal it gives


def pytest_collection_finish(session: pytest.Session) -> None:  # noqa: D103 - pytest hook
    global _executor
    if not any(Path(str(item.fspath)).name == "test_blender.py" for item in session.items):
        return  # only the Blender runs need the environments
    import blender_provision as provision

    _executor = ThreadPoolExecutor(max_workers=len(provision.VARIANTS), thread_name_prefix="blender-provision")

    def timed(function):
        def run():
            started = time.monotonic()
            if function is provision.debian_blender:
                _wait_for_apt()
            info = function()
            return {**info, "provision_s": round(time.monotonic() - started, 1)}
        return run

    provision.BUILD.mkdir(exist_ok=True)
    for name, function in provision.VARIANTS.items():
        futures[name] = _executor.submit(timed(function))


def pytest_unconfigure(config) -> None:  # noqa: D103 - pytest hook
    if _executor is not None:
        _executor.shutdown(wait=False, cancel_futures=True)


@pytest.fixture(scope="session")
def blender_futures() -> dict[str, Future]:
    """Variant name -> the future of its provisioning (see :mod:`blender_provision`)."""
    return futures
