"""The API-description cache: a server's ``/info``, by fingerprint of its ``/config``.

A server of WanGP's size takes ~0.5 s to build its API description (``/info``, 6 MB of JSON), and
a connect needs it; the description only changes when ``/config`` does, so it is cached under the
SHA-256 of the ``/config`` body (:func:`connection.fetch_server_info`). Two layers:

* **memory, shared by the process** (:data:`MEMORY`, a :class:`DescriptionMemory`): every
  vidbridge Client and session of this process finds a description another one fetched, so a new
  session (of the same Client or of another one) skips ``/info`` and the JSON parse. This is the
  one process-wide cache of the plugin, and deliberately so: it is a pure memo of
  ``fingerprint -> description``, bounded (:data:`MEMORY_ENTRIES`, least recently used dropped;
  ~20 MB per WanGP-sized entry), holding no limits, credentials, cookies or session state, so
  nothing one Client sets can reach another (limits stay per session: :class:`session.ServerLimiter`).
  The key is the hash of the exact ``/config`` bytes a caller was allowed to read (after its login),
  and the same bytes describe the same app, so the description is what that caller's own ``/info``
  request would return. Entries are **read-only** by contract: nothing in the plugin changes a
  description (gradio_client only reads ``Client._info``; a test checks a job leaves it equal).
  The parsed ``/config`` is kept the same way (:data:`CONFIGS`, same key, same bound): a warm
  connect still reads ``/config`` (that is how it knows the app did not change) but does not parse
  its 1.3 MB again, which also spares it most of its allocations (and the full garbage
  collections they trigger, ~0.1-0.2 s each with a WanGP description in memory).
* **disk** (``<cache_dir>/wan2gp/api/<fingerprint>.info.json``): the raw ``/info`` body as the
  server sent it, shared by processes (the next run of a host connects without ``/info``). It is
  written by a background thread, to a temporary name renamed into place (a reader never sees a
  half-written file). Writing the raw bytes costs the connect nothing: encoding the parsed
  description again (``json.dumps``, ~45 ms on WanGP) held the GIL while the connect went on, which
  put it back on the critical path. Files of the older format (``<fingerprint>.json``) are ignored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

__all__ = ["ApiCache", "DescriptionMemory", "MEMORY", "CONFIGS", "MEMORY_ENTRIES", "public_info"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

#: Descriptions the process keeps in memory at most (least recently used dropped first).
MEMORY_ENTRIES = 4
_SUFFIX = ".info.json"


def public_info(info: dict[str, Any]) -> dict[str, Any]:
    """``/info`` as gradio_client keeps it: private endpoints hidden, code snippets dropped."""
    result = dict(info)
    for key in ("named_endpoints", "unnamed_endpoints"):
        kept = {}
        for name, endpoint in (info.get(key) or {}).items():
            endpoint = dict(endpoint)
            endpoint.pop("code_snippets", None)
            visibility = endpoint.pop("api_visibility", None)
            show = endpoint.pop("show_api", True)
            if (visibility is not None and visibility != "private") or (visibility is None and show):
                kept[name] = endpoint
        result[key] = kept
    return result


class DescriptionMemory:
    """A bounded, thread-safe LRU map ``fingerprint -> parsed JSON`` (read-only; see the module
    docstring)."""

    def __init__(self, entries: int = MEMORY_ENTRIES) -> None:
        self.entries = max(1, entries)
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        """The description, or ``None``; a hit becomes the most recently used."""
        with self._lock:
            info = self._items.get(fingerprint)
            if info is not None:
                self._items.move_to_end(fingerprint)
            return info

    def put(self, fingerprint: str, info: dict[str, Any]) -> None:
        """Remember ``info`` (never to be changed afterwards), dropping the least recently used."""
        with self._lock:
            self._items[fingerprint] = info
            self._items.move_to_end(fingerprint)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every description (tests; a host that wants the memory back)."""
        with self._lock:
            self._items.clear()

    def keys(self) -> list[str]:
        """The fingerprints held, least recently used first."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, fingerprint: object) -> bool:
        with self._lock:
            return fingerprint in self._items


#: The process's memory of API descriptions, shared by every :class:`ApiCache`.
MEMORY = DescriptionMemory()
#: The process's memory of parsed ``/config`` bodies, by the same fingerprint.
CONFIGS = DescriptionMemory()


class ApiCache:
    """API descriptions by fingerprint for one session: :data:`MEMORY`, then ``cache_dir`` on disk.

    :param cache_dir: the Client's cache folder; ``None``: memory only.
    :param memory: the memory of descriptions (tests pass their own).
    :param configs: the memory of parsed ``/config`` bodies (tests pass their own).
    :meth:`flush` waits for the disk writes (a session's ``close()`` calls it).
    """

    def __init__(self, cache_dir: Path | None, memory: DescriptionMemory | None = None,
                 configs: DescriptionMemory | None = None) -> None:
        self.folder = None if cache_dir is None else Path(cache_dir) / "wan2gp" / "api"
        self.memory = MEMORY if memory is None else memory
        self.configs = CONFIGS if configs is None else configs
        self._lock = threading.Lock()
        self._writers: list[threading.Thread] = []

    def _file(self, fingerprint: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{fingerprint}{_SUFFIX}"

    def config(self, fingerprint: str, parse: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The parsed ``/config`` with this fingerprint: remembered, else ``parse()`` (remembered
        when it returns a dict; its exceptions propagate)."""
        config = self.configs.get(fingerprint)
        if config is None:
            config = parse()
            if isinstance(config, dict):
                self.configs.put(fingerprint, config)
        return config

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        """The cached description, or ``None``."""
        info = self.memory.get(fingerprint)
        if info is not None:
            return info
        path = self._file(fingerprint)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.debug("ignoring unreadable API cache %s: %s", path, exc)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("named_endpoints"), dict):
            log.debug("ignoring API cache %s: not an API description", path)
            return None
        info = public_info(data)
        self.memory.put(fingerprint, info)
        return info

    def put(self, fingerprint: str, info: dict[str, Any], raw: bytes | None = None) -> None:
        """Remember ``info`` now, and write the description to disk in the background.

        :param info: the filtered description (:func:`public_info`); must not change afterwards.
        :param raw: the ``/info`` body as received, written as is (no encoding on this thread or
            any other); ``None``: ``info`` is encoded by the writer.
        Disk errors are logged, never raised (the cache is an optimisation).
        """
        self.memory.put(fingerprint, info)
        path = self._file(fingerprint)
        if path is None:
            return
        # Not a daemon: a process that ends right after connecting still gets its cache written
        # (a bounded write of one file, never a network wait).
        writer = threading.Thread(target=self._write, args=(path, info if raw is None else raw),
                                  name="wan2gp-api-cache-writer")
        with self._lock:
            self._writers = [w for w in self._writers if w.is_alive()]
            self._writers.append(writer)
        writer.start()

    @staticmethod
    def _write(path: Path, content: bytes | dict[str, Any]) -> None:
        tmp = None
        try:
            data = content if isinstance(content, bytes) else json.dumps(content).encode("utf-8")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("cannot write API cache %s: %s", path, exc)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def flush(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` s for the disk writes started so far."""
        with self._lock:
            writers, self._writers = self._writers, []
        for writer in writers:
            writer.join(timeout)
