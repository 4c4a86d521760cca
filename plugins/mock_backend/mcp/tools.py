"""The 22 tools of WanGP 12.60's MCP face, registered on an official-SDK ``MCPServer``.

Names, parameters (names, types, defaults, so the SDK derives the recorded input schemas),
return types (so it derives the recorded output schemas and result encoding: a dict is one JSON
text block plus ``structuredContent``, a list one block per item plus ``{"result": [...]}``) and
descriptions are WanGP's. A failure is an ``isError`` result reading
``Error executing tool <name>: <message>``, where ``<message>`` is what WanGP's exception
prints (a KeyError keeps its quotes). Each call is counted in the server's ledger
(``calls["mcp"]`` in order, ``events["tool:<name>"]``) after waiting out ``busy`` faults set for
the tool (``busy:fn=<tool name>,seconds=S``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from typing import Any, Callable, Iterator

from ..faults import HANDLER_KINDS, hostile_name
from . import docs, models
from .gallery import looks_like_gallery_id
from .jobs import TaskSpec, tasks_of
from .state import McpState

SERVER_NAME = "WanGP"
SERVER_VERSION = "1.10.1"  # WanGP's FastMCP reports the mcp package's version, not WanGP's
DIRECT_PATH_MESSAGE = ("Direct filesystem paths are disabled for this MCP server. Use a Gallery id "
                       "for {label}, or restart with filesystem reads enabled.")
DEFAULT_TOOL_TEMPLATES = {"gen_video": ("Media Generator", "Mock Wan2.1 1.3B"),
                          "gen_image": ("Image Generator", "Mock Flux")}
TEMPLATE_MODELS = {"Mock Wan2.1 1.3B": "t2v_1.3B", "Mock Flux": "flux"}

# The recorded tool descriptions (tools.json), word for word: clients and models read them.
DESCRIPTIONS = {
    "wangp_list_models": (
        "List at most 10 compact model records. All string filters accept case-insensitive * and "
        "? globs; query searches names, ids, families, and descriptions. For generation without a"
        " user-specified model, use the corresponding default template instead of browsing."
    ),
    "wangp_search_models": (
        "Search models by user-facing name, model id, architecture, family, or description and "
        "return a bounded page with totals. Other string filters accept * and ? globs."
    ),
    "wangp_list_model_defs": (
        "List a bounded page of full WanGP model definitions. String filters accept * and ? "
        "globs. Prefer search, then fetch one selected model."
    ),
    "wangp_get_model": (
        "Return one WanGP model definition with parameter declarations and capabilities. Embedded"
        " default values are omitted. Do not call this after a template query unless a required "
        "parameter remains absent from both template settings and the compact schema."
    ),
    "wangp_get_model_metadata": (
        "Return one compact model metadata record."
    ),
    "wangp_get_model_availability": (
        "Return local file availability for one model using the same status as the UI model "
        "selector."
    ),
    "wangp_list_model_availability": (
        "List a bounded page of local model-file availability records using the model discovery "
        "filters."
    ),
    "wangp_get_default_settings": (
        "Return pristine model defaults generated from WanGP and the model handler, filtered to "
        "relevant fields and without fixed metadata such as type or settings version. User-saved "
        "UI defaults are not included. Do not call this after a template query because template "
        "settings already include these model defaults."
    ),
    "wangp_list_loras": (
        "List every locally available LoRA for a model. Returned identifiers can be copied "
        "directly into activated_loras and paired with loras_multipliers."
    ),
    "wangp_get_model_schema": (
        "Return a compact capability and usage summary for one model. After a template query, "
        "call this only to verify a required capability or limit that the template does not "
        "establish. Use wangp_get_default_settings only for raw non-template generation requests."
    ),
    "wangp_list_gallery": (
        "List current and remembered session Gallery media, including paths, settings, ids, "
        "selection state, and whether each item is still displayed in the UI."
    ),
    "wangp_get_gallery_item": (
        "Return one current or remembered session Gallery item by the gallery_id returned from "
        "wangp_list_gallery."
    ),
    "wangp_get_gallery_selection": (
        "Return the currently selected visual and/or audio WanGP Gallery items."
    ),
    "wangp_create_gallery_upload": (
        "Create a short-lived HTTP PUT URL for uploading image, video, or audio media. A "
        "successful upload registers and selects the media in the appropriate WanGP Gallery."
    ),
    "wangp_create_gallery_download": (
        "Create a short-lived HTTP GET URL for downloading one Gallery item. Only registered "
        "Gallery media can be downloaded."
    ),
    "wangp_list_deepy_templates": (
        "List settings templates available in Deepy's Template Settings section. The current "
        "default for every tool is marked explicitly."
    ),
    "wangp_get_deepy_template_settings": (
        "Return merged, migrated, model-filtered, non-conflicting settings for a Deepy template. "
        "For any generation task or derived subtask without a user-specified model, call this "
        "with template='default' before model discovery and use the result directly. If "
        "general_properties is returned, apply those values after settings."
    ),
    "wangp_postprocess": (
        "Discover or run compatible post-processing for a Gallery id. Direct server paths are "
        "accepted only when filesystem reads were enabled at startup. Omit process for discovery."
    ),
    "wangp_toolbox": (
        "Discover or run WanGP media utilities. Omit action for a compact action list; pass "
        "action without arguments for its schema; then pass arguments to execute. Media arguments"
        " accept Gallery ids; direct server paths require startup permission."
    ),
    "wangp_generate": (
        "Start a WanGP generation from a settings dict, task dict, or task list."
    ),
    "wangp_get_job": (
        "Poll a WanGP generation job."
    ),
    "wangp_cancel_job": (
        "Request cancellation of a WanGP generation job."
    ),
}


@contextlib.contextmanager
def _root_logger_untouched() -> Iterator[None]:
    """Keep ``MCPServer()`` from configuring the process's root logger.

    It calls ``logging.basicConfig`` (a rich handler and a level on the root logger), which a
    mock embedded in a host process or a test run must not do; basicConfig leaves a root logger
    that already has a handler alone, so one stands there while the server is built.
    """
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        yield
    finally:
        root.removeHandler(guard)


def build_server(state: McpState) -> Any:
    """An ``MCPServer`` named WanGP with every tool of the recording bound to ``state``."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    with _root_logger_untouched():
        server = MCPServer(SERVER_NAME, version=SERVER_VERSION, log_level="WARNING")

    def tool(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for fault in state.backend.faults.take(HANDLER_KINDS, path=name):
                time.sleep(fault.number("seconds", 1.0))
            state.backend.ledger.call("mcp", name)
            state.backend.ledger.event(f"tool:{name}")
            try:
                return fn(*args, **kwargs)
            except ToolError:
                raise
            except Exception as exc:  # WanGP's FastMCP shows the exception's own text
                raise ToolError(str(exc)) from exc

        server.add_tool(call, name=name, description=DESCRIPTIONS[name])
        return call

    _model_tools(tool, state)
    _gallery_tools(tool, state)
    _template_tools(tool, state)
    _job_tools(tool, state)

    docs.register(server)
    return server


def _model_tools(tool: Callable[..., Any], state: McpState) -> None:
    @tool
    def wangp_list_models(family: str | None = None, base_model_type: str | None = None,
                          finetune: str | None = None, model_type: str | None = None,
                          main_output: str | None = None, inputs: str | None = None,
                          name: str | None = None, query: str | None = None, limit: int = 10,
                          offset: int = 0, include_availability: bool = False) -> list[dict[str, Any]]:
        chosen = models.select(**models.filters_of(locals()))
        return [models.with_availability(m, include_availability) for m in models.page(chosen, limit, offset)]

    @tool
    def wangp_search_models(query: str, family: str | None = None, base_model_type: str | None = None,
                            finetune: str | None = None, main_output: str | None = None,
                            inputs: str | None = None, limit: int = 10, offset: int = 0,
                            include_availability: bool = False) -> dict[str, Any]:
        return models.search(query, limit, offset, include_availability, family=family,
                             base_model_type=base_model_type, finetune=finetune,
                             main_output=main_output, inputs=inputs)

    @tool
    def wangp_list_model_defs(family: str | None = None, base_model_type: str | None = None,
                              finetune: str | None = None, model_type: str | None = None,
                              main_output: str | None = None, inputs: str | None = None,
                              name: str | None = None, query: str | None = None, limit: int = 10,
                              offset: int = 0) -> list[dict[str, Any]]:
        chosen = models.select(**models.filters_of(locals()))
        return [models.definition(m) for m in models.page(chosen, limit, offset)]

    @tool
    def wangp_get_model(model_type: str) -> dict[str, Any] | None:
        model = models.lookup(model_type)
        return None if model is None else models.definition(model)

    @tool
    def wangp_get_model_metadata(model_type: str,
                                 include_availability: bool = False) -> dict[str, Any] | None:
        model = models.lookup(model_type)
        return None if model is None else models.with_availability(model, include_availability)

    @tool
    def wangp_get_model_availability(model_type: str) -> dict[str, Any]:
        return models.availability(models.require(model_type))

    @tool
    def wangp_list_model_availability(family: str | None = None, base_model_type: str | None = None,
                                      finetune: str | None = None, model_type: str | None = None,
                                      main_output: str | None = None, inputs: str | None = None,
                                      name: str | None = None, query: str | None = None,
                                      limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
        chosen = models.select(**models.filters_of(locals()))
        return [models.availability(m) for m in models.page(chosen, limit, offset, maximum=100)]

    @tool
    def wangp_get_default_settings(model_type: str) -> dict[str, Any]:
        return models.default_settings(models.require(model_type))

    @tool
    def wangp_list_loras(model_type: str) -> dict[str, Any]:
        return models.loras(models.require(model_type), state.lora_dir)

    @tool
    def wangp_get_model_schema(model_type: str) -> dict[str, Any] | None:
        model = models.lookup(model_type)
        return None if model is None else models.schema(model)



def _gallery_tools(tool: Callable[..., Any], state: McpState) -> None:
    @tool
    def wangp_list_gallery(media_type: str = "all", limit: int = 50) -> list[dict[str, Any]]:
        return state.gallery.records(media_type, limit)

    @tool
    def wangp_get_gallery_item(gallery_id: str) -> dict[str, Any]:
        return state.gallery.item(gallery_id)

    @tool
    def wangp_get_gallery_selection(media_type: str = "all") -> list[dict[str, Any]]:
        return state.gallery.selection(media_type)

    @tool
    def wangp_create_gallery_upload(filename: str) -> dict[str, Any]:
        return state.transfers.create_upload(filename)

    @tool
    def wangp_create_gallery_download(gallery_id: str) -> dict[str, Any]:
        hostile = state.backend.faults.take(["hostile_name"], path="wangp_create_gallery_download")
        return state.transfers.create_download(gallery_id, hostile_name(hostile[0]) if hostile else None)


def _template_tools(tool: Callable[..., Any], state: McpState) -> None:
    @tool
    def wangp_list_deepy_templates(tool_id: str | None = None) -> list[dict[str, Any]]:
        return [{"tool_id": tid, "label": label, "default_template": template,
                 "templates": [{"template": template, "label": template, "default": True}]}
                for tid, (label, template) in DEFAULT_TOOL_TEMPLATES.items() if tool_id in (None, tid)]

    @tool
    def wangp_get_deepy_template_settings(tool_id: str, template: str) -> dict[str, Any]:
        if tool_id not in DEFAULT_TOOL_TEMPLATES:
            raise ValueError(f"Unknown Deepy tool_id: {tool_id}")
        default = DEFAULT_TOOL_TEMPLATES[tool_id][1]
        name = default if template == "default" else template
        if name != default:
            raise ValueError(f"Unknown Deepy template for {tool_id}: {template}")
        return {"tool_id": tool_id, "template": name, "default": True, "default_template": default,
                "general_properties_active": False,
                "settings": models.default_settings(models.require(TEMPLATE_MODELS[name]))}

    @tool
    def wangp_postprocess(path: str, process: str | None = None,
                          parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        record = _gallery_reference(state, path, "path")
        if process is not None:
            raise ValueError(f"Unknown post-processing process for {record['media_type']}: {process}")
        return {"status": "discovery", "path": record["path"], "media_type": record["media_type"],
                "processes": []}

    @tool
    def wangp_toolbox(action: str | None = None, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        if action is None:
            return {"status": "discovery", "actions": []}
        raise ValueError(f"Unknown toolbox action: {action}")


def _gallery_reference(state: McpState, value: Any, label: str) -> dict[str, Any]:
    """The Gallery record a media argument names; direct paths are refused as on WanGP."""
    if not looks_like_gallery_id(value):
        raise ValueError(DIRECT_PATH_MESSAGE.format(label=label))
    return state.gallery.item(value)


def _resolve_media(state: McpState, task: TaskSpec) -> TaskSpec:
    """Gallery ids in a task's media settings -> their paths (a list keeps its shape)."""
    from .. import generation

    params = dict(task.params)
    for key in generation.MEDIA_KEYS & params.keys():
        value = params[key]
        if value in (None, "", []):
            continue
        items = value if isinstance(value, list) else [value]
        paths = [_gallery_reference(state, item, key)["path"] for item in items]
        params[key] = paths if isinstance(value, list) else paths[0]
    return TaskSpec(task.task_id, params)


def _job_tools(tool: Callable[..., Any], state: McpState) -> None:
    def limit(event_limit: int | None) -> int:
        return state.event_limit if event_limit is None else event_limit

    @tool
    def wangp_generate(source: dict[str, Any] | list[dict[str, Any]], wait: bool = False,
                       timeout_s: float | None = None, event_limit: int | None = None) -> dict[str, Any]:
        tasks = [_resolve_media(state, task) for task in tasks_of(source)]
        job = state.jobs.submit(tasks)
        if wait and not job.done.wait(timeout_s):
            raise TimeoutError("WanGP session job timed out")
        return job.snapshot(limit(event_limit), state.gallery)

    @tool
    def wangp_get_job(job_id: str, event_limit: int | None = None) -> dict[str, Any]:
        return state.jobs.get(job_id).snapshot(limit(event_limit), state.gallery)

    @tool
    def wangp_cancel_job(job_id: str, event_limit: int | None = None) -> dict[str, Any]:
        job = state.jobs.get(job_id)
        job.cancel()
        return job.snapshot(limit(event_limit), state.gallery)
