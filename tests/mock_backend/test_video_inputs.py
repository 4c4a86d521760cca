"""How input media shape the mock's fake outputs (``plugins/mock_backend/video.py``): start and end
images, reference thumbnails, a control video, an audio stripe; PNG output for image models."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidbridge.plugins.mock_backend.video import (
    THUMB,
    FramePainter,
    MediaInputs,
    parse_resolution,
    write_image,
    write_video,
)

W, H, N = 128, 96, 9
SETTINGS = {"prompt": "p", "seed": 1, "model": "t2v"}


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (W, H)) -> str:
    Image.new("RGB", size, colour).save(path)
    return str(path)


def _painter(tmp_path: Path, **media: object) -> FramePainter:
    return FramePainter(SETTINGS, W, H, N, MediaInputs(**media))


def test_start_and_end_images_are_the_first_and_last_frames(tmp_path: Path) -> None:
    painter = _painter(tmp_path, start_image=_png(tmp_path / "s.png", (250, 10, 10)),
                       end_image=_png(tmp_path / "e.png", (10, 250, 10)))
    assert (painter.frame(0) == [250, 10, 10]).all()
    assert (painter.frame(N - 1) == [10, 250, 10]).all()
    middle = painter.frame(N // 2)
    assert not (middle == [250, 10, 10]).all() and not (middle == [10, 250, 10]).all()


def test_start_image_fades_into_the_pattern(tmp_path: Path) -> None:
    plain = _painter(tmp_path)
    faded = _painter(tmp_path, start_image=_png(tmp_path / "s.png", (255, 255, 255)))
    # Early frames are pulled towards the (white) start image, later ones are the pattern itself.
    assert faded.frame(1).mean() > plain.frame(1).mean()
    assert (faded.frame(N - 2) == plain.frame(N - 2)).all()


def test_an_end_image_needs_more_than_one_frame(tmp_path: Path) -> None:
    single = FramePainter(SETTINGS, W, H, 1, MediaInputs(end_image=_png(tmp_path / "e.png", (10, 250, 10))))
    assert not (single.frame(0) == [10, 250, 10]).all()


def test_reference_images_become_thumbnails_while_they_fit(tmp_path: Path) -> None:
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0)]
    refs = [_png(tmp_path / f"r{i}.png", c, (20, 20)) for i, c in enumerate(colours)]
    painter = _painter(tmp_path, reference_images=refs)
    side = min(THUMB, H, W)
    frame = painter.overlay
    assert (frame[:side, :side] == colours[0]).all()
    assert (frame[:side, side:2 * side] == colours[1]).all()
    # W=128 holds two 64-pixel thumbnails: the third is left out, not squeezed in.
    assert not (frame == colours[2]).all(axis=-1).any()


def test_control_video_is_blended_into_every_frame(tmp_path: Path) -> None:
    control = tmp_path / "control.mp4"
    other = FramePainter({"control": True}, W, H, 2, MediaInputs(start_image=_png(tmp_path / "c.png", (200, 200, 200))))
    assert (other.frame(0) == [200, 200, 200]).all()
    write_video(control, {"control": True}, width=W, height=H, frames=2, fps=8,
                media=MediaInputs(start_image=str(tmp_path / "c.png")))
    plain = _painter(tmp_path)
    blended = _painter(tmp_path, control_video=str(control))
    assert blended.control is not None and blended.control.shape == (H, W, 3)
    corner_plain = plain.frame(3)[0, 0].astype(int)
    corner_blended = blended.frame(3)[0, 0].astype(int)
    expected = (corner_plain + blended.control[0, 0].astype(int)) // 2
    assert np.abs(corner_blended - expected).max() <= 1


def test_audio_draws_a_stripe_in_the_file_colour(tmp_path: Path) -> None:
    audio = tmp_path / "voice.wav"
    audio.write_bytes(b"RIFF fake audio bytes")
    painter = _painter(tmp_path, audio=str(audio))
    colour = list(hashlib.sha256(audio.read_bytes()).digest()[:3])
    frame = painter.frame(4)
    stripe = max(2, H // 20)
    assert (frame[-stripe:, :] == colour).all()
    assert not (frame[:-stripe, :] == colour).all()


def test_video_with_inputs_decodes_to_the_requested_frames(tmp_path: Path) -> None:
    out = write_video(tmp_path / "out.mp4", SETTINGS, width=W, height=H, frames=N, fps=16,
                      media=MediaInputs(end_image=_png(tmp_path / "e.png", (10, 250, 10))), comment="custom")
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert container.metadata.get("comment") == "custom"
    assert len(frames) == N and frames[0].shape == (H, W, 3)
    assert np.abs(frames[-1].astype(int) - [10, 250, 10]).mean() < 12  # lossy, but clearly the end image


def test_an_audio_input_becomes_the_videos_soundtrack(tmp_path: Path) -> None:
    """As WanGP's audio-driven models: the MP4 carries an AAC track as long as the video, its
    pitch set by the input file (another file, another track); without audio, no track."""
    voices = [tmp_path / "a.wav", tmp_path / "b.wav"]
    for index, voice in enumerate(voices):
        voice.write_bytes(b"RIFF fake audio bytes %d" % index)
    tracks = []
    for voice in voices:
        out = write_video(tmp_path / f"{voice.stem}.mp4", SETTINGS, width=W, height=H, frames=N, fps=16,
                          media=MediaInputs(audio=str(voice)))
        with av.open(str(out)) as container:
            assert [s.type for s in container.streams] == ["video", "audio"]
            samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
        with av.open(str(out)) as container:
            assert sum(1 for _ in container.decode(video=0)) == N
        rate = 16_000
        assert abs(len(samples) / rate - N / 16) < 0.1 and np.abs(samples).max() > 0.05  # as long, audible
        tracks.append(samples[:4096])
    assert not np.allclose(tracks[0], tracks[1], atol=1e-3)
    silent = write_video(tmp_path / "none.mp4", SETTINGS, width=W, height=H, frames=N, fps=16)
    with av.open(str(silent)) as container:
        assert [s.type for s in container.streams] == ["video"]


def test_image_models_write_a_png_with_the_settings(tmp_path: Path) -> None:
    path = write_image(tmp_path / "img.png", SETTINGS, width=W, height=H,
                       media=MediaInputs(start_image=_png(tmp_path / "s.png", (1, 2, 3))))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (W, H)
        assert json.loads(image.text["comment"]) == SETTINGS
        assert image.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize(("text", "size"), [("832x480", (832, 480)), ("480X832", (480, 832))])
def test_parse_resolution(text: str, size: tuple[int, int]) -> None:
    assert parse_resolution(text) == size
