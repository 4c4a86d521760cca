"""The documentation points to where the fault syntax really is documented.

README's "Mock backend" section and the package docstring send readers to a module for the fault
spec syntax and the admin routes; that module's docstring must hold both (every fault kind the
parser accepts and every admin route).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import vidbridge.plugins.mock_backend as package
from vidbridge.plugins.mock_backend import faults

README = Path(__file__).resolve().parents[2] / "README.md"


def _documents_the_faults(doc: str) -> list[str]:
    """What ``doc`` lacks of the fault documentation (empty: complete)."""
    kinds = faults.HTTP_KINDS | faults.GENERATION_KINDS | faults.HANDLER_KINDS
    wanted = [f"``{kind}``" for kind in sorted(kinds)]
    wanted += ["KIND[:key=value", f"{faults.ADMIN_PREFIX}/faults", f"{faults.ADMIN_PREFIX}/counter",
               f"{faults.ADMIN_PREFIX}/options", f"{faults.ADMIN_PREFIX}/health"]
    return [item for item in wanted if item not in doc]


def test_the_faults_module_docstring_documents_every_kind_and_admin_route() -> None:
    assert _documents_the_faults(faults.__doc__ or "") == []


def test_readme_mock_backend_section_points_to_the_module_that_documents_the_faults() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Mock backend", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"fault syntax and the admin\s+routes are documented in the docstring of `([\w.]+)`", section)
    assert match, "README's Mock backend section no longer says where the fault syntax is documented"
    module = importlib.import_module(match[1])
    assert _documents_the_faults(module.__doc__ or "") == []


def test_the_package_docstring_points_to_the_faults_module() -> None:
    doc = package.__doc__ or ""
    assert ":mod:`.faults`" in doc and "vidbridge.plugins.mock_backend.faults" in doc
    assert _documents_the_faults(doc), "the package docstring is a pointer, not a second copy"
