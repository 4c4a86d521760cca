"""Suite-wide setup: quiet, offline gradio; the gradio 5.29 server environment for integration tests.

Wan2GP pins gradio 5.29, which pins an old gradio_client, so the 5.29 mock server runs from its
own virtual environment as a subprocess. It is created once in ``.venv-gradio529`` (about a
minute) unless ``VIDBRIDGE_GRADIO529_PYTHON`` names an existing interpreter; set
``VIDBRIDGE_SKIP_GRADIO529=1`` to skip those tests instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_SCRATCH = Path(__file__).resolve().parent.parent / ".pytest_cache"
# The suite's jobs go to a ledger of its own, never the user's (tests that look at it set their
# own): a fresh one per run and per pytest-xdist worker (a worker never deletes another's).
_OUR_LEDGER = _SCRATCH / f"vidbridge-jobs{os.environ.get('PYTEST_XDIST_WORKER', '')}.sqlite3"
for _name, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "VIDBRIDGE_CACHE_DIR": str(_SCRATCH / "vidbridge-cache"),
    "VIDBRIDGE_LEDGER": str(_OUR_LEDGER),
}.items():
    os.environ.setdefault(_name, _value)
if Path(os.environ["VIDBRIDGE_LEDGER"]).parent == _SCRATCH and Path(os.environ["VIDBRIDGE_LEDGER"]).name.startswith(
        "vidbridge-jobs"):  # ours (a worker inherits the controller's): this process's own, fresh
    os.environ["VIDBRIDGE_LEDGER"] = str(_OUR_LEDGER)
    for _suffix in ("", "-wal", "-shm"):
        Path(str(_OUR_LEDGER) + _suffix).unlink(missing_ok=True)

# The host and plugin-author fixtures (vidbridge_client, vidbridge_register_plugin, ...). Users load
# them the same way; they are not auto-registered, so they never intrude on other test suites.
pytest_plugins = ["vidbridge.testing.pytest_plugin"]

ROOT = Path(__file__).resolve().parent.parent
GRADIO529_VENV = ROOT / ".venv-gradio529"
GRADIO529_REQUIREMENTS = ["gradio==5.29.0", "huggingface_hub<1.0", "av>=12", "numpy", "pillow"]


def _provision_gradio529() -> str | None:
    python = GRADIO529_VENV / "bin" / "python"
    marker = GRADIO529_VENV / ".vidbridge-ready"
    if not marker.exists():
        print("\nvidbridge: creating the gradio 5.29 server environment in .venv-gradio529 ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(GRADIO529_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *GRADIO529_REQUIREMENTS], check=True)
        subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
        marker.write_text("ok\n")
    return str(python)


def pytest_configure(config):  # noqa: D103 - pytest hook
    if os.environ.get("VIDBRIDGE_GRADIO529_PYTHON") or os.environ.get("VIDBRIDGE_SKIP_GRADIO529"):
        return
    try:
        os.environ["VIDBRIDGE_GRADIO529_PYTHON"] = _provision_gradio529()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"vidbridge: gradio 5.29 environment unavailable ({exc}); those tests will be skipped", file=sys.stderr)
