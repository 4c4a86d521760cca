"""A plain gradio_client script, written from CONTRACT.md and api-12.60.json only, drives a
text-to-video generation on the mock and gets an MP4 with the requested number of frames."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from gradio_client import Client

pytestmark = pytest.mark.integration


def test_text_to_video_through_the_documented_call_sequence(vidbridge_mock, tmp_path: Path) -> None:
    client = Client(vidbridge_mock.url, verbose=False, download_files=str(tmp_path))
    try:
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        # Find a save_inputs copy by base name and parameter names, never by a fixed suffix.
        save = next(n for n, e in api.items()
                    if n.startswith("/save_inputs")
                    and [p["parameter_name"] for p in e["parameters"]][:1] == ["target"])
        params = api[save]["parameters"]
        values = {p["parameter_name"]: p["parameter_default"] for p in params}
        values.update(target="state", prompt="a lighthouse at dusk, waves", seed=1234,
                      video_length=21, num_inference_steps=4)
        client.predict(*[values[p["parameter_name"]] for p in params], api_name=save)

        model = api["/process_prompt_and_add_tasks"]["parameters"][1]["parameter_default"]
        queued = client.predict(0, model, api_name="/process_prompt_and_add_tasks")
        assert queued["__type__"] == "update" and "Queue is empty" in queued["value"]

        job = client.submit(api_name="/process_tasks")
        timestamps = job.result(timeout=120)
        assert len(timestamps) == 3 and float(timestamps[0]) > 0

        outputs = client.predict(api_name="/refresh_gallery")
        assert len(outputs) == 8
        items = outputs[1]["value"]
        assert len(items) == 1
        video = Path(items[0]["video"] if isinstance(items[0]["video"], str) else items[0]["video"]["path"])
        assert video.suffix == ".mp4" and "_seed1234_a lighthouse at dusk" in video.name

        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(video=0))
            settings = json.loads(container.metadata["comment"])
            assert (stream.codec_context.width, stream.codec_context.height) == (832, 480)
            assert stream.codec_context.name == "h264" and stream.average_rate == 16
        assert frames == 21
        assert settings["prompt"] == "a lighthouse at dusk, waves" and settings["seed"] == 1234
        assert settings["model_type"] == model

        assert client.predict(api_name="/process_tasks") == (None, None, None)  # empty queue
    finally:
        client.close()
