"""The Sequencer sidebar panels (category "vidbridge"): Connection, Generate, Jobs.

Drawing only reads plain state (the scene's entries and the health rows the pump wrote): it never
waits for a server.
"""

from __future__ import annotations

import bpy

from . import lifecycle, prefs
from .props import INTERRUPTED, TERMINAL

__all__ = ["draw_counts", "GENERATE_FIELDS", "register", "unregister"]

#: panel -> times drawn (tests and the screenshot script check that drawing works)
draw_counts: dict[str, int] = {"connection": 0, "generate": 0, "jobs": 0}

#: The Generate panel's inputs, in the order drawn; each is also the operator's property.
GENERATE_FIELDS = ("prompt", "negative_prompt", "model", "frames", "resolution", "seed", "steps", "preset",
                   "image_start", "use_active_strip", "audio")


class _Sidebar:
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "vidbridge"


class VIDBRIDGE_PT_connection(_Sidebar, bpy.types.Panel):
    """Each server's health, as the last background check found it."""

    bl_label = "Connection"
    bl_idname = "VIDBRIDGE_PT_connection"

    def draw(self, context):  # noqa: D102
        draw_counts["connection"] += 1
        layout = self.layout
        for url in prefs.settings(context).urls:
            row = lifecycle.health.get(url)
            box = layout.box()
            if row is None:
                box.label(text=url, icon="QUESTION")
                box.label(text="not checked yet")
                continue
            box.label(text=url, icon="CHECKMARK" if row["reachable"] else "ERROR")
            if row["reachable"]:
                box.label(text=f"{row.get('backend')} {row.get('version') or ''} · {row.get('face')}")
                queue = row.get("queue_size")
                box.label(text=f"{len(row.get('models', []))} models · queue {'?' if queue is None else queue}")
            else:
                box.label(text=(row.get("note") or "not reachable")[:80])
        layout.operator("vidbridge.test_connection", icon="FILE_REFRESH")


class VIDBRIDGE_PT_generate(_Sidebar, bpy.types.Panel):
    """The generation inputs and the Generate button."""

    bl_label = "Generate"
    bl_idname = "VIDBRIDGE_PT_generate"

    def draw(self, context):  # noqa: D102
        draw_counts["generate"] += 1
        layout = self.layout
        inputs = context.scene.vidbridge_inputs
        col = layout.column()
        for name in GENERATE_FIELDS:
            col.prop(inputs, name)
        op = layout.operator("vidbridge.generate", icon="RENDER_ANIMATION")
        for name in GENERATE_FIELDS:
            setattr(op, name, getattr(inputs, name))


class VIDBRIDGE_PT_jobs(_Sidebar, bpy.types.Panel):
    """The scene's jobs: phase, queue position, steps, ETA, download, errors; Cancel and Resume."""

    bl_label = "Jobs"
    bl_idname = "VIDBRIDGE_PT_jobs"

    def draw(self, context):  # noqa: D102
        draw_counts["jobs"] += 1
        layout = self.layout
        jobs = list(context.scene.vidbridge_jobs)
        if not jobs:
            layout.label(text="no jobs yet")
        for entry in reversed(jobs[-12:]):
            box = layout.box()
            icon = {"completed": "CHECKMARK", "failed": "ERROR", "cancelled": "X",
                    INTERRUPTED: "UNLINKED"}.get(entry.phase, "TIME")
            box.label(text=entry.prompt[:48] or entry.token, icon=icon)
            box.label(text=f"{entry.phase} · {entry.job_id or entry.token}")
            details = []
            if entry.queue_position >= 0:
                details.append(f"queue {entry.queue_position}")
            if entry.total_steps > 0:
                details.append(f"step {max(entry.step, 0)}/{entry.total_steps}")
            if entry.eta >= 0:
                details.append(f"ETA {entry.eta}s")
            if entry.downloaded >= 0:
                total = f"/{entry.total_bytes}" if entry.total_bytes >= 0 else ""
                details.append(f"{entry.downloaded}{total} B")
            if details:
                box.label(text=" · ".join(details))
            if entry.error:
                box.label(text=entry.error[:90], icon="ERROR")
            elif entry.message and entry.phase not in TERMINAL:
                box.label(text=entry.message[:90])
            row = box.row()
            if entry.phase not in TERMINAL and not entry.resumable:
                row.operator("vidbridge.cancel", icon="CANCEL").job_id = entry.token
            if entry.phase == INTERRUPTED:  # nothing left to follow: only running it again helps
                op = row.operator("vidbridge.resume", text="Resubmit", icon="FILE_REFRESH")
                op.job_id, op.resubmit = entry.token, True
            elif entry.resumable:
                row.operator("vidbridge.resume", icon="PLAY").job_id = entry.token
        if lifecycle.errors:
            layout.label(text=lifecycle.errors[-1][:90], icon="ERROR")
        known = {entry.job_id for entry in jobs}
        others = [row for row in lifecycle.ledger_rows if row["id"] not in known]
        if others:
            box = layout.box()
            box.label(text="Unfinished in the job ledger", icon="INFO")
            for row in others[:5]:
                line = box.row()
                line.label(text=f"{row['prompt'][:32] or row['id']} · {row['status']}")
                line.operator("vidbridge.resume", text="Resume here", icon="PLAY").job_id = row["id"]
        row = layout.row()
        row.operator("vidbridge.refresh_ledger", text="Ledger", icon="FILE_REFRESH")
        row.operator("vidbridge.clear_finished", icon="TRASH")


_CLASSES = (VIDBRIDGE_PT_connection, VIDBRIDGE_PT_generate, VIDBRIDGE_PT_jobs)


# Blender's own pair: registers in order, unregisters in reverse.
register, unregister = bpy.utils.register_classes_factory(_CLASSES)
