"""Add-on preferences: servers, credentials, default model, output folder.

Preferences live in Blender's user preferences, never in a .blend. Credentials may instead come
from the environment (``VIDBRIDGE_USERNAME``, ``VIDBRIDGE_PASSWORD``, ``VIDBRIDGE_TOKEN``), which
wins; they are handed to vidbridge as secrets and never printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import bpy
from bpy.props import CollectionProperty, IntProperty, StringProperty
from bpy.types import AddonPreferences, PropertyGroup

__all__ = ["ADDON_ID", "Settings", "settings", "register", "unregister"]

#: the add-on's module name: ``vidbridge_blender``, or ``bl_ext.<repo>.vidbridge_blender`` as an extension
ADDON_ID = __package__

DEFAULT_URL = "http://127.0.0.1:7860"


class VIDBRIDGE_PG_server(PropertyGroup):
    """One server URL."""

    url: StringProperty(name="URL", default=DEFAULT_URL)


class VIDBRIDGE_AP_preferences(AddonPreferences):
    """The preferences panel of the add-on."""

    bl_idname = ADDON_ID

    servers: CollectionProperty(type=VIDBRIDGE_PG_server)
    active_server: IntProperty(default=0)
    username: StringProperty(name="User name", description="Server login (or VIDBRIDGE_USERNAME)")
    password: StringProperty(name="Password", subtype="PASSWORD",
                             description="Kept in the preferences only (better: VIDBRIDGE_PASSWORD)")
    token: StringProperty(name="Token", subtype="PASSWORD",
                          description="Hugging Face token (better: VIDBRIDGE_TOKEN)")
    default_model: StringProperty(name="Default model", description="Empty: the server's current model")
    output_dir: StringProperty(name="Output folder", subtype="DIR_PATH", default="//vidbridge/",
                               description="'//' = beside the saved .blend; a temp folder for an unsaved file")

    def draw(self, context):  # noqa: D102 - Blender API
        layout = self.layout
        box = layout.box()
        box.label(text="Servers")
        for index, server in enumerate(self.servers):
            row = box.row(align=True)
            row.prop(server, "url", text="")
            op = row.operator("vidbridge.server_remove", text="", icon="X")
            op.index = index
        row = box.row()
        row.operator("vidbridge.server_add", icon="ADD")
        row.operator("vidbridge.test_connection", icon="PLUGIN")
        col = layout.column()
        col.prop(self, "username")
        col.prop(self, "password")
        col.prop(self, "token")
        if any(os.environ.get(name) for name in ("VIDBRIDGE_PASSWORD", "VIDBRIDGE_TOKEN", "VIDBRIDGE_USERNAME")):
            col.label(text="Credentials from the environment are used", icon="INFO")
        col.prop(self, "default_model")
        col.prop(self, "output_dir")


@dataclass(frozen=True)
class Settings:
    """A plain snapshot of the preferences, safe to hand to worker threads (no bpy objects).

    The secrets are kept out of ``repr``.
    """

    urls: tuple[str, ...] = (DEFAULT_URL,)
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    default_model: str = ""
    output_dir: str = "//vidbridge/"

    def credentials(self) -> dict:
        """Credentials fields for ``vidbridge.Credentials`` (empty ones left out)."""
        values = {"username": self.username, "password": self.password, "token": self.token}
        return {key: value for key, value in values.items() if value}


def settings(context=None) -> Settings:
    """The preferences now (defaults when the add-on was registered without ``addon_utils``)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    prefs = getattr(addon, "preferences", None)
    env = os.environ
    if prefs is None:
        urls: tuple[str, ...] = (DEFAULT_URL,)
        values = dict(username="", password="", token="", default_model="", output_dir="//vidbridge/")
    else:
        urls = tuple(s.url.strip() for s in prefs.servers if s.url.strip()) or (DEFAULT_URL,)
        values = dict(username=prefs.username, password=prefs.password, token=prefs.token,
                      default_model=prefs.default_model, output_dir=prefs.output_dir or "//vidbridge/")
    values["username"] = env.get("VIDBRIDGE_USERNAME") or values["username"]
    values["password"] = env.get("VIDBRIDGE_PASSWORD") or values["password"]
    values["token"] = env.get("VIDBRIDGE_TOKEN") or values["token"]
    return Settings(urls=urls, **values)


def preferences(context=None):
    """The AddonPreferences object, or ``None`` when the add-on is not enabled through Blender."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return getattr(addon, "preferences", None)


_CLASSES = (VIDBRIDGE_PG_server, VIDBRIDGE_AP_preferences)


def register() -> None:
    """Register the preferences; a first start gets one server, the local default."""
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    prefs = preferences()
    if prefs is not None and not prefs.servers:
        prefs.servers.add().url = DEFAULT_URL


def unregister() -> None:
    """Unregister the preferences classes."""
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
