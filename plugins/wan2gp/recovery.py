"""A WanGP server that went away mid-job: find the job's output on the restarted server, or prove
there is none (see ``RESTART.md`` beside this module for what WanGP 12.60 keeps across a restart).

What survives a WanGP restart is its ``outputs/`` folder (files any gradio session may download by
path), not the gradio session that held the task (its queue and gallery are in memory). So every
job asks WanGP to name its output file after the job: the form's ``output_filename`` (WanGP's
filename template) is set to a literal, unique stem (:func:`output_stem`), e.g.
``red_fox_in_snow_seed7_vb-3f9c2a1b``, and stored in the job reference. After a restart the file is
looked up by that name.

The decision (:func:`decide`) from what was observed (:class:`Evidence`):

=======================================  =========================================================
the named output file is served          the job completes from it (no second generation)
the server never came back (deadline)    ``JobLostError(output_possible=True)``: its process may
                                         still be running the task where this client cannot see
the same server process answers again    ``JobLostError(output_possible=True)``: the task may
(same gradio ``app_id``)                 still run in its gradio session
a new server process (``app_id``         ``JobLostError(output_possible=False)``: the process that
changed, or refused then back), no file  held the task is gone and wrote no file of that name;
                                         the core then submits the job once more (attempt 2)
a new server process, no output name     ``JobLostError(output_possible=True)``: an output under
(the server's form has no                an automatic name cannot be ruled out
``output_filename``, or the user set it)
=======================================  =========================================================
"""

from __future__ import annotations

import enum
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from vidbridge import BackendConnectionError, IntegrityError, JobLostError
from vidbridge.backend import check_stream, redact_url

from .gallery import GalleryItem

if TYPE_CHECKING:  # pragma: no cover
    from .job import Wan2GPJob
    from .session import Wan2GPSession

__all__ = ["ServerGone", "Evidence", "Decision", "decide", "output_stem", "candidate_paths",
           "Lookup", "find_output", "server_identity", "recover", "remember_folders"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

#: WanGP's default outputs folder (``server_config["save_path"]``), relative to its working folder.
DEFAULT_OUTPUT_DIR = "outputs"
#: Extensions WanGP gives outputs: its video containers (``video_container``), then images.
_EXTENSIONS = {".mp4": ("video", "video/mp4"), ".mkv": ("video", "video/x-matroska"),
               ".jpg": ("image", "image/jpeg"), ".png": ("image", "image/png")}
_WORD = re.compile(r"[A-Za-z0-9]+")


class ServerGone(BackendConnectionError):
    """The server stopped answering (connection refused) while a job ran on it: the job's
    recovery (:func:`recover`) decides what that means."""


def output_stem(prompt: str, seed: int | None, token: str | None = None) -> str:
    """A literal output name, unique to one submission: up to four prompt words, the seed (when
    fixed) and ``vb-<token>``. Only ``[A-Za-z0-9_-]``: WanGP's filename template keeps it as is."""
    words = "_".join(_WORD.findall(prompt)[:4])[:40].strip("_") or "video"
    seeded = f"_seed{seed}" if seed is not None and seed >= 0 else ""
    return f"{words}{seeded}_vb-{token or secrets.token_hex(4)}"


class Decision(enum.Enum):
    """What a job does after its server went away."""

    FETCH = "fetch"  # the output is on the server: complete from it
    RESUBMIT = "resubmit"  # provably no output and no task any more: JobLostError(output_possible=False)
    OUTPUT_POSSIBLE = "output_possible"  # cannot rule out an output: JobLostError(output_possible=True)


@dataclass(frozen=True)
class Evidence:
    """What a job's recovery observed.

    :param back: the server answered again before the deadline.
    :param restarted: a new server process answers (True), the same one (False), unknown (None).
    :param named: the job's output had a name of our own (so its absence proves something).
    :param found: the named output file is served.
    :param answered: every place the output could be answered "found" or "no such file" (a
        look-up cut by transient errors proves no absence).
    :param partial: the file found is not a whole container (cut short: its writer died).
    """

    back: bool
    restarted: bool | None
    named: bool
    found: bool
    answered: bool = True
    partial: bool = False


def decide(evidence: Evidence) -> Decision:
    """The recovery decision (table in the module docstring)."""
    if evidence.found and not evidence.partial:
        return Decision.FETCH
    if evidence.back and evidence.restarted and evidence.named and (evidence.answered or evidence.partial):
        return Decision.RESUBMIT
    return Decision.OUTPUT_POSSIBLE


def candidate_paths(stem: str, folders: list[str]) -> list[tuple[str, str, str]]:
    """``(server path, kind, media type)`` where WanGP may have written ``stem``: each known
    outputs folder (first) and WanGP's default, for each output extension."""
    seen: list[str] = []
    for folder in (f.rstrip("/") for f in [*folders, DEFAULT_OUTPUT_DIR]):
        if folder and folder not in seen:
            seen.append(folder)
    return [(f"{folder}/{stem}{ext}", kind, mime)
            for folder in seen for ext, (kind, mime) in _EXTENSIONS.items()]


@dataclass(frozen=True)
class Lookup:
    """The result of :func:`find_output`: the served item, if any, and whether every candidate
    answered (so that ``item is None`` proves the file is not there)."""

    item: GalleryItem | None
    answered: bool


def find_output(session: Wan2GPSession, stem: str, folders: list[str], *, tries: int = 4,
                stop: threading.Event | None = None) -> Lookup:
    """The served file named ``stem`` (any output extension). A candidate whose probe gets no
    telling answer (transient errors) is asked again, up to ``tries`` times, with a short back-off.
    Setting ``stop`` (the job's cancel) ends the back-off at once: the look-up is then unclear."""
    from .attach import probe

    stop = stop or threading.Event()
    answered = True
    for path, kind, mime in candidate_paths(stem, folders):
        item = GalleryItem(path=path, kind=kind, orig_name=path.rsplit("/", 1)[-1], mime_type=mime)
        for attempt in range(tries):
            found = probe(session, item)
            if found is not None:
                break
            if attempt + 1 < tries and stop.wait(min(0.25 * 2 ** attempt, 2.0)):
                return Lookup(None, False)
        if found:
            return Lookup(item, True)
        answered = answered and found is False
    return Lookup(None, answered)


class _Unclear(Exception):
    """A ranged read got no telling answer."""


class _RangeReader:
    """A read-only, seekable view of a server file that fetches only the byte ranges read (the
    container check reads a few box headers)."""

    def __init__(self, session: Wan2GPSession, item: GalleryItem, tries: int = 3) -> None:
        from .attach import file_url
        from .connection import headers_for

        self._session, self._url, self._tries = session, file_url(session, item), tries
        self._headers = headers_for(session.credentials)
        if session.server.cookies:
            self._headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in session.server.cookies.items())
        self._position = 0
        self.size = 0

    def _get(self, first: int, last: int) -> httpx.Response:
        for attempt in range(self._tries):
            try:
                response = self._session.http.get(self._url, headers={**self._headers, "Range": f"bytes={first}-{last}"},
                                                  timeout=self._session.options.request_timeout)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code in (206, 416):
                return response
            if attempt + 1 < self._tries:
                time.sleep(min(0.25 * 2 ** attempt, 2.0))
        raise _Unclear()

    def open(self) -> int:
        """Read the file's size (``Content-Range``); :raises _Unclear: no ranged answer."""
        total = self._get(0, 0).headers.get("content-range", "").rpartition("/")[2]
        if not total.isdigit():
            raise _Unclear()
        self.size = int(total)
        return self.size

    def seek(self, offset: int, whence: int = 0) -> int:
        self._position = offset if whence == 0 else self._position + offset if whence == 1 else self.size + offset
        return self._position

    def read(self, count: int = -1) -> bytes:
        end = self.size if count < 0 else min(self.size, self._position + count)
        if end <= self._position:
            return b""
        data = self._get(self._position, end - 1).content[: end - self._position]
        self._position += len(data)
        return data


def whole_output(session: Wan2GPSession, item: GalleryItem) -> bool | None:
    """Whether the served MP4 ``item`` is a whole container (its boxes tile the file, ``moov``
    included), read through a few ranged requests: True, False (cut short), or None (not an MP4,
    or no telling answer: the download's own verification decides)."""
    if item.mime_type != "video/mp4":
        return None
    reader = _RangeReader(session, item)
    try:
        check_stream(reader, reader.open(), item.mime_type)  # type: ignore[arg-type]
    except IntegrityError:
        return False
    except _Unclear:
        return None
    return True


def server_identity(session: Wan2GPSession) -> str | None:
    """The answering server process's gradio ``app_id`` (new for every process), or None."""
    try:
        response = session.http.get(f"{session.url}/config", timeout=session.options.request_timeout,
                                    headers=session.credentials.header_values())
        value = response.json().get("app_id") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return None if value is None else str(value)


def recover(job: Wan2GPJob, gone: ServerGone) -> list[GalleryItem]:
    """The job's outputs from the restarted server, found by their name, or the JobLostError
    that says whether an output is still possible (see :func:`decide`).

    :raises JobCancelledError: the job was cancelled while waiting for the server.
    """
    from .errors import cancelled

    session = job.session
    job.server_gone = True  # the gradio session died with the process: nothing more to say to it
    if job.pooled is not None:
        job.pooled.broken = True
    before = job.server_id
    back = True
    try:
        session.wait_until_up(session.options.connect_deadline(), gone, stop_event=job.flow.stop)
    except ServerGone:
        back = False
    restarted: bool | None = None
    if back:
        # Refused, then answering: a new process, unless both app_ids are known and equal.
        after = server_identity(session)
        restarted = before is None or after is None or before != after
    stem = job.flow.output_stem
    lookup = (find_output(session, stem, session.output_folders, stop=job.flow.stop) if back and stem
              else Lookup(None, False))
    snapshot = job.state.snapshot()
    if snapshot.cancel_requested:
        raise cancelled(session.url, snapshot.server_stopped) from None
    item = lookup.item
    # A new process serving the file: was it written to the end, or cut by the crash?
    partial = item is not None and restarted is True and whole_output(session, item) is False
    decision = decide(Evidence(back=back, restarted=restarted, named=bool(stem), found=item is not None,
                               answered=lookup.answered, partial=partial))
    shown = redact_url(session.url)
    log.info("%s: %s: server went away (%s); back=%s restarted=%s output=%s: %s", shown, job.job_id,
             gone.message, back, restarted, item.path if item else None, decision.value)
    if decision is Decision.FETCH:
        assert item is not None
        return [item]
    if decision is Decision.RESUBMIT:
        what = (f"its output {item.path!r} was cut short when the process died (not a whole video)"
                if partial and item is not None else f"no output named {stem!r} for this job")
        raise JobLostError(f"{shown}: the server restarted during the generation; the new server process "
                           f"has no task and {what}", endpoint=shown, output_possible=False)
    why = ("the server did not answer again in time (its process may still be generating)" if not back
           else "the same server process answers again (the task may still run in its gradio session)"
           if restarted is False else "the output has no name of its own, so its absence proves nothing"
           if not stem else "the look-up of its output got no clear answer (transient errors), so it may exist")
    raise JobLostError(f"{shown}: {gone.message}; {why}", endpoint=shown, output_possible=True)


def remember_folders(session: Wan2GPSession, items: list[GalleryItem]) -> None:
    """Note the server folders ``items`` were written to (where outputs are looked up by name)."""
    for item in items:
        folder = item.path.rsplit("/", 1)[0] if "/" in item.path else ""
        if folder and folder not in session.output_folders:
            session.output_folders.append(folder)
