"""Where vidbridge comes from when Blender's Python has no copy of it.

An extension gets its bundled wheels installed by Blender itself (manifest ``wheels``). A legacy
add-on (Blender 3.x) cannot: it looks for a ``site`` folder beside this package (a
``pip install --target`` of vidbridge for that Python) or the folder named by
``VIDBRIDGE_BLENDER_SITE``, and puts it on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["add_bundled_site"]


def add_bundled_site() -> list[str]:
    """Add the bundled site folders that exist to ``sys.path``; returns the ones added."""
    here = Path(__file__).resolve().parent
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    candidates = [os.environ.get("VIDBRIDGE_BLENDER_SITE", ""), str(here / "site" / version)]
    added = []
    for folder in candidates:
        if folder and os.path.isdir(folder) and folder not in sys.path:
            sys.path.insert(0, folder)
            added.append(folder)
    return added
