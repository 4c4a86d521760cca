"""The recorded API surface of WanGP 12.60, as packaged data.

Two recordings of a live WanGP 12.60 server (gradio 5.29) are shipped in ``data/``:

* ``api-12.60.json.gz``: its ``view_api(return_format="dict")`` answer (608 named endpoints;
  endpoints identical to an earlier one are stored as ``{"same_as": "/other"}``);
* ``config-12.60.json.gz``: its ``/config`` reduced to what a client sees: the components used by
  events (id, type, label, choices, range) and the dependencies (api name, input and output ids).

Together they tell which *component* sits behind every API parameter, so the fake app can share one
component between endpoints exactly where the real one does (that matters: a dropdown's per-session
choices, widened by one endpoint, are validated when another endpoint receives its value).

Only the standard library is used here: the server side must import with gradio + av alone.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).with_name("data")
API_FILE = DATA_DIR / "api-12.60.json.gz"
CONFIG_FILE = DATA_DIR / "config-12.60.json.gz"

# Component types that gradio leaves out of view_api (layout blocks, buttons without values, State).
# Measured on the recording: with this set, the API-visible inputs/outputs of every dependency are
# exactly its view_api parameters/returns.
_SKIPPED_TYPES = frozenset(
    {"state", "row", "column", "tabitem", "tabs", "group", "accordion", "button", "form", "sidebar"}
)
_RANGE = re.compile(r"numeric value between (-?[\d.]+) and (-?[\d.]+)")


@dataclass(frozen=True)
class ComponentSpec:
    """One component of the real app: its config entry plus the view_api description of it.

    ``api`` is a view_api parameter entry when the component is an input of some endpoint (it then
    carries the default), otherwise a return entry, otherwise empty.
    """

    id: int
    type: str
    config: dict[str, Any]
    api: dict[str, Any]

    @property
    def label(self) -> str | None:
        """The real label, or None where gradio showed a ``parameter_N``/``value_N`` placeholder."""
        label = self.config.get("label")
        return label if isinstance(label, str) else None

    @property
    def has_default(self) -> bool:
        return bool(self.api.get("parameter_has_default"))

    @property
    def default(self) -> Any:
        return self.api.get("parameter_default")

    @property
    def schema(self) -> dict[str, Any]:
        return self.api.get("type") or {}

    @property
    def numeric_range(self) -> tuple[float, float] | None:
        """(minimum, maximum) of a slider, from the config or the view_api description."""
        if "minimum" in self.config and "maximum" in self.config:
            return float(self.config["minimum"]), float(self.config["maximum"])
        match = _RANGE.search(self.schema.get("description", "") or "")
        return (float(match[1]), float(match[2])) if match else None

    @property
    def choices(self) -> list[Any] | None:
        """Dropdown/radio choices as (label, value) pairs from the config, else the enum values."""
        if "choices" in self.config:
            return [tuple(c) if isinstance(c, list) else c for c in self.config["choices"]]
        schema = self.schema
        enum = schema.get("enum", (schema.get("items") or {}).get("enum"))
        return list(enum) if enum is not None else None


@dataclass(frozen=True)
class EndpointSpec:
    """One named endpoint: its api name, the function name gradio derived it from, its
    API-visible input and output components (ids, in order) and the view_api entries of both."""

    api_name: str
    function_name: str
    input_ids: tuple[int, ...]
    output_ids: tuple[int, ...]
    parameters: tuple[dict[str, Any], ...]
    returns: tuple[dict[str, Any], ...]
    generator: bool
    uses_state: bool = field(default=True)

    @property
    def parameter_names(self) -> list[str]:
        return [p["parameter_name"] for p in self.parameters]


@dataclass(frozen=True)
class Surface:
    """The whole recorded surface: components by id and endpoints in registration order."""

    components: dict[int, ComponentSpec]
    endpoints: tuple[EndpointSpec, ...]
    title: str

    def endpoint(self, api_name: str) -> EndpointSpec:
        """The endpoint recorded under ``api_name`` (with or without the leading slash)."""
        name = api_name.lstrip("/")
        for endpoint in self.endpoints:
            if endpoint.api_name == name:
                return endpoint
        raise KeyError(api_name)


def function_name(api_name: str) -> str:
    """The Python function name gradio derived ``api_name`` from (strips the ``_N`` suffix).

    ``lambda``/``lambda_N`` come from lambdas, whose ``__name__`` is ``<lambda>``.
    """
    base = re.sub(r"_\d+$", "", api_name)
    # A function genuinely named like "x_2" cannot be told apart; WanGP has none among the
    # endpoints the mock implements, and for no-op endpoints the name only has to round-trip.
    return "<lambda>" if base == "lambda" else base


@functools.lru_cache(maxsize=1)
def load_api() -> dict[str, Any]:
    """The recorded view_api dict with ``same_as`` entries resolved (a fresh copy is not made)."""
    with gzip.open(API_FILE, "rt", encoding="utf-8") as fh:
        named = json.load(fh)["named_endpoints"]
    resolved = {}
    for name, entry in named.items():
        while "same_as" in entry:
            entry = named[entry["same_as"]]
        resolved[name] = entry
    return resolved


@functools.lru_cache(maxsize=1)
def load_surface() -> Surface:
    """Parse the packaged recordings into a :class:`Surface` (cached)."""
    api = load_api()
    with gzip.open(CONFIG_FILE, "rt", encoding="utf-8") as fh:
        config = json.load(fh)
    config_components = {c["id"]: c for c in config["components"]}

    def visible(ids: list[int]) -> list[int]:
        return [i for i in ids if config_components[i]["type"] not in _SKIPPED_TYPES]

    api_entries: dict[int, dict[str, Any]] = {}
    endpoints = []
    for dep in config["dependencies"]:
        entry = api.get(f"/{dep['api_name']}")
        if entry is None:  # js-only or hidden events: not part of the API surface
            continue
        inputs, outputs = visible(dep["inputs"]), visible(dep["outputs"])
        if len(inputs) != len(entry["parameters"]) or len(outputs) != len(entry["returns"]):
            raise ValueError(f"recorded surface inconsistent for /{dep['api_name']}")
        for cid, param in zip(inputs, entry["parameters"]):
            api_entries.setdefault(cid, param)
        endpoints.append(
            EndpointSpec(
                api_name=dep["api_name"],
                function_name=function_name(dep["api_name"]),
                input_ids=tuple(inputs),
                output_ids=tuple(outputs),
                parameters=tuple(entry["parameters"]),
                returns=tuple(entry["returns"]),
                generator=bool(dep["types"]["generator"]),
                uses_state=any(config_components[i]["type"] == "state" for i in dep["inputs"]),
            )
        )
    for endpoint in endpoints:  # components seen only as outputs get their return entry
        for cid, ret in zip(endpoint.output_ids, endpoint.returns):
            api_entries.setdefault(cid, ret)
    components = {
        cid: ComponentSpec(cid, c["type"], c, api_entries.get(cid, {}))
        for cid, c in config_components.items()
        if c["type"] not in _SKIPPED_TYPES
    }
    return Surface(components=components, endpoints=tuple(endpoints), title=config["title"])
