"""Turns: the jobs of one server queue their tasks one at a time, first come first served."""

from __future__ import annotations

import threading

import pytest

from vidbridge.plugins.wan2gp.turns import Turns


class Stopped(Exception):
    pass


def _waiter(turns: Turns, name: str, order: list[str], stop: threading.Event | None = None,
            errors: list[BaseException] | None = None) -> threading.Thread:
    """A thread that lines up (before returning), then waits for its turn and notes it."""
    joined = threading.Event()

    def run() -> None:
        try:
            with turns.line_up(stop or threading.Event(), Stopped) as place:
                joined.set()
                place.wait()
                order.append(name)
        except Stopped as exc:
            (errors if errors is not None else []).append(exc)
        finally:
            joined.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert joined.wait(10)
    return thread


def test_turns_come_in_the_order_jobs_lined_up() -> None:
    turns, order = Turns(), []
    with turns.line_up(threading.Event(), Stopped) as first:
        first.wait()  # alone: at once
        threads = [_waiter(turns, name, order) for name in "abc"]
        assert len(turns) == 4 and order == []  # all wait behind the first
    for thread in threads:
        thread.join(10)
    assert order == ["a", "b", "c"] and len(turns) == 0


def test_a_cancelled_waiter_leaves_the_line_and_the_next_one_goes_on() -> None:
    turns, order, errors = Turns(), [], []
    stop = threading.Event()
    with turns.line_up(threading.Event(), Stopped) as first:
        first.wait()
        cancelled = _waiter(turns, "cancelled", order, stop, errors)
        later = _waiter(turns, "later", order)
        stop.set()
        turns.wake()
        cancelled.join(10)
        assert len(errors) == 1 and len(turns) == 2  # gone from the line while the first still holds it
    later.join(10)
    assert order == ["later"]


def test_closing_the_line_ends_every_wait() -> None:
    turns, order, errors = Turns(), [], []
    with turns.line_up(threading.Event(), Stopped) as first:
        first.wait()
        waiting = _waiter(turns, "waiting", order, errors=errors)
        turns.close()
        waiting.join(10)
    assert order == [] and len(errors) == 1
    with pytest.raises(Stopped), turns.line_up(threading.Event(), Stopped) as place:
        place.wait()  # closed: even an empty line refuses new turns
