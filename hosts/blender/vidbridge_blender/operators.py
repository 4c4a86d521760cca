"""Operators: generate, cancel, resume, test connection, and the small helpers the panels use."""

from __future__ import annotations

import logging

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import api, lifecycle, prefs

__all__ = ["register", "unregister"]

log = logging.getLogger("vidbridge.blender")


def _error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"


class VIDBRIDGE_OT_generate(bpy.types.Operator):
    """Generate a video with vidbridge; its strip lands at the current frame on a free channel"""

    bl_idname = "vidbridge.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    prompt: StringProperty(name="Prompt")
    negative_prompt: StringProperty(name="Negative prompt")
    model: StringProperty(name="Model", description="Empty: the preferences' default model")
    frames: IntProperty(name="Frames", default=17, min=0, max=10000, description="0: the server's default")
    resolution: StringProperty(name="Resolution", description="WIDTHxHEIGHT; empty: the server's default")
    seed: IntProperty(name="Seed", default=-1, min=-1, description="-1: random")
    steps: IntProperty(name="Steps", default=0, min=0, max=1000, description="0: the server's default")
    preset: StringProperty(name="Preset")
    image_start: StringProperty(name="Start image", subtype="FILE_PATH",
                                description="A start image file; empty: none (see use_active_strip)")
    use_active_strip: BoolProperty(name="Active image strip as start image", default=False)
    audio: StringProperty(name="Audio", subtype="FILE_PATH",
                          description="Drives an audio-driven model; empty: none")
    url: StringProperty(name="Server", description="Empty: the first server of the preferences")
    job_id: StringProperty(name="Job token", description="Set by the operator: the new job's token",
                           options={"SKIP_SAVE"})

    def execute(self, context):  # noqa: D102 - Blender API
        image = self.image_start or None
        if image is None and self.use_active_strip:
            image = api.active_image_strip_path(context.scene)
            if image is None:
                self.report({"ERROR"}, "no active image strip to start from")
                return {"CANCELLED"}
        try:
            token = api.generate(self.prompt, negative_prompt=self.negative_prompt, model=self.model or None,
                                 frames=self.frames or None, resolution=self.resolution or None,
                                 seed=self.seed, steps=self.steps or None, preset=self.preset or None,
                                 image_start=image, audio=self.audio or None, url=self.url or None,
                                 scene=context.scene)
        except Exception as exc:  # noqa: BLE001 - every failure is the artist's report
            self.report({"ERROR"}, _error_text(exc))
            return {"CANCELLED"}
        self.job_id = token
        self.report({"INFO"}, f"vidbridge job {token} queued")
        return {"FINISHED"}


class VIDBRIDGE_OT_cancel(bpy.types.Operator):
    """Cancel a vidbridge job on the server"""

    bl_idname = "vidbridge.cancel"
    bl_label = "Cancel job"

    job_id: StringProperty(name="Job", description="The job's token or vidbridge job id")

    def execute(self, context):  # noqa: D102
        try:
            api.cancel(self.job_id)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _error_text(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class VIDBRIDGE_OT_resume(bpy.types.Operator):
    """Follow an unfinished job again through the vidbridge job ledger"""

    bl_idname = "vidbridge.resume"
    bl_label = "Resume job"

    job_id: StringProperty(name="Job", description="The job's token or vidbridge job id")
    resubmit: BoolProperty(name="Resubmit", default=False, options={"SKIP_SAVE"},
                           description="When the server cannot find the job's work (interrupted), generate it "
                                       "again as the job's next attempt")

    def execute(self, context):  # noqa: D102
        try:
            api.resume(self.job_id, resubmit=self.resubmit)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _error_text(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class VIDBRIDGE_OT_test_connection(bpy.types.Operator):
    """Check every server of the preferences in the background and report what answers"""

    bl_idname = "vidbridge.test_connection"
    bl_label = "Test connection"

    announce: BoolProperty(default=True, options={"SKIP_SAVE"})

    def execute(self, context):  # noqa: D102
        config = prefs.settings(context)
        try:
            lifecycle.runner().check_health(config.urls, config.credentials(), announce=self.announce)
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _error_text(exc))
            return {"CANCELLED"}
        lifecycle.ensure_timer()
        self.report({"INFO"}, f"checking {len(config.urls)} server(s)")
        return {"FINISHED"}


class VIDBRIDGE_OT_refresh_ledger(bpy.types.Operator):
    """List the vidbridge job ledger's unfinished jobs (read in the background)"""

    bl_idname = "vidbridge.refresh_ledger"
    bl_label = "Unfinished jobs of the ledger"

    def execute(self, context):  # noqa: D102
        try:
            api.refresh_ledger()
        except Exception as exc:  # noqa: BLE001
            self.report({"ERROR"}, _error_text(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class VIDBRIDGE_OT_report_message(bpy.types.Operator):
    """Show a message of a background job as a Blender report"""

    bl_idname = "vidbridge.report_message"
    bl_label = "vidbridge message"
    bl_options = {"INTERNAL"}

    message: StringProperty()
    level: EnumProperty(items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")],
                        default="INFO")

    def execute(self, context):  # noqa: D102
        self.report({self.level}, self.message)
        return {"FINISHED"}


class VIDBRIDGE_OT_server_add(bpy.types.Operator):
    """Add a server URL to the preferences"""

    bl_idname = "vidbridge.server_add"
    bl_label = "Add server"

    def execute(self, context):  # noqa: D102
        found = prefs.preferences(context)
        if found is None:
            self.report({"ERROR"}, "enable the add-on in the preferences first")
            return {"CANCELLED"}
        found.servers.add().url = prefs.DEFAULT_URL
        return {"FINISHED"}


class VIDBRIDGE_OT_server_remove(bpy.types.Operator):
    """Remove a server URL from the preferences"""

    bl_idname = "vidbridge.server_remove"
    bl_label = "Remove server"

    index: IntProperty()

    def execute(self, context):  # noqa: D102
        found = prefs.preferences(context)
        if found is not None and 0 <= self.index < len(found.servers):
            found.servers.remove(self.index)
        return {"FINISHED"}


class VIDBRIDGE_OT_clear_finished(bpy.types.Operator):
    """Forget the scene's finished jobs (their strips stay)"""

    bl_idname = "vidbridge.clear_finished"
    bl_label = "Clear finished"

    def execute(self, context):  # noqa: D102
        jobs = context.scene.vidbridge_jobs
        for index in reversed(range(len(jobs))):
            if jobs[index].phase in ("completed", "failed", "cancelled"):
                jobs.remove(index)
        return {"FINISHED"}


_CLASSES = (VIDBRIDGE_OT_generate, VIDBRIDGE_OT_cancel, VIDBRIDGE_OT_resume, VIDBRIDGE_OT_test_connection,
            VIDBRIDGE_OT_refresh_ledger,
            VIDBRIDGE_OT_report_message, VIDBRIDGE_OT_server_add, VIDBRIDGE_OT_server_remove,
            VIDBRIDGE_OT_clear_finished)


# Blender's own pair: registers in order, unregisters in reverse.
register, unregister = bpy.utils.register_classes_factory(_CLASSES)
