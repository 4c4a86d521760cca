"""Plugins import only documented public names of vidbridge: ``vidbridge`` (the contract's types)
and ``vidbridge.backend`` (helpers for plugin authors), never the core's implementation modules.

Every module of every built-in plugin is parsed (imports inside functions included), so a new
``from vidbridge.retry import ...`` fails here, naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vidbridge
import vidbridge.backend

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
PUBLIC = {"vidbridge": set(vidbridge.__all__), "vidbridge.backend": set(vidbridge.backend.__all__)}


def non_public_imports(source: str, filename: str) -> list[str]:
    """``"file:line: what"`` for each import of a vidbridge name that is not public."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vidbridge.") and not alias.name.startswith("vidbridge.plugins") \
                        and alias.name not in PUBLIC:
                    found.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if module != "vidbridge" and not module.startswith("vidbridge."):
                continue
            if module.startswith("vidbridge.plugins"):
                continue  # the plugins' own packages
            allowed = PUBLIC.get(module)
            if allowed is None:
                found.append(f"{filename}:{node.lineno}: from {module} import ... (not a public module)")
                continue
            found.extend(f"{filename}:{node.lineno}: from {module} import {alias.name} (not in __all__)"
                         for alias in node.names if alias.name not in allowed)
    return found


@pytest.mark.parametrize("path", sorted(PLUGINS.rglob("*.py")), ids=lambda p: str(p.relative_to(PLUGINS)))
def test_plugin_modules_import_only_public_names(path: Path) -> None:
    assert non_public_imports(path.read_text(encoding="utf-8"), str(path.relative_to(PLUGINS))) == []


def test_the_checker_catches_private_imports() -> None:
    source = ("from vidbridge.retry import retrying\nimport vidbridge.httperrors\n"
              "def f():\n    from vidbridge import _EXPORTS\n    from vidbridge.backend import nothing\n"
              "from vidbridge import Phase\nfrom vidbridge.backend import redact_url\n"
              "from vidbridge.plugins.wan2gp import api\nimport os\nfrom . import x\n")
    assert non_public_imports(source, "x.py") == [
        "x.py:1: from vidbridge.retry import ... (not a public module)",
        "x.py:2: import vidbridge.httperrors",
        "x.py:4: from vidbridge import _EXPORTS (not in __all__)",
        "x.py:5: from vidbridge.backend import nothing (not in __all__)",
    ]


def test_backend_helpers_are_the_core_implementations() -> None:
    from vidbridge import download, httperrors, redaction, retry

    assert vidbridge.backend.retrying is retry.retrying
    assert vidbridge.backend.translate_http_error is httperrors.translate_http_error
    assert vidbridge.backend.redact_url is httperrors.redact_url
    assert vidbridge.backend.download_verified is download.download_verified
    assert vidbridge.backend.register_secrets is redaction.register_secrets
    assert vidbridge.backend.__doc__ and "plugin authors" in vidbridge.backend.__doc__
