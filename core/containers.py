"""Check that a downloaded file really is the media container it claims to be.

The checks look at the bytes, never at the name, and read only structure (box and chunk headers,
trailers), so a multi-GiB video costs a few small reads. They catch what a size or hash check
cannot when no hash is known: an HTML error page saved as ``video.mp4``, a body cut short, a
server that sent two files glued together.

* MP4 / MOV / M4A (ISO-BMFF): the top-level boxes tile the file exactly (32-bit sizes, 64-bit
  ``largesize``, size 0 = "to the end"), ``ftyp`` comes first, ``moov`` and ``mdat`` are present.
* PNG: signature, chunks tile the file with valid CRCs, ``IHDR`` first, ``IEND`` last.
* JPEG: SOI marker at the start, EOI marker at the end.
* GIF: ``GIF87a``/``GIF89a`` header, trailer byte at the end.
* WebP, WAV, AVI (RIFF): the RIFF size field matches the file size.
* Matroska / WebM: EBML signature.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import IntegrityError

__all__ = ["check_container", "check_stream", "sniff_media_type", "KNOWN_MEDIA_TYPES"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_EBML_SIGNATURE = b"\x1a\x45\xdf\xa3"
_RIFF_FORMS = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
# ISO-BMFF major brands that are not plain MP4 video.
_BMFF_BRANDS = {b"qt  ": "video/quicktime", b"M4A ": "audio/mp4", b"M4B ": "audio/mp4"}
# Other spellings of the same media type (mimetypes says audio/x-wav on most systems).
_ALIASES = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "video/avi": "video/x-msvideo",
    "audio/x-m4a": "audio/mp4",
}
_CHUNK = 1 << 16


def sniff_media_type(head: bytes) -> str | None:
    """The media type the first bytes of a file announce, or ``None`` if not one we know.

    16 bytes are enough for every type recognised here. Types without a structural check in
    :func:`check_container` (BMP, MP3, FLAC, OGG, AAC) are recognised too: input files are
    checked by their first bytes only (:mod:`vidbridge.models`).
    """
    if head.startswith(_PNG_SIGNATURE):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:2] == b"BM" and len(head) >= 14 and head[6:10] == b"\0\0\0\0":  # BITMAPFILEHEADER, reserved zero
        return "image/bmp"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or _is_mpeg_audio_frame(head):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS sync word, layer 0
        return "audio/aac"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] in _RIFF_FORMS:
        return _RIFF_FORMS[head[8:12]]
    if head[4:8] == b"ftyp":
        return _BMFF_BRANDS.get(head[8:12], "video/mp4")
    if head.startswith(_EBML_SIGNATURE):
        return "video/x-matroska"
    return None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, then a version, layer, bitrate and rate that exist."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate != 0xF and rate != 3


def _fail(media_type: str, reason: str) -> IntegrityError:
    return IntegrityError(f"not a valid {media_type} file: {reason}")


def _read_exactly(stream: BinaryIO, count: int, media_type: str, what: str) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise _fail(media_type, f"file ends inside the {what}")
    return data


def _check_bmff(stream: BinaryIO, size: int, media_type: str) -> None:
    boxes: list[bytes] = []
    offset = 0
    while offset < size:
        stream.seek(offset)
        header = _read_exactly(stream, 8, media_type, f"box header at offset {offset}")
        box_size, box_type = struct.unpack(">I4s", header)
        header_size = 8
        if box_size == 1:  # 64-bit "largesize" follows the type
            (box_size,) = struct.unpack(">Q", _read_exactly(stream, 8, media_type, f"box header at offset {offset}"))
            header_size = 16
        elif box_size == 0:  # the last box, running to the end of the file
            box_size = size - offset
        # Top-level box types are printable four-character codes; anything else is garbage.
        if not all(0x20 <= byte <= 0x7E for byte in box_type):
            raise _fail(media_type, f"unreadable box type {box_type!r} at offset {offset}")
        name = box_type.decode("ascii")
        if not boxes and box_type != b"ftyp":
            raise _fail(media_type, f"first box is {name!r}, expected 'ftyp'")
        if box_size < header_size:
            raise _fail(media_type, f"box {name!r} at offset {offset} has impossible size {box_size}")
        if offset + box_size > size:
            raise _fail(
                media_type,
                f"box {name!r} at offset {offset} needs {box_size} bytes, only {size - offset} remain (truncated?)",
            )
        boxes.append(box_type)
        offset += box_size
    missing = [name.decode() for name in (b"ftyp", b"moov", b"mdat") if name not in boxes]
    if missing:
        raise _fail(media_type, f"no {', '.join(repr(name) for name in missing)} box")


def _check_png(stream: BinaryIO, size: int, media_type: str) -> None:
    if _read_exactly(stream, 8, media_type, "signature") != _PNG_SIGNATURE:
        raise _fail(media_type, "no PNG signature")
    offset = 8
    first = True
    chunk_type = b""
    while offset < size:
        length, chunk_type = struct.unpack(">I4s", _read_exactly(stream, 8, media_type, f"chunk at offset {offset}"))
        if first and chunk_type != b"IHDR":
            raise _fail(media_type, f"first chunk is {chunk_type!r}, expected IHDR")
        first = False
        if offset + 12 + length > size:
            raise _fail(media_type, f"chunk {chunk_type!r} at offset {offset} runs past the end (truncated?)")
        crc = zlib.crc32(chunk_type)
        remaining = length
        while remaining:
            piece = _read_exactly(stream, min(remaining, _CHUNK), media_type, f"chunk {chunk_type!r}")
            crc = zlib.crc32(piece, crc)
            remaining -= len(piece)
        (stored,) = struct.unpack(">I", stream.read(4))
        if stored != crc:
            raise _fail(media_type, f"chunk {chunk_type!r} at offset {offset} has a bad CRC (corrupted)")
        offset += 12 + length
        if chunk_type == b"IEND":
            break
    if chunk_type != b"IEND" or offset != size:
        raise _fail(media_type, "no IEND chunk at the end of the file")


def _check_trailer(signature: tuple[bytes, ...], trailer: bytes, minimum: int) -> Callable[[BinaryIO, int, str], None]:
    def check(stream: BinaryIO, size: int, media_type: str) -> None:
        if size < minimum or not stream.read(max(map(len, signature))).startswith(signature):
            raise _fail(media_type, "wrong signature at the start")
        stream.seek(size - len(trailer))
        if stream.read(len(trailer)) != trailer:
            raise _fail(media_type, f"does not end with {trailer.hex()} (truncated?)")

    return check


def _check_riff(form: bytes) -> Callable[[BinaryIO, int, str], None]:
    def check(stream: BinaryIO, size: int, media_type: str) -> None:
        header = stream.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != form:
            raise _fail(media_type, f"not a RIFF {form.decode().strip()} file")
        (riff_size,) = struct.unpack("<I", header[4:8])
        if riff_size + 8 != size:
            raise _fail(media_type, f"RIFF header says {riff_size + 8} bytes, file has {size}")

    return check


def _check_ebml(stream: BinaryIO, size: int, media_type: str) -> None:
    if stream.read(4) != _EBML_SIGNATURE:
        raise _fail(media_type, "no EBML (Matroska/WebM) signature")


_CHECKERS: dict[str, Callable[[BinaryIO, int, str], None]] = {
    "video/mp4": _check_bmff,
    "video/quicktime": _check_bmff,
    "audio/mp4": _check_bmff,
    "image/png": _check_png,
    "image/jpeg": _check_trailer((b"\xff\xd8\xff",), b"\xff\xd9", minimum=5),
    "image/gif": _check_trailer((b"GIF87a", b"GIF89a"), b"\x3b", minimum=14),
    "image/webp": _check_riff(b"WEBP"),
    "audio/wav": _check_riff(b"WAVE"),
    "video/x-msvideo": _check_riff(b"AVI "),
    "video/x-matroska": _check_ebml,
    "video/webm": _check_ebml,
}

#: Media types whose container :func:`check_container` verifies (aliases such as audio/x-wav too).
KNOWN_MEDIA_TYPES = frozenset(_CHECKERS) | frozenset(_ALIASES)


def _normalise(media_type: str) -> str:
    base = media_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def check_container(path: Path, media_type: str) -> None:
    """Raise :class:`~vidbridge.IntegrityError` unless ``path`` is a well-formed ``media_type`` file.

    For a media type in :data:`KNOWN_MEDIA_TYPES` the file must have that container's structure.
    For any other media type the file's content decides: if it starts like a known container it
    must be a complete one (a truncated PNG fails even when labelled application/octet-stream);
    otherwise it passes, since there is nothing to check it against.
    """
    with open(path, "rb") as stream:
        check_stream(stream, path.stat().st_size, media_type)


def check_stream(stream: BinaryIO, size: int, media_type: str) -> None:
    """:func:`check_container` for a seekable binary ``stream`` of ``size`` bytes (at offset 0):
    a file not yet downloaded can be checked through a reader that fetches byte ranges, since
    the checks read only a few small pieces."""
    kind = _normalise(media_type)
    checker = _CHECKERS.get(kind)
    if checker is None:
        sniffed = sniff_media_type(stream.read(16))
        if sniffed not in _CHECKERS:  # unknown, or a type known by its first bytes only
            return
        kind, checker = sniffed, _CHECKERS[sniffed]
        stream.seek(0)
    checker(stream, size, kind)
