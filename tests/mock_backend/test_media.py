"""The fake media writer and the model catalogue, without a server."""

from __future__ import annotations

import hashlib
import json

import av
import pytest

from vidbridge.plugins.mock_backend.catalog import get_model, load_models
from vidbridge.plugins.mock_backend.generation import output_name, prompts_of, validate
from vidbridge.plugins.mock_backend.video import write_video


def encode(tmp_path, name: str, settings: dict, frames: int = 5, fps: int = 16) -> bytes:
    path = write_video(tmp_path / name, settings, width=64, height=48, frames=frames, fps=fps)
    return path.read_bytes()


def test_pixels_depend_on_prompt_and_seed_only(tmp_path) -> None:
    base = {"prompt": "a", "seed": 1}
    same = encode(tmp_path, "1.mp4", base), encode(tmp_path, "2.mp4", dict(base))
    other_prompt = encode(tmp_path, "3.mp4", {**base, "prompt": "b"})
    other_seed = encode(tmp_path, "4.mp4", {**base, "seed": 2})
    assert same[0] == same[1]
    assert len({hashlib.sha256(b).digest() for b in (same[0], other_prompt, other_seed)}) == 3


def test_video_has_exact_frames_rate_and_settings_comment(tmp_path) -> None:
    write_video(tmp_path / "v.mp4", {"k": 1}, width=64, height=48, frames=13, fps=24)
    with av.open(str(tmp_path / "v.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 24 and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(video=0)) == 13
        assert json.loads(container.metadata["comment"]) == {"k": 1}


@pytest.mark.parametrize("model,frames,ok", [("t2v", 81, True), ("t2v", 80, False),
                                             ("t2v", 1, False), ("vace_14B", 13, False),
                                             ("vace_14B", 17, True), ("ltx2_19B", 17, True),
                                             ("ltx2_19B", 13, False)])
def test_frame_rules_per_family(model: str, frames: int, ok: bool) -> None:
    m = get_model(model)
    form = {"prompt": "p", "resolution": m.default_resolution, "video_length": frames}
    assert (validate(form, m) is None) is ok


def test_catalogue_and_names() -> None:
    assert len(load_models()) == 217
    assert get_model("i2v").needs_start_image and not get_model("t2v").needs_start_image
    assert get_model("flux").rules.image
    import datetime

    name = output_name({"prompt": "A cat/../x: 'hi'", "seed": 5},
                       datetime.datetime(2026, 1, 2, 3, 4, 5), "mp4")
    assert name == "2026-01-02-03h04m05s_seed5_A catx hi.mp4"
    assert prompts_of("one\n\n# comment\n\ntwo\nlines") == ["one", "two\nlines"]
