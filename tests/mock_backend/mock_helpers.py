"""gradio_client helpers for the mock backend tests, written from CONTRACT.md alone (a
gradio_client user's view of WanGP); nothing here uses vidbridge's own client code."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator


@contextlib.contextmanager
def open_client(url: str, **kwargs: Any) -> Iterator[Any]:
    """A gradio_client Client, closed with its thread pools (GRADIO_CLIENT.md)."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False, **kwargs)
    try:
        yield client
    finally:
        # close() blocks about 1 s on apps with State (heartbeat): let it finish in the background.
        threading.Thread(target=client.close, daemon=True).start()
        for pool in (client.executor, getattr(client, "helper_executor", None),
                     getattr(client, "stream_executor", None)):
            if pool is not None:
                pool.shutdown(wait=False)


def endpoint_named(client: Any, base: str, **wanted_defaults: Any) -> str:
    """The first endpoint ``/base`` or ``/base_N`` whose parameter defaults include ``wanted``."""
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name, info in api.items():
        if name.rstrip("0123456789").rstrip("_") != f"/{base}" and name != f"/{base}":
            continue
        defaults = {p["parameter_name"]: p["parameter_default"] for p in info["parameters"]}
        if all(defaults.get(k) == v for k, v in wanted_defaults.items()):
            return name
    raise LookupError(base)


def form_args(client: Any, api_name: str, **values: Any) -> list[Any]:
    """Positional arguments of ``api_name`` built by parameter name from the server defaults."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    known = {p["parameter_name"] for p in params}
    unknown = set(values) - known
    assert not unknown, unknown
    return [values.get(p["parameter_name"], p["parameter_default"]) for p in params]


def save_form(client: Any, **values: Any) -> None:
    values.setdefault("target", "state")
    name = endpoint_named(client, "save_inputs", target="state")
    client.predict(*form_args(client, name, **values), api_name=name)


def queue_task(client: Any, model: str = "t2v") -> tuple[str, list[str]]:
    """process_prompt_and_add_tasks; returns (queue html, gr.Info messages seen)."""
    job = client.submit(0, model, api_name="/process_prompt_and_add_tasks")
    logs = collect_logs(job)
    return job.result()["value"], logs


def collect_logs(job: Any) -> list[str]:
    """Every gr.Info/gr.Warning message of a finished job (per CONTRACT.md, status() misses them).

    gradio_client keeps every update in ``job.communicator.updates``; draining that queue after
    the result is instant, whereas ``async for`` polls it with a 0.5 s timeout.
    """
    try:
        job.result()
    except Exception:  # the caller checks the result; here only the messages matter
        pass
    updates = job.communicator.updates
    messages = []
    while not updates.empty():
        log = getattr(updates.get_nowait(), "log", None)
        if log:
            messages.append(log[0])
    return messages


def gallery_files(client: Any) -> list[dict[str, Any]]:
    """FileData dicts of the session's gallery (refresh_gallery's second output)."""
    gallery = client.predict(api_name="/refresh_gallery")[1]
    return [item.get("video") or item.get("image") for item in gallery["value"]]


def download(client: Any, file: dict[str, Any]) -> bytes:
    import httpx

    url = client.src_prefixed + "file=" + file["path"]
    response = httpx.get(url, timeout=30)
    response.raise_for_status()
    return response.content


def generate(client: Any, model: str = "t2v", **values: Any) -> dict[str, Any]:
    """save_inputs -> process_prompt_and_add_tasks -> process_tasks -> the newest gallery file."""
    values.setdefault("num_inference_steps", 2)
    values.setdefault("video_length", 5)
    save_form(client, **values)
    html, logs = queue_task(client, model)
    assert not logs, logs
    client.predict(api_name="/process_tasks")
    return gallery_files(client)[-1]
