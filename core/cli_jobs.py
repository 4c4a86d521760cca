"""``vidbridge jobs``: the job ledger on the command line.

::

    vidbridge jobs list [--status S] [--limit N] [--json]
    vidbridge jobs show ID [--json]
    vidbridge jobs resume ID [--resubmit] [--output DIR] [--json]
    vidbridge jobs cancel ID [--json]
    vidbridge jobs prune --older-than DAYS [--json]

The ids are those ``generate`` prints (and puts in its JSON as ``job_id``). ``resume`` prints what
``generate`` prints (its JSON has the same keys, plus ``attempt``); a job the backend cannot find
again ends ``interrupted`` with ``error.reason`` (exit 1, the code of
:class:`~vidbridge.NotAttachableError`). Exit codes are ``generate``'s
(:func:`vidbridge.cli.exit_code_for`); bad input exits 2. ``--ledger PATH`` (or
``VIDBRIDGE_LEDGER``) chooses the ledger file.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .errors import VidbridgeError

__all__ = ["add_jobs_commands"]

_SECONDS_PER_DAY = 86_400.0


def add_jobs_commands(commands: Any) -> None:
    """Register ``jobs`` and its sub-commands on the ``vidbridge`` sub-parser collection."""
    from .cli import _Number, _add_json_argument
    from .ledger import LEDGER_STATUSES, STATUS_GROUPS

    jobs = commands.add_parser("jobs", help="the job ledger: list, show, resume, cancel, prune jobs")
    actions = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jobs.set_defaults(handler=lambda args: _usage(jobs))

    def action(name: str, help_text: str, handler: Any, *, with_id: bool = True) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        if with_id:
            parser.add_argument("job_id", metavar="ID", help="a job id (as generate prints it)")
        parser.add_argument("--ledger", type=Path, help="the ledger file (default: VIDBRIDGE_LEDGER, else the "
                                                        "user data folder's vidbridge/jobs.sqlite3)")
        _add_json_argument(parser)
        parser.set_defaults(handler=handler)
        return parser

    listing = action("list", "list jobs, most recent first", _cmd_list, with_id=False)
    listing.add_argument("--status", choices=[*LEDGER_STATUSES, *STATUS_GROUPS], help="only jobs of this status")
    listing.add_argument("--limit", type=_Number(int, "an integer >= 1", minimum=0), default=50,
                         help="at most this many (default 50)")
    action("show", "show one job", _cmd_show)
    resume = action("resume", "follow an unfinished job to its end (or return a completed one's files)", _cmd_resume)
    resume.add_argument("--resubmit", action="store_true",
                        help="if the backend cannot find the work, run the request again (its next attempt)")
    resume.add_argument("--output", type=Path, help="output folder (default: the job's own)")
    _add_credential_arguments(resume)
    cancel = action("cancel", "cancel an unfinished job (the backend is asked to stop it where it can)", _cmd_cancel)
    _add_credential_arguments(cancel)
    prune = action("prune", "forget finished and interrupted jobs (their files stay)", _cmd_prune, with_id=False)
    prune.add_argument("--older-than", type=_Number(float, "a number of days >= 0"), required=True,
                       metavar="DAYS", help="not updated for this many days")


def _add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("credentials of the job's server")
    group.add_argument("--username", help="login name (gradio auth)")
    group.add_argument("--password", help="login password (prefer VIDBRIDGE_PASSWORD)")
    group.add_argument("--token", help="Hugging Face token (or VIDBRIDGE_TOKEN)")
    group.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra header")
    group.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")


def _usage(parser: argparse.ArgumentParser) -> int:
    from .cli import ExitCode

    parser.print_help()
    return ExitCode.USAGE


def _client(args: argparse.Namespace) -> Any:
    from .client import Client
    from .ledger import DEFAULT

    return Client(plugin_manager=args.plugin_manager, verify_tls=not getattr(args, "insecure", False),
                  ledger=args.ledger if args.ledger is not None else DEFAULT)


def _when(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp).isoformat(sep=" ", timespec="seconds")


def _prompt(record: Any) -> str:
    from .models import excerpt

    prompt = (record.request or {}).get("prompt")
    return excerpt(prompt, 40) if prompt else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    from .cli import ExitCode, _emit_json

    with _client(args) as client:
        records = client.jobs(status=args.status, limit=args.limit)
    if args.json:
        _emit_json({"jobs": [record.to_summary() for record in records]})
        return ExitCode.OK
    for record in records:
        attempt = f" (attempt {record.attempt})" if record.attempt > 1 else ""
        print(f"{record.id}  {record.status}{attempt}  {_when(record.updated)}  {record.backend} "
              f"{record.endpoint}  {_prompt(record)}")
    return ExitCode.OK


def _cmd_show(args: argparse.Namespace) -> int:
    from .cli import ExitCode, _emit_json

    with _client(args) as client:
        record = client.job(args.job_id)
    if args.json:
        _emit_json(record.to_summary())
        return ExitCode.OK
    print(f"{record.id}: {record.status} (attempt {record.attempt}) on {record.backend} {record.endpoint}")
    print(f"  created {_when(record.created)}, updated {_when(record.updated)}; prompt {_prompt(record)}")
    if record.message:
        print(f"  {record.message}")
    if record.error is not None:
        reason = getattr(record.error, "reason", None)
        print(f"  error: {record.error.type}: {record.error.message}" + (f" (reason: {reason})" if reason else ""))
    for artifact in record.artifacts:
        print(f"  {artifact.path}  sha256:{artifact.sha256}  {artifact.size} bytes")
    return ExitCode.OK


def _cmd_resume(args: argparse.Namespace) -> int:
    from .cli import ExitCode, _completed, _failed, _finish, credentials_from_args
    from .errors import NotAttachableError, VidbridgeError
    from .progress import ProgressDisplay

    document: dict[str, Any] = {"status": None, "backend": None, "endpoint": None, "job_id": args.job_id,
                                "artifacts": []}
    try:
        credentials = credentials_from_args(args)
        with _client(args) as client:
            record = client.job(args.job_id)
            document.update(backend=record.backend, endpoint=record.endpoint)
            with ProgressDisplay(enabled=not args.json) as display:
                job = client.resume(args.job_id, resubmit=args.resubmit, output_dir=args.output,
                                    credentials=credentials, on_status=display.update)
                try:
                    artifacts = job.result()
                finally:
                    document["attempt"] = job.attempt
                    document["artifacts"] = [artifact.to_summary() for artifact in job.artifacts]
            _completed(document, job, artifacts)
    except Exception as exc:
        if "resubmit=True" in str(exc) and isinstance(exc, VidbridgeError):
            _say_it_in_cli_terms(exc, args.job_id)
        return _failed(args, document, exc, status="interrupted" if isinstance(exc, NotAttachableError) else None)
    _finish(args, document)
    return ExitCode.OK


def _say_it_in_cli_terms(exc: VidbridgeError, job_id: str) -> None:
    """The core names the Python option (``resubmit=True``); here it is a flag."""
    from .errors import InvalidRequestError

    exc.message = exc.message.replace("resubmit=True", f"vidbridge jobs resume {job_id} --resubmit")
    exc.args = (exc.message,)
    if isinstance(exc, InvalidRequestError) and exc.allowed:
        exc.allowed = exc.allowed.replace("resubmit=True", "--resubmit")


def _cmd_cancel(args: argparse.Namespace) -> int:
    from .cli import ExitCode, _emit_json, _say, credentials_from_args

    with _client(args) as client:
        result = client.cancel_job(args.job_id, credentials=credentials_from_args(args))
        status = client.job(args.job_id).status  # "completed" if it ended so before the cancel
    if args.json:
        _emit_json({"job_id": args.job_id, "status": status, "server_stopped": result.server_stopped,
                    "message": result.message})
    else:
        _say(f"{args.job_id} {status}: {result.message}")
    return ExitCode.OK


def _cmd_prune(args: argparse.Namespace) -> int:
    from .cli import ExitCode, _emit_json

    with _client(args) as client:
        from .resume import require_ledger

        deleted = require_ledger(client).prune(args.older_than * _SECONDS_PER_DAY)
    if args.json:
        _emit_json({"deleted": deleted})
    else:
        print(f"{deleted} job(s) removed from the ledger")
    return ExitCode.OK
