"""The in-Blender checks of the vidbridge add-on: one script for every Blender variant.

Runs inside Blender (``blender -b --factory-startup --python inblender_checks.py``) or in a Python
that has the ``bpy`` module (``python inblender_checks.py``). Reads its settings from the
environment (set by ``test_blender.py``) and writes one JSON document, ``{"checks": {name:
{"ok": bool, "detail": str}}, ...}``, to ``VB_RESULT``, so a failure names the check that failed.

Environment: ``VB_ADDON_DIR`` (the folder holding ``vidbridge_blender``), ``VB_URL`` (a mock
WanGP server), ``VB_DOWN_URL`` (a URL where nothing listens), ``VB_TMP`` (a scratch folder),
``VB_RESULT`` (the JSON file), ``VB_SITE`` (optional: a folder with vidbridge's dependencies).
"""

import json
import os
import sys
import threading
import time
import traceback

START = time.monotonic()
RESULT = {"checks": {}, "python": sys.version.split()[0]}
ENV = os.environ
TMP = ENV["VB_TMP"]
URL = ENV["VB_URL"]
DOWN_URL = ENV["VB_DOWN_URL"]
SECRET = "pw-" + "7f3a9c"  # a password that must never reach the .blend or a repr


def write():
    RESULT["seconds"] = round(time.monotonic() - START, 2)
    with open(ENV["VB_RESULT"], "w") as handle:
        json.dump(RESULT, handle, indent=1)


def check(name):
    """Run one named check; an exception or a false assertion fails that check only."""
    def decorate(function):
        try:
            detail = function()
            RESULT["checks"][name] = {"ok": True, "detail": str(detail or "")}
        except BaseException:  # noqa: BLE001 - record everything, go on with the next check
            RESULT["checks"][name] = {"ok": False, "detail": traceback.format_exc()[-3000:]}
        write()
        return function
    return decorate


if ENV.get("VB_SITE"):
    sys.path.insert(0, ENV["VB_SITE"])
sys.path.insert(0, ENV["VB_ADDON_DIR"])

import bpy  # noqa: E402
import addon_utils  # noqa: E402

RESULT["blender"] = bpy.app.version_string
BASE_THREADS = {t.ident for t in threading.enumerate()}
state = {}


def new_threads():
    return [t.name for t in threading.enumerate() if t.ident not in BASE_THREADS and t.is_alive()]


def strips_of(scene):
    editor = scene.sequence_editor
    found = getattr(editor, "strips_all", None)
    return list(found if found is not None else editor.sequences_all)


def wait_for(predicate, timeout, vb):
    """Pump the add-on's events until ``predicate()`` (background mode: timers do not run)."""
    from vidbridge_blender import pump

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        pump.pump(timeout=0.1)


@check("import_is_cheap")
def _():
    before = time.monotonic()
    import vidbridge_blender  # noqa: F401

    took = time.monotonic() - before
    assert "vidbridge" not in sys.modules, "importing the add-on imported vidbridge"
    assert not new_threads(), new_threads()
    assert took < 1.0, took
    return f"{took * 1000:.0f} ms"


@check("enable_addon")
def _():
    addon_utils.enable("vidbridge_blender", default_set=True, handle_error=None)
    assert "vidbridge_blender" in bpy.context.preferences.addons, "not enabled"
    assert hasattr(bpy.ops.vidbridge, "generate")
    assert not new_threads(), f"enabling started threads: {new_threads()}"
    assert "vidbridge" not in sys.modules, "enabling imported vidbridge"


@check("preferences")
def _():
    import vidbridge_blender.prefs as prefs

    found = prefs.preferences()
    assert found is not None
    found.servers.clear()
    found.servers.add().url = URL
    found.password = SECRET
    found.output_dir = "//vidbridge/"
    settings = prefs.settings()
    assert settings.urls == (URL,), settings.urls
    assert SECRET not in repr(settings)
    assert found.bl_rna.properties["password"].subtype == "PASSWORD"
    path = os.path.join(TMP, "secrets.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path, copy=True, compress=False)
    with open(path, "rb") as handle:
        assert SECRET.encode() not in handle.read(), "the password is in the .blend"
    found.password = ""  # the mock has no login
    return repr(settings)


@check("test_connection_health")
def _():
    import vidbridge_blender as vb
    from vidbridge_blender import lifecycle

    assert bpy.ops.vidbridge.test_connection() == {"FINISHED"}
    wait_for(lambda: URL in lifecycle.health, 60, vb)
    row = lifecycle.health[URL]
    assert row["reachable"], row
    assert row["models"] and row["version"], row
    return row


@check("generate_operator")
def _():
    import vidbridge_blender as vb

    scene = bpy.context.scene
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(TMP, "shot.blend"))  # so paths are //relative
    editor = scene.sequence_editor_create()
    collection = getattr(editor, "strips", None)
    collection = collection if collection is not None else editor.sequences
    try:
        blocker = collection.new_effect(name="blocker", type="COLOR", channel=1, frame_start=10, frame_end=40)
    except TypeError:  # Blender 5 takes a length
        blocker = collection.new_effect(name="blocker", type="COLOR", channel=1, frame_start=10, length=30)
    assert blocker.channel == 1
    scene.frame_current = 10
    started = time.monotonic()
    assert bpy.ops.vidbridge.generate(prompt="a paper boat drifting", frames=17, seed=7, steps=1) == {"FINISHED"}
    returned = time.monotonic() - started
    assert returned < 1.5, f"the operator took {returned:.2f} s"
    assert vb.run_pending(timeout=180), [(e.phase, e.error) for e in scene.vidbridge_jobs]
    entry = scene.vidbridge_jobs[-1]
    strip = next(s for s in strips_of(scene) if s.name == entry.strip_name)
    assert strip.type == "MOVIE", strip.type
    assert strip.frame_final_duration == 17, strip.frame_final_duration
    assert strip.frame_start == 10, strip.frame_start
    assert strip.channel == 2, strip.channel
    assert strip.name.startswith("a paper boat drifting"), strip.name
    assert strip["vidbridge_job_id"] == entry.job_id and entry.job_id.startswith("job-")
    assert strip["vidbridge_seed"] == 7
    assert strip["vidbridge_model"], dict(strip)
    assert len(strip["vidbridge_sha256"]) == 64
    assert strip["vidbridge_manifest"].endswith(".json"), strip["vidbridge_manifest"]
    assert strip.filepath.startswith("//vidbridge"), strip.filepath
    assert os.path.isfile(bpy.path.abspath(strip.filepath))
    state["first"] = entry.token
    return f"operator returned in {returned * 1000:.0f} ms; {strip.name} {strip.filepath}"


@check("scripting_api")
def _():
    import vidbridge_blender as vb

    scene = bpy.context.scene
    token = vb.generate(prompt="a red fox in snow", frames=17, seed=3, steps=1, url=URL,
                        output_dir=os.path.join(TMP, "farm-out"), frame_start=100)
    assert isinstance(token, str) and token
    assert vb.run_pending(timeout=180)
    entry = next(e for e in scene.vidbridge_jobs if e.token == token)
    strip = next(s for s in strips_of(scene) if s.name == entry.strip_name)
    assert strip.frame_final_duration == 17 and strip.frame_start == 100 and strip.channel == 1, \
        (strip.frame_final_duration, strip.frame_start, strip.channel)
    assert bpy.path.abspath(strip.filepath).startswith(os.path.join(TMP, "farm-out"))
    return token


@check("audio_becomes_a_sound_strip")
def _():
    import wave

    import vidbridge_blender as vb

    scene = bpy.context.scene
    voice = os.path.join(TMP, "voice.wav")
    with wave.open(voice, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x10" * 16000)
    scene.frame_current = 300
    # the Generate panel's operator, with its audio field (vb.generate(audio=...) is the same path)
    assert bpy.ops.vidbridge.generate(prompt="a singer on a stage", frames=17, steps=1, url=URL,
                                      audio=voice) == {"FINISHED"}
    assert vb.run_pending(timeout=180), [(e.phase, e.error) for e in scene.vidbridge_jobs]
    entry = scene.vidbridge_jobs[-1]
    mine = [s for s in strips_of(scene) if s.get("vidbridge_job_id") == entry.job_id]
    by_type = {s.type: s for s in mine}
    assert sorted(by_type) == ["MOVIE", "SOUND"], [(s.type, s.name) for s in mine]
    movie, sound = by_type["MOVIE"], by_type["SOUND"]
    assert sound.frame_start == movie.frame_start == 300 and sound.channel > movie.channel
    assert sound.sound.samplerate == 16000, sound.sound.samplerate
    assert sound["vidbridge_sha256"] == movie["vidbridge_sha256"]  # one file, both strips
    return f"{movie.name} on {movie.channel}, {sound.name} on {sound.channel}"


@check("cancel")
def _():
    import vidbridge_blender as vb

    scene = bpy.context.scene
    token = vb.generate(prompt="a very long shot", frames=17, steps=100, url=URL)
    entry = next(e for e in scene.vidbridge_jobs if e.token == token)
    wait_for(lambda: entry.step >= 1 or entry.phase in ("completed", "failed", "cancelled"), 60, vb)
    assert entry.phase not in ("completed", "failed", "cancelled"), (entry.phase, entry.error, entry.message)
    from vidbridge_blender import lifecycle  # while it runs, the ledger lists it as unfinished

    assert bpy.ops.vidbridge.refresh_ledger() == {"FINISHED"}
    wait_for(lambda: any(row["id"] == entry.job_id for row in lifecycle.ledger_rows), 30, vb)
    row = next(row for row in lifecycle.ledger_rows if row["id"] == entry.job_id)
    assert row["prompt"] == "a very long shot", row
    assert bpy.ops.vidbridge.cancel(job_id=token) == {"FINISHED"}
    assert vb.run_pending(timeout=60) is False
    assert entry.phase == "cancelled", (entry.phase, entry.error)
    assert not entry.strip_name
    return entry.message


@check("server_down_is_a_report")
def _():
    import vidbridge_blender as vb
    from vidbridge_blender import lifecycle

    scene = bpy.context.scene
    assert bpy.ops.vidbridge.generate(prompt="nobody home", frames=17, url=DOWN_URL) == {"FINISHED"}
    # landed before run_pending is called (as when a timer pumped it): still judged, once
    wait_for(lambda: not lifecycle.runner().outstanding(), 120, vb)
    assert vb.run_pending(timeout=120) is False
    assert vb.run_pending(timeout=1) is True  # nothing new landed since
    entry = scene.vidbridge_jobs[-1]
    assert entry.phase == "failed", entry.phase
    assert "BackendConnectionError" in entry.error, entry.error
    assert any("nobody" in e or entry.job_id in e or entry.token in e for e in lifecycle.errors), lifecycle.errors
    return entry.error


@check("invalid_request_is_a_report")
def _():
    try:
        result = bpy.ops.vidbridge.generate(prompt="bad size", frames=17, resolution="huge")
    except RuntimeError as exc:  # in scripts, Blender turns an ERROR report into RuntimeError
        message = str(exc)
    else:
        raise AssertionError(f"accepted: {result}")
    assert "resolution" in message, message
    return message.strip()


@check("active_image_strip_is_the_start_image")
def _():
    from vidbridge_blender import api

    scene = bpy.context.scene
    editor = scene.sequence_editor
    collection = getattr(editor, "strips", None)
    collection = collection if collection is not None else editor.sequences
    editor.active_strip = None
    try:
        bpy.ops.vidbridge.generate(prompt="from a still", frames=17, use_active_strip=True)
    except RuntimeError as exc:
        assert "no active image strip" in str(exc), exc
    else:
        raise AssertionError("generated without a start image")
    image = bpy.data.images.new("start", 16, 16)
    path = os.path.join(TMP, "start.png")
    image.filepath_raw, image.file_format = path, "PNG"
    image.save()
    strip = collection.new_image(name="still", filepath=path, channel=9, frame_start=500)
    editor.active_strip = strip
    found = api.active_image_strip_path(scene)
    assert os.path.samefile(found, path), found
    collection.remove(strip)
    return found


@check("jobs_survive_reopen_and_resume")
def _():
    import vidbridge_blender as vb

    scene = bpy.context.scene
    entry = next(e for e in scene.vidbridge_jobs if e.token == state["first"])
    editor = scene.sequence_editor
    collection = getattr(editor, "strips", None)
    collection = collection if collection is not None else editor.sequences
    collection.remove(collection[entry.strip_name])
    entry.phase, entry.strip_name = "inferring", ""  # as if Blender had quit mid-generation
    path = os.path.join(TMP, "reopen.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    scene = bpy.context.scene
    entry = next(e for e in scene.vidbridge_jobs if e.token == state["first"])
    assert entry.resumable, "the unfinished job is not offered for resume"
    assert bpy.ops.vidbridge.resume(job_id=entry.token) == {"FINISHED"}
    assert vb.run_pending(timeout=120), (entry.phase, entry.error)
    entry = next(e for e in bpy.context.scene.vidbridge_jobs if e.token == state["first"])
    strip = next(s for s in strips_of(bpy.context.scene) if s.name == entry.strip_name)
    assert strip.frame_final_duration == 17 and strip.frame_start == 10
    return strip.name


@check("resume_a_ledger_job_not_in_the_file")
def _():
    import vidbridge_blender as vb
    from vidbridge_blender import lifecycle

    scene = bpy.context.scene
    done = next(e for e in scene.vidbridge_jobs if e.phase == "completed" and e.token != state["first"])
    job_id, prompt = done.job_id, done.prompt
    scene.vidbridge_jobs.remove(list(scene.vidbridge_jobs).index(done))  # as if another file had run it
    # The listing refresh_ledger makes (Client.jobs): here the row of that job.
    lifecycle.ledger_rows[:] = [{"id": job_id, "status": "completed", "endpoint": URL, "prompt": prompt,
                                 "frames": 17, "seed": 3, "model": None, "output_dir": ""}]
    scene.frame_current = 300
    assert bpy.ops.vidbridge.resume(job_id=job_id) == {"FINISHED"}
    assert vb.run_pending(timeout=120)
    entry = next(e for e in scene.vidbridge_jobs if e.job_id == job_id)
    strip = next(s for s in strips_of(scene) if s.name == entry.strip_name)
    assert strip.frame_start == 300 and strip.frame_final_duration == 17 and strip["vidbridge_job_id"] == job_id
    return strip.name


@check("panels_registered")
def _():
    for name in ("VIDBRIDGE_PT_connection", "VIDBRIDGE_PT_generate", "VIDBRIDGE_PT_jobs"):
        panel = getattr(bpy.types, name)
        assert panel.bl_space_type == "SEQUENCE_EDITOR" and panel.bl_category == "vidbridge"


@check("unregister_leaves_no_thread")
def _():
    addon_utils.disable("vidbridge_blender", default_set=True)
    # The add-on's own workers are joined by unregister. vidbridge releases backend sessions in
    # the background (thread pools) and gradio_client's heartbeat thread notices that its client
    # closed only at its next beat (up to ~15 s later): those must end within 25 s.
    own = [name for name in new_threads() if name.startswith("vidbridge-blender")]
    assert not own, own
    lingering = new_threads()
    started = time.monotonic()
    while new_threads() and time.monotonic() < started + 25:
        time.sleep(0.2)  # the check's own patience: nothing of the add-on waits like this
    assert not new_threads(), new_threads()
    waited = time.monotonic() - started
    assert "vidbridge_blender" not in bpy.context.preferences.addons
    return f"{len(lingering)} vidbridge/gradio threads ended {waited:.1f} s after unregister: {sorted(set(lingering))}"


write()
