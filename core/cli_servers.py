"""``vidbridge servers``: a pool's servers as its health service sees them.

::

    vidbridge servers [--url URL]... [--watch] [--interval S] [--timeout S] [--json]

Without ``--url`` the servers are the ones discovery finds (configured URLs, e.g.
``VIDBRIDGE_WAN2GP_URL=http://a:7860,http://b:7860``, and the usual local ports). Each line gives
the state (``healthy``, ``degraded``, ``down``) with its reason, the probe's round trip, the
server's queue, its version, model count and GPU when the server tells it. ``--watch`` keeps
probing and prints every state change until Ctrl-C (with ``--json``: one JSON document per line,
per change). Exit code 0, or 3 when no server is healthy.
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any, Callable

__all__ = ["add_servers_command", "format_health"]


def add_servers_command(commands: Any) -> None:
    """Register ``servers`` on the ``vidbridge`` sub-parser collection."""
    from .cli import _add_connection_arguments, _add_json_argument

    servers = commands.add_parser("servers", help="the servers of a pool and their health")
    _add_connection_arguments(servers)
    servers.add_argument("--watch", action="store_true", help="keep probing; print every change until Ctrl-C")
    servers.add_argument("--interval", type=float, default=5.0, help="seconds between probes with --watch (default 5)")
    servers.add_argument("--timeout", type=float, default=5.0, help="seconds one probe may take (default 5)")
    _add_json_argument(servers)
    servers.set_defaults(handler=_cmd_servers)


def format_health(health: Any) -> str:
    """One human line for a :class:`~vidbridge.ServerHealth`."""
    from .httperrors import redact_url

    parts = [redact_url(health.url), health.state]
    if health.reason:
        parts.append(f"({health.reason})")
    if health.latency_ms is not None and health.state != "down":
        parts.append(f"{health.latency_ms:.0f} ms")
    if health.queue_size is not None:
        parts.append(f"queue {health.queue_size}")
    if health.version:
        parts.append(f"version {health.version}")
    if health.models:
        parts.append(f"models: {len(health.models)}")
    if health.gpu:
        parts.append("gpu: " + ", ".join(f"{key}={value}" for key, value in health.gpu.items()))
    return "  ".join(parts)


def _cmd_servers(args: argparse.Namespace) -> int:
    from .cli import ExitCode, _client, _emit_json, _say, credentials_from_args, found_servers
    from .health import HealthService
    from .models import Endpoint, build
    from .pool import discovery_probe

    credentials = credentials_from_args(args)
    with _client(args, args.plugin_manager) as client:
        if args.url:
            urls = [build(Endpoint, url=url).url for url in args.url]
        else:
            urls = [endpoint.url for endpoint in found_servers(client, credentials)]
        if not urls:
            _say("no servers found (give them with --url, or VIDBRIDGE_WAN2GP_URL=URL1,URL2)")
            if args.json:
                _emit_json({"servers": []})
            return ExitCode.CONNECTION
        service = HealthService(urls, discovery_probe(client, credentials, args.timeout),
                                interval=args.interval)
        snapshot = service.check_now(urls)
        if args.json:
            _emit_json({"servers": [health.to_dict() for health in snapshot]})
        else:
            for health in snapshot:
                print(format_health(health), flush=True)
        if args.watch:
            watch(service, stop=threading.Event(), emit=lambda event: _print_event(event, args.json))
    return ExitCode.OK if any(health.usable for health in snapshot) else ExitCode.CONNECTION


def _print_event(event: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"event": "changed", **event.after.to_dict()}), flush=True)
    else:
        print(format_health(event.after), flush=True)


def watch(service: Any, *, stop: threading.Event, emit: Callable[[Any], None]) -> None:
    """Run ``service``'s checker and ``emit`` each state change until ``stop`` is set or Ctrl-C."""
    unsubscribe = service.subscribe(emit)
    service.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        unsubscribe()
        service.stop()
