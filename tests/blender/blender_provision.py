"""Blender environments for the add-on's tests, made on demand (like ``.venv-gradio529``).

Three variants, each under the gitignored ``.blender-build/`` with a marker file, so a second
run reuses them:

* ``bpy45``: a venv of CPython 3.11 with the ``bpy`` wheel of Blender 4.5 LTS;
* ``bpy-latest``: a venv of CPython 3.13 with the newest ``bpy`` wheel
  (both with ``vidbridge[mcp]``: the restart test talks to WanGP's MCP face too);
* ``debian``: Debian's ``blender`` package (its own Python), with vidbridge and its dependencies
  installed by ``pip install --target`` for that Python version into a folder the test adds to
  ``sys.path`` (what the legacy add-on's ``site/`` folder is for).

vidbridge goes in as a wheel built once per run from the working tree; when the sources change,
only that wheel is reinstalled. A variant whose interpreter or binary is missing raises
:class:`Missing`; the tests turn that into a skip only when ``VIDBRIDGE_SKIP_BLENDER=1``.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".blender-build"
PIP_QUIET = ["-q", "--disable-pip-version-check", "--no-input"]

_wheel_lock = threading.Lock()


@contextlib.contextmanager
def locked(name: str):
    """An exclusive lock shared by every process: with pytest-xdist each worker collects the
    Blender tests and starts provisioning; the first does the work, the others wait for it and
    then find its marker."""
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / f".lock-{name}", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Missing(Exception):
    """A prerequisite (an interpreter, the ``blender`` binary, xvfb-run) is not on this machine."""


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a provisioning command; its output only matters when it fails."""
    # Niced: provisioning runs in the background while the rest of the suite runs.
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=lambda: os.nice(10), **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done


def source_digest() -> str:
    """A digest of everything that goes into the vidbridge wheel."""
    digest = hashlib.sha256()
    files = [ROOT / "pyproject.toml", *sorted((ROOT / "core").rglob("*")), *sorted((ROOT / "plugins").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def vidbridge_wheel() -> Path:
    """The vidbridge wheel of the working tree (built once per source digest)."""
    with _wheel_lock, locked("wheel"):
        folder = BUILD / f"wheel-{source_digest()}"
        found = sorted(folder.glob("vidbridge-*.whl"))
        if found:
            return found[0]
        for stale in BUILD.glob("wheel-*"):  # earlier sources' wheels
            shutil.rmtree(stale, ignore_errors=True)
        # One build at a time (the lock): pip builds in the tree's build/ folder.
        _run([sys.executable, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "-w", str(folder), str(ROOT)])
        return sorted(folder.glob("vidbridge-*.whl"))[0]


def find_python(version: str) -> str:
    """A CPython ``version`` interpreter: pyenv's, else ``pythonX.Y`` on PATH."""
    for pattern in (f"/root/.pyenv/versions/{version}*/bin/python", os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python")):
        found = sorted(glob.glob(pattern))
        if found:
            return found[-1]
    found = shutil.which(f"python{version}")
    if found:
        return found
    raise Missing(f"no Python {version} interpreter (pyenv or python{version} on PATH)")


def _install_vidbridge(pip: list[str], marker: Path, *target: str) -> None:
    wheel = vidbridge_wheel()
    digest = source_digest()
    if marker.exists() and marker.read_text().strip() == digest:
        return
    _run([*pip, "install", *PIP_QUIET, "--no-deps", "--force-reinstall", *target, str(wheel)])
    marker.write_text(digest + "\n")


def bpy_venv(name: str, python_version: str, requirement: str) -> dict:
    """A venv with ``requirement`` (a bpy wheel) and vidbridge; returns how to run a script in it."""
    venv = BUILD / f"venv-{name}"
    python = venv / "bin" / "python"
    ready = venv / ".vidbridge-ready"
    started = time.monotonic()
    base = find_python(python_version)  # Missing before any lock or download
    with locked(f"venv-{name}"):
        _make_bpy_venv(venv, python, ready, base, requirement)
    return {"command": [str(python)], "site": "", "provision_s": round(time.monotonic() - started, 1)}


#: vidbridge's extras in the bpy venvs: ``mcp`` (the MCP SDK), so the add-on reaches WanGP's MCP face.
EXTRAS = "[mcp]"


def _make_bpy_venv(venv: Path, python: Path, ready: Path, base: str, requirement: str) -> None:
    wanted = f"{requirement} vidbridge{EXTRAS}"  # the marker's text: what the venv was made with
    if not ready.exists():
        _run([base, "-m", "venv", "--clear", str(venv)])
        # vidbridge's wheel with its dependencies, and bpy, in one resolve.
        _run([str(python), "-m", "pip", "install", *PIP_QUIET, requirement, f"{vidbridge_wheel()}{EXTRAS}"])
        (venv / ".vidbridge-digest").write_text(source_digest() + "\n")
        ready.write_text(wanted + "\n")
    elif ready.read_text().strip() != wanted:  # made before the extras were asked for: add them only
        _run([str(python), "-m", "pip", "install", *PIP_QUIET, f"{vidbridge_wheel()}{EXTRAS}"])
        ready.write_text(wanted + "\n")
    _install_vidbridge([str(python), "-m", "pip"], venv / ".vidbridge-digest")


def blender_python_version(blender: str) -> str:
    """The ``X.Y`` of the Python inside a Blender binary (asked once per binary, then cached)."""
    stat = os.stat(blender)
    cache = BUILD / "blender-python.json"
    key = f"{os.path.realpath(blender)}:{stat.st_size}:{int(stat.st_mtime)}"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    if key not in known:
        done = _run([blender, "-b", "--factory-startup", "--python-expr",
                     "import sys; print('PYVERSION=%d.%d' % sys.version_info[:2])"])
        line = next(line for line in done.stdout.splitlines() if line.startswith("PYVERSION="))
        known[key] = line.split("=", 1)[1]
        BUILD.mkdir(exist_ok=True)
        cache.write_text(json.dumps(known))
    return known[key]


def debian_blender() -> dict:
    """Debian's ``blender`` with vidbridge installed for its Python in a ``--target`` folder."""
    blender = shutil.which("blender")
    if blender is None:
        status = os.environ.get("VIDBRIDGE_BLENDER_APT_STATUS")
        apt = (f"; .ci/run's apt-get said {Path(status).read_text().strip()!r}, see {Path(status).parent / 'apt.log'}"
               if status and os.path.exists(status) else "")
        raise Missing(f"no `blender` binary (Debian: apt-get install blender){apt}")
    started = time.monotonic()
    with locked("debian"):
        site = _make_site(blender)
    command = [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python"]
    return {"command": command, "site": str(site), "provision_s": round(time.monotonic() - started, 1)}


def _make_site(blender: str) -> Path:
    version = blender_python_version(blender)
    site = BUILD / f"site-py{version.replace('.', '')}"
    ready = site / ".vidbridge-ready"
    # pip of this interpreter, told the target's Python version: only wheels, so pydantic-core's
    # compiled wheel is the one for Blender's CPython ABI.
    target_pip = [sys.executable, "-m", "pip"]
    pin = ["--python-version", version, "--only-binary=:all:", "--implementation", "cp"]
    if not ready.exists():
        shutil.rmtree(site, ignore_errors=True)
        _run([*target_pip, "install", *PIP_QUIET, "--target", str(site), *pin, str(vidbridge_wheel())])
        (site / ".vidbridge-digest").write_text(source_digest() + "\n")
        ready.write_text(version + "\n")
    _install_vidbridge(target_pip, site / ".vidbridge-digest", "--target", str(site), "--upgrade", *pin)
    return site


def xvfb_blender() -> dict:
    """Debian's ``blender`` and ``xvfb-run``, for the screenshot (a real window)."""
    blender, xvfb = shutil.which("blender"), shutil.which("xvfb-run")
    if blender is None or xvfb is None:
        raise Missing("screenshots need `blender` and `xvfb-run` (Debian: apt-get install blender xvfb)")
    info = debian_blender()
    return {**info, "command": [xvfb, "-a", "-s", "-screen 0 1280x800x24", blender, "--factory-startup",
                                "--enable-event-simulate", "--python-exit-code", "1", "--python"]}


VARIANTS = {
    "bpy45": lambda: bpy_venv("bpy45", "3.11", "bpy==4.5.*"),
    "bpy-latest": lambda: bpy_venv("bpy-latest", "3.13", "bpy"),
    "debian": debian_blender,
}
