"""Finding WanGP servers: user-named URLs (options, env, config file) and loopback probes.

A server is WanGP only if its ``/config`` says so: title "WanGP" and its generation endpoints
(``save_inputs*``, ``process_prompt_and_add_tasks``, ``process_tasks``) among the dependencies.
Another gradio app is reported with ``healthy=False`` and note "not Wan2GP".

Config file: ``<user_config_dir>/vidbridge/wan2gp.json`` (platformdirs), e.g.
``{"urls": ["http://192.168.1.20:7860"]}``; env ``VIDBRIDGE_WAN2GP_URL`` takes a comma-separated list.
Env ``VIDBRIDGE_WAN2GP_PROBE_PORTS`` replaces the loopback ports probed (comma-separated; empty:
probe none), e.g. for tests or a machine where those ports belong to something else.

The server's version is WanGP's own, read from the page header ``/config`` carries (a Markdown
component: ``Wan<SUP>GP</SUP> v12.60 by DeepBeepMeep``); the config's ``version`` is gradio's and
goes to ``details["gradio_version"]``.

A server behind gradio auth answers ``/config`` with 401. With a username and password the probe
logs in and identifies it; without them (or when they are refused) it is still reported as a
``wan2gp`` candidate with a note, so that connecting says precisely which credential is wrong.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from vidbridge import AuthenticationError, BackendError, Credentials, DiscoverOptions, Endpoint
from vidbridge.backend import redact_url

from . import catalog
from .connection import _http_get, headers_for, login

__all__ = ["LOCAL_PORTS", "ENV_VAR", "PORTS_ENV_VAR", "probe_ports", "config_file", "configured_urls", "probe", "discover",
           "probe_any", "is_wan2gp", "wangp_version", "model_choices", "server_models", "ServerModels"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

#: WanGP's default port range and Pinokio's port.
LOCAL_PORTS = (*range(7860, 7870), 42003)
ENV_VAR = "VIDBRIDGE_WAN2GP_URL"
PORTS_ENV_VAR = "VIDBRIDGE_WAN2GP_PROBE_PORTS"
_REQUIRED = ("save_inputs", "process_prompt_and_add_tasks", "process_tasks")
_TAG = re.compile(r"<[^>]*>")
_VERSION = re.compile(r"\bWanGP\s*v\s*(\d+(?:\.\d+)+)", re.IGNORECASE)


def config_file() -> Path:
    """``<user_config_dir>/vidbridge/wan2gp.json``."""
    import platformdirs

    return Path(platformdirs.user_config_dir("vidbridge")) / "wan2gp.json"


def configured_urls(path: Path | None = None) -> list[str]:
    """URLs from env ``VIDBRIDGE_WAN2GP_URL`` and the config file (``{"urls": [...]}`` or ``{"url": ...}``)."""
    urls = [u.strip() for u in os.environ.get(ENV_VAR, "").split(",") if u.strip()]
    path = path or config_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        data = {}
    if isinstance(data, dict):
        listed = data.get("urls") or ([data["url"]] if isinstance(data.get("url"), str) else [])
        urls.extend(str(u) for u in listed if isinstance(u, str))
    return urls


def probe_ports() -> tuple[int, ...]:
    """Loopback ports to probe: ``VIDBRIDGE_WAN2GP_PROBE_PORTS`` if set, else :data:`LOCAL_PORTS`.

    Entries that are not port numbers are logged and skipped.
    """
    raw = os.environ.get(PORTS_ENV_VAR)
    if raw is None:
        return LOCAL_PORTS
    ports = []
    for item in (part.strip() for part in raw.split(",")):
        if item.isdigit() and 0 < int(item) < 65536:
            ports.append(int(item))
        elif item:
            log.warning("%s: ignoring %r (not a port number)", PORTS_ENV_VAR, item)
    return tuple(ports)


def _base_names(config: dict[str, Any]) -> set[str]:
    names = set()
    for dep in config.get("dependencies") or ():
        name = dep.get("api_name")
        if isinstance(name, str):
            names.add(name.rstrip("0123456789").rstrip("_") if name[-1:].isdigit() else name)
    return names


def is_wan2gp(config: dict[str, Any]) -> bool:
    """True when ``/config`` shows WanGP's title and generation endpoints."""
    title = str(config.get("title") or "")
    return "wangp" in title.lower() and all(name in _base_names(config) for name in _REQUIRED)


def wangp_version(config: dict[str, Any]) -> str | None:
    """WanGP's version (``"12.60"``) as the server states it, or ``None`` when it does not.

    WanGP names itself "WanGP v12.60" in its page header, a Markdown component whose value
    ``/config`` carries with HTML in the middle (``Wan<SUP ...>GP</SUP> v12.60``); the title is
    checked too, in case a version puts it there.
    """
    texts = [config.get("title")]
    for component in config.get("components") or ():
        if component.get("type") in ("markdown", "html"):
            texts.append((component.get("props") or {}).get("value", component.get("value")))
    for text in texts:
        if isinstance(text, str) and "gp" in text.lower():
            match = _VERSION.search(_TAG.sub("", text))
            if match:
                return match[1]
    return None


def _elem_id(component: dict[str, Any]) -> Any:
    # gradio puts it in "props"; the recorded (reduced) config has it at the top level
    return component.get("elem_id") or (component.get("props") or {}).get("elem_id")


def _dropdown_choices(component: dict[str, Any]) -> list[tuple[Any, Any]] | None:
    """``[(value, label), ...]`` of a dropdown, ``None`` for anything else."""
    choices = component.get("choices") or (component.get("props") or {}).get("choices")
    if component.get("type") != "dropdown" or not isinstance(choices, list):
        return None
    return [(c[1], c[0]) if isinstance(c, (list, tuple)) and len(c) > 1 else (c, c) for c in choices]


def model_choices(config: dict[str, Any]) -> tuple[str, ...]:
    """Models in the model selector of ``/config``: the current family's models (elem_id
    ``model_base_types_list``) and the current model's variants (``model_list``); without those
    elem_ids, the dropdown holding the most model-like values."""
    best: list[str] = []
    selected: dict[str, list[str]] = {}
    for component in config.get("components") or ():
        pairs = _dropdown_choices(component)
        if pairs is None:
            continue
        values = [value for value, _label in pairs]
        elem_id = _elem_id(component)
        if elem_id in ("model_base_types_list", "model_list"):
            selected.setdefault(elem_id, [str(v) for v in values])
        elif len(values) > len(best) and all(isinstance(v, str) and "x" not in v for v in values[:3]):
            best = [str(v) for v in values]  # (not numbers, not resolutions)
    if selected:
        listed = [*selected.get("model_base_types_list", ()), *selected.get("model_list", ())]
        return tuple(dict.fromkeys(listed))
    return tuple(best)


class ServerModels(NamedTuple):
    """Every model a WanGP server offers, with the model-selector family of each."""

    models: tuple[str, ...]
    families: dict[str, str]  # model -> family id ("wan2_2"); a model of an unknown family is left out
    family_labels: dict[str, str]  # family id -> the selector's label ("Wan2.2"), in the selector's order


def server_models(config: dict[str, Any]) -> ServerModels:
    """All the models of every family the server's model selector offers.

    ``/config`` lists the model families (dropdown ``family_list``) but the models of the current
    family only (``model_base_types_list``, ``model_list``): a fresh session shows 28 Wan2.1 models
    of the 217 in 19 families, and the others work all the same (``change_model_from_target``).
    So each offered family contributes the models this client knows for it (WanGP 12.60's
    catalogue), and the selector's own entries are added (a user's finetunes, models newer than
    the catalogue). Without a family dropdown (an older WanGP) only the selector's entries count.
    """
    families_offered: list[tuple[str, str]] = []
    current = None
    for component in config.get("components") or ():
        pairs = _dropdown_choices(component)
        if pairs is not None and _elem_id(component) == "family_list":
            families_offered = [(str(value), str(label)) for value, label in pairs]
            value = (component.get("props") or {}).get("value", component.get("value"))
            current = value if isinstance(value, str) else None
            break
    listed = model_choices(config)
    offered = dict(families_offered)
    if current not in offered:
        # the recorded config has no value: the current family is the one of the listed models
        current = next((family for family in map(catalog.selector_family, listed) if family in offered), None)
    known = catalog.known_models_by_family()
    # the selector's entries unknown to the catalogue belong to the current family
    extras = [model for model in listed if catalog.selector_family(model) is None]
    models: dict[str, str | None] = {}
    for family in offered:
        models.update((model, family) for model in known.get(family, ()))
        if family == current:
            models.update((model, family) for model in extras)
    for model in listed:  # no family dropdown, or entries of a family it does not offer
        models.setdefault(model, catalog.selector_family(model) or current)
    families = {model: family for model, family in models.items() if family is not None}
    return ServerModels(tuple(models), families, offered)


def _login_required(url: str, latency: float, why: str) -> Endpoint:
    # Claimed (healthy) so that connect() runs and reports the precise AuthenticationError.
    return Endpoint(url=url, backend="wan2gp", transport="gradio", healthy=True, latency_ms=latency,
                    note=f"login required (gradio auth; {why}): not verified as Wan2GP",
                    details={"auth": "required"})


def probe(http: httpx.Client, url: str, *, timeout: float, headers: dict[str, str],
          credentials: Credentials | None = None) -> Endpoint | None:
    """Check one URL; ``None`` when nothing answers there.

    :param credentials: used to log in when the server answers 401 (gradio auth).
    """
    started = time.perf_counter()
    cookies: dict[str, str] = {}  # the login's, sent per request (never left on the shared ``http``)
    try:
        response = http.get(f"{url}/config", timeout=timeout, headers=headers)
        if response.status_code == 401 and credentials is not None and credentials.username:
            try:
                cookies = login(http, url, credentials, headers=headers, timeout=timeout)
            except AuthenticationError:
                return _login_required(url, (time.perf_counter() - started) * 1000, "the login was refused")
            response = _http_get(http, f"{url}/config", headers=headers, cookies=cookies, timeout=timeout)
    except (httpx.HTTPError, BackendError):
        return None
    latency = (time.perf_counter() - started) * 1000
    if response.status_code == 401:
        return _login_required(url, latency, "no username/password given")
    try:
        config = response.json() if response.is_success else None
    except ValueError:
        config = None
    if not isinstance(config, dict):
        return Endpoint(url=url, backend="wan2gp", healthy=False, latency_ms=latency, note="not Wan2GP (no gradio /config)")
    version = config.get("version")
    if not is_wan2gp(config):
        return Endpoint(url=url, backend="wan2gp", transport="gradio", healthy=False, latency_ms=latency,
                        version=f"gradio {version}" if version else None, note="not Wan2GP")
    offered = server_models(config)
    queue_size = None
    prefix = str(config.get("api_prefix") or "").strip("/")
    try:
        status = _http_get(http, f"{url}/{prefix}/queue/status" if prefix else f"{url}/queue/status",
                           headers=headers, cookies=cookies, timeout=timeout)
        if status.is_success:
            queue_size = status.json().get("queue_size")
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    return Endpoint(
        url=url, backend="wan2gp", transport="gradio", healthy=True, latency_ms=latency,
        version=wangp_version(config), models=offered.models,
        queue_size=queue_size if isinstance(queue_size, int) and queue_size >= 0 else None,
        details={"title": config.get("title"), "gradio_version": version, "protocol": config.get("protocol"),
                 "families": offered.families, "family_labels": offered.family_labels},
    )


def probe_any(http: httpx.Client, url: str, *, timeout: float, headers: dict[str, str],
              credentials: Credentials | None = None) -> Endpoint | None:
    """The web UI's :func:`probe`, or WanGP's MCP face (:func:`.mcp.probe.probe_mcp`) where no
    gradio ``/config`` answers; a ``.../mcp`` URL is asked as MCP first."""
    from .mcp.probe import probe_mcp

    if url.endswith("/mcp"):
        return probe_mcp(http, url, timeout=timeout, headers=headers) or probe(
            http, url, timeout=timeout, headers=headers, credentials=credentials)
    found = probe(http, url, timeout=timeout, headers=headers, credentials=credentials)
    if found is None or found.transport != "gradio":
        return probe_mcp(http, url, timeout=timeout, headers=headers) or found
    return found


def discover(options: DiscoverOptions) -> list[Endpoint]:
    """Probe every candidate URL in parallel, within ``options.timeout`` in total."""
    candidates: list[str] = []
    for url in (*options.urls, *configured_urls()):
        url = url.rstrip("/")
        if url and url not in candidates:
            candidates.append(url)
    if options.probe_local:
        for port in probe_ports():
            url = f"http://127.0.0.1:{port}"
            if url not in candidates:
                candidates.append(url)
    if not candidates:
        return []
    headers = headers_for(options.credentials)
    per_probe = max(0.1, options.timeout * 0.8)
    found: list[Endpoint] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(candidates)), thread_name_prefix="wan2gp-probe")
    try:
        futures = {pool.submit(probe_any, options.http, url, timeout=per_probe, headers=headers,
                               credentials=options.credentials): url for url in candidates}
        done, _ = concurrent.futures.wait(futures, timeout=options.timeout)
        for future in done:
            try:
                endpoint = future.result()
            except Exception as exc:  # one bad server must not hide the others
                log.debug("probe of %s failed: %s", redact_url(futures[future]), exc)
                continue
            if endpoint is not None:
                found.append(endpoint)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    order = {url: i for i, url in enumerate(candidates)}
    return sorted(found, key=lambda e: order.get(e.url, 0))
