"""What the implemented endpoints do: WanGP's generation flow, per session.

Each handler takes the session and a dict of its API parameters by name and returns the values
of its outputs in order (a tuple, or a single value for one output). :mod:`.app` adapts them to
gradio functions with the recorded signatures.
"""

from __future__ import annotations

import datetime as _dt
import functools
import inspect
import json
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr

from . import generation
from .backend import MockBackend
from .catalog import Model, base_models, finetunes, get_model, load_models
from .faults import (GENERATION_KINDS, HANDLER_KINDS, Fault, fire_generation_faults, fire_output_faults,
                     fire_writing_faults)
from .session import Session
from .spec import Surface, load_surface

WEBFORM_ERROR = ("Webform can not be used as the App has been restarted since the form was "
                 "displayed. Please refresh the page")
# Ids of WanGP's three model dropdowns (family, base model, model) in the recording.
FAMILY_DROPDOWN, BASE_MODEL_DROPDOWN, MODEL_DROPDOWN = 16, 17, 18


def model_choices(model: Model) -> list[tuple[str, str]]:
    models = load_models()
    return [(models[t].name, t) for t in finetunes(model.model_type)]


def model_dropdown_updates(model: Model) -> dict[int, dict[str, Any]]:
    """Constructor/update arguments of the three model dropdowns when ``model`` is selected."""
    recorded = load_surface().components[BASE_MODEL_DROPDOWN].choices or []
    # WanGP orders and groups base models its own way; where the recording shows that family's
    # list, reproduce it, otherwise list the family's architectures.
    if model.architecture in {c[1] if isinstance(c, tuple) else c for c in recorded}:
        bases: list[Any] = list(recorded)
    else:
        bases = base_models(model.ui_family)
    return {
        FAMILY_DROPDOWN: {"value": model.ui_family},
        BASE_MODEL_DROPDOWN: {"choices": bases, "value": model.architecture},
        MODEL_DROPDOWN: {"choices": model_choices(model), "value": model.model_type},
    }


class FormLayout:
    """The form of WanGP: the names, component ids and defaults of ``save_inputs``' parameters."""

    def __init__(self, surface: Surface) -> None:
        save_inputs = surface.endpoint("save_inputs")
        self.names = save_inputs.parameter_names
        self.ids = dict(zip(self.names, save_inputs.input_ids))
        self.names_by_id = {cid: name for name, cid in self.ids.items()}
        self._defaults = {p["parameter_name"]: p.get("parameter_default")
                          for p in save_inputs.parameters}

    def model_updates(self, model: Model) -> dict[int, dict[str, Any]]:
        """Arguments of the form components whose choices or defaults depend on the model."""
        rules = model.rules
        return {
            self.ids["resolution"]: {"choices": list(model.resolutions),
                                     "value": model.default_resolution},
            self.ids["video_length"]: {"value": max(rules.default_frames, model.min_frames)},
            **model_dropdown_updates(model),
        }

    def defaults(self, model: Model) -> dict[str, Any]:
        """The form values a model starts with."""
        values = dict(self._defaults)
        values.update(resolution=model.default_resolution,
                      video_length=max(model.rules.default_frames, model.min_frames))
        return values


class Handlers:
    """The implemented endpoints, keyed by function name in :attr:`by_name`."""

    def __init__(self, backend: MockBackend, form: FormLayout, surface: Surface) -> None:
        self.backend = backend
        self.form = form
        self.surface = surface
        self.rng = random.Random()
        self.by_name: dict[str, Callable[..., Any]] = {
            "save_inputs": self.save_inputs,
            "process_prompt_and_add_tasks": self.process_prompt_and_add_tasks,
            "prepare_generate_media": self.nothing,
            "early_stop_generation": self.early_stop_generation,
            "activate_status": self.activate_status,
            "refresh_status_async": self.refresh_status_async,
            "process_tasks": self.process_tasks,
            "refresh_gallery": self.refresh_gallery,
            "finalize_generation": self.finalize_generation,
            "unload_model_if_needed": self.unload_model_if_needed,
            "abort_generation": self.abort_generation,
            "clear_queue_action": self.clear_queue_action,
            "change_model_from_target": self.change_model_from_target,
            "fill_inputs": self.fill_inputs,
            "refresh_model_dropdowns": self.refresh_model_dropdowns,
            "load_settings_from_file": self.load_settings_from_file,
            "init_generate": self.init_generate,
        }
        self.by_name = {name: self._with_busy_fault(name, handler) for name, handler in self.by_name.items()}

    def _with_busy_fault(self, name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``handler``, first waiting out the ``busy`` faults set for function ``name``; each call
        that runs is recorded (per session, in order) in the ledger."""
        def wait(session: Session) -> None:
            for fault in self.backend.faults.take(HANDLER_KINDS, path=name):
                time.sleep(fault.number("seconds", 1.0))
            self.backend.ledger.call(session.id, name)

        if inspect.isgeneratorfunction(handler):
            @functools.wraps(handler)
            def generator(session: Session, *args: Any, **kwargs: Any) -> Iterator[Any]:
                wait(session)
                yield from handler(session, *args, **kwargs)
            return generator

        @functools.wraps(handler)
        def function(session: Session, *args: Any, **kwargs: Any) -> Any:
            wait(session)
            return handler(session, *args, **kwargs)
        return function

    # --- form and queue ------------------------------------------------------------------

    def nothing(self, session: Session, values: dict[str, Any]) -> None:
        return None

    def save_inputs(self, session: Session, values: dict[str, Any]) -> None:
        target = values.get("target")
        form = {k: v for k, v in values.items() if k != "target"}
        if target == "settings":  # the dangerous default of the plain /save_inputs copy
            model = get_model(session.model_type)
            self.backend.save_default_settings(model.model_type,
                                               generation.exported_settings(form, model))
            gr.Info("New Default Settings saved")
            return None
        session.forms[session.model_type] = form
        return None

    def process_prompt_and_add_tasks(self, session: Session, values: dict[str, Any]) -> Any:
        model_type = values["model_choice"]
        if not session.forms or model_type != session.model_type:
            raise gr.Error(WEBFORM_ERROR)
        form = session.forms.get(model_type)
        if form is None:
            # Live WanGP fails here without a gr.Error (an opaque error for API clients).
            raise RuntimeError(f"no inputs saved for {model_type}")
        model = get_model(model_type)
        session.validate_success = 0
        message = generation.validate(form, model)
        if message is None:
            tasks = generation.expand_tasks(form, model, self.rng)
            with session.changed:
                session.queue.extend(tasks)
                session.validate_success = 1
                session.changed.notify_all()
        else:
            gr.Info(message)
        return gr.update(value=generation.queue_html(session.queue))

    def abort_generation(self, session: Session, values: dict[str, Any]) -> Any:
        """Both copies, with WanGP's rules: with ``client_id``, a queued task of that id is removed,
        unless it is first in the queue while the session is ``in_progress``; without one, the
        first task is removed unless ``in_progress``. Otherwise (in progress) the generation is
        aborted: this session's abort flag, and WanGP's model-wide interrupt, which stops
        whatever generation runs on the server, any session's (``in_progress`` lasts until
        ``finalize_generation``, so a client that skips it aborts other users' work here)."""
        client_id = values.get("client_id")
        with session.changed:
            queue = session.queue
            if queue:
                if client_id:
                    for index, task in enumerate(queue):
                        if task.client_id == client_id:
                            if index == 0 and session.in_progress:
                                break
                            del queue[index]
                            session.changed.notify_all()
                            return gr.update(value=generation.queue_html(queue))
                elif not session.in_progress:
                    del queue[0]
                    session.changed.notify_all()
                    if not session.ran:
                        # WanGP then counts the task in a counter only a run creates: the task
                        # is gone, but API clients see an opaque error.
                        raise RuntimeError("no generation state in this session")
                    return gr.update(value=generation.queue_html(queue))
            if not session.in_progress:
                if not session.ran and not client_id:
                    # Measured on the live 12.60 (CONTRACT.md): an opaque error before any run.
                    raise RuntimeError("no generation state in this session")
                return gr.update(value=generation.queue_html(queue))
            session.abort_requested = True
            session.progress.status = "Processing Request to abort Current Generation"
            session.changed.notify_all()
        self.backend.interrupt_running_generation(session)
        gr.Info("Processing Request to abort Current Generation")
        return gr.update(value=generation.queue_html(session.queue))

    def clear_queue_action(self, session: Session, values: dict[str, Any]) -> Any:
        """Drops the queue; while ``in_progress`` (see :meth:`abort_generation`) it also aborts the
        running task through the model-wide interrupt."""
        with session.changed:
            interrupt = session.in_progress
            if interrupt:
                session.abort_requested = True
            session.queue[:] = session.queue[:1] if session.generating else []
            session.changed.notify_all()
        if interrupt:
            self.backend.interrupt_running_generation(session)
        return gr.update(value=generation.queue_html(session.queue))

    def early_stop_generation(self, session: Session, values: dict[str, Any]) -> None:
        session.early_stop_requested = True
        return None

    # --- running ---------------------------------------------------------------------------

    def activate_status(self, session: Session, values: dict[str, Any]) -> Any:
        """WanGP's: turns the session's status display on, but only right after a
        process_prompt_and_add_tasks that queued a task; returns a timestamp (None otherwise)."""
        if session.validate_success != 1:
            return None
        with session.changed:
            session.status_display = True
        return str(time.time())

    def refresh_status_async(self, session: Session, values: dict[str, Any],
                             progress: Any = None) -> Iterator[Any]:
        """WanGP's status feed: yields each pending status text once (and reports denoising
        (step, total) through gr.Progress) for as long as the status display is on.

        Exactly like WanGP, it ends only when the display is off: only process_tasks turns it off,
        when it ends or finds an empty queue. Activated after its task already ended, the feed
        never ends, and since gradio runs one call of this endpoint at a time, every later status
        feed on the server waits behind it (CONTRACT.md, step 3).
        """
        self.backend.ledger.event("status_feed_started")
        try:
            while True:
                with session.changed:
                    status, step, total = (session.progress.status, session.progress.step,
                                           session.progress.total)
                    session.progress.status, session.progress.step = "", 0
                    display = session.status_display
                if progress is not None and total and step:
                    progress((step, total), desc=status or None, unit="steps")
                if status:
                    yield status
                if not display:
                    return
                session.wait_for_change(0.5)
        finally:
            self.backend.ledger.event("status_feed_ended")

    def process_tasks(self, session: Session, values: dict[str, Any]) -> Iterator[Any]:
        """Runs the session's queue, one task after the other; yields only timestamps.

        As WanGP: an empty queue turns the status display off and ends at once; a failed task
        empties the queue, autosaves it (a gr.Info), turns the display off and raises gr.Error;
        the end of the queue sets a "Total Generation Time" status and turns the display off.
        """
        if not session.queue:
            with session.changed:
                session.status_display = False
                session.changed.notify_all()
            yield None, None, None
            return
        started = time.time()
        with session.changed:
            session.generating = session.ran = session.in_progress = True
            session.progress.status = "Generating..."
        failed = False
        try:
            stamp = str(time.time())
            yield stamp, stamp, gr.update()
            while True:
                with session.changed:
                    if not session.queue or session.abort_requested:
                        break
                    task = session.queue[0]
                try:
                    aborted = self._run_task(session, task)
                except gr.Error:
                    failed = True
                    with session.changed:
                        session.queue.clear()
                    gr.Info("Error Queue autosaved successfully to error_queue.zip")
                    raise
                with session.changed:
                    if session.queue and session.queue[0] is task:
                        session.queue.pop(0)
                    if aborted:
                        session.queue.clear()
                stamp = str(time.time())
                yield stamp, stamp, gr.update()
        finally:
            with session.changed:
                aborted_run = session.abort_requested
                session.generating = False
                session.abort_requested = False
                session.early_stop_requested = False
                session.progress.step, session.progress.total = 0, 0
                if not failed:
                    elapsed = f"{time.time() - started:.1f}s"
                    session.progress.status = (f"Video generation was aborted. Total Generation Time: {elapsed}"
                                               if aborted_run else f"Total Generation Time: {elapsed}")
                session.status_display = False
                session.changed.notify_all()

    def _run_task(self, session: Session, task: Any) -> bool:
        """Generate one task; returns True when it was aborted. Raises gr.Error on failure."""
        model = get_model(task.params["model_type"])
        steps = max(1, int(float(task.params.get("num_inference_steps") or 1)))
        faults = self.backend.faults.take(GENERATION_KINDS)
        run = self.backend.ledger.start(prompt=task.prompt, seed=task.params["seed"],
                                        client_id=task.client_id, model_type=model.model_type,
                                        session=session.id)
        self.backend.reset_interrupt()
        try:
            session.notify(status="Generating...", step=0, total=0)
            session.notify(status=f"Loading model {model.name}...")
            for step in range(1, steps + 1):
                if session.abort_requested or self.backend.take_interrupt(session):
                    self.backend.ledger.finish(run, "aborted")
                    return True
                if self.backend.options.step_delay:
                    time.sleep(self.backend.options.step_delay)
                self._fire(faults, step, steps)
                session.notify(status=f"Denoising {step}/{steps}", step=step, total=steps)
                if session.early_stop_requested:
                    break
            session.notify(status="Decoding...", step=0, total=0)
            now = _dt.datetime.now()
            settings = generation.exported_settings(task.params, model)
            path = generation.render(task, model, self.backend.output_dir, now, settings)
            fire_writing_faults(faults, path, exit_process=self.backend.allowed_exit, error=gr.Error)
        except gr.Error:
            self.backend.ledger.finish(run, "failed")
            raise
        except Exception as exc:
            self.backend.ledger.finish(run, "failed")
            raise gr.Error(f"The generation of the video has encountered an error: {exc}") from exc
        with session.changed:
            session.gallery.append((str(path), generation.gallery_caption(path)))
        self.backend.ledger.finish(run, "completed", str(path))
        fire_output_faults(faults, exit_process=self.backend.allowed_exit, error=gr.Error)
        return False

    def _fire(self, faults: list[Fault], step: int, steps: int) -> None:
        fire_generation_faults(faults, step, steps, exit_process=self.backend.allowed_exit,
                               error=gr.Error)

    # --- results -----------------------------------------------------------------------------

    def _gallery_update(self, session: Session) -> Any:
        with session.changed:
            items = list(session.gallery)
        return gr.update(value=items, selected_index=len(items) - 1 if items else None)

    def _gen_info(self, session: Session) -> str:
        return f"<div>{len(session.gallery)} file(s) generated</div>"

    def refresh_gallery(self, session: Session, values: dict[str, Any]) -> tuple:
        return (len(session.gallery), self._gallery_update(session), 0, "", 0, "",
                self._gen_info(session), generation.queue_html(session.queue))

    def finalize_generation(self, session: Session, values: dict[str, Any]) -> tuple:
        """The end of WanGP's Generate chain: clears ``in_progress`` (see :meth:`abort_generation`)
        and returns the gallery, after WanGP's own 0.2 s pause."""
        time.sleep(0.2)
        with session.changed:
            session.in_progress = False
            session.early_stop_requested = False
        return (len(session.gallery), self._gallery_update(session), "", 0, "",
                generation.queue_html(session.queue))

    def unload_model_if_needed(self, session: Session, values: dict[str, Any]) -> None:
        """Last step of the Generate chain (frees the model under WanGP's "unload" policy)."""
        self.backend.ledger.event("unload_model_if_needed")
        return None

    def init_generate(self, session: Session, values: dict[str, Any]) -> tuple:
        return "", str(time.time())

    # --- models ------------------------------------------------------------------------------

    def change_model_from_target(self, session: Session, values: dict[str, Any]) -> tuple:
        model_type = str(values.get("model_type") or "")
        model = get_model(model_type)  # KeyError -> opaque error, like the real app
        session.model_type = model.model_type
        self.backend.remember_model(model.model_type)
        return gr.update(), gr.update(value=f"**{model.name}**")

    def fill_inputs(self, session: Session, values: dict[str, Any]) -> tuple:
        """The session model's form: saved (or default) values, and the model's choices for the
        components that depend on it (this is what widens the session's resolution choices)."""
        model = get_model(session.model_type)
        saved = session.forms.get(model.model_type) or self.form.defaults(model)
        model_args = self.form.model_updates(model)
        outputs = []
        for cid in self.surface.endpoint("fill_inputs").output_ids:
            name = self.form.names_by_id.get(cid)
            args = dict(model_args.get(cid, {}))
            if name in saved and name not in generation.MEDIA_KEYS:
                allowed = _values(args.get("choices"))
                if not allowed or saved[name] in allowed:
                    args["value"] = saved[name]
            outputs.append(gr.update(**args))
        return tuple(outputs)

    def refresh_model_dropdowns(self, session: Session, values: dict[str, Any]) -> tuple:
        updates = model_dropdown_updates(get_model(session.model_type))
        return (gr.update(**updates[FAMILY_DROPDOWN]), gr.update(**updates[BASE_MODEL_DROPDOWN]),
                gr.update(**updates[MODEL_DROPDOWN]), "")

    def load_settings_from_file(self, session: Session, values: dict[str, Any]) -> tuple:
        """Loads a WanGP settings JSON into the session (needs ``model_type`` and ``mode``)."""
        path = values.get("file_path")
        settings = json.loads(Path(str(path)).read_text(encoding="utf-8"))
        model = get_model(settings["model_type"])
        settings["mode"]  # the real app fails (opaquely) without it
        form = self.form.defaults(model)
        form.update({k: v for k, v in settings.items() if k in self.form.ids})
        session.model_type = model.model_type
        session.forms[model.model_type] = form
        gr.Info(f"Settings loaded for model '{model.name}'")
        return gr.update(), gr.update(), None


def _values(choices: Any) -> list[Any]:
    return [c[1] if isinstance(c, (tuple, list)) else c for c in (choices or [])]
