"""Every use of gradio_client's non-public attributes, in one place.

gradio_client has no API for what a long-running host needs here, so this module reaches into a
``Client`` and checks first that what it touches is still there: :func:`check` raises
:class:`GradioClientChanged` naming the attribute when a gradio_client release renames or removes
one (a test runs it against the installed release, so CI fails loudly instead of hosts hanging).
"""

from __future__ import annotations

from typing import Any

from .workers import DaemonExecutor

__all__ = ["GradioClientChanged", "EXECUTORS", "check", "use_daemon_workers", "end_jobs"]

#: The Client attributes holding its thread pools, and the workers each gets (x max_workers).
EXECUTORS = {"executor": 1, "helper_executor": 2, "stream_executor": 0}


class GradioClientChanged(RuntimeError):
    """The installed gradio_client no longer has an internal attribute vidbridge relies on."""


def check(client: Any) -> None:
    """Raise :class:`GradioClientChanged` unless ``client`` has every attribute used here."""
    missing = [name for name in EXECUTORS if not hasattr(client, name)]
    if missing:
        raise GradioClientChanged(
            f"gradio_client {getattr(client, '__module__', '')}: Client has no {', '.join(missing)}; "
            "vidbridge.plugins.wan2gp.compat must be updated for this release")


def use_daemon_workers(client: Any, max_workers: int) -> None:
    """Give ``client`` thread pools of daemon threads (see :mod:`.workers`), before any call.

    The sizes keep gradio_client's own rule: a call's two helpers have their own pool, the event
    stream reader its own thread, so no pool can starve the others.
    """
    check(client)
    for name, per_worker in EXECUTORS.items():
        old = getattr(client, name)
        setattr(client, name, DaemonExecutor(max(1, per_worker * max_workers), f"wan2gp-{name}"))
        old.shutdown(wait=False)  # never used: it has no threads yet


def end_jobs(jobs: list[Any]) -> None:
    """Stop following gradio jobs that have not ended: each is cancelled the way gradio_client does
    it (the server is asked to stop the event and completes it; the local helpers end), so the
    event stream they held closes. Never raises."""
    for job in jobs:
        try:
            if job is not None and not job.done():
                job.cancel()
        except Exception:  # noqa: BLE001 - best effort while closing
            pass
