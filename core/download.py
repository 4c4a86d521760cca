"""Download a backend's output to a local folder and prove it arrived whole.

:func:`download_verified` is what every plugin's ``vidbridge_fetch`` uses. One attempt:

1. stream the body into ``.<name>.<random>.part`` *in the destination folder* (same file system,
   so the final rename is atomic), hashing as it goes, in constant memory: the calling thread
   reads the network while a small writer thread hashes and writes (both release the GIL), with
   at most a few MiB in flight between them; the disk's writeback is started as the data
   arrives, so the final ``fsync`` has little left to wait for;
2. verify byte count (Content-Length, ``expected_size``), SHA-256 (``expected_sha256``) and the
   container structure (:func:`vidbridge.containers.check_container`);
3. claim a final name that does not exist yet (``video.mp4``, ``video (1).mp4``...) without ever
   replacing a file, even against concurrent downloads of the same name;
4. write the sidecar manifest ``<name>.json`` atomically.

A failed attempt removes its ``.part`` file and, if the failure is transient (network, 5xx,
429, verification), the whole attempt is repeated under :func:`vidbridge.retry.retrying`.

A download can be cancelled (``cancel=``, or the :class:`FetchScope` a job activates around its
plugin's fetch): it is checked between network reads, so it stops within one read (a server
that sends nothing at all holds a read until the client's read timeout), and the
download then stops its writer thread, removes its ``.part`` file and raises
:class:`~vidbridge.errors.JobCancelledError`. It is checked for the last time before the final
name is claimed: after that the artifact is finished, and reported to the scope.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import datetime
import hashlib
import itertools
import json
import logging
import math
import os
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import httpx

from . import __version__
from .containers import check_container, sniff_media_type
from .errors import IntegrityError, InvalidRequestError, JobCancelledError
from .filenames import numbered, safe_filename
from .httperrors import raise_for_status, redact_url, translate_http_error
from .models import Artifact, Provenance, guess_media_type
from .retry import retrying

__all__ = ["download_verified", "safe_filename", "FetchScope", "current_fetch_scope"]

log = logging.getLogger("vidbridge.download")

#: The granularity of size checks and progress: the network delivers up to 64 KiB per read anyway
#: (httpcore); a bigger chunk (an in-memory body, a decompressed one) is cut into views this big.
READ_SIZE = 64 * 1024
#: The reader hands the writer thread the body in batches of about this many bytes (the network
#: delivers up to 64 KiB per read; a batch is one ``writev``).
BATCH_SIZE = 1024 * 1024
#: ... and at most this many reads per batch (``writev`` takes at most IOV_MAX = 1024 buffers).
BATCH_PIECES = 256
#: Batches waiting for the writer. The body in memory is at most (QUEUE_DEPTH + 2) batches
#: (queued, being filled, being written), about 6 MiB, whatever the file's size.
QUEUE_DEPTH = 4
#: With ``durable=True``, writeback to the disk is started after every this many bytes written
#: (``posix_fadvise(POSIX_FADV_DONTNEED)``), so the disk works while the network still delivers.
FLUSH_WINDOW = 8 * 1024 * 1024
#: Progress is reported at most once per this many bytes (plus once at the start and the end).
PROGRESS_EVERY = 256 * 1024
#: Give up looking for a free " (n)" name after this many taken ones.
MAX_COLLISIONS = 10_000
#: At interpreter exit, downloads still running get this many seconds to stop and clean up.
EXIT_GRACE = 2.0

# Serialises the final rename on file systems without hard links (see _claim).
_RENAME_LOCK = threading.Lock()


class FetchScope:
    """What the downloads of one fetch share with the job that asked for them.

    A :class:`~vidbridge.Job` activates one around its plugin's ``vidbridge_fetch``; every
    :func:`download_verified` running in that context (the plugin's thread, not threads it starts
    itself) then stops when :meth:`cancel` is called, and records each artifact it finished in
    :attr:`artifacts`, so that files already verified are known even if a later one then fails.

    :ivar cancelled: set by :meth:`cancel`.
    :ivar artifacts: the artifacts finished (file and manifest written) in this scope, in order.
    """

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.artifacts: list[Artifact] = []

    def cancel(self) -> None:
        """Stop the downloads of this scope (those running and those not started yet)."""
        self.cancelled.set()

    @contextlib.contextmanager
    def active(self) -> Iterator[FetchScope]:
        """Make this the scope of :func:`download_verified` calls in the ``with`` block."""
        token = _SCOPE.set(self)
        try:
            yield self
        finally:
            _SCOPE.reset(token)


class _Running(NamedTuple):
    stop: threading.Event
    finished: threading.Event


# The attempts in progress, by .part file. A program that ends while a (daemon) worker thread is
# still downloading, e.g. after a second Ctrl-C, would otherwise freeze that thread mid-write and
# leave the .part file behind: at exit, each one is cancelled and waited for a moment.
_RUNNING: dict[Path, _Running] = {}
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _cancel_running_downloads(grace: float | None = None) -> None:
    with _RUNNING_LOCK:
        running = dict(_RUNNING)
    for attempt in running.values():
        attempt.stop.set()
    deadline = time.monotonic() + (EXIT_GRACE if grace is None else grace)
    for part, attempt in running.items():
        if not attempt.finished.wait(max(0.0, deadline - time.monotonic())):
            part.unlink(missing_ok=True)  # stuck in a read: its writer writes to a nameless file


_SCOPE: contextvars.ContextVar[FetchScope | None] = contextvars.ContextVar("vidbridge_fetch_scope", default=None)


def current_fetch_scope() -> FetchScope | None:
    """The :class:`FetchScope` active here, if any: a plugin that downloads with code of its own
    (not :func:`download_verified`) checks its ``cancelled`` event to stop when the job is cancelled."""
    return _SCOPE.get()


class _Received(NamedTuple):
    size: int
    sha256: str


def _open_part(destination: Path, name: str) -> tuple[Path, IO[bytes]]:
    """Create ``.<name>.<random>.part`` exclusively, unbuffered; its mode follows the umask like any new file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        path = destination / f".{name}.{secrets.token_hex(4)}.part"
        try:
            return path, os.fdopen(os.open(path, flags, 0o666), "wb", buffering=0)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def _announced_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


_END = None  # tells the writer thread there is nothing more to write


def _pieces(chunks: Iterator[bytes]) -> Iterator[bytes | memoryview]:
    """``chunks`` as they come, a chunk bigger than :data:`READ_SIZE` cut into zero-copy views
    (so size checks and progress keep their granularity whatever the transport delivers)."""
    for chunk in chunks:
        if len(chunk) <= READ_SIZE:
            yield chunk
        else:
            view = memoryview(chunk)
            for start in range(0, len(chunk), READ_SIZE):
                yield view[start : start + READ_SIZE]


def _write_all(fd: int, pieces: Sequence[bytes | memoryview]) -> int:
    """Write ``pieces`` to ``fd`` in order, all of them (a short write is continued); return the count."""
    total = sum(map(len, pieces))
    done = os.writev(fd, pieces) if hasattr(os, "writev") else 0
    if done < total:  # no writev (Windows), or a short write: finish piece by piece
        for piece in pieces:
            if done >= len(piece):
                done -= len(piece)
                continue
            view = memoryview(piece)[done:]
            done = 0
            while view:
                view = view[os.write(fd, view) :]
    return total


class _Writer:
    """Hashes and writes batches of the body in a thread of its own, behind a bounded queue.

    hashlib and ``os.write`` release the GIL on large buffers, so this overlaps with the network
    reads of the calling thread. The writer uses its own duplicate of the file descriptor, so an
    interrupted caller that closes the file can never make it write into another file.
    """

    def __init__(self, fd: int, *, durable: bool) -> None:
        self.digest = hashlib.sha256()
        self.error: BaseException | None = None
        self._fd = os.dup(fd)
        self._flush = durable and hasattr(os, "posix_fadvise")
        self._queue: queue.Queue[list[bytes | memoryview] | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidbridge-download-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        written = flushed = 0
        try:
            while (batch := self._queue.get()) is not _END:
                if self._stop.is_set() or self.error is not None:
                    continue  # keep draining so that the reader never blocks on a full queue
                try:
                    for piece in batch:
                        self.digest.update(piece)
                    written += _write_all(self._fd, batch)
                    if self._flush and written - flushed >= FLUSH_WINDOW:
                        self._start_writeback(flushed, written - flushed)
                        flushed = written
                except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
                    self.error = exc
        finally:
            os.close(self._fd)

    def _start_writeback(self, offset: int, length: int) -> None:
        try:  # starts writing the range to the disk without waiting for it; advice only
            os.posix_fadvise(self._fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:  # pragma: no cover - e.g. a file system that does not support it
            self._flush = False

    def put(self, batch: list[bytes | memoryview]) -> None:
        """Queue ``batch`` (blocking while the queue is full); raise the writer's error, if any."""
        if self.error is not None:
            raise self.error
        self._queue.put(batch)

    def finish(self) -> None:
        """Wait until everything queued is written; raise the writer's error, if any."""
        self._queue.put(_END)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Discard what is queued and wait for the thread (at most the batch being written)."""
        self._stop.set()
        self._queue.put(_END)
        self._thread.join()


def _stream_into(
    response: httpx.Response,
    out: IO[bytes],
    *,
    announced: int | None,
    expected_size: int | None,
    progress: Callable[[int, int | None], None] | None,
    fail: Callable[[str], IntegrityError],
    durable: bool = True,
    check_cancel: Callable[[], None] = lambda: None,
) -> tuple[int, int, str]:
    """Copy the body to ``out``; return (bytes written, bytes on the wire, SHA-256 hex).

    Content-Length and progress count bytes on the wire, which differ from the bytes written
    only if the server compressed despite ``Accept-Encoding: identity``. ``out`` must be
    unbuffered or empty: the body is written to its file descriptor directly.
    """
    encoded = response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
    size = wire = reported = 0
    total = announced if announced is not None else expected_size
    if progress:
        progress(0, total)
    writer = _Writer(out.fileno(), durable=durable)
    try:
        batch: list[bytes | memoryview] = []
        batched = 0
        for piece in itertools.chain(_pieces(response.iter_bytes()), [b""]):  # b"": the last batch
            check_cancel()
            if piece:
                size += len(piece)
                wire = response.num_bytes_downloaded if encoded else size
                # Stop as soon as the body outgrows what was promised: a runaway server must not
                # fill the disk (the offending piece is not even written).
                if (announced is not None and wire > announced) or (expected_size is not None and size > expected_size):
                    raise fail(f"received more than the {total} bytes announced")
                batch.append(piece)
                batched += len(piece)
            if batch and (not piece or batched >= BATCH_SIZE or len(batch) >= BATCH_PIECES):
                writer.put(batch)
                batch, batched = [], 0
            if progress and piece and wire - reported >= PROGRESS_EVERY:
                progress(wire, total)
                reported = wire
        del batch, piece
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    if progress and wire != reported:
        progress(wire, total)
    return size, wire, writer.digest.hexdigest()


def _fetch(
    http: httpx.Client,
    url: str,
    out: IO[bytes],
    *,
    headers: httpx.Headers,
    expected_size: int | None,
    progress: Callable[[int, int | None], None] | None,
    fail: Callable[[str], IntegrityError],
    server: str,
    action: str,
    durable: bool = True,
    check_cancel: Callable[[], None] = lambda: None,
) -> _Received:
    try:
        with http.stream("GET", url, headers=headers) as response:
            raise_for_status(response, endpoint=server, action=action)
            announced = _announced_length(response)
            if announced is not None and expected_size is not None and announced != expected_size:
                raise fail(f"server announces {announced} bytes, expected {expected_size}")
            size, wire, sha256 = _stream_into(
                response, out, announced=announced, expected_size=expected_size, progress=progress, fail=fail,
                durable=durable, check_cancel=check_cancel,
            )  # fmt: skip
            # Compare on the wire: with a Content-Encoding, Content-Length counts encoded bytes.
            if announced is not None and wire != announced:
                raise fail(f"received {wire} of the {announced} bytes announced (truncated)")
    except httpx.HTTPError as exc:
        raise translate_http_error(exc, endpoint=server, action=action) from exc
    return _Received(size, sha256)


def _verify(
    part: Path,
    received: _Received,
    *,
    name: str,
    expected_size: int | None,
    expected_sha256: str | None,
    media_type: str | None,
    fail: Callable[[str], IntegrityError],
) -> str:
    """Check size, hash and container; return the media type."""
    if expected_size is not None and received.size != expected_size:
        raise fail(f"received {received.size} bytes, expected {expected_size}")
    if expected_sha256 is not None and received.sha256 != expected_sha256.lower():
        raise fail(f"SHA-256 is {received.sha256}, expected {expected_sha256.lower()} (corrupted)")
    if media_type is None:
        with open(part, "rb") as stream:
            media_type = sniff_media_type(stream.read(16)) or guess_media_type(name)
    try:
        check_container(part, media_type)
    except IntegrityError as exc:
        raise fail(exc.message) from None
    return media_type


def _candidates(name: str) -> Iterator[str]:
    for number in range(MAX_COLLISIONS):
        yield numbered(name, number)
    raise FileExistsError(f"no free name for {name!r}: {MAX_COLLISIONS} numbered copies exist")


def _inside(destination: Path, name: str) -> Path:
    # safe_filename guarantees this; checked anyway because a mistake here writes anywhere. The
    # check is on the name, not on the resolved target: an existing symlink of that name (even a
    # dangling one, or one pointing elsewhere) is a taken name to skip, never a path to follow.
    if name in ("", ".", "..") or Path(name).name != name:
        raise InvalidRequestError(f"file name {name!r} leaves {str(destination)!r}", field="original_name")
    return destination / name


def _claim(part: Path, destination: Path, name: str, *, manifest: bool) -> Path:
    """Give the verified ``part`` its final name, never replacing an existing file.

    ``os.link`` fails if the target exists, atomically, even between processes: two downloads of
    the same name end up as ``name`` and ``name (1)``. Where hard links are unsupported (FAT,
    some network shares) a process-wide lock around check-then-``os.replace`` protects at least
    the threads of this process.
    """
    for candidate in _candidates(name):
        target = _inside(destination, candidate)
        if manifest and os.path.lexists(_manifest_path(target)):
            continue  # do not adopt somebody else's sidecar
        try:
            os.link(part, target)
        except FileExistsError:
            continue
        except OSError as exc:
            log.debug("hard links unavailable in %s (%s); renaming under a lock", destination, exc)
            with _RENAME_LOCK:
                if os.path.lexists(target):
                    continue
                os.replace(part, target)
            return target
        os.unlink(part)
        return target
    raise AssertionError("unreachable: _candidates raises when exhausted")  # pragma: no cover


def _manifest_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _write_manifest(target: Path, record: Mapping[str, Any], *, durable: bool = True) -> Path:
    """Write ``<target>.json`` via a temporary file and ``os.replace``: never half-written."""
    path = _manifest_path(target)
    part, out = _open_part(target.parent, path.name)
    try:
        with out:
            _write_all(out.fileno(), [json.dumps(record, indent=2, sort_keys=True).encode("utf-8")])
            if durable:
                os.fsync(out.fileno())
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def _manifest_record(artifact: Artifact, *, url: str) -> dict[str, Any]:
    provenance = artifact.provenance.model_dump(mode="json")
    provenance["endpoint"] = redact_url(provenance["endpoint"])
    return {
        "vidbridge_version": __version__,
        "path": artifact.path.name,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "media_type": artifact.media_type,
        "original_name": artifact.provenance.original_name,
        "url": redact_url(url),
        "downloaded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "provenance": provenance,
    }


def _check_url(http: httpx.Client, url: str) -> None:
    try:
        scheme = http.build_request("GET", url).url.scheme  # resolves a relative URL on base_url
    except httpx.InvalidURL:
        scheme = ""
    if scheme not in ("http", "https"):
        raise InvalidRequestError(f"{redact_url(url)!r} is not an http(s) URL", field="url")


def download_verified(
    http: httpx.Client,
    url: str,
    destination: Path,
    *,
    original_name: str,
    provenance: Provenance,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    media_type: str | None = None,
    headers: Mapping[str, str] | None = None,
    attempts: int = 4,
    progress: Callable[[int, int | None], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    manifest: bool = True,
    durable: bool = True,
    cancel: threading.Event | None = None,
) -> Artifact:
    """Download ``url`` into the folder ``destination``, verify it, and return the :class:`~vidbridge.Artifact`.

    The body is streamed (constant memory, whatever the size) into a hidden ``.part`` file in
    ``destination`` and only given its final name once it is verified, so a file under the final
    name is always complete. The final name is :func:`safe_filename` of ``original_name``,
    numbered ``name (1).ext``, ``name (2).ext``... if taken: an existing file is never replaced,
    not even by a concurrent download of the same name.

    Verification: the byte count equals the server's Content-Length (no more, no less) and
    ``expected_size``; the SHA-256 equals ``expected_sha256``; the container is well formed
    (MP4/MOV box structure, PNG chunks and CRCs, JPEG/GIF trailers, RIFF sizes, see
    :mod:`vidbridge.containers`), judged by content, not by name.

    :param http: the client to use; its base URL, auth, timeouts and transport apply.
    :param url: what to download. Printed and stored only without its query string.
    :param destination: an existing folder.
    :param original_name: the server's name for the file, untrusted (recorded in the provenance).
    :param provenance: where the artifact comes from; must not contain credentials.
    :param expected_size: the size in bytes, if known in advance.
    :param expected_sha256: the SHA-256 (hex), if known in advance.
    :param media_type: e.g. ``"video/mp4"``; default: sniffed from the content, else from the name.
    :param headers: extra request headers (e.g. auth). Never logged nor stored.
    :param attempts: tries in total; transient errors (connection, timeout, HTTP 5xx, 429 with
        its Retry-After honoured) and failed verifications are retried.
    :param progress: called with ``(bytes_so_far, total_or_None)``: at the start, at most every
        256 KiB, and once with the final count. A retry starts again from 0.
    :param sleep: waits between attempts; injectable for tests.
    :param manifest: also write ``<final name>.json`` describing the file (see below).
    :param cancel: set it (from any thread) to stop the download within one network read; the
        ``.part`` file is removed and :class:`~vidbridge.errors.JobCancelledError` raised. Default:
        the ``cancelled`` event of the active :class:`FetchScope`, if any. Waits between attempts
        end early too when ``sleep`` is the default ``time.sleep``.
    :param durable: ``fsync`` the file (and the manifest) before giving it its final name, so that
        even after a power loss or kernel crash a file under the final name is complete. This
        costs the time the disk needs to store the bytes; to hide most of it, writeback is
        started every :data:`FLUSH_WINDOW` bytes while the download runs, so the final ``fsync``
        waits only for the tail (the download then runs at the slower of network and disk).
        ``False`` skips all of that: every verification and the atomic, no-clobber naming still
        hold for the running system, but after a crash of the machine (not merely of this
        process) within the kernel's writeback delay (typically 30 s) the final name may hold
        a truncated or zero-filled file. Use it only for scratch output that can be fetched again.
    :returns: the artifact, its provenance's ``original_name`` set. The manifest (when written)
        holds ``vidbridge_version``, ``path`` (the file name, relative to the manifest), ``size``,
        ``sha256``, ``media_type``, ``original_name``, ``url`` (no query), ``downloaded_at``
        (UTC, ISO 8601) and ``provenance``.
    :raises IntegrityError: the last attempt failed verification.
    :raises TransportError: the last attempt failed to connect, timed out (``JobTimeoutError``)
        or got HTTP 429/5xx.
    :raises AuthenticationError: HTTP 401/403 (not retried).
    :raises BackendError: another HTTP error status (not retried).
    :raises JobCancelledError: ``cancel`` was set before the file got its final name (not retried).
    :raises InvalidRequestError: ``destination`` is not a folder, or ``url`` is not HTTP(S).
    :raises OSError: ``destination`` cannot be written (disk full, permissions), or holds
        :data:`MAX_COLLISIONS` numbered copies of the name already (``FileExistsError``).
    """
    destination = Path(destination)
    if not destination.is_dir():
        raise InvalidRequestError(f"destination {str(destination)!r} is not a folder", field="destination")
    _check_url(http, url)
    name = _inside(destination, safe_filename(original_name, media_type=media_type)).name
    server = redact_url(provenance.endpoint) if provenance.endpoint else redact_url(url, origin_only=True)
    action = f"downloading {name}"
    # Ask for the bytes as stored, so Content-Length, SHA-256 and the file all describe the same bytes.
    request_headers = httpx.Headers({"Accept-Encoding": "identity"})
    request_headers.update(headers or {})  # case-insensitive: the caller's values win
    provenance = provenance.model_copy(update={"original_name": original_name})

    def fail(reason: str) -> IntegrityError:
        return IntegrityError(f"{action} from {server}: {reason}", endpoint=server)

    scope = current_fetch_scope()
    if cancel is None and scope is not None:
        cancel = scope.cancelled
    stop = cancel if cancel is not None else threading.Event()  # never set: nothing can cancel

    def check_cancel() -> None:
        if stop.is_set():
            raise JobCancelledError(f"{action} from {server}: cancelled", endpoint=server, server_stopped=False)

    if sleep is time.sleep:  # the real wait: let a cancel end it (an injected one is the test's)
        sleep = stop.wait

    def attempt() -> Artifact:
        check_cancel()  # before creating anything: a cancelled fetch starts no download
        part, out = _open_part(destination, name)
        running = _Running(stop, threading.Event())
        with _RUNNING_LOCK:
            _RUNNING[part] = running
        try:
            return finish(part, out)
        finally:
            with _RUNNING_LOCK:
                del _RUNNING[part]
            running.finished.set()  # only now: at exit, a named file waits for its manifest

    def finish(part: Path, out: IO[bytes]) -> Artifact:
        log.debug("%s from %s into %s", action, redact_url(url), part)
        try:
            with out:
                received = _fetch(
                    http, url, out, headers=request_headers, expected_size=expected_size,
                    progress=progress, fail=fail, server=server, action=action, durable=durable,
                    check_cancel=check_cancel,
                )  # fmt: skip
                if durable:
                    os.fsync(out.fileno())  # the data is on disk before the name says "complete"
            kind = _verify(
                part, received, name=name, expected_size=expected_size, expected_sha256=expected_sha256,
                media_type=media_type, fail=fail,
            )  # fmt: skip
            check_cancel()  # the last moment: once named, the artifact is finished and reported
            target = _claim(part, destination, name, manifest=manifest)
        finally:
            part.unlink(missing_ok=True)  # no-op after a successful claim; cleans up anything else
        artifact = Artifact(
            path=target, size=received.size, sha256=received.sha256, media_type=kind, provenance=provenance
        )
        if manifest:
            manifest_path = _write_manifest(target, _manifest_record(artifact, url=url), durable=durable)
            artifact = artifact.model_copy(update={"manifest_path": manifest_path})
        log.debug("downloaded %s: %d bytes, sha256 %s", target, received.size, received.sha256)
        if scope is not None:
            scope.artifacts.append(artifact)
        return artifact

    # No overall time limit: a large download may legitimately take longer than the default
    # policy's, and ``attempts`` bounds the work anyway.
    return retrying(attempts=attempts, sleep=sleep, max_delay=math.inf)(attempt)
