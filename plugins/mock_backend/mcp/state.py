"""The state one MCP face serves: the shared mock backend plus the Gallery, jobs and transfers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..backend import MockBackend
from .gallery import Gallery
from .jobs import JobRunner
from .transfer import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_TTL_SECONDS, TransferStore

DEFAULT_EVENT_LIMIT = 20  # WanGP's --job-event-limit default


@dataclass
class McpState:
    """Everything the tools of one server read and change.

    ``backend`` is the gradio face's :class:`~..backend.MockBackend` (options, output folder,
    counter, faults); ``event_limit`` is the default number of events in a job snapshot;
    ``lora_dir`` is where ``wangp_list_loras`` looks (``state_dir/loras``); ``load_delay`` is
    the seconds a job spends "loading the model" before its first step.
    """

    backend: MockBackend
    event_limit: int = DEFAULT_EVENT_LIMIT
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    transfer_ttl: float = DEFAULT_TTL_SECONDS
    load_delay: float = 0.0
    gallery: Gallery = field(default_factory=Gallery)

    def __post_init__(self) -> None:
        self.jobs = JobRunner(self.backend, self.gallery, self.load_delay)
        self.transfers = TransferStore(self.gallery, self.backend.output_dir / "mcp_uploads",
                                       ttl=self.transfer_ttl, max_bytes=self.max_upload_bytes)
        self.lora_dir: Path = self.backend.state_dir / "loras"

    def close(self) -> None:
        """Cancel the running job and wait for its thread (idempotent)."""
        self.jobs.close()
