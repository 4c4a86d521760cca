"""Routing: which server of a pool a job goes to.

A :class:`~vidbridge.pool.PoolSession` keeps its jobs in one local FIFO queue. Whenever a server
has a free slot (a job ended, a server came back, a job joined), the queue asks its
:class:`RoutingPolicy` to place the waiting jobs, oldest first, among the :class:`Candidate`
servers that can take one now. A job no candidate fits waits (it does not block the jobs behind
it); a job that no server of the pool could ever run (none offers its model or LoRA) fails.

The default policy, :class:`SoonestStart`, sends a job to the server expected to start it soonest,
and never to a server that lacks what the job needs. Write your own as any object with the two
methods of :class:`RoutingPolicy` and pass it as ``Client.connect([...], policy=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from .errors import InvalidRequestError
from .models import GenerationRequest

__all__ = ["Candidate", "RoutingPolicy", "SoonestStart", "missing_for"]


@dataclass(frozen=True)
class Candidate:
    """A server of the pool as the router sees it at one moment.

    :ivar url: its base URL.
    :ivar state: ``"healthy"`` or ``"degraded"`` (down servers are never candidates).
    :ivar in_flight: this pool's jobs on it now (submitting or running).
    :ivar capacity: how many of this pool's jobs it may hold at once.
    :ivar queue_size: the server's own queue as its last probe reported it (``None``: unknown).
    :ivar models: the models it offers (empty: unknown, any is allowed).
    :ivar loaded_model: the model it has loaded, as far as known (the one it ran last).
    :ivar loras: the LoRAs it offers (``None``: unknown, any is allowed).
    :ivar order: its position in the pool (ties go to the first).
    """

    url: str
    state: str = "healthy"
    in_flight: int = 0
    capacity: int = 1
    queue_size: int | None = None
    models: tuple[str, ...] = ()
    loaded_model: str | None = None
    loras: tuple[str, ...] | None = None
    order: int = 0

    @property
    def free(self) -> int:
        """Slots it has left for this pool."""
        return max(0, self.capacity - self.in_flight)

    @property
    def backlog(self) -> int:
        """Jobs ahead of a new one there: ours in flight, or the server's queue if longer (it
        counts other clients' work too)."""
        return max(self.in_flight, self.queue_size or 0)


def missing_for(request: GenerationRequest, candidate: Candidate) -> str | None:
    """What ``candidate`` lacks to run ``request`` (``None``: nothing it is known to lack)."""
    if request.model and candidate.models and request.model not in candidate.models:
        return f"model {request.model!r}"
    if candidate.loras is not None:
        absent = [lora.name for lora in request.loras if lora.name not in candidate.loras]
        if absent:
            return f"LoRA {absent[0]!r}"
    return None


@runtime_checkable
class RoutingPolicy(Protocol):
    """Where a pool's job goes. Both methods are called under the pool's queue lock: be quick
    and do no I/O."""

    def eligible(self, request: GenerationRequest, candidate: Candidate) -> bool:
        """Whether ``candidate`` may ever run ``request`` (it has the model, LoRAs...)."""

    def choose(self, request: GenerationRequest, candidates: Sequence[Candidate]) -> Candidate | None:
        """The server for ``request`` among ``candidates`` (each has a free slot, none is down),
        or ``None`` to keep it waiting."""


class SoonestStart:
    """The default policy: the eligible server expected to start the job soonest.

    A server's expected wait is its backlog (:attr:`Candidate.backlog`) per slot, plus
    ``switch_cost`` jobs when it has another model loaded than the one requested (loading a model
    takes about as long as a job); degraded servers come after healthy ones; ties go to the server
    listed first. Servers that lack the requested model or a requested LoRA are never chosen.

    Jobs are bound to a server late: a server gets another of the pool's jobs only while fewer
    than ``1 + ready`` of them are there (one it runs, ``ready`` prepared behind it), however many
    slots ``max_sessions`` gives it. The rest wait in the pool's queue, so each goes to whichever
    server frees first (a server that turns out slower gets fewer), and moves freely if a server
    goes down: nothing of it was sent anywhere yet. One ready job is enough for a server never to
    wait between jobs as long as preparing one (a few calls) is shorter than a generation.

    :param switch_cost: jobs' worth of time a model switch is counted as.
    :param ready: the pool's jobs allowed to wait on a server behind the one it runs (``None``:
        as many as its slots allow).
    :raises InvalidRequestError: ``ready`` below 0.
    """

    def __init__(self, switch_cost: float = 1.0, ready: int | None = 1) -> None:
        if ready is not None and (isinstance(ready, bool) or not isinstance(ready, int) or ready < 0):
            raise InvalidRequestError(f"ready must be a whole number >= 0 or None, not {ready!r}", field="ready",
                                      allowed="an int >= 0, or None for as many as the slots allow")
        self.switch_cost = switch_cost
        self.ready = ready

    def __repr__(self) -> str:
        return f"SoonestStart(switch_cost={self.switch_cost:g}, ready={self.ready})"

    def eligible(self, request: GenerationRequest, candidate: Candidate) -> bool:
        """True unless ``candidate`` is known to lack the model or a LoRA of ``request``."""
        return missing_for(request, candidate) is None

    def choose(self, request: GenerationRequest, candidates: Sequence[Candidate]) -> Candidate | None:
        """The eligible candidate with the shortest expected wait (``None`` if none is eligible)."""
        limit = None if self.ready is None else 1 + self.ready
        fitting = [c for c in candidates if c.free > 0 and (limit is None or c.in_flight < limit)
                   and self.eligible(request, c)]
        if not fitting:
            return None

        def expected_wait(candidate: Candidate) -> tuple[bool, float, int]:
            switch = 0.0
            if request.model and candidate.loaded_model and candidate.loaded_model != request.model:
                switch = self.switch_cost
            return candidate.state != "healthy", candidate.backlog / candidate.capacity + switch, candidate.order

        return min(fitting, key=expected_wait)
