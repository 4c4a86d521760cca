"""The baseline: a hand-written gradio_client script running WanGP's text-to-video flow.

Written only from /work/shared/wan2gp/CONTRACT.md and the server's own ``view_api``: what a
competent user would write without vidbridge. One Client (= one gradio session) for every step:

1. ``save_inputs*(target="state", <every form value positionally, the server's defaults from
   view_api, None where there is no default>)`` with prompt/frames/steps/seed filled in;
2. ``process_prompt_and_add_tasks*(0, <model_choice default>)``;
3. ``process_tasks*()`` (a generator: ``predict`` waits for its end);
4. ``refresh_gallery*()`` -> the newest gallery item;
5. stream that file to disk with httpx (URL built from ``client.src_prefixed``).

No retries, no verification, no status feed: the bare minimum that produces the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx


def find_endpoint(api: dict[str, Any], base: str, requires: tuple[str, ...] = ()) -> str:
    """The first named endpoint ``/base`` or ``/base_N`` whose parameters include ``requires``
    (suffix numbers differ between WanGP versions: never hard-code them)."""
    pattern = re.compile(rf"^/{re.escape(base)}(_\d+)?$")
    candidates = []
    for name, endpoint in api["named_endpoints"].items():
        if not pattern.match(name):
            continue
        names = [p.get("parameter_name") for p in endpoint.get("parameters", [])]
        if all(r in names for r in requires):
            suffix = name.rsplit("_", 1)[-1]
            candidates.append((int(suffix) if suffix.isdigit() else -1, name))
    if not candidates:
        raise LookupError(f"no endpoint {base!r} with parameters {requires}")
    return sorted(candidates)[0][1]


class BaselineFlow:
    """The hand-written flow on one already connected ``gradio_client.Client``."""

    def __init__(self, client: Any, http: httpx.Client | None = None) -> None:
        self.client = client
        self.http = http or httpx.Client(timeout=httpx.Timeout(30.0, read=None))
        api = client.view_api(return_format="dict", print_info=False)
        self.save = find_endpoint(api, "save_inputs", ("target", "prompt"))
        self.add = find_endpoint(api, "process_prompt_and_add_tasks", ("model_choice",))
        self.process = find_endpoint(api, "process_tasks")
        self.gallery = find_endpoint(api, "refresh_gallery")
        # WanGP's own Generate chain also activates the status feed before process_tasks and
        # finalizes after it (see plugins/wan2gp/job.py): the baseline does the same calls.
        self.activate = find_endpoint(api, "activate_status")
        self.feed = find_endpoint(api, "refresh_status_async")
        self.finalize = find_endpoint(api, "finalize_generation")
        self.save_params = api["named_endpoints"][self.save]["parameters"]
        add_params = {p["parameter_name"]: p for p in api["named_endpoints"][self.add]["parameters"]}
        self.model = add_params["model_choice"].get("parameter_default")

    def payload(self, **values: Any) -> list[Any]:
        """Every save_inputs parameter in order: the server's default, overridden by ``values``."""
        row = []
        for parameter in self.save_params:
            name = parameter["parameter_name"]
            if name in values:
                row.append(values[name])
            elif parameter.get("parameter_has_default"):
                row.append(parameter.get("parameter_default"))
            else:
                row.append(None)
        return row

    def run(self, prompt: str, destination: Path, *, frames: int, steps: int, seed: int) -> Path:
        """Generate one video and download it into ``destination``; returns the file's path."""
        client = self.client
        client.predict(*self.payload(target="state", prompt=prompt, video_length=frames,
                                     num_inference_steps=steps, seed=seed), api_name=self.save)
        client.predict(0, self.model, api_name=self.add)
        feed = client.submit(api_name=self.feed) if client.predict(api_name=self.activate) is not None else None
        client.predict(api_name=self.process)
        outputs = client.predict(api_name=self.gallery)
        client.predict(api_name=self.finalize)
        if feed is not None:
            feed.result(timeout=30)
        item = newest_gallery_item(outputs)
        path = item["path"]
        url = f"{client.src_prefixed}file={path}"
        target = destination / Path(path).name
        with self.http.stream("GET", url) as response, open(target, "wb") as out:
            response.raise_for_status()
            for chunk in response.iter_bytes(64 * 1024):
                out.write(chunk)
        return target


def newest_gallery_item(outputs: Any) -> dict[str, Any]:
    """The FileData of the last gallery entry in refresh_gallery's outputs."""
    for value in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
        if isinstance(value, dict) and value.get("__type__") == "update":
            value = value.get("value")
        if isinstance(value, list) and value and isinstance(value[-1], dict):
            entry = value[-1]
            media = entry.get("video") or entry.get("image") or entry
            if isinstance(media, dict) and "video" in media:  # gradio 5.29 Video shape
                media = media["video"]
            if isinstance(media, str):
                return {"path": media}
            return media
    raise LookupError(f"no gallery in refresh_gallery's outputs: {outputs!r:.300}")
