"""hosts/blender/build.py without the network: manifest, staging and the zip's layout."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
import zipfile
from pathlib import Path

import blender_provision as provision

BUILD_PY = provision.ROOT / "hosts" / "blender" / "build.py"


def _build_module():
    spec = importlib.util.spec_from_file_location("vidbridge_blender_build", BUILD_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_manifest_lists_the_wheels_and_is_valid_toml() -> None:
    build = _build_module()
    template = (build.PACKAGE / "blender_manifest.toml").read_text()
    names = ["./wheels/vidbridge-0.1.0-py3-none-any.whl",
             "./wheels/pydantic_core-2.41.5-cp311-cp311-win_amd64.whl"]
    manifest = tomllib.loads(build.manifest_text(template, names))
    assert manifest["wheels"] == names
    assert manifest["id"] == "vidbridge_blender" and manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["platforms"]) == set(build.PLATFORMS)
    assert len(manifest["tagline"]) <= 64 and not manifest["tagline"].endswith(".")


def test_zip_has_the_manifest_at_its_root_and_no_caches(tmp_path: Path) -> None:
    build = _build_module()
    wheel = tmp_path / "vidbridge-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip is all staging needs
    target = build.stage(tmp_path / "stage", [wheel])
    out = build.make_zip(target, tmp_path / "out" / "vidbridge_blender.zip")
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    assert "__init__.py" in names and "wheels/vidbridge-0.1.0-py3-none-any.whl" in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert manifest["wheels"] == ["./wheels/vidbridge-0.1.0-py3-none-any.whl"]


def test_the_legacy_entry_declares_blender_3() -> None:
    source = (provision.ROOT / "hosts" / "blender" / "vidbridge_blender" / "__init__.py").read_text()
    assert '"blender": (3, 4, 0)' in source
