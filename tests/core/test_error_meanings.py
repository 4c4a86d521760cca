"""What each timeout and connect-time refusal means, and how the CLI reports it (issue 9, item 7)."""

from __future__ import annotations

import pytest

from vidbridge import errors
from vidbridge.cli import ExitCode, exit_code_for


@pytest.mark.parametrize(
    ("error", "code"),
    [(errors.JobTimeoutError("no session in time", reason="connect"), ExitCode.CONNECTION),
     (errors.JobTimeoutError("no answer"), ExitCode.TIMEOUT),
     (errors.JobTimeoutError("job deadline", reason="deadline", server_cancelled=True), ExitCode.TIMEOUT),
     (errors.JobTimeoutError("stopped waiting", reason="wait"), ExitCode.TIMEOUT),
     (errors.IncompatibleServerError("not WanGP"), ExitCode.CONNECTION)],
    ids=["connect", "request", "deadline", "wait", "incompatible"],
)
def test_exit_codes(error: BaseException, code: ExitCode) -> None:
    assert exit_code_for(error) is code
