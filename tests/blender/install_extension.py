"""Install the built extension zip in a ``bpy`` (4.2+) and report what Blender made of it as JSON.

``python install_extension.py ZIP RESULT.json``, with ``BLENDER_USER_RESOURCES`` set to a scratch
folder (the extension and its wheels are installed there).
"""

import glob
import json
import os
import sys

import bpy

zip_path, result_path = sys.argv[1], sys.argv[2]
outcome = {"install": None, "enabled": [], "wheels_installed": [], "ops": False}
try:
    outcome["install"] = sorted(bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True))
    outcome["enabled"] = [a.module for a in bpy.context.preferences.addons if "vidbridge" in a.module]
    site = os.path.join(os.environ["BLENDER_USER_RESOURCES"], "extensions", ".local", "lib",
                        f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")
    outcome["wheels_installed"] = sorted(os.path.basename(p) for p in glob.glob(os.path.join(site, "*")))
    outcome["ops"] = hasattr(bpy.ops.vidbridge, "generate") and "generate" in dir(bpy.ops.vidbridge)
except Exception as exc:  # noqa: BLE001 - reported to the test
    outcome["error"] = f"{type(exc).__name__}: {exc}"
with open(result_path, "w") as handle:
    json.dump(outcome, handle)
