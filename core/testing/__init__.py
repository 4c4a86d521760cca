"""Conformance kit for vidbridge plugin authors, and pytest fixtures for hosts.

* :class:`BackendConformance`: a pytest test class to subclass in a plugin's own test suite; it
  proves the plugin honours the hook contract (see its docstring for the fixtures to override).
* :mod:`vidbridge.testing.pytest_plugin`: fixtures (``vidbridge_plugin_manager``,
  ``vidbridge_register_plugin``, ``vidbridge_client``, ``vidbridge_thread_guard``); load them in
  your ``conftest.py`` with ``pytest_plugins = ["vidbridge.testing.pytest_plugin"]``.

Names are imported lazily so that loading the pytest plugin stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["BackendConformance", "BACKEND_HOOKS", "snapshot_threads", "wait_for_threads", "leaked_threads"]

_EXPORTS = {
    "BackendConformance": "conformance",
    "BACKEND_HOOKS": "conformance",
    "snapshot_threads": "threads",
    "wait_for_threads": "threads",
    "leaked_threads": "threads",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vidbridge.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from .conformance import BACKEND_HOOKS, BackendConformance
    from .threads import leaked_threads, snapshot_threads, wait_for_threads
