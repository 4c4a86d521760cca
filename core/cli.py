"""The ``vidbridge`` command line.

Commands: ``plugins``, ``discover``, ``models``, ``generate``, ``jobs`` (the job ledger,
:mod:`vidbridge.cli_jobs`) and those plugins add (the mock backend adds ``mock-server``). With
``--json`` a command prints exactly one JSON document on stdout; logs and progress go to stderr.

Exit codes (:class:`ExitCode`): 0 success, 2 bad usage or invalid request, 3 cannot connect or
authenticate (connect timeouts and servers the backend cannot use included), 4 job failed or
rejected by the backend, 5 cancelled, 6 timed out, 1 anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

__all__ = ["main", "ExitCode", "build_parser"]

log = logging.getLogger("vidbridge.cli")


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``vidbridge`` command."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CONNECTION = 3
    JOB_FAILED = 4
    CANCELLED = 5
    TIMEOUT = 6


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code that reports ``error``."""
    from . import errors

    if isinstance(error, errors.JobTimeoutError) and error.reason == "connect":
        return ExitCode.CONNECTION  # no session in time: "cannot connect", nothing was submitted
    table: list[tuple[type[BaseException], ExitCode]] = [
        (errors.InvalidRequestError, ExitCode.USAGE),
        (errors.JobTimeoutError, ExitCode.TIMEOUT),
        (errors.JobCancelledError, ExitCode.CANCELLED),
        (errors.AuthenticationError, ExitCode.CONNECTION),
        (errors.IncompatibleServerError, ExitCode.CONNECTION),
        (errors.TransportError, ExitCode.CONNECTION),
        (errors.RejectedError, ExitCode.JOB_FAILED),
        (errors.JobFailedError, ExitCode.JOB_FAILED),
        (errors.IntegrityError, ExitCode.JOB_FAILED),
        (KeyboardInterrupt, ExitCode.CANCELLED),
    ]
    return next((code for kind, code in table if isinstance(error, kind)), ExitCode.ERROR)


# -------------------------------------------------------------------------------------------------
# Output helpers
# -------------------------------------------------------------------------------------------------


def _emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _say(text: str) -> None:
    """A line for humans, on stderr (stdout is reserved for results)."""
    print(text, file=sys.stderr, flush=True)


# -------------------------------------------------------------------------------------------------
# Arguments
# -------------------------------------------------------------------------------------------------


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server and credentials")
    group.add_argument("--url", action="append", default=[],
                       help="server URL (repeatable: generate then uses them all as one pool)")
    group.add_argument("--username", help="login name (gradio auth)")
    group.add_argument(
        "--password", help="login password (prefer the VIDBRIDGE_PASSWORD environment variable: argv is visible)"
    )
    group.add_argument("--token", help="Hugging Face token (or VIDBRIDGE_TOKEN)")
    group.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra header, e.g. an API key"
    )
    group.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")


def _add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")


#: ``generate`` options by the request field they set (the others set the field of their own name).
_OPTION_OF_FIELD = {
    "prompt": "the prompt", "negative_prompt": "--negative", "model": "--model", "resolution": "--resolution",
    "frames": "--frames", "steps": "--steps", "guidance": "--guidance", "seed": "--seed", "sampler": "--sampler",
    "loras": "--lora", "preset": "--preset", "image_start": "--image-start", "image_end": "--image-end",
    "video": "--video", "audio": "--audio", "ref_images": "--ref-image", "settings_file": "--settings",
    "settings": "--set",
}
_FIELD_OF_DEST = {"negative": "negative_prompt", "lora": "loras", "ref_image": "ref_images",
                  "settings": "settings_file", "header": "header"}
_TIMEOUT_MAX = 30 * 24 * 3600.0
_TIMEOUT_ALLOWED = "a number of seconds greater than 0 and at most 2592000 (30 days)"


class _Number:
    """An argparse type: a finite ``int`` or ``float`` (``float()`` accepts nan and inf; this does not).

    ``minimum`` (exclusive) and ``maximum`` bound it when given. The ranges of request fields are
    checked by :class:`~vidbridge.GenerationRequest`, so that the Python API gets the same checks.
    """

    def __init__(self, kind: type, allowed: str, *, minimum: float | None = None,
                 maximum: float | None = None) -> None:
        self.kind, self.allowed, self.minimum, self.maximum = kind, allowed, minimum, maximum

    def __call__(self, text: str) -> Any:
        from .models import excerpt

        try:
            value = self.kind(text)
        except ValueError:  # also an integer of more digits than Python converts
            value = None
        if value is None or not math.isfinite(value) or (self.minimum is not None and value <= self.minimum) \
                or (self.maximum is not None and value > self.maximum):
            raise argparse.ArgumentTypeError(f"{excerpt(text, 40)} is not {self.allowed}")
        return value


class _UsageProblem(Exception):
    """Raised by :meth:`_GenerateParser.error` in place of argparse's exit."""


class _GenerateParser(argparse.ArgumentParser):
    """The ``generate`` sub-parser: a usage error (missing value, unknown option, a number that
    is not one) is kept as an :class:`~vidbridge.InvalidRequestError` in ``usage_error`` and
    reported by the command like any invalid request: exit 2, and with ``--json`` one JSON
    document on stdout, instead of argparse's usage text and exit."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        from .errors import InvalidRequestError
        from .models import excerpt

        words = list(sys.argv[1:] if args is None else args)
        namespace = argparse.Namespace() if namespace is None else namespace
        try:
            namespace, extras = super().parse_known_args(words, namespace)
        except _UsageProblem as problem:
            namespace.usage_error = problem.args[0]
        else:
            if not extras:
                return namespace, []
            namespace.usage_error = InvalidRequestError(
                f"unrecognized arguments: {excerpt(' '.join(extras))} (see vidbridge generate --help)",
                field=None, allowed="the options of vidbridge generate --help")
        # parsing stopped early: --json may not have been reached (argparse accepts its prefixes)
        options = words[:words.index("--")] if "--" in words else words
        namespace.json = bool(getattr(namespace, "json", False)) or any(
            len(word) > 2 and "--json".startswith(word) for word in options)
        return namespace, []

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        from .errors import InvalidRequestError
        from .models import excerpt

        field, allowed = None, "the options of vidbridge generate --help"
        named = re.match(r"argument ([^:]+): ", message)
        if message.startswith("the following arguments are required: prompt"):
            field, allowed = "prompt", "a prompt: vidbridge generate 'what to generate' [options]"
        elif named:
            action = next((item for item in self._actions
                           if named[1] in ("/".join(item.option_strings), item.dest, item.metavar)), None)
            if action is not None:
                field = _FIELD_OF_DEST.get(action.dest, action.dest)
                allowed = getattr(action.type, "allowed", None) or action.help or allowed
        # argparse quotes values in some messages ("ignored explicit argument '...'"): keep it short
        text = message if len(message) <= 300 else excerpt(message, 300)
        raise _UsageProblem(InvalidRequestError(f"{text} (see vidbridge generate --help)",
                                                field=field, allowed=allowed))


def build_parser(plugin_manager: Any | None = None) -> argparse.ArgumentParser:
    """The argument parser, including the commands plugins register."""
    parser = argparse.ArgumentParser(
        prog="vidbridge",
        description="Talk to generative-video backends (Wan2GP and others) through plugins.",
        epilog="Exit codes: 0 ok, 1 error, 2 invalid usage/request, 3 connection/auth, 4 job failed, "
        "5 cancelled, 6 timeout.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    plugins = commands.add_parser("plugins", help="list installed plugins, their versions and hooks")
    _add_json_argument(plugins)
    plugins.set_defaults(handler=_cmd_plugins)

    discover = commands.add_parser("discover", help="find backend servers (given URLs and usual local ports)")
    _add_connection_arguments(discover)
    discover.add_argument("--no-probe", action="store_true", help="only check the given URLs")
    discover.add_argument("--timeout", type=float, default=None,
                          help=f"seconds for the whole search (default {DISCOVER_TIMEOUT:g}, or {DISCOVER_TIMEOUT_ENV_VAR})")
    _add_json_argument(discover)
    discover.set_defaults(handler=_cmd_discover)

    models = commands.add_parser("models", help="list the models a server offers (with availability where it tells)")
    _add_connection_arguments(models)
    models.add_argument("--loras", metavar="MODEL", help="list the LoRAs the server offers for MODEL instead")
    _add_json_argument(models)
    models.set_defaults(handler=_cmd_models)

    generate = commands.add_parser("generate", help="generate a video and download it")
    # its usage errors are reported like invalid requests (exit 2, one JSON document with --json)
    generate.__class__ = _GenerateParser
    generate.add_argument("prompt")
    _add_connection_arguments(generate)
    request = generate.add_argument_group("request")
    request.add_argument("--model", help="model id, e.g. t2v_1.3B (default: the server's current model)")
    request.add_argument("--resolution", help="WIDTHxHEIGHT, e.g. 832x480")
    request.add_argument("--frames", type=_Number(int, "an integer"), help="number of frames (Wan: 4k+1, e.g. 17, 81)")
    request.add_argument("--steps", type=_Number(int, "an integer"), help="denoising steps")
    request.add_argument("--guidance", type=_Number(float, "a finite number"), help="guidance scale")
    request.add_argument("--seed", type=_Number(int, "an integer"), help="seed (-1: random)")
    request.add_argument("--sampler", help="sampler / solver name")
    request.add_argument("--negative", default="", help="negative prompt")
    request.add_argument("--image-start", type=Path, help="start image (image-to-video)")
    request.add_argument("--image-end", type=Path, help="end image")
    request.add_argument("--video", type=Path, help="control or source video")
    request.add_argument("--audio", type=Path, help="audio input")
    request.add_argument("--ref-image", type=Path, action="append", default=[], help="reference image (repeatable)")
    request.add_argument("--lora", action="append", default=[], metavar="NAME[:WEIGHT]", help="LoRA (repeatable)")
    request.add_argument("--preset", help="accelerator preset, e.g. causvid")
    request.add_argument("--settings", type=Path, help="a backend settings export (Wan2GP 'Export Settings' JSON)")
    request.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="backend field (repeatable)")
    generate.add_argument("--output", type=Path, default=Path("outputs"), help="output folder (default ./outputs)")
    generate.add_argument("--timeout", type=_Number(float, _TIMEOUT_ALLOWED, minimum=0.0, maximum=_TIMEOUT_MAX),
                          help="seconds the whole job may take")
    generate.add_argument("--backend", help="plugin to use (default: the one that recognises the server)")
    generate.add_argument("--reuse", action="store_true",
                          help="with a fixed --seed and --model: return an identical earlier job's verified files")
    _add_json_argument(generate)
    generate.set_defaults(handler=_cmd_generate)

    from .cli_jobs import add_jobs_commands
    from .cli_servers import add_servers_command

    add_jobs_commands(commands)
    add_servers_command(commands)

    if plugin_manager is not None:
        # Each plugin separately: one that raises is reported by `vidbridge plugins` (like a load
        # error) and its half-added commands are removed; the rest of the command line works.
        plugin_manager.call_each("vidbridge_register_commands", checkpoint=lambda: _commands_checkpoint(commands),
                                 subparsers=commands)
    return parser


def _commands_checkpoint(commands: Any) -> Callable[[], None]:
    """What undoes the sub-commands added to ``commands`` after this call (argparse keeps them in
    its ``choices`` map and, for ``--help``, in ``_choices_actions``)."""
    names = set(commands.choices)
    listed = list(commands._choices_actions)

    def undo() -> None:
        for name in set(commands.choices) - names:
            del commands.choices[name]
        commands._choices_actions[:] = listed

    return undo


def _version() -> str:
    from . import __version__

    return __version__


# -------------------------------------------------------------------------------------------------
# Building inputs
# -------------------------------------------------------------------------------------------------


def credentials_from_args(args: argparse.Namespace) -> Any:
    """Credentials from flags and environment (``VIDBRIDGE_PASSWORD``, ``VIDBRIDGE_TOKEN``)."""
    from .errors import InvalidRequestError
    from .models import Credentials, field_labels

    headers = {}
    for number, raw in enumerate(args.header, 1):
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            # never echo it: a mistyped 'Authorization Bearer <token>' would print the token
            raise InvalidRequestError(
                f"--header number {number} has no 'Name:' part (not shown, it may hold a secret)",
                field="header",
                allowed="'Name: value'",
            )
        headers[name.strip()] = value.strip()
    password = args.password or os.environ.get("VIDBRIDGE_PASSWORD")
    username = args.username or os.environ.get("VIDBRIDGE_USERNAME")
    if password and not username:
        raise InvalidRequestError("a password needs --username", field="username",
                                  allowed="--username NAME (or VIDBRIDGE_USERNAME) with the password")
    if args.username and not password:
        raise InvalidRequestError(
            "--username needs a password: set VIDBRIDGE_PASSWORD (or --password)", field="password",
            allowed="the password in VIDBRIDGE_PASSWORD (or --password, which other users can see)"
        )
    labels = {"username": "--username", "password": "--password (or VIDBRIDGE_PASSWORD)",
              "token": "--token (or VIDBRIDGE_TOKEN)", "headers": "--header"}
    try:
        with field_labels(labels):
            return Credentials(
                username=username if password else None,
                password=password if username else None,
                token=args.token or os.environ.get("VIDBRIDGE_TOKEN"),
                headers=headers,
            )
    except InvalidRequestError as exc:
        if exc.field != "headers":
            raise
        exc.field = "header"  # the option's name, as for the header errors above
        raise


_SET_ALLOWED = "KEY=JSON, e.g. --set flow_shift=3 or --set 'sample_solver=\"causvid\"' (text in JSON quotes)"


def _settings_from_args(items: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=JSON`` values; text that is not JSON is refused, not sent as a string."""
    from .errors import InvalidRequestError
    from .models import excerpt

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    settings: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidRequestError(f"--set {excerpt(item)}: expected KEY=VALUE, VALUE in JSON", field="set",
                                      allowed=_SET_ALLOWED)
        if key in settings:
            raise InvalidRequestError(f"--set {excerpt(key, 40)}: given twice", field="set", allowed=_SET_ALLOWED)
        try:
            settings[key] = json.loads(raw, parse_constant=no_constant)  # NaN, Infinity: not JSON
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise InvalidRequestError(
                f"--set {excerpt(key, 40)}: the value is not JSON ({reason}; got {excerpt(raw, 40)}, "
                f"{len(raw)} characters); text needs JSON quotes: --set '{excerpt(key, 40)[1:-1]}=\"...\"'",
                field="set", allowed=_SET_ALLOWED) from None
    return settings


def _loras_from_args(items: Sequence[str]) -> tuple[Any, ...]:
    from .errors import InvalidRequestError
    from .models import LoRA

    loras = []
    for text in items:
        try:
            loras.append(LoRA.parse(text))
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"--lora: {exc.message}", field="loras", allowed=exc.allowed) from None
    return tuple(loras)


def request_from_args(args: argparse.Namespace) -> Any:
    """The :class:`GenerationRequest` the ``generate`` flags describe.

    :raises InvalidRequestError: anything invalid, the message naming the option (``--frames``,
        ``--set KEY``); checked before any network call, input files included.
    """
    from .models import GenerationRequest, field_labels

    fields = {
        "prompt": args.prompt,
        "negative_prompt": args.negative,
        "model": args.model,
        "resolution": args.resolution,
        "frames": args.frames,
        "steps": args.steps,
        "guidance": args.guidance,
        "seed": args.seed,
        "sampler": args.sampler,
        "loras": _loras_from_args(args.lora),
        "preset": args.preset,
        "image_start": args.image_start,
        "image_end": args.image_end,
        "video": args.video,
        "audio": args.audio,
        "ref_images": tuple(args.ref_image),
        "settings_file": args.settings,
        "settings": _settings_from_args(args.set),
    }
    with field_labels(_OPTION_OF_FIELD):
        return GenerationRequest(**fields)


def _check_output_dir(path: Path) -> None:
    """Refuse an ``--output`` that cannot become a folder we write into (checked before the network)."""
    from .errors import InvalidRequestError
    from .models import excerpt

    def refuse(problem: str) -> NoReturn:
        raise InvalidRequestError(f"--output {excerpt(str(path), 80, tail=True)} {problem}", field="output",
                                  allowed="a folder that exists or can be created, and is writable")

    if "\0" in str(path):  # Path.exists() says False for it, the mkdir later would fail
        refuse("cannot be used: it contains a NUL character")
    try:
        existing = path.absolute()
        while not existing.exists():  # the filesystem root always exists
            if existing.is_symlink():
                refuse(f"cannot be created: {excerpt(str(existing), 80, tail=True)} is a link to nothing")
            existing = existing.parent
        is_dir = existing.is_dir()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a loop of links
        refuse(f"cannot be used ({exc})")
    if not is_dir:
        refuse("is a file, not a folder" if existing == path.absolute()
               else f"cannot be created: {excerpt(str(existing), 80, tail=True)} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        refuse(f"is not writable ({excerpt(str(existing), 80, tail=True)})")


def _check_generate_args(args: argparse.Namespace, manager: Any) -> tuple[Any, Any]:
    """Every ``generate`` argument checked before anything connects or starts: ``(request, credentials)``.

    :raises InvalidRequestError: the first bad argument, named.
    """
    from .errors import InvalidRequestError
    from .models import Endpoint, build, excerpt, field_labels

    if getattr(args, "usage_error", None) is not None:
        raise args.usage_error
    request = request_from_args(args)
    credentials = credentials_from_args(args)
    with field_labels({"url": "--url"}):
        urls = [build(Endpoint, url=url).url for url in args.url]
    for url in set(urls):
        if urls.count(url) > 1:  # several --url make a pool, where each server is listed once
            raise InvalidRequestError(f"--url given {urls.count(url)} times for {url}: a pool lists each server "
                                      "once", field="url", allowed="distinct --url values")
    _check_output_dir(args.output)
    if args.backend is not None and args.backend not in manager.backend_names():
        names = ", ".join(manager.backend_names()) or "none loaded"
        raise InvalidRequestError(f"--backend: no loaded plugin is called {excerpt(args.backend, 40)}",
                                  field="backend", allowed=names)
    return request, credentials


def _client(args: argparse.Namespace, manager: Any) -> Any:
    from .client import Client

    return Client(plugin_manager=manager, verify_tls=not getattr(args, "insecure", False))


# -------------------------------------------------------------------------------------------------
# Commands
# -------------------------------------------------------------------------------------------------


def _cmd_plugins(args: argparse.Namespace) -> int:
    manager = args.plugin_manager
    infos = manager.plugin_infos()
    if args.json:
        _emit_json({"plugins": [info.to_dict() for info in infos]})
    else:
        for info in infos:
            origin = "built-in" if info.builtin else (info.distribution or "registered")
            print(f"{info.name} {info.version or ''} ({origin})")
            print(f"  hooks: {', '.join(info.hooks) or '-'}")
            if info.error:
                print(f"  error: {info.error}")
    return ExitCode.OK


#: Seconds the search for servers may take when none is given (``discover``, and ``generate`` or
#: ``models`` without ``--url``). Only a port that accepts a connection and answers slowly costs
#: time: a busy WanGP can take over a second to serve its config.
DISCOVER_TIMEOUT = 2.0
DISCOVER_TIMEOUT_ENV_VAR = "VIDBRIDGE_DISCOVER_TIMEOUT"


def discover_timeout(given: float | None) -> float:
    """``given`` (``--timeout``), else ``VIDBRIDGE_DISCOVER_TIMEOUT``, else :data:`DISCOVER_TIMEOUT`.

    :raises InvalidRequestError: the value is not a positive number of seconds.
    """
    from .errors import InvalidRequestError

    field, raw = ("--timeout", given) if given is not None else (DISCOVER_TIMEOUT_ENV_VAR,
                                                                    os.environ.get(DISCOVER_TIMEOUT_ENV_VAR))
    if raw is None or raw == "":
        return DISCOVER_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidRequestError(f"{field} must be a positive number of seconds, got {raw!r}", field=field,
                                  allowed="a number of seconds greater than 0, e.g. 2")
    return seconds


def found_servers(client: Any, credentials: Any) -> list[Any]:
    """The usable endpoints the search finds when no ``--url`` is given (configured URLs and the
    usual local ports), within :func:`discover_timeout`."""
    return [endpoint for endpoint in client.discover(credentials=credentials, timeout=discover_timeout(None))
            if endpoint.healthy and endpoint.backend]


def _cmd_discover(args: argparse.Namespace) -> int:
    manager = args.plugin_manager
    with _client(args, manager) as client:
        endpoints = client.discover(
            args.url, probe_local=not args.no_probe, timeout=discover_timeout(args.timeout),
            credentials=credentials_from_args(args)
        )
    if args.json:
        _emit_json({"endpoints": [endpoint.model_dump(mode="json") for endpoint in endpoints]})
        return ExitCode.OK
    if not endpoints:
        _say("no servers found (give one with --url)")
    for endpoint in endpoints:
        state = (f"{endpoint.backend} {endpoint.version or ''}".strip() + f" ({endpoint.transport})"
                 if endpoint.healthy else endpoint.note)
        latency = f" {endpoint.latency_ms:.0f} ms" if endpoint.latency_ms is not None else ""
        print(f"{endpoint.url}  {state}{latency}  models: {len(endpoint.models)}")
    return ExitCode.OK


def _cmd_models(args: argparse.Namespace) -> int:
    from collections.abc import Mapping

    from .errors import InvalidRequestError

    manager = args.plugin_manager
    availability: dict[str, Any] = {}
    loras: list[str] | None = None
    with _client(args, manager) as client, _endpoint(args, client, manager) as (endpoint, _embedded):
        models = list(endpoint.models)
        if args.loras or endpoint.transport == "mcp":
            # Optional methods of a plugin's session (wan2gp's MCP face has both): model_catalog()
            # -> [{"model", "availability"}], loras(model) -> [names].
            with client.connect(endpoint, credentials=credentials_from_args(args)) as session:
                if args.loras:
                    lister = getattr(session.native, "loras", None)
                    if not callable(lister):
                        raise InvalidRequestError(f"--loras: {endpoint.url} ({endpoint.transport}) cannot list LoRAs",
                                                  field="loras", allowed="a server whose face lists LoRAs "
                                                                         "(WanGP's MCP face)")
                    loras = list(lister(args.loras))
                else:
                    rows = session.native.model_catalog()  # the MCP face's sessions have it
                    availability = {row["model"]: row.get("availability") for row in rows}
                    models = models or list(availability)
    if loras is not None:
        if args.json:
            _emit_json({"endpoint": endpoint.url, "backend": endpoint.backend, "model": args.loras, "loras": loras})
        else:
            print("\n".join(loras) if loras else f"no LoRAs for {args.loras} on {endpoint.url}")
        return ExitCode.OK
    if args.json:
        document: dict[str, Any] = {"endpoint": endpoint.url, "backend": endpoint.backend, "models": models}
        families = endpoint.details.get("families")
        if isinstance(families, Mapping):  # a plugin's model -> family mapping (wan2gp has one)
            document["families"] = dict(families)
        if availability:  # where the face tells: available / partial / missing weights
            document["availability"] = availability
        _emit_json(document)
    elif availability:
        print("\n".join(f"{model}  {availability.get(model) or 'unknown'}" for model in models))
    else:
        print("\n".join(models) if models else f"{endpoint.url} does not list its models")
    return ExitCode.OK


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace, client: Any, manager: Any) -> Iterator[tuple[Any, bool]]:
    """The endpoint to use: ``--url``, else a discovered one, else the embedded backend; a list of
    URLs for a pool (``--url`` more than once, or several servers configured and found)."""
    credentials = credentials_from_args(args)
    if len(args.url) > 1:
        yield list(args.url), False
        return
    if args.url:
        yield client.identify(args.url[0], credentials), False
        return
    found = found_servers(client, credentials)
    if len(found) > 1:
        _say(f"using a pool of the {len(found)} servers found: {', '.join(endpoint.url for endpoint in found)}")
        yield found, False
        return
    if found:
        _say(f"using {found[0].backend} server found at {found[0].url}")
        yield found[0], False
        return
    embedded = manager.hook.vidbridge_embedded_backend(options={})
    if embedded is None:
        from .errors import BackendConnectionError

        raise BackendConnectionError("no server configured (--url) or found, and no embedded backend is installed")
    with embedded as url:
        _say(f"no server configured or found: using the embedded mock backend at {url}")
        yield client.identify(url, credentials), True


def _cmd_generate(args: argparse.Namespace) -> int:
    manager = args.plugin_manager
    from .progress import ProgressDisplay

    document: dict[str, Any] = {"status": None, "backend": None, "endpoint": None, "artifacts": []}
    try:
        # every argument is refused here if bad: before any network call or embedded backend start
        request, credentials = _check_generate_args(args, manager)
        with _client(args, manager) as client, _endpoint(args, client, manager) as (endpoint, embedded):
            pooled = isinstance(endpoint, list)
            document.update(backend=None if pooled else endpoint.backend, endpoint=None if pooled else endpoint.url,
                            embedded=embedded)
            with client.connect(endpoint, credentials=credentials, backend=args.backend) as session:
                with ProgressDisplay(enabled=not args.json) as display:
                    job = session.submit(request, output_dir=args.output, timeout=args.timeout,
                                         on_status=display.update, reuse=args.reuse)
                    document["job_id"] = job.id
                    if pooled:  # the server it runs on, once placed (the ledger and job.ref name it)
                        job.add_callback(lambda status: document.update(backend=job.ref.backend,
                                                                        endpoint=job.ref.endpoint))
                    if not args.json:
                        _say(f"job {job.id} (vidbridge jobs show {job.id})")
                    try:
                        artifacts = job.result()
                    except KeyboardInterrupt:
                        completed = _cancel_after_interrupt(job)
                        # Files already named are kept (all of them if the job completed anyway,
                        # those before the cancel of a multi-file download): the JSON lists them.
                        document["artifacts"] = [artifact.to_summary() for artifact in job.artifacts]
                        if not completed:
                            raise
                        artifacts = job.artifacts
                    except Exception:
                        document["artifacts"] = [artifact.to_summary() for artifact in job.artifacts]
                        raise
                _completed(document, job, artifacts)
    except BaseException as exc:
        if not isinstance(exc, Exception) and not isinstance(exc, KeyboardInterrupt):
            raise
        return _failed(args, document, exc)
    _finish(args, document)
    return ExitCode.OK


def _completed(document: dict[str, Any], job: Any, artifacts: Sequence[Any]) -> None:
    """Fill ``generate``'s JSON document (and ``jobs resume``'s) for a job that completed."""
    document["status"] = job.status().phase.value
    document["cached"] = job.status().cached
    document["artifacts"] = [artifact.to_summary() for artifact in artifacts]


def _failed(args: argparse.Namespace, document: dict[str, Any], exc: BaseException, status: str | None = None) -> int:
    """Report ``exc`` in the document (``status`` by default from its exit code); returns the code."""
    code = exit_code_for(exc)
    document["status"] = status or ("cancelled" if code is ExitCode.CANCELLED else "failed")
    document["error"] = _error_dict(exc)
    _finish(args, document)
    return code


#: After Ctrl-C, how long ``generate`` waits for the cancelled job to end.
CANCEL_WAIT = 30.0


def _cancel_after_interrupt(job: Any) -> bool:
    """Cancel ``job`` after a Ctrl-C and wait for it to end; True if it completed all the same.

    Another Ctrl-C while the artifacts download is acknowledged, not obeyed: leaving then would
    leave a partial file, or a finished one that the JSON does not report, and stopping the
    download takes one network read. In other phases nothing is on disk yet, so it is obeyed.
    """
    from .errors import JobTimeoutError
    from .models import Phase

    _say("interrupted: cancelling the job on the server...")
    while True:
        try:
            job.cancel()
            job.wait(timeout=CANCEL_WAIT)  # what is on disk is final only once the job has ended
            break
        except JobTimeoutError:
            _say(f"the job did not end within {CANCEL_WAIT:.0f} s of the cancel; not waiting any longer")
            break
        except KeyboardInterrupt:
            if job.status().phase is not Phase.DOWNLOADING:
                raise
            _say("still stopping the download (removing its partial file)...")
    if job.status().phase is Phase.COMPLETED:
        _say("the job had completed before it could be cancelled: its artifacts are kept")
        return True
    return False


def _error_dict(exc: BaseException) -> dict[str, Any]:
    to_dict: Callable[[], dict[str, Any]] | None = getattr(exc, "to_dict", None)
    if to_dict is not None:
        return to_dict()
    if isinstance(exc, KeyboardInterrupt):
        return {"type": "KeyboardInterrupt", "message": "interrupted"}
    return {"type": type(exc).__name__, "message": str(exc)}


def _finish(args: argparse.Namespace, document: dict[str, Any]) -> None:
    if args.json:
        _emit_json(document)
        return
    if document.get("error"):
        _say(f"error: {document['error']['type']}: {document['error']['message']}")
        return
    for artifact in document["artifacts"]:
        print(f"{artifact['path']}  sha256:{artifact['sha256']}  {artifact['size']} bytes")


# -------------------------------------------------------------------------------------------------
# Entry point
# -------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from .manager import get_plugin_manager
    from .redaction import install_log_redaction

    manager = get_plugin_manager()
    parser = build_parser(manager)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(getattr(args, "verbose", 0), 2),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()  # -vv shows httpx/httpcore traces: no cookie, auth header or password in them
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    args.plugin_manager = manager
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        _say("interrupted")
        return ExitCode.CANCELLED
    except Exception as exc:
        code = exit_code_for(exc)
        if getattr(args, "json", False):
            _emit_json({"status": "failed", "error": _error_dict(exc)})
        else:
            _say(f"error: {type(exc).__name__}: {exc}")
        if code is ExitCode.ERROR:
            log.debug("unexpected error", exc_info=True)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
