"""WanGP behaviour reproduced by the mock: validation as gr.Info, the webform error, abort,
per-session isolation, dropdown validation and model switch, determinism, input media."""

from __future__ import annotations

import hashlib
import json
import threading

import av
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from mock_helpers import (
    download,
    gallery_files,
    generate,
    open_client,
    queue_task,
    save_form,
)
from PIL import Image

from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration


def test_validation_failures_are_only_info_and_queue_nothing(client, vidbridge_mock) -> None:
    cases = {"Prompt cannot be empty": dict(prompt="  "),
             "must be 4*k+1": dict(prompt="a cat", video_length=18)}
    for expected, values in cases.items():
        save_form(client, **values)
        html, logs = queue_task(client)  # no exception: validation is not an error
        assert any(expected in message for message in logs), logs
        assert "Queue is empty" in html
        assert client.predict(api_name="/process_tasks") == (None, None, None)
    assert faults.read_counter(vidbridge_mock.url)["total"] == 0


def test_queue_without_save_inputs_is_the_webform_error(client) -> None:
    with pytest.raises(AppError, match="Webform can not be used as the App has been restarted"):
        client.predict(0, "t2v", api_name="/process_prompt_and_add_tasks")
    save_form(client, prompt="a cat")
    with pytest.raises(AppError, match="not in the list of choices"):  # gradio's own check
        client.predict(0, "i2v", api_name="/process_prompt_and_add_tasks")


def test_abort_before_any_run_is_opaque_like_the_real_app(client) -> None:
    with pytest.raises(AppError) as info:
        client.predict(api_name="/abort_generation")
    assert "Webform" not in str(info.value)  # not a deliberate gr.Error message


def test_plain_save_inputs_overwrites_defaults_and_is_counted(client, vidbridge_mock) -> None:
    from mock_helpers import form_args

    client.predict(*form_args(client, "/save_inputs", prompt="oops"), api_name="/save_inputs")
    assert faults.read_counter(vidbridge_mock.url)["events"] == {"settings_overwritten": 1}


def test_abort_stops_the_running_task_at_the_next_step(client, vidbridge_mock) -> None:
    faults.set_options(vidbridge_mock.url, step_delay=0.02)
    save_form(client, prompt="long one", num_inference_steps=100, video_length=5)
    queue_task(client)
    save_form(client, prompt="never runs", num_inference_steps=2, video_length=5)
    queue_task(client)
    client.predict(api_name="/activate_status")
    status = client.submit(api_name="/refresh_status_async")
    run = client.submit(api_name="/process_tasks")
    for text in status:  # wait for denoising to be under way (an event, not a sleep)
        if text.startswith("Denoising"):
            break
    client.predict(api_name="/abort_generation")
    run.result(timeout=60)
    counter = faults.read_counter(vidbridge_mock.url)
    assert counter["total"] == 1 and counter["aborted"] == 1
    assert gallery_files(client) == []
    assert client.predict(api_name="/process_tasks") == (None, None, None)  # queue dropped


def test_status_reports_phases_and_denoising_progress(client, vidbridge_mock) -> None:
    faults.set_options(vidbridge_mock.url, step_delay=0.02)
    save_form(client, prompt="progress", num_inference_steps=5, video_length=5)
    queue_task(client)
    assert client.predict(api_name="/activate_status")  # the UI's order: before process_tasks
    status = client.submit(api_name="/refresh_status_async")
    client.predict(api_name="/process_tasks")
    texts = list(status)
    assert any(t.startswith("Denoising") or t.startswith("Loading model") for t in texts), texts
    steps = []
    updates = status.communicator.updates  # every update, not only the latest status
    while not updates.empty():
        progress = getattr(updates.get_nowait(), "progress_data", None)
        if progress:
            steps.append((progress[0].index, progress[0].length))
    assert steps and all(total == 5 and 1 <= step <= 5 for step, total in steps), steps


def test_gradio_auth_is_enforced(tmp_path) -> None:
    from gradio_client.exceptions import AuthenticationError

    from vidbridge.plugins.mock_backend import MockServer

    with MockServer(auth="user:secret", state_dir=tmp_path) as server:
        with pytest.raises(AuthenticationError):
            open_client(server.url).__enter__()
        with open_client(server.url, auth=("user", "secret")) as client:
            assert client.predict(api_name="/activate_status") is None  # answered: nothing queued


def test_sessions_do_not_share_queue_or_gallery(vidbridge_mock) -> None:
    with open_client(vidbridge_mock.url) as first, open_client(vidbridge_mock.url) as second:
        save_form(first, prompt="only in the first session", video_length=5, num_inference_steps=1)
        queue_task(first)
        assert second.predict(api_name="/process_tasks") == (None, None, None)
        first.predict(api_name="/process_tasks")
        assert len(gallery_files(first)) == 1
        assert gallery_files(second) == []
    counter = faults.read_counter(vidbridge_mock.url)
    assert counter["by_prompt"] == {"only in the first session": 1}


def test_dropdowns_follow_the_session_and_widen_after_a_model_switch(vidbridge_mock) -> None:
    with open_client(vidbridge_mock.url) as client, open_client(vidbridge_mock.url) as other:
        with pytest.raises(AppError, match="not in the list of choices"):
            save_form(client, prompt="x", resolution="1280x720")  # an LTX-2 resolution
        try:
            switch_model(client, "ltx2_19B")
            save_form(client, prompt="ltx clip", resolution="1280x720", video_length=17,
                      num_inference_steps=1)
            html, logs = queue_task(client, "ltx2_19B")
            assert not logs
            client.predict(api_name="/process_tasks")
            video = gallery_files(client)[-1]
            with av.open(video["path"]) as container:
                assert container.streams.video[0].average_rate == 24
                assert sum(1 for _ in container.decode(video=0)) == 17
            # Another session keeps its own (narrow) choices.
            with pytest.raises(AppError, match="not in the list of choices"):
                other.predict(0, "ltx2_19B", api_name="/process_prompt_and_add_tasks")
        finally:
            client.predict("t2v", api_name="/change_model_from_target")


def test_same_settings_same_bytes_other_seed_other_pixels(client) -> None:
    digests = []
    for seed in (7, 7, 8):
        video = generate(client, prompt="determinism", seed=seed, video_length=9)
        digests.append(hashlib.sha256(download(client, video)).hexdigest())
    assert digests[0] == digests[1] != digests[2]


def switch_model(client, model_type: str) -> None:
    """CONTRACT.md's sequence for another model group: change, fill_inputs, refresh dropdowns."""
    client.predict(model_type, api_name="/change_model_from_target")
    client.predict(api_name="/fill_inputs")
    client.predict(api_name="/refresh_model_dropdowns")


def first_frame(path: str) -> np.ndarray:
    with av.open(path) as container:
        frame = next(container.decode(video=0))
        return np.asarray(frame.to_image(), dtype=np.int16)


def test_start_image_becomes_the_first_frame_of_an_i2v_model(client, tmp_path) -> None:
    start = tmp_path / "start.png"
    pattern = np.zeros((480, 832, 3), dtype=np.uint8)
    pattern[:, :416] = (250, 20, 20)
    pattern[:, 416:] = (20, 20, 250)
    Image.fromarray(pattern).save(start)
    try:
        switch_model(client, "i2v")
        save_form(client, prompt="i2v without image", video_length=5)
        _, logs = queue_task(client, "i2v")
        assert any("Start Image" in m for m in logs), logs
        i2v = generate(client, "i2v", prompt="same prompt", image_prompt_type="S",
                       image_start=[{"image": handle_file(str(start)), "caption": None}])
    finally:
        switch_model(client, "t2v")
    t2v = generate(client, prompt="same prompt")
    error_i2v = np.abs(first_frame(i2v["path"]) - pattern).mean()
    error_t2v = np.abs(first_frame(t2v["path"]) - pattern).mean()
    assert error_i2v < 10 < error_t2v


def test_outputs_carry_settings_and_wan2gp_names(client) -> None:
    video = generate(client, prompt="named output!?", seed=99, client_id="job-1")
    name = video["orig_name"]
    assert name.endswith("_seed99_named output.mp4") and name[:4].isdigit()
    with av.open(video["path"]) as container:
        settings = json.loads(container.metadata["comment"])
    assert settings["client_id"] == "job-1" and settings["settings_version"] == 2.74
    assert "image_start" not in settings


def test_abort_with_client_id_removes_only_that_queued_task(client, vidbridge_mock) -> None:
    for cid in ("keep", "drop"):
        save_form(client, prompt=f"task {cid}", client_id=cid, video_length=5, num_inference_steps=1)
        queue_task(client)
    client.predict("drop", api_name="/abort_generation_1")
    client.predict(api_name="/process_tasks")
    assert faults.read_counter(vidbridge_mock.url)["by_client_id"] == {"keep": 1}


def test_settings_file_queues_its_values(client, tmp_path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"model_type": "t2v", "mode": "", "prompt": "from a file",
                                    "video_length": 9, "num_inference_steps": 1, "seed": 5,
                                    "resolution": "480x832"}))
    client.predict(handle_file(str(settings)), api_name="/load_settings_from_file")
    queue_task(client)
    client.predict(api_name="/process_tasks")
    video = gallery_files(client)[-1]
    with av.open(video["path"]) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (480, 832)
        assert sum(1 for _ in container.decode(video=0)) == 9


def test_concurrent_clients_both_get_their_video(vidbridge_mock) -> None:
    results: dict[str, str] = {}

    def run(prompt: str) -> None:
        with open_client(vidbridge_mock.url) as c:
            results[prompt] = generate(c, prompt=prompt)["orig_name"]

    threads = [threading.Thread(target=run, args=(p,)) for p in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["one", "two"] and all(p in results[p] for p in results)
    assert faults.read_counter(vidbridge_mock.url)["total"] == 2


def test_image_families_write_png(client) -> None:
    try:
        switch_model(client, "flux")
        image = generate(client, "flux", prompt="an image", resolution="1024x1024")
    finally:
        switch_model(client, "t2v")
    assert image["orig_name"].endswith("_an image.png")
    with Image.open(image["path"]) as png:
        assert png.format == "PNG" and png.size == (1024, 1024)
        assert json.loads(png.info["comment"])["model_type"] == "flux"


def _counted(url: str, event: str) -> int:
    return faults.read_counter(url)["events"].get(event, 0)


def test_status_feed_in_the_ui_order_ends_with_its_task(client, vidbridge_mock) -> None:
    """WanGP's Generate chain: add task -> activate_status -> feed beside process_tasks."""
    for prompt, fault in (("fine", None), ("fails", "gen_error:after_step=1,count=1")):
        if fault:
            faults.add_faults(vidbridge_mock.url, fault)
        save_form(client, prompt=prompt, num_inference_steps=2, video_length=5)
        queue_task(client)
        assert client.predict(api_name="/activate_status")
        feed = client.submit(api_name="/refresh_status_async")
        run = client.submit(api_name="/process_tasks")
        if fault:
            with pytest.raises(AppError, match="Simulated generation error"):
                run.result(timeout=60)
        else:
            run.result(timeout=60)
        feed.result(timeout=60)  # ends by itself: process_tasks turned the display off
    assert _counted(vidbridge_mock.url, "status_feed_ended") == 2
    # A failed task leaves nothing queued (WanGP empties the queue): nothing runs again.
    assert client.predict(api_name="/process_tasks") == (None, None, None)
    assert faults.read_counter(vidbridge_mock.url)["total"] == 2


def test_failed_task_says_the_queue_was_autosaved_like_wangp(client, vidbridge_mock) -> None:
    from mock_helpers import collect_logs

    faults.add_faults(vidbridge_mock.url, "gen_error:after_step=1,count=1")
    save_form(client, prompt="fails", num_inference_steps=2, video_length=5)
    queue_task(client)
    run = client.submit(api_name="/process_tasks")
    with pytest.raises(AppError):
        run.result(timeout=60)
    assert "Error Queue autosaved successfully to error_queue.zip" in collect_logs(run)


def test_status_feed_activated_after_its_task_ended_blocks_every_feed(vidbridge_mock) -> None:
    """The bug vidbridge caused on the real 12.60: activate_status after process_tasks ended leaves
    the display on, that feed never ends, and every later feed on the server waits behind it,
    until process_tasks runs again in the stuck session (an empty queue turns the display off)."""
    with open_client(vidbridge_mock.url) as late, open_client(vidbridge_mock.url) as other:
        save_form(late, prompt="fast", num_inference_steps=1, video_length=5)
        queue_task(late)
        late.predict(api_name="/process_tasks")  # the task ends before the feed is activated
        assert late.predict(api_name="/activate_status")
        stuck = late.submit(api_name="/refresh_status_async")
        while _counted(vidbridge_mock.url, "status_feed_started") < 1:  # wait for it to run
            late.predict(api_name="/activate_status")  # a round trip, not a sleep

        save_form(other, prompt="ui order", num_inference_steps=1, video_length=5)
        queue_task(other)
        assert other.predict(api_name="/activate_status")
        feed = other.submit(api_name="/refresh_status_async")
        other.predict(api_name="/process_tasks")
        # Its task is done, but its feed cannot even start: the stuck one holds the endpoint.
        assert not stuck.done() and not feed.done()
        assert _counted(vidbridge_mock.url, "status_feed_started") == 1

        assert late.predict(api_name="/process_tasks") == (None, None, None)  # display off
        stuck.result(timeout=60)
        feed.result(timeout=60)
    assert _counted(vidbridge_mock.url, "status_feed_ended") == 2
