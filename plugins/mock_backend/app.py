"""The fake WanGP gradio app: recorded components and endpoints wired to :mod:`.handlers`.

Endpoints are registered in the recorded order with functions named like WanGP's, and without
``api_name``, so gradio names them exactly as on the real server (``save_inputs``,
``save_inputs_1`` ...). By default only the generation-relevant endpoints are registered (the
first :data:`COMPACT_COPIES` copies of each, so their names and suffixes match the recording);
``full_surface=True`` registers all 608, the others as no-ops.

**Decoys** (environment ``VIDBRIDGE_MOCK_DECOYS=1`` in the server's process, e.g.
``SubprocessMockServer(env={"VIDBRIDGE_MOCK_DECOYS": "1"})``): before the real endpoints, handlers
with WanGP's function names but *other* signatures are registered (:data:`DECOYS`), as a WanGP
plugin or another WanGP version could add them. They take the plain names (``/save_inputs``...),
so the real ones get suffixes; a call to one is counted as event ``decoy:<name>``. A client that
resolves endpoints by their whole signature never calls them.
"""

from __future__ import annotations

import inspect
import os
import uuid
from typing import Any, Callable

import gradio as gr

from .backend import MockBackend
from .components import build_component
from .handlers import FormLayout, Handlers
from .session import get_session
from .spec import EndpointSpec, Surface, load_surface

COMPACT_COPIES = 3  # copies of each implemented function registered in the compact surface
DECOYS_ENV = "VIDBRIDGE_MOCK_DECOYS"
#: Comma-separated model families the model selector offers (e.g. ``wan,hunyuan``): a server
#: without some models, for pool tests. Unset: every family of the recording.
FAMILIES_ENV = "VIDBRIDGE_MOCK_FAMILIES"
#: Same-named handlers with other signatures: function name -> (parameter names, output kinds).
DECOYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "save_inputs": (("target", "prompt"), ()),
    "process_prompt_and_add_tasks": (("model_choice", "current_gallery_tab", "plugin_option"), ("html",)),
    "activate_status": ((), ()),
    "refresh_status_async": (("channel",), ("text",)),
    "process_tasks": (("task_name",), ("text", "text", "text")),
    "refresh_gallery": ((), ("text",)),
    "finalize_generation": ((), ("number",)),
    "unload_model_if_needed": (("model_type",), ()),
    "abort_generation": (("client_id", "reason"), ("html",)),
    "clear_queue_action": (("client_id",), ("html",)),
    "change_model_from_target": (("model_type", "plugin"), ("html",)),
    "fill_inputs": ((), ("text", "text")),
    "refresh_model_dropdowns": ((), ("dropdown", "dropdown", "dropdown", "text")),
}
WANGP_VERSION = "12.60"
# WanGP's page header, as its /config carries it (a Markdown value): the only place the server
# states its own version ("WanGP v12.60" once the tags are stripped; the config's "version" is gradio's).
HEADER = (f'<div align=center><H1>Wan<SUP style="color: #2563eb;">GP</SUP> v{WANGP_VERSION} '
          '<FONT SIZE=4>by <I>DeepBeepMeep</I></FONT> <FONT SIZE=3>')


def endpoint_function(endpoint: EndpointSpec, impl: Callable[..., Any] | None,
                      session_of: Callable[[dict], Any], n_outputs: int) -> Callable[..., Any]:
    """A function with the recorded name and parameter names that gradio can register.

    gradio reads parameter names from ``inspect.signature`` and the api name from
    ``__name__``; the implementation receives ``(session, {name: value})``.
    """
    names = endpoint.parameter_names
    use_state = impl is not None
    wants_progress = impl is not None and "progress" in inspect.signature(impl).parameters

    def call(args: tuple) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        values = dict(zip(names, args))
        extra = {"progress": args[len(names) + 1]} if wants_progress else {}
        return session_of(args[len(names)]), values, extra

    if impl is None:  # a no-op endpoint of the full surface: "no change" for every output
        def function(*args: Any) -> Any:
            updates = tuple(gr.update() for _ in range(n_outputs))
            return updates[0] if n_outputs == 1 else (updates or None)
    elif endpoint.generator:
        def function(*args: Any) -> Any:
            session, values, extra = call(args)
            yield from impl(session, values, **extra)
    else:
        def function(*args: Any) -> Any:
            session, values, extra = call(args)
            return impl(session, values, **extra)

    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                **({"default": None} if _defaults_to_none(p) else {}))
              for n, p in zip(names, endpoint.parameters)]
    if use_state:
        params.append(inspect.Parameter("state", inspect.Parameter.POSITIONAL_OR_KEYWORD))
    if wants_progress:
        params.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=gr.Progress()))
    function.__signature__ = inspect.Signature(params, __validate_parameters__=False)
    function.__name__ = function.__qualname__ = endpoint.function_name
    return function


def _defaults_to_none(parameter: dict[str, Any]) -> bool:
    # view_api shows has_default with a None default only when the function's own default is None.
    return bool(parameter.get("parameter_has_default")) and parameter.get("parameter_default") is None


def selected_endpoints(surface: Surface, implemented: set[str], full: bool) -> list[EndpointSpec]:
    """The endpoints to register, in the recorded order."""
    if full:
        return list(surface.endpoints)
    copies: dict[str, int] = {}
    chosen = []
    for endpoint in surface.endpoints:
        if endpoint.function_name not in implemented:
            continue
        copies[endpoint.function_name] = copies.get(endpoint.function_name, 0) + 1
        if copies[endpoint.function_name] <= COMPACT_COPIES:
            chosen.append(endpoint)
    return chosen


def build_app(backend: MockBackend) -> gr.Blocks:
    """The gr.Blocks of the mock WanGP for ``backend`` (its options pick the surface size).

    ``blocks.mock_api_names`` maps each registered api name to the recorded one it reproduces
    (they differ only in the compact surface, for copies beyond the recorded prefix).
    """
    surface = load_surface()
    form = FormLayout(surface)
    handlers = Handlers(backend, form, surface)
    model = backend.last_model
    overrides = form.model_updates(model)
    endpoints = selected_endpoints(surface, set(handlers.by_name), backend.options.full_surface)

    def session_of(state: dict) -> Any:
        return get_session(state, uuid.uuid4().hex[:12], backend.last_model.model_type)

    with gr.Blocks(title=surface.title, analytics_enabled=False) as blocks:
        gr.Markdown(HEADER)
        state = gr.State({})
        trigger = gr.Button(visible=False)
        built: dict[int, Any] = {}

        families = {name.strip() for name in os.environ.get(FAMILIES_ENV, "").split(",") if name.strip()}

        def component(cid: int) -> Any:
            if cid not in built:
                spec, extra = surface.components[cid], overrides.get(cid, {})
                if families and spec.config.get("elem_id") == "family_list":
                    extra = {**extra, "choices": [pair for pair in spec.choices if pair[1] in families]}
                built[cid] = build_component(spec, **extra)
            return built[cid]

        decoys = DECOYS if os.environ.get(DECOYS_ENV, "").strip() not in ("", "0") else {}
        for name, (parameters, kinds) in decoys.items():  # before the real ones: they take the plain names
            inputs = [gr.Textbox(visible=False) for _ in parameters]
            outputs = [_DECOY_OUTPUTS[kind]() for kind in kinds]
            trigger.click(_decoy(name, parameters, len(outputs), backend), inputs=inputs, outputs=outputs)
        for endpoint in endpoints:
            impl = handlers.by_name.get(endpoint.function_name)
            inputs = [component(c) for c in endpoint.input_ids]
            outputs = [component(c) for c in endpoint.output_ids]
            fn = endpoint_function(endpoint, impl, session_of, len(outputs))
            trigger.click(fn, inputs=inputs + ([state] if impl else []), outputs=outputs)
    blocks.mock_api_names = _registered_names(endpoints, decoys)
    return blocks


_DECOY_OUTPUTS: dict[str, Callable[[], Any]] = {
    "html": lambda: gr.HTML(visible=False), "text": lambda: gr.Textbox(visible=False),
    "number": lambda: gr.Number(visible=False), "dropdown": lambda: gr.Dropdown(visible=False),
}


def _decoy(name: str, parameters: tuple[str, ...], n_outputs: int, backend: MockBackend) -> Callable[..., Any]:
    """A handler named ``name`` taking ``parameters``: counts its call, changes nothing."""
    def function(*args: Any) -> Any:
        backend.ledger.event(f"decoy:{name}")
        return None if n_outputs <= 1 else tuple(None for _ in range(n_outputs))

    function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in parameters])
    function.__name__ = function.__qualname__ = name
    return function


def _registered_names(endpoints: list[EndpointSpec], decoys: Any = ()) -> dict[str, str]:
    """Registered api name -> recorded api name (gradio suffixes repeats by order; decoys, which
    come first, take the plain names)."""
    seen: dict[str, int] = {name: 1 for name in decoys}
    names = {}
    for endpoint in endpoints:
        base = "lambda" if endpoint.function_name == "<lambda>" else endpoint.function_name
        count = seen.get(base, 0)
        seen[base] = count + 1
        names[base if count == 0 else f"{base}_{count}"] = endpoint.api_name
    return names
