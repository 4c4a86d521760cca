"""The health service of a server pool: one background checker per pool.

Each server is probed cheaply (the backend plugin's discovery probe: its config, whose
fingerprint is the version and model list, its queue size, and the round trip as a liveness
ping) and has one of three states, always with the reason:

* ``healthy``: the last probe answered and nothing is wrong;
* ``degraded``: it answers, but slowly (latency above ``degraded_latency_ms``) or a job reported
  a connection failure there since its last good probe; it still gets jobs, after healthy ones;
* ``down``: the probe failed (or a job's connection failed twice in a row); it gets no job. It is
  probed again after a back-off that doubles from ``interval`` up to ``max_backoff``; after
  ``breaker_threshold`` failures in a row the circuit opens: no job and no probe for
  ``breaker_cooldown`` seconds, then one probe decides (half-open).

A host follows it with :meth:`HealthService.subscribe` (a callback per state change, on the
checker's thread) or reads :meth:`HealthService.snapshot`. Time and probing are injectable, so
tests drive it without waiting.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from .httperrors import redact_url
from .models import Endpoint

__all__ = ["HEALTHY", "DEGRADED", "DOWN", "ServerHealth", "HealthEvent", "HealthService", "fingerprint"]

log = logging.getLogger("vidbridge.health")

HEALTHY, DEGRADED, DOWN = "healthy", "degraded", "down"


def fingerprint(endpoint: Endpoint) -> str:
    """A short digest of what the server says it is (backend, version, models)."""
    text = "\n".join([endpoint.backend, endpoint.version or "", *endpoint.models])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ServerHealth:
    """One server as the health service sees it (an immutable snapshot).

    :ivar url: its base URL (shown without secrets).
    :ivar state: ``healthy``, ``degraded`` or ``down``.
    :ivar reason: why it is in that state (``None`` when healthy).
    :ivar failures: failures in a row (probes or jobs' connections).
    :ivar circuit_open: True while the circuit breaker keeps it out.
    :ivar checked: ``time.monotonic()`` of the last probe (``None``: never probed).
    :ivar latency_ms, queue_size, version, models, fingerprint: from its last good probe.
    :ivar gpu: what the server says about its GPU, when it says anything (``details["gpu"]``).
    """

    url: str
    state: str = DOWN
    reason: str | None = "not checked yet"
    failures: int = 0
    circuit_open: bool = False
    checked: float | None = None
    latency_ms: float | None = None
    queue_size: int | None = None
    version: str | None = None
    models: tuple[str, ...] = field(default=(), repr=False)
    fingerprint: str | None = None
    gpu: Mapping[str, Any] | None = None
    next_check: float = field(default=0.0, repr=False)

    @property
    def usable(self) -> bool:
        """True when jobs may go there (healthy or degraded)."""
        return self.state != DOWN

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``vidbridge servers --json``)."""
        return {"url": redact_url(self.url), "state": self.state, "reason": self.reason,
                "failures": self.failures, "circuit_open": self.circuit_open, "latency_ms": self.latency_ms,
                "queue_size": self.queue_size, "version": self.version, "models": len(self.models),
                "fingerprint": self.fingerprint, "gpu": dict(self.gpu) if self.gpu else None}


@dataclass(frozen=True)
class HealthEvent:
    """A server's state changed: ``before`` -> ``after`` (``before`` is ``None`` at the first probe)."""

    url: str
    before: ServerHealth | None
    after: ServerHealth


Probe = Callable[[str], Endpoint]


class HealthService:
    """Background health checks of a pool's servers.

    :param urls: the servers.
    :param probe: ``probe(url) -> Endpoint`` (``healthy=False`` or an exception: it failed).
    :param interval: seconds between probes of a usable server (and the first back-off).
    :param max_backoff: longest wait before probing a down server again.
    :param degraded_latency_ms: a slower probe makes a server degraded.
    :param breaker_threshold: failures in a row that open the circuit.
    :param breaker_cooldown: seconds an open circuit keeps a server out.
    :param clock: ``time.monotonic`` (injectable).
    """

    def __init__(self, urls: Sequence[str], probe: Probe, *, interval: float = 5.0, max_backoff: float = 60.0,
                 degraded_latency_ms: float = 2000.0, breaker_threshold: int = 3, breaker_cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe
        self.interval = interval
        self.max_backoff = max_backoff
        self.degraded_latency_ms = degraded_latency_ms
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self._clock = clock
        self._servers: dict[str, ServerHealth] = {url: ServerHealth(url=url) for url in urls}
        self._seen: set[str] = set()
        self._subscribers: list[Callable[[HealthEvent], None]] = []
        self._lock = threading.Condition()
        self._probing = threading.Lock()  # one probe round at a time
        self._stopped = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        states = ", ".join(f"{redact_url(h.url)}={h.state}" for h in self.snapshot())
        return f"<HealthService {states}>"

    # -- reading --------------------------------------------------------------------------------

    def snapshot(self) -> list[ServerHealth]:
        """Every server's health, in pool order."""
        with self._lock:
            return list(self._servers.values())

    def get(self, url: str) -> ServerHealth:
        """One server's health."""
        with self._lock:
            return self._servers[url]

    def subscribe(self, callback: Callable[[HealthEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on every state change (on the checker's thread, or the thread
        that reported a failure: keep it quick). Returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- checking -------------------------------------------------------------------------------

    def start(self) -> HealthService:
        """Start the background checker (idempotent)."""
        with self._lock:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name="vidbridge-health", daemon=True)
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the checker; returns at once (a probe under way ends on its own timeout)."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def check_now(self, urls: Sequence[str] | None = None) -> list[ServerHealth]:
        """Probe ``urls`` (default: every server whose check is due, or all at the first call)
        now, on this thread; returns the snapshot after it."""
        with self._probing:
            with self._lock:
                if urls is None:
                    now = self._clock()
                    urls = [h.url for h in self._servers.values() if h.next_check <= now]
            for url in urls:
                self._check(url)
        return self.snapshot()

    def report_failure(self, url: str, reason: str) -> None:
        """A job could not reach ``url`` (e.g. its submit got no connection): degraded at the
        first failure after a good probe, down (and probed again soon) at the second."""
        with self._lock:
            health = self._servers[url]
            failures = health.failures + 1
            state = DEGRADED if failures == 1 and health.state == HEALTHY else DOWN
        self._update(url, failures=failures, state=state, reason=f"a job's connection failed: {reason}",
                     probe_ok=False)

    def report_success(self, url: str) -> None:
        """A job reached ``url``: a degraded state due to jobs' failures is cleared."""
        with self._lock:
            health = self._servers[url]
            if health.failures == 0 or health.state == DOWN:
                return
        self._update(url, failures=0, state=HEALTHY, reason=None, probe_ok=True)

    def _check(self, url: str) -> None:
        try:
            endpoint = self._probe(url)
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means "down"
            self.record_probe(url, None, f"{type(exc).__name__}: {exc}")
            return
        self.record_probe(url, endpoint)

    def record_probe(self, url: str, endpoint: Endpoint | None, problem: str | None = None) -> None:
        """Take in a probe's answer obtained elsewhere (e.g. at connect): ``endpoint`` as the
        plugin described the server, or ``None`` with the ``problem``."""
        if endpoint is not None and not endpoint.healthy:
            problem = endpoint.note or "the probe found no usable server"
        if endpoint is None or problem is not None:
            with self._lock:
                failures = self._servers[url].failures + 1
            self._update(url, failures=failures, state=DOWN, reason=problem or "no answer", probe_ok=False)
            return
        slow = endpoint.latency_ms is not None and endpoint.latency_ms > self.degraded_latency_ms
        gpu = endpoint.details.get("gpu")
        self._update(url, failures=0, state=DEGRADED if slow else HEALTHY,
                     reason=f"slow: {endpoint.latency_ms:.0f} ms" if slow else None, probe_ok=True,
                     latency_ms=endpoint.latency_ms, queue_size=endpoint.queue_size, version=endpoint.version,
                     models=tuple(endpoint.models), fingerprint=fingerprint(endpoint),
                     gpu=gpu if isinstance(gpu, Mapping) else None)

    def _update(self, url: str, *, failures: int, state: str, reason: str | None, probe_ok: bool,
                **fields: Any) -> None:
        now = self._clock()
        with self._lock:
            before = self._servers[url]
            circuit = failures >= self.breaker_threshold
            if probe_ok:
                wait = self.interval
            elif circuit:
                wait = self.breaker_cooldown
                reason = f"circuit open after {failures} failures in a row ({reason})"
            else:
                wait = min(self.max_backoff, self.interval * 2 ** max(0, failures - 1))
            after = replace(before, state=state, reason=reason, failures=failures, circuit_open=circuit,
                            next_check=now + wait, checked=now, **fields)
            self._servers[url] = after
            first = url not in self._seen
            self._seen.add(url)
            changed = first or (before.state, before.reason) != (after.state, after.reason)
            subscribers = list(self._subscribers) if changed else []
            self._lock.notify_all()
        if changed and (first or before.state != after.state):
            log.info("server %s: %s%s", redact_url(url), after.state, f" ({after.reason})" if after.reason else "")
        for callback in subscribers:
            try:
                callback(HealthEvent(url, None if first else before, after))
            except Exception:  # noqa: BLE001 - a subscriber must not stop the checks
                log.exception("a health subscriber failed")

    def _loop(self) -> None:
        while True:
            self.check_now()
            with self._lock:
                if self._stopped:
                    return
                due = min(h.next_check for h in self._servers.values())
                wait = max(0.0, due - self._clock())
                if wait > 0:
                    self._lock.wait(wait)
                if self._stopped:
                    return
