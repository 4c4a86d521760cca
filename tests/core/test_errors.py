"""The error tree: one root, a readable retryable flag on every class, JSON-ready descriptions."""

from __future__ import annotations

import pytest

import vidbridge
from vidbridge import errors

RETRYABLE = {
    "VidbridgeError": False,
    "InvalidRequestError": False,
    "PluginError": False,
    "LedgerError": False,
    "BackendError": False,
    "TransportError": True,
    "BackendConnectionError": True,
    "TransientServerError": True,
    "RateLimitedError": True,
    "AuthenticationError": False,
    "RejectedError": False,
    "JobFailedError": False,
    "JobLostError": False,
    "JobCancelledError": False,
    "JobTimeoutError": True,
    "IncompatibleServerError": False,
    "IntegrityError": True,
    "NotAttachableError": False,
}


def test_every_error_is_listed_and_exported():
    assert set(errors.__all__) == set(RETRYABLE)
    for name in RETRYABLE:
        assert getattr(vidbridge, name) is getattr(errors, name)


@pytest.mark.parametrize("name, retryable", sorted(RETRYABLE.items()))
def test_retryable_flag(name, retryable):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.VidbridgeError)
    assert cls.retryable is retryable
    assert cls.__doc__, f"{name} has no docstring"
    assert name in errors.__doc__, f"{name} is missing from the tree drawn in the module docstring"


def test_transport_errors_share_a_base_for_retry_predicates():
    for cls in (errors.BackendConnectionError, errors.TransientServerError, errors.RateLimitedError):
        assert issubclass(cls, errors.TransportError)
        assert issubclass(cls, errors.BackendError)


def test_standard_library_bases():
    assert issubclass(errors.JobTimeoutError, TimeoutError)
    assert issubclass(errors.InvalidRequestError, ValueError)


def test_to_dict_carries_the_extra_attributes():
    assert errors.VidbridgeError("boom").to_dict() == {"type": "VidbridgeError", "message": "boom", "retryable": False}
    assert errors.InvalidRequestError("bad", field="frames", allowed="1..81").to_dict() == {
        "type": "InvalidRequestError", "message": "bad", "retryable": False, "field": "frames", "allowed": "1..81",
    }
    assert errors.RateLimitedError("slow down", endpoint="http://h", retry_after=3.0).to_dict() == {
        "type": "RateLimitedError", "message": "slow down", "retryable": True, "endpoint": "http://h",
    }


def test_attributes():
    assert errors.RateLimitedError("x", retry_after=2.5).retry_after == 2.5
    assert errors.TransientServerError("x", status_code=503).status_code == 503
    assert errors.AuthenticationError("x", reason="token").reason == "token"
    assert errors.RejectedError("x", server_message="frames must be 4n+1").server_message == "frames must be 4n+1"
    assert errors.JobCancelledError("x", server_stopped=True).server_stopped is True
    assert errors.PluginError("x", plugin="wan2gp").plugin == "wan2gp"
    error = errors.JobFailedError("out of memory", endpoint="http://h")
    assert str(error) == error.message == "out of memory"
    assert error.endpoint == "http://h"
    with pytest.raises(errors.BackendError):
        raise error


@pytest.mark.parametrize("reason", ["connect", "request", "deadline", "wait"])
def test_timeouts_say_which_deadline_passed(reason):
    error = errors.JobTimeoutError("late", endpoint="http://h", reason=reason, server_cancelled=True)
    assert error.reason == reason and isinstance(error, TimeoutError) and error.retryable
    # server_cancelled only means something for the job's own deadline
    assert error.server_cancelled is (True if reason == "deadline" else None)
    assert error.to_dict() == {"type": "JobTimeoutError", "message": "late", "retryable": True,
                               "endpoint": "http://h", "reason": reason,
                               "server_cancelled": error.server_cancelled}
    assert f'"{reason}"' in errors.JobTimeoutError.__doc__ and f'"{reason}"' in errors.__doc__


def test_a_timeout_is_a_request_timeout_unless_told_otherwise():
    error = errors.JobTimeoutError("no answer")
    assert error.reason == "request" and error.server_cancelled is None
    assert errors.JobTimeoutError("x", reason="deadline").server_cancelled is None  # unknown
    with pytest.raises(ValueError, match="'slow' is not one of"):
        errors.JobTimeoutError("x", reason="slow")


def test_incompatible_server_names_what_is_missing():
    error = errors.IncompatibleServerError("not WanGP", endpoint="http://h", missing=["save_inputs", "process_tasks"])
    assert error.missing == ("save_inputs", "process_tasks") and not error.retryable
    assert not isinstance(error, errors.TransportError)  # not retried: the answer would be the same
    assert error.to_dict()["missing"] == ["save_inputs", "process_tasks"]
