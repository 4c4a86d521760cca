"""Meta-tests keeping the plugin contract documented (datasette style)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from vidbridge import hookspecs

README = Path(__file__).resolve().parents[2] / "README.md"
HOOKS = sorted(name for name, value in vars(hookspecs).items() if name.startswith("vidbridge_") and callable(value))
RETURNING = [name for name in HOOKS if inspect.signature(getattr(hookspecs, name)).return_annotation not in ("None", None)]


def test_hooks_are_found():
    assert {"vidbridge_discover", "vidbridge_connect", "vidbridge_submit", "vidbridge_status", "vidbridge_fetch",
            "vidbridge_cancel"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_docstring_with_params(hook):
    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function)
    assert doc, f"{hook} has no docstring"
    parameters = list(inspect.signature(function).parameters)
    for parameter in parameters:
        assert f":param {parameter}:" in doc, f"{hook} does not document parameter {parameter!r}"
    for parameter in parameters:
        assert inspect.signature(function).parameters[parameter].default is inspect.Parameter.empty, (
            f"{hook}: hook parameters must not have defaults (pluggy would never pass them)"
        )


@pytest.mark.parametrize("hook", RETURNING)
def test_hookspec_documents_its_return_value(hook):
    assert ":returns:" in inspect.getdoc(getattr(hookspecs, hook)), f"{hook} has no :returns: section"


@pytest.mark.parametrize("hook", HOOKS)
def test_firstresult_hooks_say_so(hook):
    options = getattr(hookspecs, hook).vidbridge_spec
    doc = inspect.getdoc(getattr(hookspecs, hook))
    if options.get("firstresult"):
        assert "Stops at the first non-None result" in doc, f"{hook} does not say it stops at the first result"


def _plugin_guide() -> str:
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    match = re.search(r"^## Plugin author's guide\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return match.group(1) if match else ""


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_the_readme(hook):
    guide = _plugin_guide()
    assert guide, "README.md has no '## Plugin author's guide' section"
    assert re.search(rf"^#+ .*\b{hook}\b", guide, re.M), f"README's plugin author's guide has no heading for {hook}"
