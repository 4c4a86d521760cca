"""The example backend: a complete vidbridge plugin that "generates" a small PNG in-process.

Endpoints live on the host ``example.invalid`` (``http://example.invalid/anything``): nothing is
contacted, the host name is only how :func:`vidbridge_discover` recognises its own URLs. Each job
runs on its own thread for ``settings["steps"]`` steps of ``settings["step_delay"]`` seconds,
then draws a PNG. It shows every part of the contract a real plugin needs: validation before the
"network", push-style status (the status hook waits on a condition instead of polling), fetching
to a temporary name and renaming after verification, and a cancel that really stops the work.

Request settings (all optional):

* ``steps`` (int, 1..100, default 3): how many steps the job takes;
* ``step_delay`` (float seconds, 0..10, default 0.05): how long each step takes;
* ``fail_at_step`` (int): make the job fail at that step (to test a host's error handling).
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import threading
import time
import weakref
import zlib
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from vidbridge import (
    Artifact,
    BackendConnectionError,
    CancelResult,
    Endpoint,
    ErrorInfo,
    GenerationRequest,
    IntegrityError,
    InvalidRequestError,
    JobFailedError,
    JobRef,
    JobStatus,
    NotAttachableError,
    OutputRef,
    Phase,
    Provenance,
    hookimpl,
)

from . import __version__

NAME = "example"
HOST = "example.invalid"
MODELS = ("example-1",)
DEFAULT_SIZE = (32, 32)
MAX_SIDE = 256
#: setting name -> (type, smallest, largest, default)
SETTINGS: dict[str, tuple[type, float, float, Any]] = {
    "steps": (int, 1, 100, 3),
    "step_delay": (float, 0.0, 10.0, 0.05),
    "fail_at_step": (int, 1, 100, None),
}


def is_example_url(url: str) -> bool:
    """True for URLs on the example backend's host."""
    return (urlsplit(url).hostname or "").lower() == HOST


def make_png(width: int, height: int, seed: int) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` pixels: a gradient coloured by ``seed``."""
    red, green, blue = hashlib.sha256(str(seed).encode()).digest()[:3]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type "none"
        for x in range(width):
            rows += bytes(((red + 255 * x // width) % 256, (green + 255 * y // height) % 256, blue))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")


# -------------------------------------------------------------------------------------------------
# Session and job objects (the plugin's own types; the core hands them back to the hooks)
# -------------------------------------------------------------------------------------------------


class ExampleJob:
    """One generation, run on its own thread. State changes are announced on ``changed``."""

    def __init__(self, job_id: str, request: GenerationRequest, endpoint: Endpoint, options: dict[str, Any]) -> None:
        self.job_id = job_id
        self.backend_id = "ex-" + hashlib.sha256(f"{job_id}{time.time_ns()}".encode()).hexdigest()[:12]
        self.request = request
        self.endpoint = endpoint
        self.steps: int = options["steps"]
        self.step_delay: float = options["step_delay"]
        self.fail_at_step: int | None = options["fail_at_step"]
        self.size = request.size or DEFAULT_SIZE
        self.seed = request.seed if request.seed not in (None, -1) else random.randrange(2**32)
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.phase = Phase.QUEUED
        self.step = 0
        self.error: str | None = None
        self.image: bytes | None = None
        self.version = 0  # bumped on every change
        self.reported = 0  # the version the status hook last reported
        self.started = time.time()
        self.finished: float | None = None
        self.thread = threading.Thread(target=self._run, name=f"vidbridge-example-{job_id}", daemon=True)

    def _set(self, **changes: Any) -> None:
        with self.changed:
            for name, value in changes.items():
                setattr(self, name, value)
            if Phase(self.phase).is_terminal:
                self.finished = time.time()
            self.version += 1
            self.changed.notify_all()

    def _run(self) -> None:
        self._set(phase=Phase.INFERRING, step=0)
        for step in range(1, self.steps + 1):
            if self.stop.wait(self.step_delay):
                self._set(phase=Phase.CANCELLED)
                return
            if step == self.fail_at_step:
                self._set(phase=Phase.FAILED, error=f"the example backend failed at step {step} (fail_at_step)")
                return
            self._set(step=step)
        image = make_png(*self.size, self.seed)
        with self.changed:  # decide under the lock, so a cancel sees either completed or cancelled
            if self.stop.is_set():
                self._set(phase=Phase.CANCELLED)
            else:
                self._set(phase=Phase.COMPLETED, image=image)

    @property
    def done(self) -> bool:
        """True once the job completed, failed or was cancelled."""
        return Phase(self.phase).is_terminal


#: What the example "server" at each URL knows: its running and finished jobs by backend id, the
#: way a real server keeps them for any client that asks (weakly held: a job lives as long as the
#: session that started it keeps it).
_SERVER_JOBS: dict[str, weakref.WeakValueDictionary[str, ExampleJob]] = {}
_SERVER_LOCK = threading.Lock()


def _server_jobs(url: str) -> weakref.WeakValueDictionary[str, ExampleJob]:
    with _SERVER_LOCK:
        return _SERVER_JOBS.setdefault(url.rstrip("/"), weakref.WeakValueDictionary())


class ExampleSession:
    """A "connection" to an example endpoint: it owns the job threads and stops them on close."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.jobs: dict[str, ExampleJob] = {}
        self.lock = threading.Lock()
        self.closed = False

    def start(self, job: ExampleJob) -> None:
        """Run ``job`` (refused once the session is closed)."""
        with self.lock:
            if self.closed:
                raise BackendConnectionError("the example session is closed", endpoint=self.endpoint.url)
            self.jobs[job.job_id] = job
        _server_jobs(self.endpoint.url)[job.backend_id] = job
        job.thread.start()

    def close(self) -> None:
        """Stop every job thread and wait for it. Harmless to call twice."""
        with self.lock:
            self.closed = True
            jobs = list(self.jobs.values())
        for job in jobs:
            job.stop.set()
        for job in jobs:
            job.thread.join()


# -------------------------------------------------------------------------------------------------
# Validation (before any "network" call)
# -------------------------------------------------------------------------------------------------


def _check_request(request: GenerationRequest) -> dict[str, Any]:
    if request.model is not None and request.model not in MODELS:
        raise InvalidRequestError(
            f"model {request.model!r} is not served by the example backend", field="model", allowed=", ".join(MODELS)
        )
    if request.size is not None and max(request.size) > MAX_SIDE:
        raise InvalidRequestError(
            f"resolution {request.resolution} is too large for the example backend",
            field="resolution",
            allowed=f"up to {MAX_SIDE}x{MAX_SIDE}",
        )
    for field, files in request.input_files().items():
        if files:
            raise InvalidRequestError(f"the example backend takes no input media ({field})", field=field, allowed="none")
    options = {}
    for key in request.settings:
        if key not in SETTINGS:
            raise InvalidRequestError(
                f"unknown setting {key!r} for the example backend", field=f"settings.{key}", allowed=", ".join(SETTINGS)
            )
    for key, (kind, low, high, default) in SETTINGS.items():
        value = request.settings.get(key, default)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                raise InvalidRequestError(f"setting {key} must be a {kind.__name__}", field=f"settings.{key}",
                                          allowed=f"{kind.__name__} from {low} to {high}")
            if not low <= value <= high:
                raise InvalidRequestError(f"setting {key}={value} is out of range", field=f"settings.{key}",
                                          allowed=f"{low} to {high}")
            value = kind(value)
        options[key] = value
    return options


# -------------------------------------------------------------------------------------------------
# Hooks
# -------------------------------------------------------------------------------------------------


@hookimpl
def vidbridge_discover(options: Any) -> list[Endpoint]:
    """Claim the URLs on ``example.invalid``; there is nothing to probe locally."""
    return [
        Endpoint(url=url, backend=NAME, version=__version__, transport="in-process", models=MODELS, latency_ms=0.0)
        for url in options.urls
        if is_example_url(url)
    ]


@hookimpl
def vidbridge_connect(endpoint: Endpoint, credentials: Any, options: Any) -> ExampleSession:
    """Open a session; only example endpoints can be "reached"."""
    if not is_example_url(endpoint.url):
        raise BackendConnectionError(
            f"{endpoint.url} is not an example backend (its host must be {HOST})", endpoint=endpoint.url
        )
    return ExampleSession(endpoint)


@hookimpl
def vidbridge_validate(request: GenerationRequest) -> None:
    """Everything this backend refuses, checked on the host's thread before any "network" call."""
    _check_request(request)


@hookimpl
def vidbridge_job_ref(handle: ExampleJob) -> dict[str, Any]:
    """The backend's id of the job (what a real server would answer with)."""
    return {"backend_id": handle.backend_id}


@hookimpl
def vidbridge_attach(session: ExampleSession, ref: JobRef) -> ExampleJob:
    """Find the job by its backend id on the example "server" of this endpoint."""
    backend_id = ref.data.get("backend_id")
    if not isinstance(backend_id, str):
        raise NotAttachableError(f"{ref.job_id}: the reference holds no example backend id", endpoint=session.endpoint.url,
                                 reason="invalid")
    job = _server_jobs(session.endpoint.url).get(backend_id)
    if job is None:
        raise NotAttachableError(f"{ref.job_id}: the example backend no longer knows job {backend_id}",
                                 endpoint=session.endpoint.url, reason="unknown")
    return job


@hookimpl
def vidbridge_outputs(session: ExampleSession, handle: ExampleJob) -> list[OutputRef]:
    """The finished image, still "on the server"."""
    if handle.image is None:
        return []
    return [OutputRef(name=f"{handle.job_id}.png", url=f"{session.endpoint.url.rstrip('/')}/jobs/{handle.backend_id}.png",
                      size=len(handle.image), media_type="image/png")]


@hookimpl
def vidbridge_submit(session: ExampleSession, request: GenerationRequest, job_id: str) -> ExampleJob:
    """Validate, then start the job's thread."""
    job = ExampleJob(job_id, request, session.endpoint, _check_request(request))
    session.start(job)
    return job


@hookimpl
def vidbridge_status(handle: ExampleJob, current: JobStatus, wait: float) -> JobStatus:
    """Wait up to ``wait`` seconds for the job to change, then report it."""
    with handle.changed:
        handle.changed.wait_for(lambda: handle.version != handle.reported, timeout=wait)
        handle.reported = handle.version
        phase, step, error = Phase(handle.phase), handle.step, handle.error
    if phase is Phase.QUEUED:
        return current
    if phase is Phase.INFERRING:
        return current.evolve(phase=phase, step=step, total_steps=handle.steps, progress=step / handle.steps,
                              message=f"step {step}/{handle.steps}")
    if phase is Phase.FAILED:
        return current.evolve(phase=phase, error=ErrorInfo(type="JobFailedError", message=error or "failed"),
                              message=error)
    if phase is Phase.CANCELLED:
        return current.evolve(phase=phase, message="stopped by cancel")
    return current.evolve(phase=Phase.COMPLETED, message="image ready")


@hookimpl
def vidbridge_fetch(
    session: ExampleSession, handle: ExampleJob, destination: Path, progress: Callable[[int, int | None], None]
) -> list[Artifact]:
    """Write the image under a temporary name in ``destination``, verify it, rename it."""
    image = handle.image
    if image is None:
        raise JobFailedError(f"{handle.job_id} has no result ({Phase(handle.phase).value})", endpoint=session.endpoint.url)
    digest = hashlib.sha256(image).hexdigest()
    name = f"{handle.job_id}.png"
    final = Path(destination) / name
    temporary = Path(destination) / f".{name}.part"
    try:
        with open(temporary, "wb") as stream:
            stream.write(image)
            stream.flush()
            os.fsync(stream.fileno())
            progress(len(image), len(image))
        written = temporary.read_bytes()
        if len(written) != len(image) or hashlib.sha256(written).hexdigest() != digest:
            raise IntegrityError(f"{temporary} does not match the generated image", endpoint=session.endpoint.url)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    provenance = Provenance(
        backend=NAME,
        endpoint=session.endpoint.url,
        job_id=handle.job_id,
        model=handle.request.model or MODELS[0],
        seed=handle.seed,
        original_name=name,
        request=handle.request.model_dump(mode="json"),
        timings={"generate": (handle.finished or time.time()) - handle.started},
    )
    return [Artifact(path=final, size=len(image), sha256=digest, media_type="image/png", provenance=provenance)]


@hookimpl
def vidbridge_cancel(session: ExampleSession, handle: ExampleJob) -> CancelResult:
    """Stop the job's thread; a finished job is left as it is."""
    if handle.done:
        return CancelResult(server_stopped=False, message=f"job had already ended ({Phase(handle.phase).value})")
    handle.stop.set()
    handle.thread.join()
    if Phase(handle.phase) is Phase.CANCELLED:
        return CancelResult(server_stopped=True, message="the example backend stopped the job")
    return CancelResult(server_stopped=False, message=f"job had already ended ({Phase(handle.phase).value})")
