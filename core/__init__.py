"""vidbridge: one reliable way for host applications to talk to generative-video backends.

Quick use (``url`` is a server's address, e.g. ``"http://127.0.0.1:7860"``)::

    import vidbridge

    with vidbridge.connect(url) as session:
        job = session.submit(prompt="a red fox in snow", frames=17, output_dir="outputs")
        for status in job.updates():                 # every change, from the job's own thread
            print(status.phase.value, status.queue_position, status.progress)
        for artifact in job.result():                # verified files in output_dir
            print(artifact.path, artifact.sha256)
        saved = job.ref.to_json()                    # find the work again later: client.attach(saved)

``submit`` returns at once; waiting happens only where you ask for it (``result``, ``wait``,
iteration, or their asyncio twins ``aresult``, ``await_``, ``aupdates``).

The namespace is flat and lazy: names are imported on first use, so ``import vidbridge`` is cheap
and starts no threads. (Lazy loading also lets ``vidbridge.plugins.mock_backend`` run in an
environment that holds only gradio.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "VidbridgeError": "errors",
    "InvalidRequestError": "errors",
    "PluginError": "errors",
    "BackendError": "errors",
    "TransportError": "errors",
    "BackendConnectionError": "errors",
    "TransientServerError": "errors",
    "RateLimitedError": "errors",
    "AuthenticationError": "errors",
    "RejectedError": "errors",
    "JobFailedError": "errors",
    "JobLostError": "errors",
    "JobCancelledError": "errors",
    "JobTimeoutError": "errors",
    "IntegrityError": "errors",
    "IncompatibleServerError": "errors",
    "NotAttachableError": "errors",
    "LedgerError": "errors",
    # models
    "Phase": "models",
    "Endpoint": "models",
    "Credentials": "models",
    "LoRA": "models",
    "GenerationRequest": "models",
    "JobStatus": "models",
    "ErrorInfo": "models",
    "Artifact": "models",
    "Provenance": "models",
    "CancelResult": "models",
    "JobRef": "refs",
    "OutputRef": "refs",
    # plugin contract
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "DiscoverOptions": "context",
    "ConnectOptions": "context",
    "get_plugin_manager": "manager",
    "PluginManager": "manager",
    # host API
    "Client": "client",
    "Session": "session",
    "Job": "job",
    "connect": "client",
    "discover": "client",
    "download_verified": "download",
    # job ledger
    "Ledger": "ledger",
    "JobRecord": "ledger_records",
    "ArtifactRecord": "ledger_records",
    "AttemptRecord": "ledger_records",
    # server pools
    "PoolSession": "pool",
    "HealthService": "health",
    "ServerHealth": "health",
    "HealthEvent": "health",
    "RoutingPolicy": "routing",
    "SoonestStart": "routing",
    "Candidate": "routing",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vidbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # cache: later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .client import Client, connect, discover
    from .context import ConnectOptions, DiscoverOptions
    from .download import download_verified
    from .errors import (
        AuthenticationError,
        BackendConnectionError,
        BackendError,
        IncompatibleServerError,
        IntegrityError,
        InvalidRequestError,
        JobCancelledError,
        JobFailedError,
        JobLostError,
        JobTimeoutError,
        LedgerError,
        NotAttachableError,
        PluginError,
        RateLimitedError,
        RejectedError,
        TransientServerError,
        TransportError,
        VidbridgeError,
    )
    from .hookspecs import hookimpl, hookspec
    from .job import Job
    from .ledger import Ledger
    from .ledger_records import ArtifactRecord, AttemptRecord, JobRecord
    from .models import (
        Artifact,
        CancelResult,
        Credentials,
        Endpoint,
        ErrorInfo,
        GenerationRequest,
        JobStatus,
        LoRA,
        Phase,
        Provenance,
    )
    from .manager import PluginManager, get_plugin_manager
    from .refs import JobRef, OutputRef
    from .session import Session
    from .pool import PoolSession
    from .health import HealthEvent, HealthService, ServerHealth
    from .routing import Candidate, RoutingPolicy, SoonestStart
