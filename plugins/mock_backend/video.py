"""Deterministic fake media: real H.264 MP4 files (PyAV) and PNG images.

The pixels are a function of the generation settings only: a background colour and a moving
square derived from a hash of (model, prompt, seed, ...), so the same settings and seed give a
byte-identical file while another seed or prompt gives other pixels. Input media visibly shape the
output so a test can tell the modes apart: the start image is the first frame (and fades into the
pattern), the end image is the last frame, reference images are pasted as thumbnails in the top
left corner, a control video's first frame is blended into every frame, and an audio file's hash
draws a stripe along the bottom edge and sets the pitch of the AAC soundtrack muxed into the MP4.

Encoding is kept cheap and reproducible: libx264 ``ultrafast``, one thread, short GOP.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import av
import numpy as np
from PIL import Image

THUMB = 64  # side of a reference-image thumbnail, in pixels


@dataclass(frozen=True)
class MediaInputs:
    """Local paths of the input media of one task (all optional)."""

    start_image: str | None = None
    end_image: str | None = None
    reference_images: Sequence[str] = field(default_factory=tuple)
    control_video: str | None = None
    audio: str | None = None


def settings_digest(settings: dict[str, Any]) -> bytes:
    """A stable hash of the settings that define the pixels."""
    canonical = json.dumps(settings, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).digest()


def file_digest(path: str) -> bytes:
    return hashlib.sha256(Path(path).read_bytes()).digest()


def _load_rgb(path: str, width: int, height: int) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.uint8)


def _first_video_frame(path: str, width: int, height: int) -> np.ndarray | None:
    with av.open(path) as container:
        for frame in container.decode(video=0):
            return np.asarray(frame.to_image().convert("RGB").resize((width, height)), dtype=np.uint8)
    return None


class FramePainter:
    """Paints frame ``i`` of ``n`` for one task's settings and input media."""

    def __init__(self, settings: dict[str, Any], width: int, height: int, frames: int,
                 media: MediaInputs) -> None:
        self.width, self.height, self.frames = width, height, frames
        digest = settings_digest(settings)
        self.background = np.frombuffer(digest[:3], dtype=np.uint8)
        self.square_colour = 255 - self.background
        self.phase = digest[3]
        self.start = _load_rgb(media.start_image, width, height) if media.start_image else None
        self.end = _load_rgb(media.end_image, width, height) if media.end_image else None
        self.overlay = np.full((height, width, 3), self.background, dtype=np.uint8)
        self._paste_references(media.reference_images)
        self.control = (_first_video_frame(media.control_video, width, height)
                        if media.control_video else None)
        self.audio_colour = (np.frombuffer(file_digest(media.audio)[:3], dtype=np.uint8)
                             if media.audio else None)

    def _paste_references(self, paths: Iterable[str]) -> None:
        side = min(THUMB, self.height, self.width)
        for index, path in enumerate(paths):
            x = index * side
            if x + side > self.width:
                break
            self.overlay[:side, x:x + side] = _load_rgb(path, side, side)

    def frame(self, index: int) -> np.ndarray:
        """The RGB frame ``index`` (uint8, height x width x 3)."""
        if index == 0 and self.start is not None:
            return self.start
        if index == self.frames - 1 and self.end is not None and self.frames > 1:
            return self.end
        img = self.overlay.copy()
        if self.control is not None:  # halfway blend keeps the control video recognisable
            img = ((img.astype(np.uint16) + self.control) // 2).astype(np.uint8)
        side = max(8, min(self.width, self.height) // 6)
        span = max(1, self.width - side)
        x = (self.phase + index * max(1, span // max(1, self.frames))) % span
        y = (self.height - side) // 2
        img[y:y + side, x:x + side] = self.square_colour
        if self.audio_colour is not None:
            img[-max(2, self.height // 20):, :] = self.audio_colour
        if self.start is not None and self.frames > 1:  # fade from the start image
            weight = min(1.0, index / max(1, self.frames // 4))
            img = (self.start * (1 - weight) + img * weight).astype(np.uint8)
        return img


def parse_resolution(resolution: str) -> tuple[int, int]:
    """``"832x480"`` -> (832, 480)."""
    width, height = (int(v) for v in resolution.lower().split("x"))
    return width, height


def write_video(path: Path, settings: dict[str, Any], *, width: int, height: int, frames: int,
                fps: int, media: MediaInputs = MediaInputs(), comment: str | None = None) -> Path:
    """Encode ``frames`` frames at ``width``x``height`` and ``fps`` into an H.264/yuv420p MP4.

    ``comment`` (default: the settings as JSON) goes into the container's ``comment`` tag, where
    WanGP stores the generation settings.
    """
    painter = FramePainter(settings, width, height, frames, media)
    with av.open(str(path), mode="w", format="mp4") as container:
        container.metadata["comment"] = comment if comment is not None else json.dumps(settings)
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "16", "threads": "1", "bf": "0"}
        stream.thread_count = 1
        # Every stream exists before the first packet: the header is written then.
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if media.audio else None
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(painter.frame(index), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            _mux_audio(container, sound, file_digest(str(media.audio)), seconds=frames / fps)
    return path


AUDIO_RATE = 16_000  # Hz, mono: what a speech-driven model's soundtrack needs


def _mux_audio(container: Any, stream: Any, digest: bytes, *, seconds: float) -> None:
    """An AAC soundtrack as long as the video: a tone whose pitch comes from the input audio's
    hash (WanGP's audio-driven models put the driving audio into their MP4)."""
    size = stream.codec_context.frame_size or 1024
    total = max(size, int(seconds * AUDIO_RATE))
    pitch = 220.0 + 2.0 * digest[0]
    for start in range(0, total, size):
        t = (np.arange(start, start + size) / AUDIO_RATE).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * pitch * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_image(path: Path, settings: dict[str, Any], *, width: int, height: int,
                media: MediaInputs = MediaInputs()) -> Path:
    """Write one PNG (what image families produce), settings JSON in its ``comment`` text chunk."""
    from PIL import PngImagePlugin

    painter = FramePainter(settings, width, height, 1, media)
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", json.dumps(settings))
    Image.fromarray(painter.frame(0)).save(path, format="PNG", pnginfo=info)
    return path
