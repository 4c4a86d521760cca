"""vidbridge for Blender: generate video strips in the Sequencer through vidbridge.

Loads as a Blender 4.2+ extension (``blender_manifest.toml``) and, through ``bl_info``, as a
legacy add-on in Blender 3.x. Importing it is cheap: vidbridge itself is imported on first use,
and no thread starts until work is asked for (a generation, a resume, a connection check).

Scripting and farm use (the same code path as the Generate operator)::

    import vidbridge_blender as vb
    token = vb.generate(prompt="a paper boat", frames=17, seed=7, url="http://127.0.0.1:7860")
    assert vb.run_pending(timeout=900)      # pumps until every job has landed in the Sequencer
"""

from __future__ import annotations

import sys

bl_info = {
    "name": "vidbridge",
    "author": "vidbridge contributors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Sequencer > Sidebar > vidbridge",
    "description": "Generate video strips with Wan2GP (and other vidbridge backends)",
    "category": "Sequencer",
}

__all__ = ["register", "unregister", "generate", "run_pending", "cancel", "resume", "pending"]

_MODULES = ("props", "prefs", "operators", "panels")


def _submodules() -> list:
    import importlib

    return [importlib.import_module(f"{__name__}.{name}") for name in _MODULES]


def register() -> None:
    """Register the add-on's classes, properties and load handler (Blender calls this)."""
    from . import deps

    deps.add_bundled_site()
    for module in _submodules():
        module.register()
    from . import lifecycle

    lifecycle.register()
    # As an extension the package is ``bl_ext.<repo>.vidbridge_blender``: scripts still say
    # ``import vidbridge_blender``.
    sys.modules.setdefault("vidbridge_blender", sys.modules[__name__])


def unregister() -> None:
    """Stop all work (cancel unfinished jobs, end every thread) and unregister."""
    from . import lifecycle

    lifecycle.unregister()
    for module in reversed(_submodules()):
        module.unregister()
    if sys.modules.get("vidbridge_blender") is sys.modules[__name__] and __name__ != "vidbridge_blender":
        del sys.modules["vidbridge_blender"]


def _ensure_registered() -> None:
    """A script that imported the package without enabling the add-on (e.g. ``blender -b
    --factory-startup --python-expr``) gets it registered on first use."""
    import bpy

    if not hasattr(bpy.types.Scene, "vidbridge_jobs"):
        register()


def generate(prompt: str, **options):
    """Queue a generation from a script; returns its job token at once (see :func:`.api.generate`)."""
    _ensure_registered()
    from . import api

    return api.generate(prompt, **options)


def run_pending(timeout: float | None = None) -> bool:
    """Pump the job events on this (the main) thread until every job has landed (see :func:`.api.run_pending`)."""
    from . import api

    return api.run_pending(timeout)


def cancel(job_id: str) -> None:
    """Ask the server to cancel a job (token or vidbridge job id); returns at once."""
    from . import api

    api.cancel(job_id)


def resume(job_id: str, **options):
    """Follow an unfinished job of the scene again through the vidbridge job ledger
    (``resubmit=True``: generate an interrupted one again; see :func:`.api.resume`)."""
    _ensure_registered()
    from . import api

    return api.resume(job_id, **options)


def pending() -> int:
    """How many jobs of this Blender session have not landed yet."""
    from . import api

    return api.pending()
