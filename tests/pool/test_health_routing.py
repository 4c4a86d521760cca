"""The health service and the routing policy on their own: an injected probe and clock, no server."""

from __future__ import annotations

from typing import Any

import pytest

import vidbridge
from vidbridge import Candidate, Endpoint, GenerationRequest, HealthService, SoonestStart
from vidbridge.health import fingerprint
from vidbridge.pool import PoolQueue, PoolTicket
from vidbridge.routing import missing_for

A, B = "http://a:1", "http://b:2"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Probe:
    """Answers per URL: an Endpoint, or an exception to raise."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.calls: list[str] = []

    def __call__(self, url: str) -> Endpoint:
        self.calls.append(url)
        answer = self.answers[url]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _up(url: str, **fields: Any) -> Endpoint:
    fields.setdefault("latency_ms", 5.0)
    return Endpoint(url=url, backend="wan2gp", version="12.60", models=("t2v", "hunyuan"), **fields)


@pytest.fixture
def service() -> tuple[HealthService, Probe, Clock]:
    probe, clock = Probe(), Clock()
    return HealthService([A, B], probe, interval=1.0, max_backoff=8.0, breaker_threshold=3,
                         breaker_cooldown=60.0, degraded_latency_ms=100.0, clock=clock), probe, clock


def test_states_with_reasons_and_events(service) -> None:
    health, probe, clock = service
    events: list[vidbridge.HealthEvent] = []
    unsubscribe = health.subscribe(events.append)
    probe.answers = {A: _up(A, queue_size=3, details={"gpu": {"name": "RTX 4090"}}),
                     B: _up(B, latency_ms=500.0)}
    health.check_now()
    a, b = health.snapshot()
    assert (a.state, a.reason, a.queue_size, a.gpu, a.fingerprint) == (
        "healthy", None, 3, {"name": "RTX 4090"}, fingerprint(_up(A)))
    assert b.state == "degraded" and "slow" in b.reason and b.usable
    assert [e.before for e in events] == [None, None]
    probe.answers[A] = Endpoint(url=A, healthy=False, note="not Wan2GP")
    clock.now += 1.0
    health.check_now()
    assert health.get(A).state == "down" and health.get(A).reason == "not Wan2GP" and not health.get(A).usable
    assert events[-1].before.state == "healthy" and events[-1].after.state == "down"
    unsubscribe()
    unsubscribe()
    clock.now += 10
    probe.answers[A] = _up(A)
    health.check_now([A])
    assert len(events) == 3 and health.get(A).state == "healthy"
    assert health.get(A).to_dict()["models"] == 2 and "http://a:1" in repr(health)


def test_down_servers_back_off_then_the_circuit_opens(service) -> None:
    health, probe, clock = service
    probe.answers = {A: ConnectionRefusedError("refused"), B: _up(B)}
    health.check_now()
    assert health.get(A).next_check == clock.now + 1.0  # first back-off: the interval
    clock.now += 1.0
    health.check_now()
    assert health.get(A).next_check == clock.now + 2.0  # doubled
    assert probe.calls.count(B) == 2
    clock.now += 1.0
    health.check_now()
    assert probe.calls.count(A) == 2  # not due yet
    clock.now += 1.0
    health.check_now()
    a = health.get(A)
    assert a.circuit_open and a.failures == 3 and "circuit open after 3 failures" in a.reason
    assert a.next_check == clock.now + 60.0
    clock.now += 59.0
    health.check_now()
    assert probe.calls.count(A) == 3  # held out by the breaker
    clock.now += 1.0
    probe.answers[A] = _up(A)
    health.check_now()  # half-open: one probe decides
    assert not health.get(A).circuit_open and health.get(A).state == "healthy"


def test_jobs_reports_degrade_then_take_down_and_success_clears(service) -> None:
    health, probe, clock = service
    probe.answers = {A: _up(A), B: _up(B)}
    health.check_now()
    health.report_success(A)  # nothing to clear
    health.report_failure(A, "connection reset")
    assert health.get(A).state == "degraded" and "connection reset" in health.get(A).reason
    health.report_success(A)
    assert health.get(A).state == "healthy" and health.get(A).failures == 0
    health.report_failure(A, "reset")
    health.report_failure(A, "reset")
    assert health.get(A).state == "down"
    health.report_success(A)  # a down server waits for its probe
    assert health.get(A).state == "down"


def test_a_failing_subscriber_does_not_stop_the_checks(service) -> None:
    health, probe, clock = service
    health.subscribe(lambda event: 1 / 0)
    probe.answers = {A: _up(A), B: _up(B)}
    health.check_now()
    assert [h.state for h in health.snapshot()] == ["healthy", "healthy"]


def test_the_background_checker_starts_and_stops() -> None:
    import threading

    seen = threading.Event()
    probe = Probe()
    probe.answers = {A: _up(A)}
    health = HealthService([A], probe, interval=0.05)
    health.subscribe(lambda event: seen.set())
    health.start()
    health.start()  # idempotent
    assert seen.wait(30)
    health.stop()
    health._thread.join(30)
    assert not health._thread.is_alive()


def _request(**fields: Any) -> GenerationRequest:
    return GenerationRequest(prompt="x", **fields)


def test_soonest_start_prefers_short_backlogs_loaded_models_and_healthy_servers() -> None:
    policy = SoonestStart()
    a = Candidate(url=A, capacity=2, in_flight=1, models=("t2v", "hunyuan"), loaded_model="t2v", order=0)
    b = Candidate(url=B, capacity=2, in_flight=0, models=("t2v", "hunyuan"), loaded_model="hunyuan", order=1)
    assert policy.choose(_request(), [a, b]).url == B  # shorter backlog
    assert policy.choose(_request(model="t2v"), [a, b]).url == A  # B would switch models
    busy = Candidate(url=B, capacity=2, in_flight=0, queue_size=5, order=1)
    assert policy.choose(_request(), [a, busy]).url == A  # the server's own queue counts
    degraded = Candidate(url=B, state="degraded", capacity=2, order=1)
    assert policy.choose(_request(), [a, degraded]).url == A
    full = Candidate(url=A, capacity=1, in_flight=1)
    assert policy.choose(_request(), [full]) is None and full.free == 0
    assert policy.choose(_request(model="flux"), [a, b]) is None
    assert "switch_cost=1" in repr(policy) and isinstance(policy, vidbridge.RoutingPolicy)


def test_missing_models_and_loras_are_named() -> None:
    server = Candidate(url=A, models=("t2v",), loras=("style",))
    assert missing_for(_request(model="hunyuan"), server) == "model 'hunyuan'"
    assert missing_for(_request(model="t2v", loras=[{"name": "other"}]), server) == "LoRA 'other'"
    assert missing_for(_request(model="t2v", loras=[{"name": "style"}]), server) is None
    assert missing_for(_request(model="anything"), Candidate(url=B)) is None  # models unknown: allowed


def test_pool_queue_places_oldest_first_without_blocking_and_honours_exclusion() -> None:
    usable = [Candidate(url=A, capacity=1, models=("t2v",), order=0),
              Candidate(url=B, capacity=1, models=("t2v", "hunyuan"), order=1)]
    queue = PoolQueue(SoonestStart(), lambda: (list(usable), list(usable)))
    first = queue.enter(_request(model="hunyuan"))
    assert first.granted and first.member == B
    blocked = queue.enter(_request(model="hunyuan"))  # only B has it, and B is full
    passing = queue.enter(_request(model="t2v"))  # goes past it to A
    assert not blocked.granted and passing.member == A
    assert queue.snapshot() == (1, {A: 1, B: 1})
    queue.leave(first)
    assert blocked.member == B and queue.in_flight(B) == 1
    queue.leave(passing)
    again = queue.enter(_request(model="t2v"), exclude=frozenset({A}))
    assert again.member is None or again.member != A
    queue.leave(blocked)
    assert again.member == B
    only = queue.enter(_request(model="t2v"), exclude=frozenset({A, B}))  # nowhere else: exclusion lifted
    assert only.member == A
    assert isinstance(only, PoolTicket) and queue.wait_idle(B, timeout=0) is False
    queue.leave(again)
    assert queue.wait_idle(B, timeout=0)


def test_soonest_start_binds_late_one_ready_job_behind_the_running_one() -> None:
    """With slots to spare, a server gets a third job only once one of its two ended: the others
    wait in the pool's queue for whichever server frees first."""
    usable = [Candidate(url=A, capacity=4, order=0), Candidate(url=B, capacity=4, order=1)]
    queue = PoolQueue(SoonestStart(), lambda: (list(usable), list(usable)))
    tickets = [queue.enter(_request()) for _ in range(6)]
    assert [t.member for t in tickets] == [A, B, A, B, None, None]
    assert queue.snapshot() == (2, {A: 2, B: 2})
    queue.leave(tickets[1])  # B frees first: the oldest waiting job goes there, not to A
    assert tickets[4].member == B and tickets[5].member is None
    eager = PoolQueue(SoonestStart(ready=None), lambda: (list(usable), list(usable)))
    assert all(eager.enter(_request()).granted for _ in range(8))  # every slot used at once
    none_ready = SoonestStart(ready=0)
    assert none_ready.choose(_request(), [Candidate(url=A, capacity=4, in_flight=1)]) is None
    assert "ready=0" in repr(none_ready)


@pytest.mark.parametrize("ready", [-1, 1.5, True, "2"])
def test_soonest_start_refuses_a_bad_ready_count(ready: Any) -> None:
    with pytest.raises(vidbridge.InvalidRequestError) as caught:
        SoonestStart(ready=ready)
    assert caught.value.field == "ready" and ">= 0" in caught.value.allowed
