"""A session over many servers: one local queue, a health service, a routing policy, failover.

``vidbridge.connect([url1, url2])`` / ``Client.connect([...])`` return a :class:`PoolSession`:
the :class:`~vidbridge.Session` API (``submit`` returns at once, ``job.ref``, ``cancel``,
``result``, the asyncio twins), over servers of one backend.

* **Queue**: jobs wait in the pool's own FIFO queue (:class:`PoolQueue`); each server holds at
  most ``capacity`` of them at once (the client's ``max_sessions``). When a slot frees anywhere,
  the oldest waiting job that fits is placed by the :mod:`routing <vidbridge.routing>` policy.
* **Health**: a :class:`~vidbridge.health.HealthService` probes the servers in the background;
  down servers get no job; a server that comes back rejoins (reconnected if needed).
* **Failover**: a job not accepted by a server yet (waiting, or its submit failed with
  :class:`BackendConnectionError`: the plugin's submit returns only once the server accepted
  the task) moves to another server. A job the server accepted is never run twice while it may
  have produced output: a connection lost afterwards fails it (the ledger keeps it for
  ``resume``); only :class:`JobLostError` with ``output_possible=False`` resubmits it, once, on
  another server, as attempt 2. Every move is written to the ledger (``JobRecorder.moved``), so
  ``vidbridge jobs show`` names the server the job ran on.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .errors import BackendConnectionError, InvalidRequestError, NotAttachableError, VidbridgeError
from .health import HealthEvent, HealthService, ServerHealth
from .httperrors import redact_url
from .job import _SUBMITTING, _WAITING, Job
from .models import Endpoint, GenerationRequest, build
from .routing import Candidate, RoutingPolicy, SoonestStart, missing_for
from .session import Session
from .slots import SlotQueue, Ticket

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client
    from .models import Credentials

__all__ = ["PoolSession", "PoolQueue", "PoolTicket", "connect_pool", "discovery_probe"]

log = logging.getLogger("vidbridge.pool")


class PoolTicket(Ticket):
    """A job's place in a :class:`PoolQueue`; once granted, :attr:`member` is its server."""

    __slots__ = ("request", "member", "exclude")

    def __init__(self, request: GenerationRequest | None, exclude: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.request = request
        self.member: str | None = None
        self.exclude = exclude


class PoolQueue(SlotQueue):
    """The pool's FIFO queue: a waiting ticket is granted a slot on the server its policy
    chooses among those with a free slot (``view()`` gives the usable servers and all servers).
    A ticket that fits nowhere now waits without blocking the tickets behind it."""

    def __init__(self, policy: RoutingPolicy, view: Callable[[], tuple[list[Candidate], list[Candidate]]]) -> None:
        super().__init__(1)
        self.policy = policy
        self._view = view
        self._in_flight: dict[str, int] = {}

    def enter(self, request: GenerationRequest | None = None,  # type: ignore[override]
              exclude: frozenset[str] = frozenset()) -> PoolTicket:
        """A ticket for ``request`` at the end of the queue, never placed on ``exclude`` while
        another server could run it."""
        ticket = PoolTicket(request, exclude)
        with self._changed:
            self._waiting.append(ticket)
            self._grant(notify=False)
        return ticket

    def in_flight(self, url: str) -> int:
        """This pool's jobs holding a slot on ``url``."""
        with self._changed:
            return self._in_flight.get(url, 0)

    def leave(self, ticket: Ticket) -> None:
        """Give the ticket's slot back (the next jobs are placed), or leave the queue."""
        with self._changed:
            if isinstance(ticket, PoolTicket) and ticket.granted and not ticket.left and ticket.member:
                self._in_flight[ticket.member] -= 1
            super().leave(ticket)

    def snapshot(self) -> tuple[int, dict[str, int]]:
        """``(jobs waiting, {url: jobs in flight})`` at one instant."""
        with self._changed:
            return len(self._waiting), dict(self._in_flight)

    def wait_idle(self, url: str, timeout: float | None = None) -> bool:
        """Wait until no job of the pool holds a slot on ``url``; ``True`` if so within ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._in_flight.get(url), timeout)

    def redispatch(self) -> None:
        """Place waiting jobs again (a server's health changed)."""
        with self._changed:
            self._grant()

    def _grant(self, *, notify: bool = True) -> None:
        if self._waiting:
            usable, everyone = self._view()
            usable = [replace(c, in_flight=self._in_flight.get(c.url, 0)) for c in usable]
            for ticket in list(self._waiting):
                placed = self._place(ticket, usable, everyone)
                if placed is None:
                    continue
                self._waiting.remove(ticket)
                ticket.granted, ticket.member = True, placed.url
                self._running += 1
                self._in_flight[placed.url] = self._in_flight.get(placed.url, 0) + 1
                usable = [replace(c, in_flight=c.in_flight + 1) if c.url == placed.url else c for c in usable]
        if notify:
            self._changed.notify_all()

    def _place(self, ticket: Ticket, usable: list[Candidate], everyone: list[Candidate]) -> Candidate | None:
        assert isinstance(ticket, PoolTicket)
        request = ticket.request or GenerationRequest(prompt="-")
        exclude = ticket.exclude
        if exclude and not any(c.url not in exclude and self.policy.eligible(request, c) for c in everyone):
            exclude = frozenset()  # the excluded server is the only one that can run it
        choices = [c for c in usable if c.free > 0 and c.url not in exclude]
        return self.policy.choose(request, choices) if choices else None


class _JobSlots:
    """The pool queue as one job sees it: ``enter()`` knows the job's request."""

    def __init__(self, queue: PoolQueue, request: GenerationRequest | None) -> None:
        self.queue, self.request = queue, request

    def enter(self, exclude: frozenset[str] = frozenset()) -> PoolTicket:
        return self.queue.enter(self.request, exclude)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


class PoolJob(Job):
    """A :class:`Job` whose server is chosen when it leaves the pool's queue, and which moves to
    another server while no server has accepted it (see the module's failover rules)."""

    def __init__(self, pool: PoolSession, request: GenerationRequest, job_id: str, **options: Any) -> None:
        self._pool = pool
        self._moves = 0
        super().__init__(pool._placeholder(), request, job_id, slots=_JobSlots(pool.queue, request),  # type: ignore[arg-type]
                         **options)

    @property
    def server(self) -> str | None:
        """The URL of the server this job was placed on (``None`` while it waits)."""
        ticket = self._ticket
        return ticket.member if isinstance(ticket, PoolTicket) else None

    def _take_slot(self) -> None:
        super()._take_slot()
        url = self.server
        assert url is not None
        member = self._pool._member(url)
        if member is not self._session:
            self._session = member
            if self._recorder is not None:
                self._recorder.moved(backend=member.backend, endpoint=member.endpoint.url)

    def _submit(self) -> None:
        while True:
            url = self.server
            try:
                super()._submit()
            except BackendConnectionError as exc:
                # The plugin's submit returns once the server accepted the task; raising, it did
                # not: nothing runs there, so the job may go elsewhere.
                self._pool.health.report_failure(url, exc.message)
                self._moves += 1
                if self._moves > 2 * len(self._pool.urls):
                    raise
                log.warning("%s: %s did not take it (%s); moving it to another server", self.id,
                            redact_url(url or "?"), exc.message)
                self._requeue(frozenset({url}) if url else frozenset())
                continue
            self._pool.health.report_success(url)
            if self.request is not None and self.request.model:
                self._pool._loaded[url] = self.request.model  # WanGP keeps the last model loaded
            return

    def _resubmit(self) -> None:
        url = self.server
        self._requeue(frozenset({url}) if url else frozenset())
        self._submit()

    def _requeue(self, exclude: frozenset[str]) -> None:
        """Back into the pool's queue (at its end), then wait for a slot elsewhere."""
        with self._condition:
            self._stage = _WAITING
        old = self._ticket
        self._ticket = self._slots.enter(exclude)  # type: ignore[call-arg]
        if old is not None:
            self._slots.leave(old)
        self._take_slot()
        with self._condition:
            self._stage = _SUBMITTING


class _PoolNative:
    """What a pool session holds: its members; closing it closes them and the health service."""

    def __init__(self, pool: PoolSession) -> None:
        self._pool = pool

    def close(self) -> None:
        self._pool.health.stop()
        members = [m for m in self._pool._members.values() if m is not None]
        for member in members:
            member.close()
        for member in members:
            member.wait_closed(30.0)


class PoolSession(Session):
    """A :class:`Session` over several servers of one backend (see :mod:`vidbridge.pool`).

    Made by :func:`connect_pool` (``Client.connect([...])``). ``endpoint`` is the first server's;
    :attr:`urls` lists them all and :meth:`servers` says how the health service sees them.

    :ivar health: the pool's :class:`~vidbridge.health.HealthService` (``subscribe`` to follow it).
    :ivar policy: the routing policy.
    :ivar queue: the pool's local queue.
    """

    def __init__(self, client: Client, urls: Sequence[str], members: Mapping[str, Session | None],
                 failures: Mapping[str, str], *, policy: RoutingPolicy | None = None,
                 credentials: Credentials | None = None, probe_timeout: float = 5.0,
                 **health_options: Any) -> None:
        first = next(m for m in members.values() if m is not None)
        super().__init__(client.plugin_manager, first.endpoint, _PoolNative(self),
                         poll_interval=client._poll_interval, ledger=client._ledger)
        self.urls = tuple(urls)
        self.policy = policy or SoonestStart()
        self._client = client
        self._credentials = credentials
        self._probe_timeout = probe_timeout
        self._members: dict[str, Session | None] = dict(members)
        self._reconnecting: set[str] = set()
        self._drained: set[str] = set()
        self._loaded: dict[str, str | None] = {}
        self._capacity = client._options.max_sessions
        self.health = HealthService(self.urls, self._probe, **health_options)
        self.queue = PoolQueue(self.policy, self._view)
        for url, member in self._members.items():
            if member is not None:
                self.health.record_probe(url, member.endpoint)
            else:
                self.health.record_probe(url, None, failures.get(url, "cannot connect"))
        self.health.subscribe(self._on_health)
        self.health.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<PoolSession {self.backend} {len(self.urls)} servers {state}>"

    def servers(self) -> list[ServerHealth]:
        """Each server's health, in pool order."""
        return self.health.snapshot()

    def drain(self, url: str, timeout: float | None = None) -> bool:
        """Send no new job to ``url`` (e.g. before maintenance) and wait until the pool's jobs
        there ended; ``True`` if they did within ``timeout``. :meth:`undrain` takes it back."""
        url = build(Endpoint, url=url).url
        with self._lock:
            self._drained.add(url)
        return self.queue.wait_idle(url, timeout)

    def undrain(self, url: str) -> None:
        """Let ``url`` take jobs again (after :meth:`drain`)."""
        with self._lock:
            self._drained.discard(build(Endpoint, url=url).url)
        self.queue.redispatch()

    # -- routing plumbing -----------------------------------------------------------------------

    def _view(self) -> tuple[list[Candidate], list[Candidate]]:
        usable, everyone = [], []
        for order, health in enumerate(self.health.snapshot()):
            member = self._members.get(health.url)
            models = health.models or (member.endpoint.models if member is not None else ())
            candidate = Candidate(url=health.url, state=health.state, capacity=self._capacity,
                                  queue_size=health.queue_size, models=models,
                                  loaded_model=self._loaded.get(health.url), order=order)
            everyone.append(candidate)
            if health.usable and member is not None and not member.closed and health.url not in self._drained:
                usable.append(candidate)
        return usable, everyone

    def _member(self, url: str) -> Session:
        member = self._members[url]
        assert member is not None
        return member

    def _placeholder(self) -> Session:
        return next((m for m in self._members.values() if m is not None), self)

    def _probe(self, url: str) -> Endpoint:
        return discovery_probe(self._client, self._credentials, self._probe_timeout)(url)

    def _on_health(self, event: HealthEvent) -> None:
        if event.after.usable and self._members.get(event.url) is None and not self._closed:
            self._reconnect(event.url)
        self.queue.redispatch()

    def _reconnect(self, url: str) -> None:
        with self._lock:
            if url in self._reconnecting:
                return
            self._reconnecting.add(url)

        def run() -> None:
            try:
                member = self._client.connect(url, credentials=self._credentials, backend=self.backend)
            except VidbridgeError as exc:
                log.info("pool: %s answers but cannot be connected yet: %s", redact_url(url), exc.message)
            else:
                with self._lock:
                    self._members[url] = member
                self.queue.redispatch()
            finally:
                with self._lock:
                    self._reconnecting.discard(url)

        threading.Thread(target=run, name="vidbridge-pool-rejoin", daemon=True).start()

    # -- the Session API ------------------------------------------------------------------------

    def _new_job(self, request: GenerationRequest, job_id: str, *, attempt: int = 1, **options: Any) -> Job:
        job = PoolJob(self, request, job_id, poll_interval=self._poll_interval,
                      recorder=self._recorder(job_id, attempt), **options)
        self._track(job)
        return job

    def _validator(self, request: GenerationRequest | None) -> Session:
        """A connected member that could run ``request`` (its plugin validates it)."""
        usable, everyone = self._view()
        for candidate in (*usable, *everyone):
            member = self._members.get(candidate.url)
            if member is not None and (request is None or missing_for(request, candidate) is None):
                return member
        lacking = {redact_url(c.url): missing_for(request, c) for c in everyone} if request else {}
        raise InvalidRequestError(f"no server of the pool can run this request ({lacking})", field="model",
                                  allowed="a model every server of the pool offers, or one of some of them")

    def _implements(self, hook_name: str) -> bool:
        return self._placeholder()._implements(hook_name)

    def _call_optional(self, hook_name: str, **kwargs: Any) -> Any:
        return self._validator(kwargs.get("request"))._call_optional(hook_name, **kwargs)

    def attach(self, ref: Any, **options: Any) -> Job:
        """Follow a job again on the server of the pool its reference names (see
        :meth:`Session.attach`).

        :raises NotAttachableError: ``reason="mismatch"`` when no server of the pool is it.
        """
        from .refs import JobRef

        if not isinstance(ref, JobRef):
            ref = JobRef.from_json(ref)
        for member in self._members.values():
            if member is not None and member.endpoint.url.rstrip("/") == ref.endpoint.rstrip("/"):
                return member.attach(ref, **options)
        raise NotAttachableError(f"{ref.job_id} ran on {ref.endpoint}, which is not a server of this pool",
                                 endpoint=ref.endpoint, reason="mismatch")


def discovery_probe(client: Client, credentials: Credentials | None = None,
                    timeout: float = 2.0) -> Callable[[str], Endpoint]:
    """A health probe asking the backend plugins' discovery about one URL (config, queue size,
    round trip); for a server nothing recognises, the note says why (refused, unreachable...)."""

    from .client import _UNRECOGNISED, _reachability

    def probe(url: str) -> Endpoint:
        found = client.discover([url], probe_local=False, timeout=timeout, credentials=credentials)
        endpoint = next(item for item in found if item.url == url)
        if endpoint.note == _UNRECOGNISED:  # plugins leave out what does not answer: say which it is
            endpoint = endpoint.model_copy(update={"note": _reachability(url, timeout) or _UNRECOGNISED})
        return endpoint

    return probe


def connect_pool(client: Client, targets: Sequence[str | Endpoint], *, credentials: Credentials | None = None,
                 backend: str | None = None, policy: RoutingPolicy | None = None, **health_options: Any) -> PoolSession:
    """Connect to every server of ``targets`` at once and return their :class:`PoolSession`.

    Servers that cannot be connected now are kept as ``down`` (with the reason) and join once
    they answer. ``health_options`` are :class:`~vidbridge.health.HealthService`'s (``interval``,
    ``max_backoff``, ``breaker_threshold``...) and ``probe_timeout``.

    :raises InvalidRequestError: no server given, or the same one twice.
    :raises BackendConnectionError, AuthenticationError...: no server could be connected (the
        first one's error).
    """
    urls = [item.url if isinstance(item, Endpoint) else build(Endpoint, url=item).url for item in targets]
    if not urls:
        raise InvalidRequestError("a pool needs at least one server URL", field="url", allowed="one or more URLs")
    if len(set(urls)) != len(urls):
        raise InvalidRequestError("a pool lists each server once", field="url", allowed="distinct URLs")
    members: dict[str, Session | None] = {}
    failures: dict[str, str] = {}
    errors: list[VidbridgeError] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(urls)),
                                               thread_name_prefix="vidbridge-pool-connect") as workers:
        futures = {url: workers.submit(client.connect, target, credentials=credentials, backend=backend)
                   for url, target in zip(urls, targets)}
        for url, future in futures.items():
            try:
                members[url] = future.result()
            except VidbridgeError as exc:
                members[url], failures[url] = None, exc.message
                errors.append(exc)
    if all(member is None for member in members.values()):
        raise errors[0]
    pool = PoolSession(client, urls, members, failures, policy=policy, credentials=credentials, **health_options)
    return pool
