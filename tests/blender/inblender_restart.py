"""One half of a real Blender restart with a job running (run by ``test_blender.py``, twice).

``VB_PHASE=submit``: enable the add-on, save the .blend, generate a slow job, pump until the
server is running it (a step reported, the ledger's reference of the job written), save the
.blend again, write the facts to ``VB_RESULT``, print ``VB_READY`` and wait: the test then kills
this process (SIGKILL, as a crash would), with the job still running on the server.

``VB_PHASE=resume``: a new process opens that .blend *before* the add-on is enabled (as a farm
script or ``blender -b shot.blend`` does), enables it, checks that the job is listed as
unfinished (the scene's entries and the ledger's unfinished jobs), resumes it and pumps until it
lands (``VB_FACE=mcp``), or until it is reported as interrupted and then resubmitted
(``VB_FACE=gradio``); the facts go to ``VB_RESULT`` (the test asserts on them).

Environment: ``VB_ADDON_DIR``, ``VB_SITE`` (optional), ``VB_URL``, ``VB_TMP``, ``VB_BLEND``,
``VB_PROMPT``, ``VB_FACE`` (``mcp`` or ``gradio``), ``VB_RESULT``, ``VIDBRIDGE_LEDGER``.
"""

import json
import os
import sys
import time
import traceback

ENV = os.environ
RESULT = {"phase": ENV["VB_PHASE"], "face": ENV["VB_FACE"], "python": sys.version.split()[0]}
STARTED = time.monotonic()


def write():
    RESULT["seconds"] = round(time.monotonic() - STARTED, 2)
    with open(ENV["VB_RESULT"] + ".part", "w") as handle:
        json.dump(RESULT, handle, indent=1)
    os.replace(ENV["VB_RESULT"] + ".part", ENV["VB_RESULT"])  # the other side never reads half a file


if ENV.get("VB_SITE"):
    sys.path.insert(0, ENV["VB_SITE"])
sys.path.insert(0, ENV["VB_ADDON_DIR"])

import bpy  # noqa: E402
import addon_utils  # noqa: E402

RESULT["blender"] = bpy.app.version_string


def pump_until(predicate, timeout):
    """Pump the add-on's events until ``predicate()`` (background mode: timers do not run)."""
    from vidbridge_blender import pump

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        pump.pump(timeout=0.1)  # waits on the event queue, not a sleep


def strips_of(scene):
    editor = scene.sequence_editor
    if editor is None:
        return []
    found = getattr(editor, "strips_all", None)
    return list(found if found is not None else editor.sequences_all)


def entry_facts(entry):
    return {name: getattr(entry, name) for name in ("token", "job_id", "prompt", "phase", "message", "error",
                                                    "resumable", "step", "total_steps", "frame_start",
                                                    "channel", "frames", "seed", "strip_name")}


def first_progress(entry, timeout=60):
    """Pump until the resumed job of ``entry`` reports where it is: ``[phase, step]`` (was it still
    running on the server when this process attached to it?)."""
    from vidbridge_blender import lifecycle, pump

    deadline = time.monotonic() + timeout
    while (entry.phase == "queued" and entry.token in lifecycle.runner().outstanding()
           and time.monotonic() < deadline):
        pump.pump(timeout=0.1)
    return [entry.phase, entry.step]


def submit():
    import vidbridge_blender as vb
    from vidbridge_blender import lifecycle, prefs

    addon_utils.enable("vidbridge_blender", default_set=True, handle_error=None)
    found = prefs.preferences()
    found.servers.clear()
    found.servers.add().url = ENV["VB_URL"]
    bpy.ops.wm.save_as_mainfile(filepath=ENV["VB_BLEND"])  # output beside the .blend, //relative paths
    scene = bpy.context.scene
    scene.frame_current = 20
    token = vb.generate(prompt=ENV["VB_PROMPT"], frames=17, seed=11, steps=40)
    entry = next(e for e in scene.vidbridge_jobs if e.token == token)
    # Running on the server: a denoising step was reported, so the job id is known too.
    pump_until(lambda: entry.step >= 1 or entry.phase in ("completed", "failed", "cancelled"), 60)
    assert entry.job_id and entry.phase not in ("completed", "failed", "cancelled"), entry_facts(entry)
    record = lifecycle.runner().client().job(entry.job_id)  # what a new process will find
    RESULT["ledger"] = {"status": record.status, "ref": record.ref.model_dump(mode="json") if record.ref else None}
    bpy.ops.wm.save_mainfile()
    RESULT["entry"] = entry_facts(entry)


def resume():
    import vidbridge_blender as vb
    from vidbridge_blender import api, lifecycle

    bpy.ops.wm.open_mainfile(filepath=ENV["VB_BLEND"])  # the add-on is not enabled yet
    addon_utils.enable("vidbridge_blender", default_set=True, handle_error=None)
    scene = bpy.context.scene
    RESULT["listed"] = [entry_facts(e) for e in api.unfinished_entries(scene)]
    assert len(RESULT["listed"]) == 1, RESULT["listed"]
    entry = next(e for e in scene.vidbridge_jobs if e.token == RESULT["listed"][0]["token"])
    assert bpy.ops.vidbridge.refresh_ledger() == {"FINISHED"}
    pump_until(lambda: any(row["id"] == entry.job_id for row in lifecycle.ledger_rows), 30)
    RESULT["ledger_unfinished"] = [dict(row) for row in lifecycle.ledger_rows]
    assert bpy.ops.vidbridge.resume(job_id=entry.token) == {"FINISHED"}
    if ENV["VB_FACE"] == "mcp":
        RESULT["attached_at"] = first_progress(entry)
        # The test slowed the mock's steps while Blender was dead, so that this attach surely meets
        # the job still running; now it may finish quickly.
        from vidbridge.plugins.mock_backend import faults

        faults.set_options(ENV["VB_URL"], step_delay=0.02)
    landed = vb.run_pending(timeout=90)
    RESULT["resumed"] = {"landed": landed, "entry": entry_facts(entry), "errors": list(lifecycle.errors)}
    if ENV["VB_FACE"] == "gradio":
        RESULT["after_interrupted"] = [entry_facts(e) for e in api.unfinished_entries(scene)]
        record = lifecycle.runner().client().job(entry.job_id)
        error = record.error.model_dump(mode="json") if hasattr(record.error, "model_dump") else record.error
        RESULT["ledger_interrupted"] = {"status": record.status, "error": error, "attempt": record.attempt}
        assert bpy.ops.vidbridge.resume(job_id=entry.token, resubmit=True) == {"FINISHED"}
        landed = vb.run_pending(timeout=90)
        RESULT["resubmitted"] = {"landed": landed, "entry": entry_facts(entry), "errors": list(lifecycle.errors)}
    record = lifecycle.runner().client().job(entry.job_id)
    RESULT["ledger_final"] = {"status": record.status, "attempt": record.attempt}
    strip = next((s for s in strips_of(scene) if s.name == entry.strip_name), None) if entry.strip_name else None
    if strip is not None:
        RESULT["strip"] = {"type": strip.type, "frames": strip.frame_final_duration,
                           "frame_start": strip.frame_start, "channel": strip.channel,
                           "filepath": strip.filepath, "exists": os.path.isfile(bpy.path.abspath(strip.filepath)),
                           "props": {key: strip[key] for key in strip.keys() if key.startswith("vidbridge_")}}
    bpy.ops.wm.save_mainfile()


try:
    (submit if ENV["VB_PHASE"] == "submit" else resume)()
    RESULT["ok"] = True
except BaseException:  # noqa: BLE001 - the test shows what went wrong
    RESULT["ok"] = False
    RESULT["error"] = traceback.format_exc()[-3000:]
write()
if ENV["VB_PHASE"] == "submit":
    print("VB_READY", flush=True)
    sys.stdin.readline()  # killed while waiting here (the job still runs on the server)
# At once: the resumed job has ended, and gradio_client's heartbeat threads would only notice
# their closed clients at the next beat.
os._exit(0 if RESULT["ok"] else 1)
