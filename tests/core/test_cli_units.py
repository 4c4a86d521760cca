"""The ``vidbridge`` command line beyond ``generate``'s happy paths (``core/cli.py``): ``plugins``,
``discover`` and ``models`` in JSON and text form, argument errors (exit 2 naming the field), the
exit-code table, error reporting of ``main``, Ctrl-C during a job, and the text output.

Runs ``vidbridge.cli.main`` in this process against the in-process mock WanGP; discovery is
isolated (no URL from the environment or config, no ports probed unless a test sets them).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Callable

import pytest

from vidbridge import errors
from vidbridge.cli import ExitCode, build_parser, credentials_from_args, exit_code_for, main, request_from_args
from vidbridge.plugins.mock_backend.fixtures import (  # noqa: F401 - fixtures
    vidbridge_mock,
    vidbridge_mock_server,
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("VIDBRIDGE_WAN2GP_URL", "VIDBRIDGE_PASSWORD", "VIDBRIDGE_USERNAME", "VIDBRIDGE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("VIDBRIDGE_WAN2GP_PROBE_PORTS", "")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``run(*argv)`` -> ``(exit code, stdout, stderr)``."""

    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return int(code), out, err

    return call


def _url(mock: Any) -> str:
    return mock.url.rstrip("/")


# -- plugins ---------------------------------------------------------------------------------------


def test_plugins_json_is_one_document_with_versions_and_hooks(run: Any) -> None:
    from vidbridge import __version__

    code, out, _ = run("plugins", "--json")
    assert code == ExitCode.OK
    document = json.loads(out)  # exactly one JSON document
    by_name = {p["name"]: p for p in document["plugins"]}
    assert {"wan2gp", "mock_backend"} <= set(by_name)
    wan2gp = by_name["wan2gp"]
    assert wan2gp["version"] == __version__ and wan2gp["builtin"] is True
    assert {"vidbridge_discover", "vidbridge_connect", "vidbridge_submit", "vidbridge_status", "vidbridge_fetch",
            "vidbridge_cancel"} <= set(wan2gp["hooks"])
    assert {"vidbridge_register_commands", "vidbridge_embedded_backend"} <= set(by_name["mock_backend"]["hooks"])
    assert "error" not in wan2gp


def test_plugins_text_lists_origin_hooks_and_load_errors(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidbridge.manager as manager_module

    real = manager_module.get_plugin_manager

    def with_a_broken_plugin(**kwargs: Any) -> Any:
        manager = real(**kwargs)
        manager.load_errors["broken_plugin"] = errors.PluginError("cannot import broken_plugin: boom",
                                                                  plugin="broken_plugin")
        return manager

    monkeypatch.setattr(manager_module, "get_plugin_manager", with_a_broken_plugin)
    code, out, _ = run("plugins")
    assert code == ExitCode.OK
    lines = out.splitlines()
    wan2gp = next(i for i, line in enumerate(lines) if line.startswith("wan2gp "))
    assert lines[wan2gp].endswith("(built-in)")
    assert lines[wan2gp + 1].startswith("  hooks: ") and "vidbridge_connect" in lines[wan2gp + 1]
    broken = next(i for i, line in enumerate(lines) if line.startswith("broken_plugin"))
    assert lines[broken + 1] == "  hooks: -"
    assert lines[broken + 2] == "  error: cannot import broken_plugin: boom"


# -- discover --------------------------------------------------------------------------------------


def test_discover_json_with_an_explicit_url(run: Any, vidbridge_mock: Any) -> None:
    code, out, _ = run("discover", "--json", "--no-probe", "--url", vidbridge_mock.url, "--timeout", "30")
    assert code == ExitCode.OK
    [endpoint] = json.loads(out)["endpoints"]
    assert endpoint["url"] == _url(vidbridge_mock) and endpoint["backend"] == "wan2gp"
    assert endpoint["healthy"] is True and "t2v" in endpoint["models"]


def test_discover_text_shows_usable_and_unusable_servers(run: Any, vidbridge_mock: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, out, _ = run("discover", "--no-probe", "--url", vidbridge_mock.url, "--url", closed, "--timeout", "5")
    assert code == ExitCode.OK
    lines = out.splitlines()
    assert lines[0].startswith(f"{_url(vidbridge_mock)}  wan2gp 12.60 ") and " ms  models: " in lines[0]
    assert int(lines[0].rsplit("models: ", 1)[1]) > 10
    assert lines[1] == f"{closed}  no plugin recognised this server  models: 0"


def test_discover_probes_the_configured_ports(run: Any, vidbridge_mock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDBRIDGE_WAN2GP_PROBE_PORTS", str(vidbridge_mock.port))
    code, out, _ = run("discover", "--json", "--timeout", "5")
    assert code == ExitCode.OK
    assert [e["url"] for e in json.loads(out)["endpoints"]] == [f"http://127.0.0.1:{vidbridge_mock.port}"]


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf"])
def test_a_bad_discover_timeout_in_the_environment_is_a_usage_error(run: Any, value: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDBRIDGE_DISCOVER_TIMEOUT", value)
    code, out, err = run("discover", "--no-probe")
    assert code == ExitCode.USAGE and out == ""
    assert "VIDBRIDGE_DISCOVER_TIMEOUT must be a positive number of seconds" in err and repr(value) in err


def test_the_discover_timeout_flag_wins_over_the_environment(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDBRIDGE_DISCOVER_TIMEOUT", "soon")
    code, _, err = run("discover", "--no-probe", "--timeout", "0.5")
    assert code == ExitCode.OK and "no servers found" in err


def test_discover_finding_nothing_says_so(run: Any) -> None:
    code, out, err = run("discover")
    assert code == ExitCode.OK and out == ""
    assert "no servers found (give one with --url)" in err


# -- models ----------------------------------------------------------------------------------------


def test_models_json_with_a_url(run: Any, vidbridge_mock: Any) -> None:
    code, out, _ = run("models", "--json", "--url", vidbridge_mock.url)
    assert code == ExitCode.OK
    document = json.loads(out)
    assert document["endpoint"] == _url(vidbridge_mock) and document["backend"] == "wan2gp"
    assert "t2v" in document["models"] and len(document["models"]) > 10


def test_models_text_uses_a_discovered_server(run: Any, vidbridge_mock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDBRIDGE_WAN2GP_PROBE_PORTS", str(vidbridge_mock.port))
    # a loaded machine can take more than the default 2 s to serve the mock's config
    monkeypatch.setenv("VIDBRIDGE_DISCOVER_TIMEOUT", "30")
    code, out, err = run("models")
    assert code == ExitCode.OK
    assert "t2v" in out.splitlines()
    assert f"using wan2gp server found at http://127.0.0.1:{vidbridge_mock.port}" in err


def test_models_without_any_server_or_embedded_backend(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidbridge.manager as manager_module

    real = manager_module.get_plugin_manager

    def without_embedded(**kwargs: Any) -> Any:
        manager = real(**kwargs)
        manager.hook.vidbridge_embedded_backend = lambda **_: None
        return manager

    monkeypatch.setattr(manager_module, "get_plugin_manager", without_embedded)
    code, out, _ = run("models", "--json")
    assert code == ExitCode.CONNECTION
    document = json.loads(out)
    assert document["status"] == "failed"
    assert document["error"]["type"] == "BackendConnectionError"
    assert "no embedded backend is installed" in document["error"]["message"]


def test_models_of_an_unknown_server_is_a_connection_error(run: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, out, err = run("models", "--url", closed)
    assert code == ExitCode.CONNECTION and out == ""
    assert err.startswith(f"error: BackendConnectionError: cannot use {closed}")


# -- argument errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [(["--header", "X-Api-Key"], "header", "has no 'Name:' part"),
     (["--header", ": value"], "header", "has no 'Name:' part"),
     (["--set", "steps"], "set", "expected KEY=VALUE"),
     (["--set", "=4"], "set", "expected KEY=VALUE"),
     (["--lora", "style:strong"], "loras", "is not a number"),
     (["--password", "pw-only"], "username", "a password needs --username"),
     (["--username", "ann"], "password", "--username needs a password"),
     (["--frames", "0"], "frames", "")],
    ids=["header-no-colon", "header-no-name", "set-no-equals", "set-no-key", "lora-weight", "password-alone",
         "username-alone",
         "frames-zero"],
)
def test_bad_arguments_exit_2_naming_the_field(run: Any, tmp_path: Path, extra: list[str], field: str,
                                               words: str) -> None:
    code, out, _ = run("generate", "a prompt", "--url", "http://127.0.0.1:9", *extra, "--json",
                       "--output", str(tmp_path))
    assert code == ExitCode.USAGE
    document = json.loads(out)
    assert document["status"] == "failed" and document["artifacts"] == []
    assert document["error"]["type"] == "InvalidRequestError"
    assert document["error"]["field"] == field and words in document["error"]["message"]
    assert "pw-only" not in out


def test_password_from_the_environment_also_needs_a_username(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDBRIDGE_PASSWORD", "env-canary-pw")
    code, out, err = run("discover", "--no-probe", "--url", "http://127.0.0.1:9")
    assert code == ExitCode.USAGE and out == ""
    assert "error: InvalidRequestError: a password needs --username" in err
    assert "env-canary-pw" not in err


def test_a_mistyped_header_does_not_print_its_value(run: Any) -> None:
    code, out, err = run("discover", "--no-probe", "--url", "http://127.0.0.1:9",
                         "--header", "Authorization Bearer tok-canary-55")
    assert code == ExitCode.USAGE
    assert "tok-canary-55" not in out + err


def test_credentials_and_settings_from_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = build_parser()
    args = parser.parse_args(["generate", "p", "--username", "ann", "--header", "X-Key:  v1 ", "--token", "hf_x",
                              "--set", "flow_shift=3", "--set", "name=\"plain text\"", "--set", "obj={\"a\": [1]}",
                              "--lora", "a.safetensors:0.5", "--lora", "b"])
    monkeypatch.setenv("VIDBRIDGE_PASSWORD", "pw")
    credentials = credentials_from_args(args)
    assert credentials.username == "ann" and credentials.password.get_secret_value() == "pw"
    assert credentials.header_values() == {"X-Key": "v1"} and credentials.token.get_secret_value() == "hf_x"
    request = request_from_args(args)
    assert dict(request.settings) == {"flow_shift": 3, "name": "plain text", "obj": {"a": [1]}}
    assert [(lora.name, lora.weight) for lora in request.loras] == [("a.safetensors", 0.5), ("b", 1.0)]
    monkeypatch.delenv("VIDBRIDGE_PASSWORD")
    monkeypatch.setenv("VIDBRIDGE_USERNAME", "bob")
    alone = credentials_from_args(parser.parse_args(["discover"]))
    assert alone.username is None and alone.password is None  # a username alone is not a login


def test_parser_without_a_plugin_manager_has_only_the_core_commands() -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["mock-server"])
    assert parser.parse_args(["plugins"]).command == "plugins"


def test_no_command_prints_help_and_exits_2(run: Any) -> None:
    code, out, err = run()
    assert code == ExitCode.USAGE and out == ""
    assert "usage: vidbridge" in err and "Exit codes:" in err


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from vidbridge import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"vidbridge {__version__}"


# -- exit codes and error reporting ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [(errors.InvalidRequestError("x"), ExitCode.USAGE),
     (errors.JobTimeoutError("x"), ExitCode.TIMEOUT),
     (errors.JobCancelledError("x"), ExitCode.CANCELLED),
     (errors.AuthenticationError("x"), ExitCode.CONNECTION),
     (errors.BackendConnectionError("x"), ExitCode.CONNECTION),
     (errors.TransientServerError("x"), ExitCode.CONNECTION),
     (errors.RateLimitedError("x"), ExitCode.CONNECTION),
     (errors.RejectedError("x"), ExitCode.JOB_FAILED),
     (errors.JobFailedError("x"), ExitCode.JOB_FAILED),
     (errors.IntegrityError("x"), ExitCode.JOB_FAILED),
     (KeyboardInterrupt(), ExitCode.CANCELLED),
     (errors.PluginError("x"), ExitCode.ERROR),
     (errors.BackendError("x"), ExitCode.ERROR),
     (RuntimeError("x"), ExitCode.ERROR)],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.name,
)
def test_exit_code_for_each_error_class(error: BaseException, code: ExitCode) -> None:
    assert exit_code_for(error) is code


def test_unexpected_errors_exit_1_with_one_line(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidbridge.cli as cli

    def broken(args: Any) -> int:
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(cli, "_cmd_plugins", broken)
    code, out, err = run("plugins")
    assert code == ExitCode.ERROR and out == ""
    assert err.strip().splitlines()[-1] == "error: RuntimeError: something unexpected"
    code, out, _ = run("plugins", "--json")
    assert code == ExitCode.ERROR
    assert json.loads(out) == {"status": "failed",
                               "error": {"type": "RuntimeError", "message": "something unexpected"}}


def test_ctrl_c_outside_a_job_exits_5(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import vidbridge.cli as cli

    def interrupted(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_plugins", interrupted)
    code, out, err = run("plugins", "--json")
    assert code == ExitCode.CANCELLED and out == ""
    assert err.strip() == "interrupted"


# -- generate: Ctrl-C, text output -----------------------------------------------------------------


def test_ctrl_c_during_a_job_cancels_it_on_the_server(run: Any, vidbridge_mock: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbridge.job import Job
    from vidbridge.models import Phase
    from vidbridge.plugins.mock_backend import faults

    faults.set_options(vidbridge_mock.url, step_delay=0.05)
    jobs: list[Job] = []

    def interrupted_result(self: Job, timeout: float | None = None) -> list:
        jobs.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Job, "result", interrupted_result)
    code, out, err = run("generate", "long", "--url", vidbridge_mock.url, "--frames", "17", "--steps", "100",
                         "--json", "--output", str(tmp_path))
    assert code == ExitCode.CANCELLED
    document = json.loads(out)
    assert document["status"] == "cancelled"
    assert document["error"] == {"type": "KeyboardInterrupt", "message": "interrupted"}
    assert "interrupted: cancelling the job on the server" in err
    assert jobs and jobs[0].status().phase is Phase.CANCELLED
    assert not list(tmp_path.glob("*.mp4"))


def test_other_base_exceptions_are_not_swallowed(run: Any, vidbridge_mock: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbridge.job import Job

    def exiting_result(self: Job, timeout: float | None = None) -> list:
        self.wait(60)  # let the short job end: nothing is left running on the server
        raise SystemExit(9)

    monkeypatch.setattr(Job, "result", exiting_result)
    with pytest.raises(SystemExit) as info:
        run("generate", "x", "--url", vidbridge_mock.url, "--frames", "17", "--steps", "1", "--json",
            "--output", str(tmp_path))
    assert info.value.code == 9


def test_generate_text_output_prints_phases_then_the_file(run: Any, vidbridge_mock: Any, tmp_path: Path) -> None:
    import hashlib

    code, out, err = run("generate", "a small boat", "--url", vidbridge_mock.url, "--frames", "5", "--steps", "2",
                         "--output", str(tmp_path))
    assert code == ExitCode.OK, err
    [line] = out.splitlines()
    path_text, digest, size = line.split("  ")
    path = Path(path_text)
    assert path.parent == tmp_path and path.suffix == ".mp4"
    assert digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert size == f"{path.stat().st_size} bytes"
    phases = [line.split("  ")[0] for line in err.splitlines()]
    assert phases[-1] == "completed" and "downloading" in phases
    # One line per phase change: consecutive lines differ (queue position moves and download
    # quarters excepted); the download lines count its bytes up to the total.
    assert all(a != b or a in ("queued", "downloading") for a, b in zip(phases, phases[1:]))
    size_text = f"{path.stat().st_size:,}"
    assert f"downloading  {size_text}/{size_text} bytes" in err.splitlines()


def test_generate_text_error_is_one_line_on_stderr(run: Any, vidbridge_mock: Any, tmp_path: Path) -> None:
    code, out, err = run("generate", "x", "--url", vidbridge_mock.url, "--frames", "18", "--output", str(tmp_path))
    assert code == ExitCode.USAGE and out == ""
    assert err.strip().splitlines()[-1].startswith("error: InvalidRequestError: frames: 18 is not valid")
