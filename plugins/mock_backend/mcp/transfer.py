"""One-use, expiring media transfer URLs of WanGP's MCP face (HTTP PUT uploads, GET downloads).

``wangp_create_gallery_upload(filename)`` answers ``{upload_url, method: "PUT", filename,
expires_in_seconds, max_bytes}``; ``wangp_create_gallery_download(gallery_id)`` answers
``{gallery_id, download_url, filename, media_type, size, expires_in_seconds}``. The URLs are
relative (``/wangp_api/gallery/upload/<token>``, ``/wangp_api/gallery/download/<token>``) to the
server's root. A token works once: a second use, an unknown or an expired token gets 404
``{"error": "Upload expired or not found."}`` (or ``Download ...``). An upload larger than
``max_bytes`` gets 413; bytes that do not decode as the extension's media type get 400 with the
decoder's message, and the file is removed. A good upload is registered and selected in the
Gallery; the answer is ``{"status": "uploaded", "size", **gallery record}``.
"""

from __future__ import annotations

import mimetypes
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from .gallery import Gallery, media_type_of

UPLOAD_PREFIX = "/wangp_api/gallery/upload/"
DOWNLOAD_PREFIX = "/wangp_api/gallery/download/"
DEFAULT_TTL_SECONDS = 600
DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 ** 3


class TransferStore:
    """Pending upload and download tokens of one server; thread-safe.

    :param ttl: seconds a token stays valid. :param max_bytes: upload size cap.
    :param clock: time source (injectable so tests need not wait for expiry).
    """

    def __init__(self, gallery: Gallery, upload_root: Path, ttl: float = DEFAULT_TTL_SECONDS,
                 max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, clock: Callable[[], float] = time.time) -> None:
        self.gallery = gallery
        self.upload_root = upload_root
        self.ttl, self.max_bytes, self.clock = ttl, max_bytes, clock
        self._lock = threading.Lock()
        self._uploads: dict[str, dict[str, Any]] = {}
        self._downloads: dict[str, dict[str, Any]] = {}

    def _expire(self) -> None:
        cutoff = self.clock() - self.ttl
        for store in (self._uploads, self._downloads):
            for token in [t for t, r in store.items() if r["created"] < cutoff]:
                del store[token]

    def create_upload(self, filename: str) -> dict[str, Any]:
        """A one-use PUT URL for a media file named ``filename`` (its base name is kept)."""
        name = Path(str(filename or "").strip()).name
        if name in {"", ".", ".."} or media_type_of(name) is None:
            raise ValueError("filename must have a supported image, video, or audio extension")
        token = uuid.uuid4().hex
        with self._lock:
            self._expire()
            self._uploads[token] = {"created": self.clock(), "filename": name}
        return {"upload_url": UPLOAD_PREFIX + token, "method": "PUT", "filename": name,
                "expires_in_seconds": int(self.ttl), "max_bytes": self.max_bytes}

    def create_download(self, gallery_id: str, filename: str | None = None) -> dict[str, Any]:
        """A one-use GET URL for a Gallery item (KeyError when unknown); ``filename`` overrides the
        name announced and sent (the ``hostile_name`` fault)."""
        record = self.gallery.item(gallery_id)
        path = Path(record["path"])
        token = uuid.uuid4().hex
        name = filename or path.name
        with self._lock:
            self._expire()
            self._downloads[token] = {"created": self.clock(), "path": path, "filename": name}
        return {"gallery_id": record["gallery_id"], "download_url": DOWNLOAD_PREFIX + token,
                "filename": name, "media_type": record["media_type"], "size": path.stat().st_size,
                "expires_in_seconds": int(self.ttl)}

    def take_upload(self, token: str) -> dict[str, Any] | None:
        """Consume an upload token (None when unknown, used or expired)."""
        with self._lock:
            self._expire()
            return self._uploads.pop(token, None)

    def take_download(self, token: str) -> dict[str, Any] | None:
        """Consume a download token (None when unknown, used, expired or its file is gone)."""
        with self._lock:
            self._expire()
            transfer = self._downloads.pop(token, None)
        return transfer if transfer is not None and transfer["path"].exists() else None

    def upload_target(self, filename: str) -> Path:
        """A fresh folder for one upload (WanGP: ``outputs/mcp_uploads/<uuid>/<name>``)."""
        folder = self.upload_root / uuid.uuid4().hex
        folder.mkdir(parents=True, exist_ok=True)
        return folder / filename


def check_media(path: Path) -> None:
    """Raise (with the decoder's message) when ``path`` does not decode as its extension says."""
    kind = media_type_of(path.name)
    if kind == "image":
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
        return
    import av  # video and audio: a container with a stream of that kind

    with av.open(str(path)) as container:
        streams = container.streams.video if kind == "video" else container.streams.audio
        if not streams:
            raise ValueError(f"Unable to read uploaded {kind}: {path.name}")


def routes(store: TransferStore) -> list[tuple[str, str, Any]]:
    """``(path, method, handler)`` of the Starlette routes serving the transfers of ``store``."""
    from starlette.responses import FileResponse, JSONResponse

    def missing(what: str) -> Any:
        return JSONResponse({"error": f"{what} expired or not found."}, status_code=404)

    async def upload(request: Any) -> Any:
        transfer = store.take_upload(request.path_params["token"])
        if transfer is None:
            return missing("Upload")
        declared = request.headers.get("content-length")  # h11 has checked it is a number
        if declared is not None and int(declared) > store.max_bytes:
            return _too_large(store.max_bytes)
        target = store.upload_target(transfer["filename"])
        size = 0
        try:
            with target.open("xb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > store.max_bytes:
                        raise OverflowError
                    out.write(chunk)
            check_media(target)
            record = store.gallery.register(target)
        except OverflowError:
            _remove(target)
            return _too_large(store.max_bytes)
        except Exception as exc:  # the decoder's own message, as WanGP answers it
            _remove(target)
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"status": "uploaded", "size": size, **record})

    async def download(request: Any) -> Any:
        transfer = store.take_download(request.path_params["token"])
        if transfer is None:
            return missing("Download")
        path = transfer["path"]
        return FileResponse(path, filename=transfer["filename"],
                            media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    return [(UPLOAD_PREFIX + "{token}", "PUT", upload), (DOWNLOAD_PREFIX + "{token}", "GET", download)]


def _too_large(limit: int) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": f"Upload exceeds the {limit}-byte limit."}, status_code=413)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass
