"""pytest fixtures for vidbridge hosts and plugin authors.

Opt in from a ``conftest.py`` (they are not auto-registered, so they never intrude on other
suites)::

    pytest_plugins = ["vidbridge.testing.pytest_plugin"]

Then any test can use:

* ``vidbridge_plugin_manager``: a fresh :class:`vidbridge.PluginManager` with no entry points
  loaded (nothing installed leaks into the test);
* ``vidbridge_register_plugin``: ``register(plugin, name=None)`` registers a plugin object or
  module for this test only; it is **always** unregistered at teardown, even when the test fails;
* ``vidbridge_client``: a :class:`vidbridge.Client` bound to that manager, closed at teardown;
* ``vidbridge_thread_guard``: fails the test if it leaves threads running.

This module imports nothing heavy at import time (vidbridge is imported inside the fixtures) and
never imports a plugin: the core does not know any backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

from .threads import snapshot_threads, wait_for_threads

if TYPE_CHECKING:  # pragma: no cover
    from vidbridge import Client, PluginManager

__all__ = [
    "vidbridge_plugin_manager",
    "vidbridge_register_plugin",
    "vidbridge_client",
    "vidbridge_thread_guard",
    "ThreadGuard",
]


@pytest.fixture
def vidbridge_plugin_manager() -> PluginManager:
    """A fresh plugin manager with the vidbridge hookspecs and no plugin loaded."""
    from vidbridge import get_plugin_manager

    return get_plugin_manager(load_entry_points=False)


@pytest.fixture
def vidbridge_register_plugin(vidbridge_plugin_manager: PluginManager) -> Iterator[Callable[..., Any]]:
    """A function ``register(plugin, name=None, manager=None)`` that registers ``plugin`` for this test.

    The plugin is registered on ``vidbridge_plugin_manager`` (or ``manager``), checked with
    ``check_pending()`` (an implementation of an unknown hook fails the test), and always
    unregistered at teardown. Returns the plugin's registered name.
    """
    registered: list[tuple[Any, Any]] = []

    def register(plugin: object, name: str | None = None, manager: PluginManager | None = None) -> str:
        target = manager if manager is not None else vidbridge_plugin_manager
        plugin_name = target.register(plugin, name=name)
        registered.append((target, plugin))
        target.check_pending()
        return plugin_name

    try:
        yield register
    finally:
        for target, plugin in reversed(registered):
            if target.is_registered(plugin):
                target.unregister(plugin)


@pytest.fixture
def vidbridge_client(vidbridge_plugin_manager: PluginManager, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A :class:`vidbridge.Client` using ``vidbridge_plugin_manager``, with a short poll interval
    and a private cache folder and job ledger; closed (with its sessions and jobs) at teardown."""
    from vidbridge import Client

    client = Client(
        plugin_manager=vidbridge_plugin_manager,
        cache_dir=tmp_path_factory.mktemp("vidbridge-cache"),
        ledger=tmp_path_factory.mktemp("vidbridge-ledger") / "jobs.sqlite3",  # never the user's ledger
        poll_interval=0.05,
        retry_attempts=1,
    )
    try:
        yield client
    finally:
        client.close()
        client.wait_closed(60)


class ThreadGuard:
    """Remembers the threads alive when created; :meth:`check` fails if others are still running.

    :ivar timeout: seconds threads get to end after the test (they are joined, not slept on).
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._baseline = snapshot_threads()
        self._ignored: list[str] = []

    def ignore(self, name_prefix: str) -> None:
        """Do not report threads whose name starts with ``name_prefix`` (e.g. a server's pool)."""
        self._ignored.append(name_prefix)

    def check(self) -> None:
        """Wait for the test's threads to end; fail naming the ones that do not."""
        leaked = wait_for_threads(self._baseline, timeout=self.timeout, ignore_prefixes=self._ignored)
        if leaked:
            names = ", ".join(sorted(thread.name for thread in leaked))
            pytest.fail(f"{len(leaked)} thread(s) still running after the test: {names}", pytrace=False)


@pytest.fixture
def vidbridge_thread_guard() -> Iterator[ThreadGuard]:
    """Fails the test if threads it started are still running at teardown (after a bounded wait).

    Request it *before* fixtures whose teardown stops threads (e.g. ``vidbridge_client``) so their
    teardown runs first.
    """
    guard = ThreadGuard()
    yield guard
    guard.check()
