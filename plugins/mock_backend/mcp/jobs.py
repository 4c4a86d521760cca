"""Generation jobs of WanGP's MCP face: one at a time per server, run on a worker thread.

A job's snapshot is what ``wangp_generate`` / ``wangp_get_job`` / ``wangp_cancel_job`` return:
``{job_id, done, cancel_requested, webui_submission_ready, webui_load_queue_token, created_at,
updated_at, events, result}``. Events are ``{kind, timestamp, data}``; the kinds the mock emits,
in order: ``started`` ``{"tasks": n}``, two ``stream`` lines (``{"stream": "stderr", "text"}``, the
server's log as recorded), ``status`` ("Loading model <name>..."), per denoising step
``progress`` (WanGP's ProgressUpdate fields) and ``preview`` (its PreviewUpdate fields, without
an image), ``status`` ("VAE Decoding..."), ``output``, then ``error`` (one per failure) and
``completed`` (the result without ``gallery_items``). The result is
``{success, cancelled, generated_files, errors, total_tasks, successful_tasks, failed_tasks,
artifacts, gallery_items}``; ``cancelled`` is true when every error is a cancellation.

Generation itself (validation, pixels, MP4 encoding, the counter, step faults) is the gradio
face's: :mod:`..generation`, :mod:`..video`, :mod:`..ledger`, :func:`..faults.fire_generation_faults`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import random
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import generation
from ..backend import MockBackend
from ..catalog import Model, load_models
from ..faults import GENERATION_KINDS, fire_generation_faults
from ..session import Task
from .gallery import Gallery
from .models import default_settings

MAX_STORED_EVENTS = 500  # WanGP keeps the newest 500 events of a job
BUSY_MESSAGE = "WanGP session already has a generation in progress"
CANCELLED_MESSAGE = "Generation was cancelled"
# What WanGP 12.60 reports for these inputs (its own Python errors, recorded as they are).
UNKNOWN_MODEL_MESSAGE = "'NoneType' object has no attribute 'get'"
NO_MODEL_MESSAGE = "No model_type specified"


class GenerationBusy(RuntimeError):
    """A second ``wangp_generate`` while one runs (WanGP's message)."""


class _TaskFailed(Exception):
    """One task ended with an error event (``stage``: validation, generation, runtime)."""

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.message, self.stage = message, stage


@dataclass(frozen=True)
class TaskSpec:
    """One task of a job: WanGP's task id (1-based position unless the task dict names one) and
    its settings (gallery ids already resolved to paths)."""

    task_id: Any
    params: dict[str, Any]


def tasks_of(source: dict[str, Any] | list[dict[str, Any]]) -> list[TaskSpec]:
    """The tasks of a ``wangp_generate`` source: a settings dict, a task dict
    (``{"id", "params", "plugin_data"}``), a manifest (``{"tasks": [...]}``) or a list of these."""
    manifest = isinstance(source, dict) and isinstance(source.get("tasks"), list)
    items = source["tasks"] if manifest else source
    items = items if isinstance(items, list) else [items]
    specs = []
    for index, item in enumerate(items, start=1):
        if isinstance(item.get("params"), dict):
            specs.append(TaskSpec(item.get("id", index), dict(item["params"])))
        else:
            specs.append(TaskSpec(index, dict(item)))
    return specs


class Job:
    """One job record: state replaced under a lock, events appended, read as snapshots."""

    def __init__(self, tasks: list[TaskSpec]) -> None:
        self.job_id = uuid.uuid4().hex
        self.tasks = tasks
        self.created_at = self.updated_at = time.time()
        self.events: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self.done = threading.Event()
        self.cancel_requested = threading.Event()
        self._lock = threading.Lock()

    def emit(self, kind: str, data: Any = None) -> None:
        """Append an event (the newest :data:`MAX_STORED_EVENTS` are kept)."""
        with self._lock:
            self.events.append({"kind": kind, "timestamp": time.time(), "data": copy.deepcopy(data)})
            del self.events[:-MAX_STORED_EVENTS]
            self.updated_at = time.time()

    def finish(self, result: dict[str, Any]) -> None:
        """Record the result (and its ``completed`` event); the job is done from then on."""
        self.emit("completed", result)
        with self._lock:
            self.result = copy.deepcopy(result)
            self.updated_at = time.time()
        self.done.set()

    def cancel(self) -> None:
        """Ask the job to stop at its next step (a no-op once done, as on WanGP)."""
        self.cancel_requested.set()
        with self._lock:
            self.updated_at = time.time()

    def snapshot(self, event_limit: int, gallery: Gallery) -> dict[str, Any]:
        """The job as the tools return it, with the newest ``event_limit`` (0..500) events."""
        limit = max(0, min(int(event_limit), MAX_STORED_EVENTS))
        with self._lock:
            events = copy.deepcopy(self.events[-limit:] if limit else [])
            result = copy.deepcopy(self.result)
            updated_at = self.updated_at
        if result is not None:
            files = {p.replace("\\", "/").casefold() for p in result["generated_files"]}
            result["gallery_items"] = [r for r in gallery.records(limit=500)
                                       if r["path"].replace("\\", "/").casefold() in files]
        return {"job_id": self.job_id, "done": self.done.is_set(),
                "cancel_requested": self.cancel_requested.is_set(),
                "webui_submission_ready": False, "webui_load_queue_token": "",
                "created_at": self.created_at, "updated_at": updated_at,
                "events": events, "result": result}


class JobRunner:
    """Starts jobs (refusing a second while one runs), keeps every job record, runs them."""

    def __init__(self, backend: MockBackend, gallery: Gallery, load_delay: float = 0.0) -> None:
        self.backend = backend
        self.gallery = gallery
        #: seconds between "Loading model ..." and the first step (a cancel then is seen after it)
        self.load_delay = load_delay
        self.rng = random.Random()
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._active: Job | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, tasks: list[TaskSpec]) -> Job:
        """Start a job on its own thread; GenerationBusy while another runs."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            if self._active is not None and not self._active.done.is_set():
                raise GenerationBusy(BUSY_MESSAGE)
            job = Job(tasks)
            self._jobs[job.job_id] = job
            self._active = job
            # Emitted before the call returns, so every snapshot a client sees has it.
            job.emit("started", {"tasks": len(tasks)})
            self._thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                            name=f"vidbridge-mock-mcp-job-{job.job_id[:8]}")
            self._thread.start()
        return job

    def get(self, job_id: str) -> Job:
        """A job by id; KeyError with WanGP's message when unknown."""
        with self._lock:
            job = self._jobs.get(str(job_id or "").strip())
        if job is None:
            raise KeyError(f"Unknown WanGP job_id: {job_id}")
        return job

    def cancel_running(self, timeout: float = 10.0) -> None:
        """Cancel the running job, if any, and wait until its thread has ended."""
        with self._lock:
            job, thread = self._active, self._thread
        if job is not None:
            job.cancel()
        if thread is not None:
            thread.join(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new jobs, cancel the running one and wait for its thread (idempotent)."""
        with self._lock:
            self._closed = True
        self.cancel_running(timeout)

    # --- the worker ------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        # WanGP captures its process's output into the job: mcp 1.10.1's INFO log of the request
        # handling appears as these two ``stream`` lines in every recorded job.
        stamp = time.strftime("[%m/%d/%y %H:%M:%S]")
        job.emit("stream", {"stream": "stderr", "text": f"{stamp} INFO     Processing request of type"
                                                        "            server.py:619"})
        job.emit("stream", {"stream": "stderr", "text": " " * 29 + "CallToolRequest" + " " * 36})
        files: list[str] = []
        errors: list[dict[str, Any]] = []
        artifacts: list[dict[str, Any]] = []
        successful = failed = 0
        for index, task in enumerate(job.tasks, start=1):
            if job.cancel_requested.is_set():
                break
            try:
                artifact = self._run_task(job, task)
            except Exception as exc:  # a job always finishes: else the server stays busy forever
                if not isinstance(exc, _TaskFailed):
                    exc = _TaskFailed(str(exc), "runtime")
                runtime = exc.stage == "runtime"  # WanGP loses the task's position there
                error = {"message": exc.message, "task_index": None if runtime else index,
                         "task_id": None if runtime else task.task_id, "stage": exc.stage,
                         "cancelled": False}
                job.emit("error", error)
                errors.append(error)
                if runtime:  # raised outside WanGP's task loop: the job ends
                    break
                failed += 1  # a failed task does not stop the next ones
                continue
            if artifact is None:
                break
            files.append(artifact["path"])
            artifacts.append(artifact)
            successful += 1
        if job.cancel_requested.is_set():
            index = min(successful + failed + 1, len(job.tasks))
            error = {"message": CANCELLED_MESSAGE, "task_index": index,
                     "task_id": job.tasks[index - 1].task_id, "stage": "cancelled", "cancelled": True}
            job.emit("error", error)
            errors.append(error)
            failed = max(failed, 1)
        job.finish({"success": not errors, "cancelled": bool(errors) and all(e["cancelled"] for e in errors),
                    "generated_files": files, "errors": errors, "total_tasks": len(job.tasks),
                    "successful_tasks": successful, "failed_tasks": failed, "artifacts": artifacts})
        with self._lock:
            if self._active is job:
                self._active = None

    def _run_task(self, job: Job, task: TaskSpec) -> dict[str, Any] | None:
        """Generate one task; its artifact record, or None when cancelled."""
        model_type = str(task.params.get("model_type") or "").strip()
        if not model_type:
            job.emit("stream", {"stream": "stdout", "text": f"  [SKIP] {NO_MODEL_MESSAGE}"})
            raise _TaskFailed(NO_MODEL_MESSAGE, "validation")
        model = load_models().get(model_type)
        if model is None:
            raise _TaskFailed(UNKNOWN_MODEL_MESSAGE, "runtime")
        params = {**default_settings(model), **task.params}
        try:
            _check_resolution(params.get("resolution"))
        except ValueError as exc:  # what WanGP's own unpacking says
            raise _TaskFailed(str(exc), "runtime") from None
        message = generation.validate(params, model)
        if message:
            raise _TaskFailed(message, "validation")
        seed = int(float(params.get("seed") if params.get("seed") is not None else -1))
        params["seed"] = seed if seed >= 0 else self.rng.randint(0, 999_999_999)
        params.setdefault("client_id", f"api_{time.time_ns()}_{task.task_id}")
        return self._generate(job, model, params)

    def _generate(self, job: Job, model: Model, params: dict[str, Any]) -> dict[str, Any] | None:
        backend = self.backend
        steps = max(1, int(float(params.get("num_inference_steps") or 1)))
        faults = backend.faults.take(GENERATION_KINDS)
        run = backend.ledger.start(prompt=str(params.get("prompt") or ""), seed=params["seed"],
                                   client_id=params["client_id"], model_type=model.model_type,
                                   session="mcp")
        job.emit("status", f"Loading model {model.name}...")
        if self.load_delay:  # WanGP finishes loading before it looks at a cancel request
            time.sleep(self.load_delay)
        try:
            for step in range(1, steps + 1):
                if job.cancel_requested.is_set():
                    backend.ledger.finish(run, "aborted")
                    return None
                if backend.options.step_delay:
                    job.cancel_requested.wait(backend.options.step_delay)
                fire_generation_faults(faults, step, steps, exit_process=backend.allowed_exit,
                                       error=_generation_error)
                job.emit("progress", _progress(step, steps))
                job.emit("preview", _preview(step, steps))
            job.emit("status", "VAE Decoding...")
            settings = generation.exported_settings(params, model)
            path = generation.render(Task(params), model, backend.output_dir, _dt.datetime.now(), settings)
            self.gallery.register(path, settings)
        except _TaskFailed:
            backend.ledger.finish(run, "failed")
            raise
        except Exception as exc:  # an encoder failure is the generation's error, not the server's
            backend.ledger.finish(run, "failed")
            raise _TaskFailed(f"The generation of the video has encountered an error: {exc}",
                              "generation") from exc
        backend.ledger.finish(run, "completed", str(path))
        artifact = _artifact(path, model, params["client_id"])
        job.emit("output", {"path": str(path), "media_type": artifact["media_type"]})
        return artifact


def _check_resolution(value: Any) -> None:
    """Raise ValueError for a resolution that is not ``WxH``, with the text WanGP's own code gives
    (it unpacks the split before converting: ``"abc"`` -> "not enough values to unpack ...")."""
    width, height = str(value).lower().split("x")
    int(width), int(height)


def _generation_error(message: str) -> _TaskFailed:
    return _TaskFailed(message, "generation")


def _progress(step: int, steps: int) -> dict[str, Any]:
    """WanGP's ProgressUpdate of a denoising step (its phase, status and 0-100 estimate)."""
    return {"phase": "inference", "status": f"Denoising {step}/{steps}",
            "progress": min(90, 20 + int(step / steps * 65)), "current_step": step,
            "total_steps": steps, "raw_phase": "Denoising", "unit": None}


def _preview(step: int, steps: int) -> dict[str, Any]:
    """WanGP's PreviewUpdate as the MCP face serialises it (the image itself is never sent)."""
    progress = _progress(step, steps)
    return {"has_image_preview": False, **{k: progress[k] for k in
                                           ("phase", "status", "progress", "current_step", "total_steps")}}


def _artifact(path: Path, model: Model, client_id: str) -> dict[str, Any]:
    """WanGP's GeneratedArtifact record (tensors are never produced by a file-writing run)."""
    image = model.rules.image
    return {"path": str(path), "media_type": "image" if image else "video", "client_id": client_id,
            "hdr": False, "audio_sampling_rate": None, "fps": None if image else float(model.rules.fps),
            "has_video_tensor_uint8": False, "has_video_tensor_hdr": False,
            "has_audio_tensor": False, "has_flashvsr_continue_cache": False}
