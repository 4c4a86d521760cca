"""Build the vidbridge Blender extension: ``python hosts/blender/build.py [--out DIR]``.

1. builds the vidbridge wheel of this repository;
2. ``pip download``s it with its dependencies (and its ``mcp`` extra, the MCP SDK for WanGP's MCP
   face) as wheels for every platform and Python that Blender 4.2+ ships (CPython 3.11 and 3.13;
   Linux x64, Windows x64, macOS arm64 and x64), pure-Python wheels once, compiled ones
   (pydantic-core, cryptography, rpds-py...) per platform and Python;
3. copies the add-on package, writes its ``blender_manifest.toml`` with those ``wheels``;
4. zips it to ``<out>/vidbridge_blender-<version>.zip`` (install it with Blender's
   "Install from Disk", or ``blender --command extension install-file``).

``--legacy-site 3.11`` also puts a ``site/py311`` folder (``pip install --target`` for this
machine's platform) into the package, for Blender 3.x, which loads it through ``bl_info`` and
cannot install wheels. The output (default ``hosts/blender/build/``) is gitignored.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE = HERE / "vidbridge_blender"
PYTHONS = ("3.11", "3.13")
#: Blender's platform name -> pip platform tags accepted for it
PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x64": ("macosx_10_13_x86_64", "macosx_10_12_x86_64"),
}
PIP = [sys.executable, "-m", "pip"]
#: vidbridge's extras the add-on bundles: without ``mcp`` it could not reach WanGP's MCP face
#: ("No module named 'mcp'"), whose jobs a restarted Blender can re-attach to.
EXTRAS = "[mcp]"
#: Dependencies pip cannot see from here: it evaluates environment markers for the building
#: machine, not for the ``--platform`` it downloads for, so a requirement of one OS only is left
#: out of the others' wheels. mcp needs pywin32 on Windows (``import mcp`` imports it there).
PLATFORM_ONLY = {"windows-x64": ("pywin32>=311",)}
QUIET = ["-q", "--disable-pip-version-check"]


def build_vidbridge_wheel(folder: Path) -> Path:
    """The vidbridge wheel of this repository, built into ``folder``."""
    subprocess.run([*PIP, "wheel", *QUIET, "--no-deps", "-w", str(folder), str(ROOT)], check=True)
    return sorted(folder.glob("vidbridge-*.whl"))[-1]


def download_wheels(vidbridge_wheel: Path, dest: Path, pythons=PYTHONS, platforms=PLATFORMS) -> list[Path]:
    """vidbridge and its dependencies as wheels for every Python and platform; returns them all."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(vidbridge_wheel, dest)
    for python in pythons:
        for name, tags in platforms.items():
            platform_args = [arg for tag in tags for arg in ("--platform", tag)]
            subprocess.run([*PIP, "download", *QUIET, "--dest", str(dest), "--only-binary=:all:",
                            "--python-version", python, "--implementation", "cp", *platform_args,
                            f"{vidbridge_wheel}{EXTRAS}", *PLATFORM_ONLY.get(name, ())], check=True)
    return sorted(dest.glob("*.whl"))


def manifest_text(template: str, wheels: list[str]) -> str:
    """The manifest ``template`` with its ``wheels = [...]`` set to ``wheels`` (paths in the zip)."""
    listed = "wheels = [\n" + "".join(f'  "{name}",\n' for name in wheels) + "]"
    text, count = re.subn(r"(?ms)^wheels\s*=\s*\[.*?\]", lambda _match: listed, template)
    if count != 1:
        raise ValueError("the manifest template has no `wheels = [...]` line")
    return text


def stage(staging: Path, wheels: list[Path], platforms=None) -> Path:
    """Copy the package into ``staging`` with its wheels and a filled-in manifest."""
    target = staging / PACKAGE.name
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "site"))
    (target / "wheels").mkdir(exist_ok=True)
    for wheel in wheels:
        shutil.copy2(wheel, target / "wheels" / wheel.name)
    template = (PACKAGE / "blender_manifest.toml").read_text()
    names = [f"./wheels/{wheel.name}" for wheel in wheels]
    text = manifest_text(template, names)
    if platforms is not None:  # a build for fewer platforms says so
        listed = ", ".join(f'"{name}"' for name in platforms)
        text = re.sub(r"(?m)^platforms\s*=.*$", lambda _match: f"platforms = [{listed}]", text)
    (target / "blender_manifest.toml").write_text(text)
    return target


def legacy_site(target: Path, vidbridge_wheel: Path, python: str) -> Path:
    """``site/pyXY`` inside the package: vidbridge installed for Python ``python`` on this platform."""
    site = target / "site" / f"py{python.replace('.', '')}"
    subprocess.run([*PIP, "install", *QUIET, "--target", str(site), "--only-binary=:all:", "--python-version",
                    python, "--implementation", "cp", f"{vidbridge_wheel}{EXTRAS}"], check=True)
    return site


def make_zip(package_dir: Path, out: Path) -> Path:
    """Zip the package folder's contents (the manifest at the zip's root, as Blender wants)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(package_dir).as_posix())
    return out


def version() -> str:
    """The extension's version, from its manifest."""
    match = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (PACKAGE / "blender_manifest.toml").read_text())
    return match.group(1) if match else "0"


def main(argv: list[str] | None = None) -> int:
    """Build the zip; prints its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    parser.add_argument("--legacy-site", action="append", default=[], metavar="X.Y",
                        help="also bundle a site folder for this Python (Blender 3.x, this platform)")
    parser.add_argument("--python", action="append", choices=PYTHONS, help="only these Pythons (default: all)")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                        help="only these platforms (default: all)")
    args = parser.parse_args(argv)
    pythons = tuple(args.python or PYTHONS)
    platforms = {name: PLATFORMS[name] for name in (args.platform or PLATFORMS)}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        scratch = Path(scratch)
        wheel = build_vidbridge_wheel(scratch / "vidbridge-wheel")
        wheels = download_wheels(wheel, scratch / "wheels", pythons, platforms)  # fresh: no stale wheels
        target = stage(scratch / "stage", wheels, None if args.platform is None else list(platforms))
        for python in args.legacy_site:
            legacy_site(target, wheel, python)
        out = make_zip(target, args.out / f"vidbridge_blender-{version()}.zip")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
