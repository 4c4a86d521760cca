"""Turn a server-supplied file name into one that is safe to create in a folder we chose.

A backend's name for its output is data, not a path: it must never pick the directory (``..``,
absolute paths, drive letters, backslashes), create hidden files, hit a Windows device name or
break on a file system's length limit. :func:`safe_filename` fixes all of that, on every OS, so
that a name that works on the Linux render box also works on the artist's Windows laptop.
"""

from __future__ import annotations

import mimetypes
import os
import unicodedata

__all__ = ["safe_filename", "numbered", "MAX_NAME_BYTES"]

#: Longest name produced, in UTF-8 bytes: below the usual 255-byte limit, leaving room for the
#: " (12)" of a collision and the ".json" of a manifest.
MAX_NAME_BYTES = 200

# An extension longer than this is not an extension but part of a long name.
_MAX_SUFFIX_BYTES = 16
_WINDOWS_ILLEGAL = str.maketrans({char: "_" for char in '<>:"|?*'})
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789¹²³"}
)
# Cc: control characters (NUL included). Cf: invisible formatting such as U+202E RIGHT-TO-LEFT
# OVERRIDE, which can make "evil\u202e4pm.exe" display as "evilexe.mp4". Cs: lone surrogates,
# which cannot be encoded to a file name at all.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def _truncate_utf8(text: str, limit: int) -> str:
    # errors="ignore" drops a character cut in half at the byte limit.
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _split_suffix(name: str) -> tuple[str, str]:
    stem, suffix = os.path.splitext(name)
    if len(suffix.encode("utf-8")) > _MAX_SUFFIX_BYTES or " " in suffix:
        return name, ""
    return stem, suffix


def safe_filename(name: str, *, media_type: str | None = None) -> str:
    """A single, portable file name derived from ``name`` (typically a server-supplied one).

    * only the last path component is kept (``/`` and ``\\`` both separate);
    * control, invisible-formatting and surrogate characters are dropped;
    * characters illegal on Windows (``<>:"|?*``) become ``_``;
    * leading dots and spaces are removed (no hidden files, no ``..``), and so are trailing
      ones (Windows silently drops them, which would make two names collide);
    * Windows device names (``CON``, ``NUL``, ``COM1``, ``LPT9``..., with or without extension)
      get a ``_`` prefix;
    * the result is at most :data:`MAX_NAME_BYTES` UTF-8 bytes, shortening the stem and keeping
      the extension;
    * an empty result becomes ``artifact`` plus the extension of ``media_type`` (if any).

    The result never contains a path separator and is never ``.`` or ``..``, so
    ``folder / safe_filename(anything)`` is always directly inside ``folder``.
    """
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(char for char in name if unicodedata.category(char) not in _DROPPED_CATEGORIES)
    name = name.translate(_WINDOWS_ILLEGAL).strip(". ")
    if not name:
        return "artifact" + ((mimetypes.guess_extension(media_type) if media_type else None) or "")
    # Windows reserves a device name whatever follows its first dot ("NUL.tar.gz").
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        name = "_" + name
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        stem, suffix = _split_suffix(name)
        # The stem keeps at least MAX_NAME_BYTES - _MAX_SUFFIX_BYTES bytes, so it stays non-empty.
        name = _truncate_utf8(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip(". ") + suffix
    return name


def numbered(name: str, number: int) -> str:
    """``name`` with `` (number)`` before its extension; ``number`` 0 gives ``name`` itself.

    ``numbered("video.mp4", 2) == "video (2).mp4"``: the convention of file managers.
    """
    if number == 0:
        return name
    stem, suffix = _split_suffix(name)
    return f"{stem} ({number}){suffix}"
