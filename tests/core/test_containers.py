"""Container checks on hand-built media (no PyAV or Pillow needed), plus real files when available.

The builders here are also used by ``test_download.py``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidbridge.containers import KNOWN_MEDIA_TYPES, check_container, sniff_media_type
from vidbridge.errors import IntegrityError

# ------------------------------------------------------------------------------------------------
# Builders: the smallest files each checker accepts, built from the formats' specifications.
# ------------------------------------------------------------------------------------------------


def box(kind: bytes, payload: bytes = b"", *, largesize: bool = False) -> bytes:
    """One ISO-BMFF box; ``largesize`` uses the 64-bit size form."""
    if largesize:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


FTYP_TAIL = b"\x00\x00\x02\x00" + b"isomiso2mp41"  # minor version, compatible brands
FTYP_SIZE = 8 + 4 + len(FTYP_TAIL)


def mp4_bytes(payload: bytes = b"\x00" * 64, *, brand: bytes = b"isom", largesize: bool = False) -> bytes:
    """ftyp + moov + mdat: the top-level shape of every playable MP4."""
    ftyp = box(b"ftyp", brand + FTYP_TAIL)
    moov = box(b"moov", box(b"mvhd", b"\x00" * 100))
    return ftyp + moov + box(b"mdat", payload, largesize=largesize)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG of black pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def riff_bytes(form: bytes, chunk: bytes, data: bytes) -> bytes:
    body = form + chunk + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\xff\xd9"
GIF = bytes.fromhex("474946383961010001000000002c00000000010001000002024401003b")
SAMPLES: dict[str, bytes] = {
    "video/mp4": mp4_bytes(),
    "video/quicktime": mp4_bytes(brand=b"qt  "),
    "audio/mp4": mp4_bytes(brand=b"M4A "),
    "image/png": png_bytes(),
    "image/jpeg": JPEG,
    "image/gif": GIF,
    "image/webp": riff_bytes(b"WEBP", b"VP8L", b"\x2f\x00\x00\x00\x00"),
    "audio/wav": riff_bytes(b"WAVE", b"fmt ", b"\x01\x00\x01\x00" + b"\x00" * 12),
    "video/x-msvideo": riff_bytes(b"AVI ", b"LIST", b"hdrl"),
    "video/x-matroska": b"\x1a\x45\xdf\xa3" + b"\x00" * 28,
}


@pytest.fixture
def write(tmp_path: Path):
    def write(data: bytes, name: str = "file.bin") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


# ------------------------------------------------------------------------------------------------
# Sniffing and the happy path
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", sorted(SAMPLES))
def test_each_sample_passes_and_is_sniffed_as_its_type(write, media_type):
    path = write(SAMPLES[media_type])
    check_container(path, media_type)
    assert sniff_media_type(SAMPLES[media_type][:16]) == media_type


@pytest.mark.parametrize("head", [b"", b"<!DOCTYPE html>", b"RIFF\x00\x00\x00\x00XXXX", b"\x00\x00\x00\x18moov"])
def test_sniff_returns_none_for_unknown_content(head):
    assert sniff_media_type(head) is None


@pytest.mark.parametrize(
    ("declared", "sample"),
    [
        ("audio/x-wav", "audio/wav"),
        ("IMAGE/JPG", "image/jpeg"),
        ("video/mp4; codecs=avc1", "video/mp4"),
        ("video/webm", "video/x-matroska"),
    ],
)
def test_aliases_case_and_parameters_are_normalised(write, declared, sample):
    check_container(write(SAMPLES[sample]), declared)
    # Recognised as a known type, so content that is not that container fails
    # (an unknown type would let unrecognised content pass).
    with pytest.raises(IntegrityError, match="not a valid"):
        check_container(write(b"<html>error</html>"), declared)


# ------------------------------------------------------------------------------------------------
# ISO-BMFF (MP4 / MOV)
# ------------------------------------------------------------------------------------------------


def test_mp4_with_64bit_largesize_mdat_passes(write):
    check_container(write(mp4_bytes(b"\x01" * 100, largesize=True)), "video/mp4")


def test_mp4_with_size_zero_last_box_runs_to_end_of_file(write):
    data = mp4_bytes(b"")[:-8] + struct.pack(">I4s", 0, b"mdat") + b"\x02" * 500
    check_container(write(data), "video/mp4")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (mp4_bytes()[:-1], "only 71 remain"),  # truncated by one byte
        (mp4_bytes() + b"\x00\x00\x00", "ends inside the box header"),  # trailing garbage
        (mp4_bytes()[:-72], "no 'mdat' box"),
        (mp4_bytes()[FTYP_SIZE:], "first box is 'moov'"),
        (box(b"ftyp", b"isom") + box(b"mdat", b"x"), "no 'moov' box"),
        (mp4_bytes() + struct.pack(">I4s", 4, b"free"), "impossible size 4"),
        (mp4_bytes() + struct.pack(">I4s", 8, b"\x00\x01\x02\x03"), "unreadable box type"),
        (mp4_bytes() + struct.pack(">I4s", 1, b"free") + b"\x00\x00", "ends inside the box header"),
        (b"<html><body>502 Bad Gateway</body></html>", None),
    ],
)
def test_broken_mp4_fails(write, data, reason):
    with pytest.raises(IntegrityError, match="not a valid video/mp4 file") as caught:
        check_container(write(data), "video/mp4")
    if reason:
        assert reason in str(caught.value)
    assert caught.value.retryable


def test_appended_whole_box_still_passes_because_the_boxes_tile_the_file(write):
    # A "free" box after mdat is legal MP4: the check is structural, not a whitelist.
    check_container(write(mp4_bytes() + box(b"free", b"\x00" * 10)), "video/mp4")


# ------------------------------------------------------------------------------------------------
# PNG, JPEG, GIF, RIFF, EBML
# ------------------------------------------------------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (png_bytes()[:-1], "runs past the end"),
        (png_bytes()[:8], "no IEND chunk"),
        (png_bytes() + b"extra", "no IEND chunk"),
        (_flip(png_bytes(), 40), "bad CRC"),
        (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IDAT", b"") + png_chunk(b"IEND", b""), "expected IHDR"),
        (b"\x89PNG\r\n\x1a\x0a"[:-1] + b"X" + png_bytes()[8:], "no PNG signature"),
        (b"\x89PNG", "ends inside the signature"),
        (png_bytes()[:-12] + b"\x00\x00\x00", "ends inside the chunk"),
    ],
)
def test_broken_png_fails(write, data, reason):
    with pytest.raises(IntegrityError, match=reason):
        check_container(write(data), "image/png")


@pytest.mark.parametrize(
    ("media_type", "data", "reason"),
    [
        ("image/jpeg", JPEG[:-1], "does not end with ffd9"),
        ("image/jpeg", b"\xff\xd9", "wrong signature"),
        ("image/jpeg", b"GIF89a" + JPEG, "wrong signature"),
        ("image/gif", GIF[:-1], "does not end with 3b"),
        ("image/gif", b"GIF88a" + GIF[6:], "wrong signature"),
        ("image/webp", SAMPLES["image/webp"] + b"\x00\x00", "RIFF header says"),
        ("image/webp", SAMPLES["image/webp"][:-1], "RIFF header says"),
        ("image/webp", SAMPLES["audio/wav"], "not a RIFF WEBP file"),
        ("audio/wav", b"RIFF", "not a RIFF WAVE file"),
        ("video/x-matroska", b"\x1a\x45\xdf", "no EBML"),
        ("video/webm", b"<html>", "no EBML"),
    ],
)
def test_broken_images_audio_and_riff_fail(write, media_type, data, reason):
    with pytest.raises(IntegrityError, match=reason):
        check_container(write(data), media_type)


# ------------------------------------------------------------------------------------------------
# Content decides, not the label
# ------------------------------------------------------------------------------------------------


def test_declared_type_must_match_the_content(write):
    with pytest.raises(IntegrityError, match="video/mp4"):
        check_container(write(png_bytes(), "video.mp4"), "video/mp4")


def test_unknown_declared_type_still_checks_recognised_content(write):
    truncated_png = png_bytes()[:-5]
    with pytest.raises(IntegrityError, match="image/png"):
        check_container(write(truncated_png), "application/octet-stream")
    check_container(write(png_bytes()), "application/octet-stream")


@pytest.mark.parametrize("media_type", ["text/plain", "application/json", "image/avif", "application/octet-stream"])
def test_unrecognised_content_with_an_unknown_type_passes(write, media_type):
    check_container(write(b'{"not": "media"}'), media_type)
    check_container(write(b""), media_type)


@pytest.mark.parametrize("media_type", ["video/mp4", "image/png", "image/jpeg", "image/webp", "image/gif"])
def test_empty_file_fails_for_a_known_type(write, media_type):
    with pytest.raises(IntegrityError):
        check_container(write(b""), media_type)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.sampled_from(sorted(SAMPLES.values())).flatmap(
            lambda sample: st.tuples(st.integers(0, len(sample)), st.binary(max_size=8)).map(
                lambda cut: sample[: cut[0]] + cut[1]
            )
        ),
    ),
    media_type=st.sampled_from(sorted(KNOWN_MEDIA_TYPES) + ["application/octet-stream"]),
)
def test_arbitrary_bytes_either_pass_or_raise_integrity_error(tmp_path, data, media_type):
    """Mangled files never crash a checker (struct.error, IndexError...): only IntegrityError."""
    path = tmp_path / "fuzz.bin"
    path.write_bytes(data)
    try:
        check_container(path, media_type)
    except IntegrityError as exc:
        assert exc.message.startswith("not a valid ")


# ------------------------------------------------------------------------------------------------
# Real encoder output, when the optional media libraries are installed
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")]
)
def test_real_pillow_images_pass(tmp_path, fmt, media_type):
    image_module = pytest.importorskip("PIL.Image")
    path = tmp_path / f"real.{fmt.lower()}"
    image_module.new("RGB", (16, 8), (200, 30, 30)).save(path, fmt)
    check_container(path, media_type)
    assert sniff_media_type(path.read_bytes()[:16]) == media_type
    # And our hand-built PNG is one Pillow can decode.
    built = tmp_path / "built.png"
    built.write_bytes(png_bytes(3, 2))
    assert image_module.open(built).size == (3, 2)


def test_real_pyav_mp4_passes_and_its_truncation_fails(tmp_path):
    av = pytest.importorskip("av")
    numpy = pytest.importorskip("numpy")
    path = tmp_path / "real.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(4):
            frame = av.VideoFrame.from_ndarray(numpy.full((32, 32, 3), index * 40, numpy.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    check_container(path, "video/mp4")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match="truncated"):
        check_container(path, "video/mp4")
