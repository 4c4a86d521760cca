"""Regenerate the README's screenshot of the add-on's panels, in a real Blender window.

    xvfb-run -a -s "-screen 0 1280x800x24" blender --factory-startup --enable-event-simulate \
        --python hosts/blender/screenshot.py -- [PNG] [REPORT.json]

PNG defaults to ``hosts/blender/docs/panels.png``. The scene gets demo jobs and a server's health
row (no server is needed: drawing never talks to one); a timer opens the Sequencer's sidebar on
the "vidbridge" tab once the window has drawn, takes the screenshot, writes REPORT (how often each
panel drew, and any error) and quits. Exits non-zero when something failed.
"""

import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
PNG = os.path.abspath(ARGS[0]) if ARGS else os.path.join(HERE, "docs", "panels.png")
REPORT = os.path.abspath(ARGS[1]) if len(ARGS) > 1 else None
sys.path.insert(0, HERE)
if os.environ.get("VB_SITE"):
    sys.path.insert(0, os.environ["VB_SITE"])

import bpy  # noqa: E402
import addon_utils  # noqa: E402

errors = []
state = {"step": 0}


def finish(code):
    from vidbridge_blender import panels

    if REPORT:
        with open(REPORT, "w") as handle:
            json.dump({"draw_counts": panels.draw_counts, "errors": errors, "png": PNG,
                       "reported": state.get("reported", False)}, handle)
    print(f"vidbridge screenshot: {PNG} draws={panels.draw_counts} errors={len(errors)}")
    sys.stdout.flush()
    os._exit(code)  # quit at once: the window's own shutdown is not what is being tested


def demo_scene():
    """Demo data: a server's health row and three jobs in different phases."""
    from vidbridge_blender import lifecycle, prefs, pump

    url = prefs.DEFAULT_URL
    lifecycle.health[url] = {"url": url, "reachable": True, "backend": "wan2gp", "version": "12.60",
                             "face": "gradio", "models": ["t2v", "i2v", "vace"] * 5, "queue_size": 1}
    scene = bpy.context.scene
    inputs = scene.vidbridge_inputs
    inputs.prompt, inputs.frames, inputs.seed, inputs.resolution = "a paper boat on a rainy street", 81, 7, "832x480"
    rows = [("city lights at dusk", "completed", {}),  # oldest first: the panel lists the newest first
            ("a lighthouse in fog", "failed", {}),
            ("a red fox in snow", "queued", dict(queue_position=1)),
            ("a paper boat on a rainy street", "inferring", dict(step=12, total_steps=30, eta=41))]
    for prompt, phase, extra in rows:
        entry = scene.vidbridge_jobs.add()
        number = len(scene.vidbridge_jobs)  # staged entries (a README picture): one id each
        entry.token, entry.job_id, entry.prompt, entry.phase = f"vb-demo{number}", f"job-3f2a9c1b7d{number:02d}", prompt, phase
        for key, value in extra.items():
            setattr(entry, key, value)
        if phase == "failed":  # through the add-on's own report path, as a failing job would
            state["reported"] = pump.report(f"{entry.job_id} failed: BackendConnectionError: cannot use "
                                            "http://127.0.0.1:7861: connection refused", entry=entry)


def sequencer():
    window = bpy.context.window_manager.windows[0]
    area = max(window.screen.areas, key=lambda a: a.width * a.height)
    return window, area


def open_tab(window, region):
    """Show the sidebar's "vidbridge" tab: by name from Blender 4.1 on, else Ctrl+Wheel over the
    sidebar, which steps through its tabs (needs ``--enable-event-simulate``)."""
    if hasattr(region, "active_panel_category"):
        try:
            region.active_panel_category = "vidbridge"  # known only once the sidebar has drawn
        except (TypeError, ValueError):
            pass
        return
    x, y = region.x + region.width // 2, region.y + region.height // 2
    window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    window.event_simulate(type="WHEELDOWNMOUSE", value="PRESS", x=x, y=y, ctrl=True)


def step():
    """One stage per timer call: each waits for the window to have drawn the previous one."""
    from_stage = state["step"]
    state["step"] += 1
    try:
        if from_stage == 0:
            # Reading the start-up file again closes the splash screen over the window.
            bpy.ops.wm.read_homefile()
            return 0.5
        window, area = sequencer()
        if from_stage == 1:
            addon_utils.enable("vidbridge_blender", default_set=True)
            demo_scene()
            area.type = "SEQUENCE_EDITOR"
            area.spaces.active.show_region_ui = True
            return 0.5
        from vidbridge_blender import panels

        region = next(r for r in area.regions if r.type == "UI")
        if not all(panels.draw_counts.values()):
            if from_stage > 30:
                errors.append(f"the vidbridge tab did not draw: {panels.draw_counts}")
                finish(1)
            open_tab(window, region)
            area.tag_redraw()
            return 0.3
        os.makedirs(os.path.dirname(PNG), exist_ok=True)
        override = {"window": window, "screen": window.screen, "area": area, "region": region}
        shoot = getattr(bpy.ops.screen, "screenshot_area", None) or bpy.ops.screen.screenshot
        if hasattr(bpy.context, "temp_override"):
            with bpy.context.temp_override(**override):
                shoot(filepath=PNG)
        else:
            shoot(override, filepath=PNG)
        finish(0 if not errors and os.path.exists(PNG) else 1)
    except Exception:  # noqa: BLE001 - any failure ends the run with a report
        errors.append(traceback.format_exc())
        finish(1)
    return None


bpy.app.timers.register(step, first_interval=1.0, persistent=True)  # survives the file read
