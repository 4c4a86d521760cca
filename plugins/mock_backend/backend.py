"""Server-wide state of one mock WanGP: options, folders, remembered model, counter, faults."""

from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .catalog import Model, get_model, load_models
from .faults import MCP_DEFAULT_ROUTES, FaultSet
from .ledger import Ledger

DEFAULT_MODEL = "t2v"


@dataclass
class BackendOptions:
    """What a mock server is configured with (see :class:`.server.MockServer`)."""

    step_delay: float = 0.0
    output_dir: str | None = None
    state_dir: str | None = None
    model: str | None = None
    faults: tuple[str, ...] = ()
    full_surface: bool = False
    # Serve WanGP's MCP face instead of the gradio web UI (see the ``mcp`` subpackage).
    mcp: bool = False
    # The ``exit`` fault ends the process: only allowed where that is what the caller wants.
    allow_exit: bool = False


@dataclass
class MockBackend:
    """Everything shared by all sessions of one server.

    ``state_dir`` holds ``wgp_config.json`` (the remembered last model, which survives restarts
    like WanGP's) and ``settings/<model>.json`` (defaults overwritten by ``save_inputs`` with
    ``target="settings"``); outputs go to ``output_dir`` (default ``state_dir/outputs``), and
    the generation counter to ``generations.jsonl``: like WanGP's outputs folder, both survive
    a restart of the server on the same state folder.
    """

    options: BackendOptions
    ledger: Ledger = field(default_factory=Ledger)
    faults: FaultSet = field(default_factory=FaultSet)
    exit_process: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        opts = self.options
        self.state_dir = Path(opts.state_dir or tempfile.mkdtemp(prefix="vidbridge-mock-"))
        self.output_dir = Path(opts.output_dir) if opts.output_dir else self.state_dir / "outputs"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "settings").mkdir(parents=True, exist_ok=True)
        self.ledger.persist_to(self.state_dir / "generations.jsonl")
        if opts.mcp:
            self.faults.default_routes = MCP_DEFAULT_ROUTES
        for spec in opts.faults:
            self.faults.add(spec)
        self._lock = threading.Lock()
        self._interrupt = False
        remembered = self._read_config().get("last_model_type")
        start = opts.model or remembered or DEFAULT_MODEL
        if start not in load_models():
            raise ValueError(f"unknown model {start!r}")
        self._last_model = start
        self._write_config()

    @property
    def allowed_exit(self) -> Callable[[int], None] | None:
        """What an ``exit`` fault may call to end the process, or None when it may not."""
        return self.exit_process if self.options.allow_exit else None

    @property
    def config_file(self) -> Path:
        return self.state_dir / "wgp_config.json"

    def _read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _write_config(self) -> None:
        self.config_file.write_text(json.dumps({"last_model_type": self._last_model}), encoding="utf-8")

    @property
    def last_model(self) -> Model:
        """The server's last used model: new sessions start on it, view_api defaults follow it."""
        with self._lock:
            return get_model(self._last_model)

    def remember_model(self, model_type: str) -> None:
        with self._lock:
            self._last_model = model_type
            self._write_config()

    def save_default_settings(self, model_type: str, settings: dict[str, Any]) -> Path:
        """What WanGP does for ``save_inputs(target="settings")``: overwrite the model's defaults."""
        path = self.state_dir / "settings" / f"{model_type}.json"
        path.write_text(json.dumps(settings, default=str, indent=1), encoding="utf-8")
        self.ledger.event("settings_overwritten")
        return path

    def interrupt_running_generation(self, by: Any) -> None:
        """WanGP's ``wan_model._interrupt = True``: the generation running now, in any session,
        stops at its next step. Counted as ``interrupt`` (and ``interrupt_other_session`` when
        another session's generation was hit, which a careful client never causes)."""
        with self._lock:
            self._interrupt = True
        self.ledger.event("interrupt")

    def take_interrupt(self, session: Any) -> bool:
        """True once after :meth:`interrupt_running_generation`, for the running generation."""
        with self._lock:
            hit, self._interrupt = self._interrupt, False
        if hit and not session.abort_requested:
            self.ledger.event("interrupt_other_session")
        return hit

    def reset_interrupt(self) -> None:
        """A generation starts: an interrupt asked while nothing ran does not carry over."""
        with self._lock:
            self._interrupt = False
