"""``vidbridge generate`` refuses every bad argument before any network call (issue 14).

Each run goes through ``vidbridge.cli.main`` in this process. "No network" is checked two ways: the
``--url`` is a plain TCP listener that counts the connections it accepts, and a pluggy hook
monitor records every hook called (discovery, connecting and the embedded mock backend are all
hooks; only ``vidbridge_register_commands``, which builds the parser, may run).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidbridge import manager as manager_module
from vidbridge.cli import ExitCode, main

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
CANARY = "pw-CANARY-5e1b"


class CountingListener:
    """A TCP server on 127.0.0.1 that accepts, counts and closes connections (it speaks no HTTP)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.setblocking(False)
        self._wake_read, self._wake_write = socket.socketpair()
        self._lock = threading.Lock()
        self._count = 0
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, name="counting-listener", daemon=True)
        self._thread.start()

    @property
    def count(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return self._count

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_read in ready:
                    return
                try:
                    connection, _ = self._socket.accept()
                except BlockingIOError:
                    continue
                with self._lock:
                    self._count += 1
                connection.close()

    def close(self) -> None:
        """Stop the thread (woken through a socket pair, no polling) and close the sockets."""
        self._wake_write.send(b"x")
        self._thread.join()
        for item in (self._socket, self._wake_read, self._wake_write):
            item.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[CountingListener]:
    server = CountingListener()
    yield server
    server.close()


#: The one hook ``main`` may call before the arguments are checked: it builds the parser.
_PARSER_HOOK = "vidbridge_register_commands"


@pytest.fixture
def hooks_called(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the hooks the plugin managers that ``main`` builds call, in order. Any other hook
    than the parser's fails the call at once (discovery, connecting and the embedded backend are
    hooks), so that an argument wrongly accepted never reaches a server or starts one."""
    called: list[str] = []
    real = manager_module.get_plugin_manager

    def before(name: str, impls: Any, kwargs: Any) -> None:
        called.append(name)
        if name != _PARSER_HOOK:
            raise AssertionError(f"hook {name} called: the arguments were not all refused first")

    def monitored(*args: Any, **kwargs: Any) -> Any:
        plugin_manager = real(*args, **kwargs)
        plugin_manager.add_hookcall_monitoring(before, lambda *a: None)
        return plugin_manager

    monkeypatch.setattr(manager_module, "get_plugin_manager", monitored)
    return called


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.out)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], isolated_discovery: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, hooks_called: list[str]) -> Callable[..., Run]:
    """``run(*args)``: ``vidbridge.cli.main(args)`` in this process, from an empty working folder
    (the default ``--output`` is ``./outputs``), hooks monitored."""
    monkeypatch.chdir(tmp_path)

    def run_main(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(int(code), captured.out, captured.err)

    return run_main


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bad (and a few good) input files, made once for the module."""
    root = tmp_path_factory.mktemp("inputs")
    made: dict[str, Path] = {}

    def write(name: str, data: bytes) -> Path:
        made[name] = root / name
        made[name].write_bytes(data)
        return made[name]

    def sparse(name: str, size: int, head: bytes = b"") -> None:
        made[name] = root / name
        with open(made[name], "wb") as stream:
            stream.write(head)
            stream.truncate(size)  # a hole: nothing written, nothing read by the checks

    write("good.png", PNG)
    write("text.png", b"this is a text file, not an image\n")
    write("text.mp4", b"<html><body>404 Not Found</body></html>")
    write("text.wav", b"not an ID3 tag: plain text")
    write("png.mp4", PNG)
    write("png.wav", PNG)
    write("empty.png", b"")
    write("empty.mp4", b"")
    write("notes.txt", b"png? no")
    sparse("huge.png", 65 * 2**20, PNG)
    sparse("huge.mp4", 5 * 2**30)
    sparse("huge.wav", 513 * 2**20)
    sparse("zeros.mp4", 2**30)
    (root / "folder.png").mkdir()
    made["folder.png"] = root / "folder.png"
    made["dangling.png"] = root / "dangling.png"
    made["dangling.png"].symlink_to(root / "gone.png")
    made["link-to-folder.mp4"] = root / "link-to-folder.mp4"
    made["link-to-folder.mp4"].symlink_to(root / "folder.png")
    made["missing.png"] = root / "missing.png"
    made["under-a-file.png"] = made["good.png"] / "x.png"
    os.mkfifo(root / "pipe.wav")
    made["pipe.wav"] = root / "pipe.wav"
    write("not-json.json", b"model_type = t2v\n")
    write("list.json", b'["t2v"]')
    write("not-utf8.json", b"\xff\xfe{}")
    sparse("huge.json", 17 * 2**20)
    write("output-file", b"I am a file")
    return made


# -------------------------------------------------------------------------------------------------
# Bad arguments, option by option
# -------------------------------------------------------------------------------------------------

_CONTROL = st.sampled_from(["\x00", "\x01", "\x1b", "\r", "\x7f", "\x85", "\x9b"])
_NOT_INT = st.one_of(st.sampled_from(["1.5", "nan", "inf", "1e3", "seventeen", "", " ", "0x11", "9" * 5000]),
                     st.text(min_size=1, max_size=20).filter(lambda text: not _parses(int, text)))
_NOT_FINITE = st.one_of(st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "two", ""]),
                        st.text(min_size=1, max_size=20).filter(lambda text: not _parses(float, text)))


def _parses(kind: type, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def _with_control(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(text, _CONTROL, text).map("".join)


def _long(minimum: int) -> st.SearchStrategy[str]:
    return st.integers(minimum, 3 * minimum).map(lambda size: "v" * size)


def _int_outside(low: int, high: int) -> st.SearchStrategy[str]:
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)).map(str)


def _bad_values(files: dict[str, Path], listener: CountingListener) -> dict[str, tuple[st.SearchStrategy[Any], str]]:
    """For each ``generate`` option: a strategy of bad values, and the error's ``field``."""
    image = st.sampled_from(["text.png", "empty.png", "huge.png", "folder.png", "dangling.png", "missing.png",
                             "under-a-file.png", "notes.txt", "png.mp4"]).map(lambda name: str(files[name]))
    video = st.sampled_from(["text.mp4", "png.mp4", "empty.mp4", "huge.mp4", "zeros.mp4", "link-to-folder.mp4",
                             "good.png", "missing.png"]).map(lambda name: str(files[name]))
    audio = st.sampled_from(["text.wav", "png.wav", "huge.wav", "pipe.wav", "good.png", "dangling.png"]
                            ).map(lambda name: str(files[name]))
    settings_file = st.sampled_from(["not-json.json", "list.json", "not-utf8.json", "huge.json", "folder.png",
                                     "missing.png", "good.png"]).map(lambda name: str(files[name]))
    name = st.one_of(st.just(""), _with_control(st.text(max_size=5)), _long(201))
    key = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
    return {
        "PROMPT": (st.one_of(st.sampled_from(["", " ", "\n\t "]), _long(20_001),
                             _with_control(st.text(max_size=10).map(lambda text: "a" + text))), "prompt"),
        "--negative": (st.one_of(_long(20_001), _with_control(st.text(max_size=10))), "negative_prompt"),
        "--model": (name, "model"),
        "--sampler": (name, "sampler"),
        "--preset": (name, "preset"),
        "--resolution": (st.one_of(
            st.tuples(st.integers(0, 20_000), st.integers(0, 20_000)).filter(
                lambda size: not all(8 <= side <= 16_384 and side % 2 == 0 for side in size)
            ).map(lambda size: f"{size[0]}x{size[1]}"),
            st.text(max_size=12).filter(lambda text: "x" not in text.lower())), "resolution"),
        "--frames": (st.one_of(_NOT_INT, _int_outside(1, 10_000)), "frames"),
        "--steps": (st.one_of(_NOT_INT, _int_outside(1, 1_000)), "steps"),
        "--seed": (st.one_of(_NOT_INT, _int_outside(-1, 2**32 - 1)), "seed"),
        "--guidance": (st.one_of(_NOT_FINITE, st.floats(max_value=-0.01, allow_nan=False, allow_infinity=False),
                                 st.floats(min_value=100.01, allow_nan=False, allow_infinity=False)).map(str),
                       "guidance"),
        "--lora": (st.one_of(st.sampled_from(["style:strong", "style:nan", "style:inf", "style:11", ":0.5",
                                               "a\nb:1", "style:" + "9" * 400])), "loras"),
        "--image-start": (image, "image_start"),
        "--image-end": (image, "image_end"),
        "--ref-image": (image, "ref_images"),
        "--video": (video, "video"),
        "--audio": (audio, "audio"),
        "--settings": (settings_file, "settings_file"),
        "--set": (st.one_of(
            st.sampled_from(["steps", "=4", " =1", "steps=NaN", "shift=Infinity", "a=1=2x", "name=plain text",
                             "prompt=" + "x" * 5000]),
            st.tuples(key, st.text(max_size=20).filter(lambda text: not _parses(json.loads, text))
                      ).map(lambda pair: f"{pair[0]}={pair[1]}")), "set"),
        "--url": (st.sampled_from(["http://[::1", "ftp://127.0.0.1:1", "127.0.0.1:7860", "http://",
                                   f"http://ann:{CANARY}@127.0.0.1:1", "http://127.0.0.1:99999",
                                   "http://127.0.0.1:1/?token=x", "http://exa mple"]), "url"),
        "--output": (st.sampled_from([str(files["output-file"]), str(files["output-file"] / "sub"),
                                      str(files["dangling.png"] / "sub"), "nul\0byte"]), "output"),
        "--timeout": (st.one_of(_NOT_FINITE, st.sampled_from(["0", "-1", "0.0", "-0", "2592001", "1e12"])), "timeout"),
        "--backend": (st.text(min_size=1, max_size=10).filter(lambda text: text not in ("wan2gp", "example")
                                                                and not text.startswith("-")), "backend"),
        "--token": (_with_control(st.just(CANARY)), "token"),
        "--header": (st.sampled_from([f"Authorization Bearer {CANARY}", f": {CANARY}",
                                      f"X-Api-Key: {CANARY}\r\nX-Evil: 1", f"Bad Name: {CANARY}"]), "header"),
        "--username": (st.just("ann"), "password"),  # a username without a password
        "--password": (st.just(CANARY), "username"),  # a password without a username
    }


#: Words the message must contain to name the option, when not the option itself.
_NAMED_AS = {"PROMPT": "prompt", "--password": "--username", "--username": "--username"}
_OPTIONS = ["PROMPT", "--negative", "--model", "--sampler", "--preset", "--resolution", "--frames", "--steps",
            "--seed", "--guidance", "--lora", "--image-start", "--image-end", "--ref-image", "--video", "--audio",
            "--settings", "--set", "--url", "--output", "--timeout", "--backend", "--token", "--header",
            "--username", "--password"]


def _arguments(option: str, value: str, url: str, form: str, with_url: bool) -> list[str]:
    if option == "PROMPT":
        arguments = ["generate", value]
    elif form == "=" or value.startswith("-") or value == "":
        arguments = ["generate", "a fox", f"{option}={value}"]
    else:
        arguments = ["generate", "a fox", option, value]
    if with_url and option != "--url":
        arguments += ["--url", url]
    return arguments


def _check_refused(result: Run, field: str, named: str, as_json: bool) -> dict[str, Any]:
    assert result.code == ExitCode.USAGE, result
    if not as_json:
        assert result.out == "" and result.err.startswith("error: InvalidRequestError: "), result
        assert named in result.err and len(result.err) < 1_500
        return {}
    document = json.loads(result.out)  # exactly one JSON document: json.loads refuses anything after it
    assert document["status"] == "failed" and document["artifacts"] == []
    error = document["error"]
    assert error["type"] == "InvalidRequestError" and error["field"] == field, error
    assert named in error["message"] and error["allowed"], error
    assert len(error["message"]) < 1_000, len(error["message"])  # never the whole (huge) value
    assert CANARY not in result.out + result.err
    return error


@pytest.mark.parametrize("option", _OPTIONS)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_bad_generate_argument_is_refused_before_the_network(
        option: str, data: st.DataObject, run: Callable[..., Run], files: dict[str, Path],
        listener: CountingListener, hooks_called: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDBRIDGE_WAN2GP_PROBE_PORTS", "")
    strategy, field = _bad_values(files, listener)[option]
    value = data.draw(strategy, label="value")
    form = data.draw(st.sampled_from([" ", "="]), label="form")
    with_url = data.draw(st.booleans(), label="with --url")
    as_json = data.draw(st.booleans(), label="--json")
    arguments = _arguments(option, value, listener.url, form, with_url)
    hooks_called.clear()  # the fixture lives for all the examples: each is checked on its own
    before = listener.count
    result = run(*arguments, *(["--json"] if as_json else []))
    _check_refused(result, field, _NAMED_AS.get(option, option), as_json)
    assert listener.count == before
    assert set(hooks_called) <= {_PARSER_HOOK}, hooks_called


# -------------------------------------------------------------------------------------------------
# Usage errors argparse finds (missing values, unknown options) are reported the same way
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field", "named"),
    [(["generate"], "prompt", "prompt"),
     (["generate", "--frames", "17"], "prompt", "prompt"),
     (["generate", "x", "--frames"], "frames", "--frames"),
     (["generate", "x", "--guidance", "-inf"], "guidance", "--guidance"),  # '-inf' reads as an option
     (["generate", "x", "--bogus", "1"], None, "--bogus"),
     (["generate", "x", "--se", "1"], None, "--se"),  # ambiguous: --seed, --set, --settings
     (["generate", "x", "--json=yes"], "json", "--json"),
     (["generate", "x", "--insecure=no"], "insecure", "--insecure"),
     (["generate", "x", "extra", "words"], None, "extra words")],
)
def test_usage_errors_are_one_json_document_and_exit_2(run: Callable[..., Run], listener: CountingListener,
                                                        hooks_called: list[str], arguments: list[str],
                                                        field: str | None, named: str) -> None:
    before = listener.count
    result = run(*arguments, "--url", listener.url, "--json")
    assert result.code == ExitCode.USAGE and result.err == "", result
    error = result.document["error"]
    assert error["type"] == "InvalidRequestError" and error["field"] == field and named in error["message"]
    assert error["allowed"] and "--help" in error["message"]
    assert listener.count == before and set(hooks_called) <= {_PARSER_HOOK}


def test_a_usage_error_finds_json_in_any_spelling_but_not_after_a_double_dash(run: Callable[..., Run]) -> None:
    short = run("generate", "x", "--jso", "--frames")  # argparse accepts --jso for --json
    assert short.code == ExitCode.USAGE and short.document["error"]["field"] == "frames"
    text = run("generate", "x", "--frames", "many", "--", "--json")  # after '--': the prompt's words
    assert text.code == ExitCode.USAGE and text.out == ""
    assert text.err.startswith("error: InvalidRequestError: argument --frames: 'many' is not an integer")
    huge = run("generate", "x", "--json=" + "y" * 100_000, "--json")
    assert huge.code == ExitCode.USAGE and len(huge.out) < 2_000


def test_help_still_exits_0(run: Callable[..., Run]) -> None:
    with pytest.raises(SystemExit) as info:
        run("generate", "--help")
    assert info.value.code == 0


# -------------------------------------------------------------------------------------------------
# The regressions of issue 14, one by one
# -------------------------------------------------------------------------------------------------


def test_a_text_file_named_png_is_not_uploaded(run: Callable[..., Run], files: dict[str, Path],
                                               listener: CountingListener) -> None:
    before = listener.count
    result = run("generate", "x", "--url", listener.url, "--image-start", str(files["text.png"]), "--json")
    error = _check_refused(result, "image_start", "--image-start", True)
    assert "is not an image file: its first bytes match no image format" in error["message"]
    assert "PNG, JPEG, WebP, GIF, BMP" in error["allowed"] and listener.count == before


def test_set_with_text_that_is_not_json_names_the_key_and_quotes_little(run: Callable[..., Run],
                                                                        listener: CountingListener) -> None:
    result = run("generate", "x", "--url", listener.url, "--set", "sample_solver=" + "causvid " * 1000, "--json")
    error = _check_refused(result, "set", "--set 'sample_solver'", True)
    assert "the value is not JSON" in error["message"] and "8000 characters" in error["message"]
    assert len(error["message"]) < 300
    twice = run("generate", "x", "--set", "steps=4", "--set", "steps=5", "--json")
    assert "given twice" in _check_refused(twice, "set", "--set 'steps'", True)["message"]


def test_set_values_that_are_json_are_sent_as_json() -> None:
    from vidbridge.cli import build_parser, request_from_args

    args = build_parser().parse_args(["generate", "p", "--set", "flow_shift=3.5", "--set", 'solver="causvid"',
                                      "--set", "loras=[\"a\", {\"b\": null}]"])
    assert dict(request_from_args(args).settings) == {"flow_shift": 3.5, "solver": "causvid",
                                                      "loras": ["a", {"b": None}]}


def test_settings_file_is_parsed_before_anything_starts(run: Callable[..., Run], files: dict[str, Path],
                                                        hooks_called: list[str]) -> None:
    # no --url: without the check, discovery and then the embedded mock backend would start
    for name, words in [("not-json.json", "is not JSON (Expecting value at line 1 column 1)"),
                        ("list.json", "holds a JSON list, not an object"),
                        ("missing.png", "does not exist")]:
        result = run("generate", "x", "--settings", str(files[name]), "--json")
        assert words in _check_refused(result, "settings_file", "--settings", True)["message"]
    assert set(hooks_called) <= {_PARSER_HOOK}


def test_prompt_limits(run: Callable[..., Run]) -> None:
    huge = run("generate", "a" * 1_000_000, "--json")
    error = _check_refused(huge, "prompt", "prompt", True)
    assert "(1000000 characters)" in error["message"] and len(huge.out) < 1_000
    nul = run("generate", "a cat\x00 in snow", "--json")
    assert "control character '\\x00' at position 5" in _check_refused(nul, "prompt", "prompt", True)["message"]
    negative = run("generate", "a cat", "--negative", "blur\x1b[2J", "--json")
    _check_refused(negative, "negative_prompt", "--negative", True)


def test_connection_errors_say_what_happened(run: Callable[..., Run], listener: CountingListener) -> None:
    with socket.socket() as sock:  # bound, never listening: a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        refused = run("generate", "x", "--url", closed, "--json")
    assert refused.code == ExitCode.CONNECTION
    assert refused.document["error"]["type"] == "BackendConnectionError"
    assert "connection refused (nothing listens on 127.0.0.1:" in refused.document["error"]["message"]
    before = listener.count
    answers = run("generate", "x", "--url", listener.url, "--json")  # a good request: now it connects
    assert answers.code == ExitCode.CONNECTION and listener.count > before
    assert "it answers, but no plugin recognised this server" in answers.document["error"]["message"]
    invalid = run("generate", "x", "--url", "http://[::1", "--json")
    assert _check_refused(invalid, "url", "--url", True)["message"].endswith("is not a valid URL (Invalid IPv6 URL)")


def test_an_unreachable_host_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbridge import client

    def no_route(*args: Any, **kwargs: Any) -> None:
        raise OSError(113, "No route to host")

    monkeypatch.setattr(client.socket, "create_connection", no_route)
    assert client._reachability("https://192.0.2.1", 1.0) == "unreachable (No route to host)"


def test_credentials_in_the_url_are_refused_unseen(run: Callable[..., Run]) -> None:
    result = run("generate", "x", "--url", f"http://ann:{CANARY}@127.0.0.1:7860", "--json")
    error = _check_refused(result, "url", "--url", True)
    assert "--username" in error["message"] and "VIDBRIDGE_PASSWORD" in error["message"]
    assert "ann" not in error["message"]


def test_timeout_is_checked_first(run: Callable[..., Run], hooks_called: list[str]) -> None:
    for value in ("0", "nan", "-3", "inf", "1e9"):
        result = run("generate", "x", "--timeout", value, "--json")  # no --url: the embedded mock would start
        assert "is not a number of seconds greater than 0" in _check_refused(result, "timeout", "--timeout",
                                                                           True)["message"]
    assert set(hooks_called) <= {_PARSER_HOOK}


def test_output_must_be_a_writable_folder(run: Callable[..., Run], files: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {str(files["output-file"]): "is a file, not a folder",
             str(files["output-file"] / "deeper" / "still"): "cannot be created: ",
             str(files["dangling.png"] / "sub"): "is a link to nothing",
             "nul\0byte": "cannot be used: it contains a NUL character",
             "n" * 300: "cannot be used ([Errno 36] File name too long"}
    for path, words in cases.items():
        result = run("generate", "x", "--output", path, "--json")
        assert words in _check_refused(result, "output", "--output", True)["message"], path
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o500)
    else:  # root may write anywhere: deny it the way the kernel would for anyone else
        from vidbridge import cli

        real_access = cli.os.access
        monkeypatch.setattr(cli.os, "access", lambda path, mode: False if Path(path) == locked
                            else real_access(path, mode))
    result = run("generate", "x", "--output", str(locked / "new"), "--json")
    assert "is not writable" in _check_refused(result, "output", "--output", True)["message"]


def test_one_url_per_generate_and_a_known_backend(run: Callable[..., Run], listener: CountingListener) -> None:
    before = listener.count
    twice = run("generate", "x", "--url", listener.url, "--url", listener.url, "--json")
    assert "given 2 times" in _check_refused(twice, "url", "--url", True)["message"]
    unknown = run("generate", "x", "--url", listener.url, "--backend", "ghost", "--json")
    error = _check_refused(unknown, "backend", "--backend", True)
    assert "wan2gp" in error["allowed"] and listener.count == before
