"""Options the core hands to plugins: what to discover, how to connect.

Plain dataclasses (they carry live objects such as the pooled :class:`httpx.Client`), built by the
core from the host's settings. Plugins read them; they never build them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from .models import Credentials
from .retry import Deadline

if TYPE_CHECKING:  # pragma: no cover
    import httpx

__all__ = ["DiscoverOptions", "ConnectOptions"]


@dataclasses.dataclass(frozen=True)
class DiscoverOptions:
    """What :func:`vidbridge_discover` should look for.

    :ivar urls: URLs the user named (CLI flag, environment, config file), checked first.
    :ivar probe_local: also probe the backend's usual loopback ports.
    :ivar timeout: seconds the whole discovery may take.
    :ivar credentials: sent with every probe.
    :ivar http: the pooled HTTP client to probe with.
    """

    urls: tuple[str, ...]
    probe_local: bool
    timeout: float
    credentials: Credentials
    http: httpx.Client


@dataclasses.dataclass(frozen=True)
class ConnectOptions:
    """How :func:`vidbridge_connect` should connect.

    :ivar connect_timeout: seconds for establishing the session, per attempt (the whole connect,
        retries included, has :meth:`connect_deadline`).
    :ivar request_timeout: seconds for one ordinary request; long-running generation streams are
        not cut by it.
    :ivar verify_tls: verify HTTPS certificates (on by default).
    :ivar http: the pooled HTTP client for the plugin's own requests (probes, downloads).
    :ivar cache_dir: a folder for caches that survive the process (API descriptions, uploads).
    :ivar max_sessions: backend sessions opened at most at once per server.
    :ivar retry_attempts: attempts, exactly, for transient, repeatable operations (connect and
        each retried call); 1 means no retry.
    """

    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    verify_tls: bool = True
    http: httpx.Client | None = None
    cache_dir: Path | None = None
    max_sessions: int = 4
    retry_attempts: int = 4

    def connect_deadline(self) -> Deadline:
        """A new :class:`~vidbridge.retry.Deadline` for (re)connecting: ``connect_timeout`` for
        each of ``retry_attempts`` attempts, from now.

        The one budget for everything that waits for a server to answer again: the core's connect
        retries, and a plugin's wait for a restarted server before it continues a job or a download.
        """
        return Deadline.after(self.connect_timeout * max(1, self.retry_attempts))

    def request_deadline(self) -> Deadline:
        """A new :class:`~vidbridge.retry.Deadline` for one retried request: ``request_timeout``
        for each of ``retry_attempts`` attempts, from now."""
        return Deadline.after(self.request_timeout * max(1, self.retry_attempts))
