"""Fault specifications, the live fault set of a server, and HTTP helpers to drive it.

A fault spec is one string ``KIND[:key=value[,key=value...]]``; every kind accepts

* ``route=R``: where it applies, an fnmatch glob on the URL path (``/gradio_api/queue/join``) or
  an alias: ``join``, ``data`` (the SSE result stream), ``upload``, ``file`` (downloads),
  ``config``, ``info``, ``api`` (everything under ``/gradio_api/``), ``any``;
  On the MCP face (``MockServer(mcp=True)``) the aliases ``mcp`` (``/mcp*``), ``mcp_upload`` and
  ``mcp_download`` (the media transfer URLs) apply, and the defaults below change to ``mcp`` for
  ``status``/``reset``, ``mcp_download`` for ``truncate``/``corrupt``/``slow``;
  ``hostile_name`` there renames the file ``wangp_create_gallery_download`` announces and sends;
  ``busy`` takes a tool name (``busy:fn=wangp_get_job``); ``gen_error``/``exit`` act on MCP jobs;
* ``count=N``: fire for the next N matching requests (or generations), then disappear;
* ``fraction=F``: fire for a fraction F of them (deterministic pseudo-random, ``seed=S``).

Kinds (defaults in brackets):

=================  ===========================================================================
``latency``        delay each request by ``seconds`` [0.5]                       (route [any])
``status`` / NNN   answer with HTTP ``code`` [503] (``429``, ``502``, ``503`` ... can be the kind
                   itself); ``retry_after`` seconds [1] is sent with 429/503       (route [join])
``reset``          abort the TCP connection (RST) without an answer              (route [join])
``truncate``       send only ``keep`` [0.5] of the body's Content-Length, then cut (route [file])
``corrupt``        flip the bits of some bytes of the body, length unchanged     (route [file])
``slow``           trickle the body at ``rate`` bytes per second [65536]         (route [file])
``gen_error``      the generation raises gr.Error (``message``) after step ``after_step`` [1]
``exit``           the server process exits (code ``code`` [3]) at step ``after_step`` [1],
                   before any output is written; with ``at=output`` right after the task's
                   output file was written and counted, before any client could read it
                   (gradio face only)
``busy``           a loaded server: the event of function ``fn`` (e.g. ``activate_status``)
                   starts running only ``seconds`` [1] after its call arrived (any copy)
``hostile_name``   file names in results become hostile: ``name`` = ``dotdot`` (``../x.mp4``),
                   ``absolute`` (``/tmp/x.mp4``), ``nul`` (``x\\x00.mp4``), ``device``
                   (``CON.mp4``) or any literal string                          (route [data])
                   (it rewrites ``orig_name`` in the result stream; each SSE stream a client
                   opens counts as one request, so prefer no ``count`` and clear it afterwards)
=================  ===========================================================================

Examples: ``429:route=join,count=2,retry_after=3``, ``latency:seconds=0.2``,
``truncate:count=1``, ``gen_error:after_step=2``, ``exit:at=output,count=1``, ``reset:route=upload,fraction=0.5``,
``busy:fn=activate_status,seconds=2,count=1``.

Admin routes (same server, loopback clients only, JSON; served by :mod:`.middleware`):
``GET/POST/DELETE /mock_admin/faults`` (POST body ``{"faults": [spec, ...]}``),
``GET/DELETE /mock_admin/counter``, ``GET/POST /mock_admin/options`` (``{"step_delay": S}``),
``GET /mock_admin/health``. The functions at the bottom of this module call them with urllib.
"""

from __future__ import annotations

import fnmatch
import json
import random
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterable

ROUTE_ALIASES = {
    "join": "/gradio_api/queue/join",
    "data": "/gradio_api/queue/data",
    "upload": "/gradio_api/upload",
    "file": "/gradio_api/file=*",
    "config": "/config",
    "info": "/gradio_api/info*",
    "api": "/gradio_api/*",
    "any": "*",
    # WanGP's MCP face (``MockServer(mcp=True)``): the JSON-RPC endpoint and the media transfers.
    "mcp": "/mcp*",
    "mcp_upload": "/wangp_api/gallery/upload/*",
    "mcp_download": "/wangp_api/gallery/download/*",
}
HTTP_KINDS = frozenset({"latency", "status", "reset", "truncate", "corrupt", "slow", "hostile_name"})
GENERATION_KINDS = frozenset({"gen_error", "exit"})
HANDLER_KINDS = frozenset({"busy"})
DEFAULT_ROUTES = {"latency": "any", "status": "join", "reset": "join", "truncate": "file",
                  "corrupt": "file", "slow": "file", "hostile_name": "data"}
# The MCP face has no gradio routes: its HTTP faults default to the JSON-RPC endpoint and downloads.
# ``hostile_name`` is applied by the download tool itself (matched against its name, which no URL
# path matches, so the HTTP layer leaves it alone).
MCP_DEFAULT_ROUTES = {"latency": "any", "status": "mcp", "reset": "mcp", "truncate": "mcp_download",
                      "corrupt": "mcp_download", "slow": "mcp_download",
                      "hostile_name": "wangp_create_gallery_download"}
HOSTILE_NAMES = {"dotdot": "../x.mp4", "absolute": "/tmp/x.mp4", "nul": "x\x00.mp4",
                 "device": "CON.mp4"}


class FaultSpecError(ValueError):
    """A fault spec string that cannot be parsed."""


@dataclass
class Fault:
    """One parsed fault. ``remaining`` counts down when ``count`` was given (None = forever)."""

    kind: str
    route: str = "*"
    remaining: int | None = None
    fraction: float | None = None
    params: dict[str, str] = field(default_factory=dict)
    spec: str = ""
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def number(self, key: str, default: float) -> float:
        return float(self.params.get(key, default))

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.route)


def parse_fault(spec: str, default_routes: dict[str, str] | None = None) -> Fault:
    """Parse one fault spec string (syntax in the module docstring); ``default_routes`` (kind ->
    route) replaces :data:`DEFAULT_ROUTES`, e.g. :data:`MCP_DEFAULT_ROUTES` on the MCP face."""
    head, _, tail = spec.strip().partition(":")
    kind = head.strip().lower()
    params: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in tail.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise FaultSpecError(f"{spec!r}: expected key=value, got {item!r}")
        params[key.strip().lower()] = value.strip()
    if kind.isdigit():
        params.setdefault("code", kind)
        kind = "status"
    if kind not in HTTP_KINDS | GENERATION_KINDS | HANDLER_KINDS:
        raise FaultSpecError(f"{spec!r}: unknown fault kind {kind!r}")
    route = params.pop("route", (default_routes or DEFAULT_ROUTES).get(kind, "any"))
    if kind in HANDLER_KINDS:  # matched against the function name instead of a URL path
        route = params.pop("fn", "*")
    fault = Fault(kind=kind, route=ROUTE_ALIASES.get(route, route), spec=spec.strip(), params=params)
    try:
        if "count" in params:
            fault.remaining = int(params.pop("count"))
        if "fraction" in params:
            fault.fraction = float(params.pop("fraction"))
        fault._rng.seed(int(params.pop("seed", 0)))
        for key in ("seconds", "code", "retry_after", "keep", "rate", "after_step"):
            if key in params:
                float(params[key])
    except ValueError as exc:
        raise FaultSpecError(f"{spec!r}: {exc}") from None
    return fault


class FaultSet:
    """The faults active on one server; thread-safe (HTTP layer and generation threads use it)."""

    def __init__(self, specs: Iterable[str] = (), default_routes: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self.default_routes = default_routes
        self._faults: list[Fault] = [parse_fault(s, default_routes) for s in specs]

    def add(self, spec: str) -> Fault:
        fault = parse_fault(spec, self.default_routes)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"spec": f.spec, "kind": f.kind, "route": f.route, "remaining": f.remaining}
                    for f in self._faults]

    def take(self, kinds: Iterable[str], path: str | None = None) -> list[Fault]:
        """The faults of ``kinds`` that fire now for ``path`` (None: generation faults).

        Firing consumes one unit of a fault's ``count``; spent faults are removed.
        """
        kinds = set(kinds)
        fired = []
        with self._lock:
            for fault in list(self._faults):
                if fault.kind not in kinds or (path is not None and not fault.matches(path)):
                    continue
                if fault.fraction is not None and fault._rng.random() >= fault.fraction:
                    continue
                fired.append(fault)
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return fired

    def peek(self, kinds: Iterable[str]) -> list[Fault]:
        """Active faults of ``kinds`` without consuming them."""
        kinds = set(kinds)
        with self._lock:
            return [f for f in self._faults if f.kind in kinds]


def fire_generation_faults(faults: Iterable[Fault], step: int, steps: int, *,
                           exit_process: Any = None, error: type[Exception] = RuntimeError) -> None:
    """Apply the generation faults (``gen_error``, ``exit``) due at ``step`` of ``steps``.

    Shared by both faces of the mock: ``error`` is the exception a ``gen_error`` raises (gr.Error
    on the gradio face); ``exit_process(code)`` ends the process, None where that is not allowed
    (then an ``exit`` fault raises ``error`` instead of being silently lost).
    """
    for fault in faults:
        if fault.params.get("at") in ("output", "writing"):
            continue  # fire_output_faults' and fire_writing_faults' business
        # A fault set after the last step fires at the last step: it must not be lost.
        if step != min(int(fault.number("after_step", 1)), steps):
            continue
        if fault.kind == "gen_error":
            raise error(fault.params.get("message", f"Simulated generation error at step {step}"))
        if fault.kind == "exit":
            if exit_process is None:
                raise error("exit fault ignored: this server may not end its process")
            exit_process(int(fault.number("code", 3)))


def fire_output_faults(faults: Iterable[Fault], *, exit_process: Any = None,
                       error: type[Exception] = RuntimeError) -> None:
    """Apply the ``exit:at=output`` faults once a task's output was written: the process ends
    (``exit_process(code)``) before any client learnt of the output; where ending the process is
    not allowed, ``error`` is raised instead."""
    for fault in faults:
        if fault.kind == "exit" and fault.params.get("at") == "output":
            if exit_process is None:
                raise error("exit fault ignored: this server may not end its process")
            exit_process(int(fault.number("code", 3)))


def fire_writing_faults(faults: Iterable[Fault], path: Any, *, exit_process: Any = None,
                        error: type[Exception] = RuntimeError) -> None:
    """Apply the ``exit:at=writing`` faults: the process ends while the output is half written.
    The file at ``path`` is cut to half its size first, which is what a crash mid-write leaves
    (an MP4 writer puts its ``moov`` index at the end, at close). The run is never finished: the
    restarted server's counter replays it as ``interrupted``."""
    for fault in faults:
        if fault.kind == "exit" and fault.params.get("at") == "writing":
            if exit_process is None:
                raise error("exit fault ignored: this server may not end its process")
            with open(path, "r+b") as stream:
                stream.truncate(max(1, stream.seek(0, 2) // 2))
            exit_process(int(fault.number("code", 3)))


def hostile_name(fault: Fault) -> str:
    """The file name a ``hostile_name`` fault substitutes."""
    name = fault.params.get("name", "dotdot")
    return HOSTILE_NAMES.get(name, name)


# --- client helpers: drive a running mock server's admin routes over HTTP ---------------------

ADMIN_PREFIX = "/mock_admin"


def _admin(url: str, path: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    root = url.rstrip("/").removesuffix("/mcp")  # the MCP face's URL works as well as its root
    request = urllib.request.Request(
        root + ADMIN_PREFIX + path, data=data, method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def add_faults(url: str, *specs: str) -> list[dict[str, Any]]:
    """Activate fault ``specs`` on the server at ``url``; returns the active faults."""
    return _admin(url, "/faults", "POST", {"faults": list(specs)})


def clear_faults(url: str) -> list[dict[str, Any]]:
    """Remove every active fault of the server at ``url``."""
    return _admin(url, "/faults", "DELETE")


def list_faults(url: str) -> list[dict[str, Any]]:
    """The active faults of the server at ``url``."""
    return _admin(url, "/faults")


def read_counter(url: str) -> dict[str, Any]:
    """The generation counter of the server at ``url`` (see :class:`.ledger.Ledger.snapshot`)."""
    return _admin(url, "/counter")


def reset_counter(url: str) -> dict[str, Any]:
    """Zero the generation counter of the server at ``url``."""
    return _admin(url, "/counter", "DELETE")


def set_options(url: str, *, step_delay: float | None = None) -> dict[str, Any]:
    """Change run-time options of the server at ``url`` (now: ``step_delay``); returns them."""
    body = {} if step_delay is None else {"step_delay": step_delay}
    return _admin(url, "/options", "POST", body)
