"""The server's API surface, read from its own ``view_api()`` and ``/config``.

WanGP names endpoints after Python functions, so copies get ``_1``, ``_2``... suffixes that change
between versions and with plugins, and a server may carry other handlers under the same function
names (WanGP's own plugins, other versions). Endpoints are therefore resolved by *base name* and
by the *whole signature* a caller needs (:class:`Signature`: every parameter it sends, the
returns it reads), never by a hard-coded suffix or "the first copy that takes a prompt": every
copy is scored, and when none fits :class:`EndpointNotFound` lists each copy and why it was
refused. Payloads are built by parameter name from the server's own defaults.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from vidbridge import InvalidRequestError

__all__ = ["Parameter", "Signature", "ApiSurface", "EndpointNotFound", "update_value", "refuse_unknown"]

_SUFFIX = re.compile(r"^(?P<base>/.+?)(?:_(?P<n>\d+))?$")

# gradio_client drops these output components from results (``utils.SKIP_COMPONENTS``); we need
# the same rule to line up outputs with component ids.
_SKIPPED_TYPES = frozenset({"state", "row", "column", "tabs", "tab", "tabitem", "box", "form", "accordion",
                            "group", "interpretation", "dataset", "sidebar"})


def refuse_unknown(values: Iterable[str], known: Iterable[str], *, field: str, lacks: str, everything: str) -> None:
    """Refuse the first name of ``values`` that is not in ``known``, suggesting close matches.

    :param lacks: what is missing, before the name (``"the server's form has no field"``).
    :param everything: what is allowed when no known name is close.
    :raises InvalidRequestError: ``field`` is ``"<field>.<name>"``; ``allowed`` lists the close
        matches, else ``everything``.
    """
    known = list(known)
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=4, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise InvalidRequestError(f"{field}.{name}: {lacks} {name!r}{hint}", field=f"{field}.{name}",
                                      allowed=", ".join(close) if close else everything)


class EndpointNotFound(LookupError):
    """The server offers no endpoint with that base name and signature (the message lists every
    copy considered and why it was refused)."""


@dataclass(frozen=True)
class Signature:
    """What a caller needs of an endpoint, to pick the right copy among same-named handlers.

    :ivar base: the function name (``save_inputs``).
    :ivar parameters: parameter names that must all be present.
    :ivar exact: the parameters must be exactly :attr:`parameters`, in order (calls that send them
        positionally).
    :ivar preferred: parameters that count in a copy's score when present (sent when present).
    :ivar returns: components (lower-case, e.g. ``"gallery"``) that must be among the returns.
    :ivar min_returns: at least this many returns.
    :ivar check: a further test ``(surface, api_name) -> reason or None`` (e.g. its outputs feed
        another endpoint's inputs).
    """

    base: str
    parameters: tuple[str, ...] = ()
    exact: bool = False
    preferred: tuple[str, ...] = ()
    returns: tuple[str, ...] = ()
    min_returns: int = 0
    check: Callable[[ApiSurface, str], str | None] | None = None

    def describe(self) -> str:
        """The signature in words, for messages."""
        takes = (f"exactly ({', '.join(self.parameters)})" if self.exact
                 else f"parameters {', '.join(self.parameters)}" if self.parameters else "any parameters")
        gives = f"; returning {', '.join(self.returns)}" if self.returns else ""
        return f"/{self.base} taking {takes}{gives}"


@dataclass(frozen=True)
class Parameter:
    """One parameter of an endpoint, as ``view_api`` describes it."""

    name: str
    component: str
    has_default: bool
    default: Any
    choices: tuple[Any, ...] | None
    python_type: str

    @staticmethod
    def name_of(info: Mapping[str, Any]) -> str:
        """The name of one ``view_api`` parameter dict."""
        return str(info.get("parameter_name") or info.get("label") or "")

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Parameter:
        """Build from one ``view_api`` parameter dict."""
        kind = info.get("type") or {}
        enum = kind.get("enum") if isinstance(kind, dict) else None
        return cls(
            name=cls.name_of(info),
            component=str(info.get("component") or ""),
            has_default=bool(info.get("parameter_has_default")),
            default=info.get("parameter_default"),
            choices=tuple(enum) if isinstance(enum, list) else None,
            python_type=str(info.get("python_type") or ""),
        )


def base_name(api_name: str) -> str:
    """``/save_inputs_16`` -> ``/save_inputs``."""
    match = _SUFFIX.match(api_name)
    return match["base"] if match else api_name


def _suffix_number(api_name: str) -> int:
    match = _SUFFIX.match(api_name)
    return int(match["n"]) if match and match["n"] else -1


def update_value(value: Any) -> Any:
    """The value inside a gradio update dict (``{"__type__": "update", "value": ...}``), else ``value``."""
    if isinstance(value, dict) and value.get("__type__") == "update":
        return value.get("value")
    return value


class ApiSurface:
    """Endpoint look-up and payload building over one server's ``view_api(return_format="dict")``.

    :param info: the ``view_api`` dict (``named_endpoints`` -> parameters/returns).
    :param config: the server's ``/config`` (optional): used to line up outputs of one endpoint
        with inputs of another by component id.
    """

    def __init__(self, info: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> None:
        self._named: dict[str, Mapping[str, Any]] = dict(info.get("named_endpoints") or {})
        self._params: dict[str, tuple[Parameter, ...]] = {}
        self._names: dict[str, tuple[str, ...]] = {}
        self._config = config or {}
        self._resolved: dict[Signature, str | EndpointNotFound] = {}

    # -- look-up -----------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Every named endpoint."""
        return list(self._named)

    def parameters(self, api_name: str) -> tuple[Parameter, ...]:
        """The parameters of ``api_name`` in call order."""
        if api_name not in self._params:
            entry = self._named.get(api_name)
            if entry is None:
                raise EndpointNotFound(api_name)
            self._params[api_name] = tuple(Parameter.from_info(p) for p in entry.get("parameters") or ())
        return self._params[api_name]

    def parameter_names(self, api_name: str) -> tuple[str, ...]:
        """The parameter names of ``api_name`` in call order."""
        names = self._names.get(api_name)
        if names is None:
            # Resolution checks every copy of an endpoint (WanGP's save_inputs takes ~100
            # parameters): names only, without building a Parameter for each (cold connect).
            entry = self._named.get(api_name)
            if entry is None:
                raise EndpointNotFound(api_name)
            names = self._names[api_name] = tuple(Parameter.name_of(p) for p in entry.get("parameters") or ())
        return names

    def parameter(self, api_name: str, name: str) -> Parameter | None:
        """One parameter by name, or ``None``."""
        return next((p for p in self.parameters(api_name) if p.name == name), None)

    def returns(self, api_name: str) -> list[Mapping[str, Any]]:
        """The return descriptions of ``api_name``."""
        return list((self._named.get(api_name) or {}).get("returns") or ())

    def copies(self, base: str) -> list[str]:
        """Every endpoint whose name is ``base`` or ``base_<n>``, lowest suffix first."""
        base = "/" + base.lstrip("/")
        found = [name for name in self._named if base_name(name) == base or name == base]
        return sorted(found, key=_suffix_number)

    def has(self, base: str) -> bool:
        """True when at least one copy of ``base`` exists."""
        return bool(self.copies(base))

    def refusal(self, signature: Signature, api_name: str) -> str | None:
        """Why ``api_name`` does not fit ``signature`` (``None``: it fits)."""
        names = list(self.parameter_names(api_name))
        if signature.exact:
            if names != list(signature.parameters):
                return f"takes ({', '.join(names)}), not ({', '.join(signature.parameters)})"
        else:
            missing = [n for n in signature.parameters if n not in names]
            if missing:
                return f"lacks parameter(s) {', '.join(missing)}"
        returns = self.returns(api_name)
        if len(returns) < signature.min_returns:
            return f"returns {len(returns)} value(s), not at least {signature.min_returns}"
        components = [str(r.get("component") or "").lower() for r in returns]
        absent = [c for c in signature.returns if c not in components]
        if absent:
            return f"returns no {', '.join(absent)} (returns: {', '.join(components) or 'nothing'})"
        if signature.check is not None:
            return signature.check(self, api_name)
        return None

    def resolve(self, signature: Signature) -> str:
        """The copy of ``signature.base`` that fits ``signature`` best: every copy is checked, the
        fitting ones are scored by the preferred parameters they take, ties go to the lowest
        suffix (the copy WanGP's own UI declares first).

        :raises EndpointNotFound: no copy fits; the message names each copy and why it was refused.
        """
        known = self._resolved.get(signature)
        if known is None:
            known = self._resolved[signature] = self._resolve(signature)
        if isinstance(known, EndpointNotFound):
            raise EndpointNotFound(str(known))
        return known

    def _resolve(self, signature: Signature) -> str | EndpointNotFound:
        scored: list[tuple[int, int, str]] = []
        refused: list[str] = []
        for name in self.copies(signature.base):
            reason = self.refusal(signature, name)
            if reason is not None:
                refused.append(f"{name} {reason}")
                continue
            names = set(self.parameter_names(name))
            score = sum(1 for n in signature.preferred if n in names)
            scored.append((-score, _suffix_number(name), name))
        if scored:
            return min(scored)[2]
        considered = "; ".join(refused) if refused else "the server has no copy of it"
        return EndpointNotFound(f"no endpoint fits {signature.describe()} ({considered})")

    def fits(self, signature: Signature) -> bool:
        """True when some copy of ``signature.base`` fits it."""
        try:
            self.resolve(signature)
        except EndpointNotFound:
            return False
        return True

    def find(self, base: str, *, requires: Iterable[str] = (), exact: Sequence[str] | None = None,
             min_returns: int = 0) -> str:
        """The first copy of ``base`` taking all of ``requires`` (or exactly ``exact``) parameters.

        :raises EndpointNotFound: no copy matches; the message lists what the server offers.
        """
        wanted = set(requires)
        for name in self.copies(base):
            names = self.parameter_names(name)
            if exact is not None and list(names) != list(exact):
                continue
            if not wanted <= set(names) or len(self.returns(name)) < min_returns:
                continue
            return name
        offered = ", ".join(self.copies(base)) or "none"
        need = f"exactly {list(exact)}" if exact is not None else f"parameters {sorted(wanted)}"
        raise EndpointNotFound(f"no endpoint /{base.lstrip('/')} with {need} on this server (copies: {offered})")

    # -- payloads ----------------------------------------------------------------------------------

    def check_known(self, api_name: str, values: Mapping[str, Any], *, field: str = "settings") -> None:
        """Refuse names ``api_name`` does not take, listing close matches.

        :raises InvalidRequestError: naming the first unknown field.
        """
        known = [p.name for p in self.parameters(api_name)]
        refuse_unknown(values, known, field=field, lacks="the server's form has no field",
                       everything=f"one of the {len(known)} form fields of {api_name}")

    def defaults(self, api_name: str) -> dict[str, Any]:
        """Each parameter's default (``None`` where the server declares none)."""
        return {p.name: (p.default if p.has_default else None) for p in self.parameters(api_name)}

    def positional(self, api_name: str, values: Mapping[str, Any]) -> list[Any]:
        """All parameters in order: ``values`` by name, else the server's default, else ``None``.

        Keyword calls fail client-side for parameters without a default (WanGP's ``save_inputs``
        has 18), so the whole list is always sent.
        """
        return [values[p.name] if p.name in values else (p.default if p.has_default else None)
                for p in self.parameters(api_name)]

    # -- config helpers ----------------------------------------------------------------------------

    def _dependency(self, api_name: str) -> Mapping[str, Any] | None:
        target = api_name.lstrip("/")
        return next((d for d in self._config.get("dependencies") or () if d.get("api_name") == target), None)

    def _component_types(self) -> dict[int, str]:
        return {c["id"]: str(c.get("type", "")) for c in self._config.get("components") or () if "id" in c}

    def input_ids(self, api_name: str) -> list[int] | None:
        """Component ids of the visible (non-state) inputs of ``api_name``, in parameter order."""
        dep = self._dependency(api_name)
        if dep is None:
            return None
        types = self._component_types()
        return [i for i in dep.get("inputs") or () if types.get(i) != "state"]

    def output_ids(self, api_name: str) -> list[int] | None:
        """Component ids of the outputs gradio_client returns for ``api_name``, in order."""
        dep = self._dependency(api_name)
        if dep is None:
            return None
        skipped = {c["id"] for c in self._config.get("components") or ()
                   if c.get("skip_api", str(c.get("type", "")) in _SKIPPED_TYPES)}
        return [i for i in dep.get("outputs") or () if i not in skipped]

    def map_outputs_to_inputs(self, producer: str, consumer: str, outputs: Sequence[Any]) -> dict[str, Any]:
        """Name ``producer``'s outputs after ``consumer``'s parameters fed by the same component.

        Used to turn ``fill_inputs``' form (a model's own defaults, as update dicts) into
        ``save_inputs`` values. Returns ``{}`` when the config does not tell.
        """
        out_ids = self.output_ids(producer)
        in_ids = self.input_ids(consumer)
        if not out_ids or not in_ids:
            return {}
        names = [p.name for p in self.parameters(consumer)]
        by_id = dict(zip(in_ids, names)) if len(in_ids) == len(names) else {}
        result: dict[str, Any] = {}
        for component_id, value in zip(out_ids, outputs):
            name = by_id.get(component_id)
            if name is not None:
                result[name] = value
        return result

    def component(self, elem_id: str) -> Mapping[str, Any] | None:
        """A component of ``/config`` by ``elem_id``."""
        return next((c for c in self._config.get("components") or () if c.get("elem_id") == elem_id), None)
