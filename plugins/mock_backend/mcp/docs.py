"""The prompt and documentation resources of WanGP's MCP face (names as recorded, mock texts).

WanGP serves its own markdown documentation as ``wangp://docs/<name>`` resources and one prompt,
``wangp_agent``. The mock lists the same 21 resources and the prompt; their texts are short
stand-ins (the real texts are WanGP's documentation, not interface facts).
"""

from __future__ import annotations

from typing import Any

DOC_NAMES = ("amd-installation", "api", "audio_processors", "changelog", "cli", "deepy",
             "finetunes", "getting_started", "installation", "loras", "models", "overview",
             "plugins", "processing", "prompts", "settings", "spatial_upsamplers",
             "temporal_upsamplers", "troubleshooting", "vace")
SPECIAL_DESCRIPTIONS = {
    "settings": ("WanGP generation settings: model selection, prompts, output dimensions, sampling "
                 "and guidance, media inputs, acceleration and caching, post-processing, sliding "
                 "windows, LoRAs, flags, and model API metadata."),
}
PROMPT_FLAGS = ("prompt_flags", "wangp://docs/settings/prompt-flags",
                "Exact image_prompt_type, video_prompt_type, and audio_prompt_type flag definitions.")
AGENT_PROMPT_DESCRIPTION = ("Instructions for discovering WanGP models, building settings, running "
                            "jobs, and handling media.")
AGENT_PROMPT = ("Discover models with wangp_search_models, read defaults with "
                "wangp_get_default_settings, start one job with wangp_generate(wait=False), poll it "
                "with wangp_get_job, and fetch outputs with wangp_create_gallery_download.")


def resources() -> list[tuple[str, str, str]]:
    """``(name, uri, description)`` of every documentation resource, in WanGP's order."""
    listed = [(name, f"wangp://docs/{name}",
               SPECIAL_DESCRIPTIONS.get(name, f"WanGP {name.upper()} documentation."))
              for name in DOC_NAMES]
    return [*listed, PROMPT_FLAGS]


def register(server: Any) -> None:
    """Add the resources and the ``wangp_agent`` prompt to an ``MCPServer``."""
    for name, uri, description in resources():
        server.resource(uri, name=name, description=description, mime_type="text/markdown")(_reader(name))

    @server.prompt(name="wangp_agent", title="WanGP Agent Guide", description=AGENT_PROMPT_DESCRIPTION)
    def wangp_agent_prompt() -> str:
        return AGENT_PROMPT


def _reader(name: str) -> Any:
    """The reader of one resource (parameterless: a static resource must not declare any)."""
    def read() -> str:
        return f"# WanGP {name}\n\nThe vidbridge mock serves no WanGP documentation.\n"
    return read
