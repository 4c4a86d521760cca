"""download_verified against httpx.MockTransport servers: verification, retries, names, races."""

from __future__ import annotations

import datetime
import errno
import gzip
import hashlib
import json
import os
import tempfile
import threading
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_containers import mp4_bytes, png_bytes

import vidbridge
from vidbridge import download as download_module
from vidbridge.download import download_verified
from vidbridge.errors import (
    AuthenticationError,
    BackendError,
    IntegrityError,
    InvalidRequestError,
    JobTimeoutError,
    TransientServerError,
)
from vidbridge.filenames import MAX_NAME_BYTES, numbered, safe_filename
from vidbridge.models import Artifact, Provenance

SERVER = "http://127.0.0.1:7860"
URL = f"{SERVER}/file=outputs/video.mp4"
SECRET = "s3cr3t-T0KEN"
MP4 = mp4_bytes(b"\x07" * 4096)
PROVENANCE = Provenance(backend="mock", endpoint=SERVER, job_id="job-1", model="t2v", seed=42)

Reply = Callable[[httpx.Request], httpx.Response]


def reply(body: bytes | object = MP4, status: int = 200, **headers: str) -> Reply:
    """A server answer; ``headers`` with underscores for dashes (Content_Length=...)."""
    named = {key.replace("_", "-"): value for key, value in headers.items()}
    return lambda request: httpx.Response(status, headers=named, content=body)


def raise_(exc_type: type[httpx.RequestError]) -> Reply:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)

    return handler


def corrupted_mp4() -> bytes:
    """MP4 whose mdat box claims 4 bytes more than there are: same length, broken structure."""
    index = MP4.index(b"mdat") - 4
    size = int.from_bytes(MP4[index : index + 4], "big") + 4
    return MP4[:index] + size.to_bytes(4, "big") + MP4[index + 4 :]


@dataclass
class FakeServer:
    """Answers with ``replies`` in order, repeating the last one; records every request."""

    replies: list[Reply]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return handler(request)


@dataclass
class Harness:
    folder: Path
    sleeps: list[float] = field(default_factory=list)
    server: FakeServer | None = None

    def run(self, *replies: Reply, **options) -> Artifact:
        self.server = FakeServer(list(replies))
        options.setdefault("original_name", "video.mp4")
        options.setdefault("provenance", PROVENANCE)
        url = options.pop("url", URL)
        with httpx.Client(transport=httpx.MockTransport(self.server), base_url=options.pop("base_url", "")) as http:
            return download_verified(http, url, self.folder, sleep=self.sleeps.append, **options)

    def names(self) -> list[str]:
        return sorted(path.name for path in self.folder.iterdir())

    @property
    def request_count(self) -> int:
        return len(self.server.requests) if self.server else 0


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    folder = tmp_path / "out"
    folder.mkdir()
    return Harness(folder)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------
# Success and the manifest
# ------------------------------------------------------------------------------------------------


def test_success_returns_verified_artifact_and_writes_manifest(harness):
    artifact = harness.run(reply(), url=URL + f"?token={SECRET}", expected_size=len(MP4), expected_sha256=sha256(MP4))

    assert artifact.path == harness.folder / "video.mp4"
    assert artifact.path.read_bytes() == MP4
    assert (artifact.size, artifact.sha256, artifact.media_type) == (len(MP4), sha256(MP4), "video/mp4")
    assert artifact.provenance == PROVENANCE.model_copy(update={"original_name": "video.mp4"})
    assert artifact.manifest_path == harness.folder / "video.mp4.json"
    assert harness.names() == ["video.mp4", "video.mp4.json"]  # no .part left behind
    assert harness.server.requests[0].headers["Accept-Encoding"] == "identity"

    record = json.loads(artifact.manifest_path.read_text("utf-8"))
    downloaded_at = datetime.datetime.fromisoformat(record.pop("downloaded_at"))
    assert downloaded_at.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - downloaded_at) < datetime.timedelta(minutes=5)
    assert record == {
        "vidbridge_version": vidbridge.__version__,
        "path": "video.mp4",
        "size": len(MP4),
        "sha256": sha256(MP4),
        "media_type": "video/mp4",
        "original_name": "video.mp4",
        "url": URL,
        "provenance": artifact.provenance.model_dump(mode="json"),
    }


def test_manifest_false_writes_only_the_file(harness):
    artifact = harness.run(reply(), manifest=False)
    assert artifact.manifest_path is None
    assert harness.names() == ["video.mp4"]


def test_secrets_in_url_and_headers_reach_the_server_but_not_manifest_errors_or_logs(harness, caplog):
    caplog.set_level("DEBUG", logger="vidbridge")
    url = f"http://user:{SECRET}@127.0.0.1:7860/file=video.mp4?token={SECRET}"
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"}
    artifact = harness.run(reply(status=503), reply(), url=url, headers=headers)

    sent = harness.server.requests[0]
    assert sent.headers["Cookie"] == f"session={SECRET}" and sent.url.params["token"] == SECRET
    assert SECRET not in artifact.manifest_path.read_text("utf-8")
    assert "HTTP 503" in caplog.text  # the retry was logged...
    assert SECRET not in caplog.text  # ...without the secrets
    with pytest.raises(TransientServerError) as caught:
        harness.run(reply(status=503), url=url, headers=headers, attempts=1)
    assert SECRET not in str(caught.value)


def test_caller_headers_override_accept_encoding_case_insensitively(harness):
    harness.run(reply(), headers={"accept-encoding": "br"})
    assert harness.server.requests[0].headers.get_list("Accept-Encoding") == ["br"]


# ------------------------------------------------------------------------------------------------
# Verification failures
# ------------------------------------------------------------------------------------------------


def test_truncated_body_is_rejected_then_retried(harness):
    artifact = harness.run(reply(MP4[:-100], Content_Length=str(len(MP4))), reply())
    assert artifact.path.read_bytes() == MP4
    assert harness.request_count == 2 and len(harness.sleeps) == 1
    truncated = rf"received {len(MP4) - 100} of the {len(MP4)} bytes announced \(truncated\)"
    with pytest.raises(IntegrityError, match=truncated):
        harness.run(reply(MP4[:-100], Content_Length=str(len(MP4))), attempts=1)


def test_more_bytes_than_announced_is_rejected(harness):
    with pytest.raises(IntegrityError, match=f"more than the {len(MP4) - 10} bytes announced"):
        harness.run(reply(MP4, Content_Length=str(len(MP4) - 10)), attempts=1)
    assert harness.names() == []


def test_content_length_disagreeing_with_expected_size_is_rejected_before_reading(harness):
    with pytest.raises(IntegrityError, match=f"server announces {len(MP4)} bytes, expected 10"):
        harness.run(reply(), expected_size=10, attempts=1)


def _chunked(data: bytes, size: int = 1000):
    """A body without Content-Length (streamed in chunks)."""
    return iter([data[start : start + size] for start in range(0, len(data), size)])


def test_expected_size_is_enforced_without_content_length(harness):
    with pytest.raises(IntegrityError, match=f"more than the {len(MP4) - 1} bytes"):
        harness.run(lambda request: httpx.Response(200, content=_chunked(MP4)), expected_size=len(MP4) - 1, attempts=1)
    with pytest.raises(IntegrityError, match=f"received {len(MP4)} bytes, expected {len(MP4) + 1}"):
        harness.run(lambda request: httpx.Response(200, content=_chunked(MP4)), expected_size=len(MP4) + 1, attempts=1)
    assert harness.names() == []


def test_corrupted_bytes_fail_the_sha256_check(harness):
    flipped = MP4[:-1] + b"\x00"  # inside mdat: the container is still well formed
    with pytest.raises(IntegrityError, match="SHA-256 is .* expected .*corrupted"):
        harness.run(reply(flipped), expected_sha256=sha256(MP4).upper(), attempts=1)
    # The same bytes without a known hash pass: only the hash could tell.
    assert harness.run(reply(flipped)).sha256 == sha256(flipped)


def test_corrupted_structure_fails_the_container_check_without_a_hash(harness):
    expected = "downloading video.mp4 from .*: not a valid video/mp4 file: box 'mdat' .* needs"
    with pytest.raises(IntegrityError, match=expected):
        harness.run(reply(corrupted_mp4()), attempts=1)


def test_all_attempts_failing_raises_integrity_error_and_leaves_only_preexisting_files(harness):
    (harness.folder / "keep.txt").write_text("mine")
    with pytest.raises(IntegrityError) as caught:
        harness.run(reply(corrupted_mp4()), attempts=3)
    assert caught.value.retryable and caught.value.endpoint == SERVER
    assert harness.request_count == 3 and len(harness.sleeps) == 2
    assert harness.names() == ["keep.txt"]
    assert (harness.folder / "keep.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------------
# Media type: given, else sniffed, else from the name
# ------------------------------------------------------------------------------------------------


def test_media_type_is_sniffed_from_content_before_the_name(harness):
    assert harness.run(reply(png_bytes()), original_name="frame.bin").media_type == "image/png"
    assert harness.run(reply(b"hello"), original_name="notes.txt").media_type == "text/plain"


def test_given_media_type_is_checked_against_content(harness):
    with pytest.raises(IntegrityError, match="not a valid image/png file"):
        harness.run(reply(MP4), original_name="frame.png", media_type="image/png", attempts=1)
    assert harness.run(reply(MP4), media_type="video/mp4").media_type == "video/mp4"


def test_html_error_page_named_mp4_is_rejected(harness):
    with pytest.raises(IntegrityError, match="not a valid video/mp4"):
        harness.run(reply(b"<html>queue full</html>"), attempts=1)


def test_gzip_encoded_response_is_stored_decoded(harness):
    compressed = gzip.compress(MP4)
    # Streamed (an iterator body), as from a real socket: Content-Length counts compressed bytes.
    artifact = harness.run(reply(iter([compressed]), Content_Encoding="gzip", Content_Length=str(len(compressed))))
    assert artifact.path.read_bytes() == MP4 and artifact.sha256 == sha256(MP4)


# ------------------------------------------------------------------------------------------------
# HTTP errors and retries
# ------------------------------------------------------------------------------------------------


def test_503_then_success_retries_after_a_short_backoff(harness):
    artifact = harness.run(reply(status=503), reply())
    assert artifact.path.read_bytes() == MP4
    assert harness.request_count == 2
    assert len(harness.sleeps) == 1 and 0.2 <= harness.sleeps[0] <= 0.4  # initial back-off + jitter


def test_429_retry_after_is_honoured(harness):
    harness.run(reply(b"", status=429, Retry_After="2"), reply())
    assert harness.sleeps == [2.0]


def test_connection_error_then_success_is_retried(harness):
    assert harness.run(raise_(httpx.ConnectError), reply()).size == len(MP4)
    assert harness.request_count == 2


def test_timeouts_on_every_attempt_raise_job_timeout_error(harness):
    with pytest.raises(JobTimeoutError, match="downloading video.mp4 from http://127.0.0.1:7860: timed out"):
        harness.run(raise_(httpx.ReadTimeout), attempts=2)
    assert harness.request_count == 2 and harness.names() == []


@pytest.mark.parametrize(
    ("status", "error_type"), [(404, BackendError), (401, AuthenticationError), (403, AuthenticationError)]
)
def test_client_errors_are_not_retried(harness, status, error_type):
    with pytest.raises(error_type, match=f"HTTP {status}") as caught:
        harness.run(reply(status=status))
    assert not caught.value.retryable
    assert harness.request_count == 1 and harness.sleeps == [] and harness.names() == []


def test_without_provenance_endpoint_messages_name_the_url_origin(harness):
    provenance = PROVENANCE.model_copy(update={"endpoint": ""})
    with pytest.raises(TransientServerError) as caught:
        harness.run(reply(status=503), provenance=provenance, attempts=1)
    assert str(caught.value) == f"downloading video.mp4 from {SERVER}: HTTP 503"


def test_keyboard_interrupt_mid_download_leaves_nothing_and_is_not_retried(harness):
    def interrupt(done: int, total: int | None) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        harness.run(reply(), progress=interrupt)
    assert harness.request_count == 1 and harness.names() == []


# ------------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------------


def test_destination_must_be_an_existing_folder(harness):
    with pytest.raises(InvalidRequestError, match="is not a folder"):
        download_verified(httpx.Client(), URL, harness.folder / "missing", original_name="v.mp4", provenance=PROVENANCE)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/video.mp4", "file:///etc/passwd", "http://[::1"])
def test_url_must_be_http(harness, url):
    with pytest.raises(InvalidRequestError, match="not an http"):
        harness.run(reply(), url=url)
    assert harness.request_count == 0


def test_relative_url_resolves_on_the_client_base_url(harness):
    harness.run(reply(), url="/file=video.mp4", base_url=SERVER)
    assert str(harness.server.requests[0].url) == f"{SERVER}/file=video.mp4"


# ------------------------------------------------------------------------------------------------
# Names: sanitised, inside the folder, never overwriting
# ------------------------------------------------------------------------------------------------

HOSTILE_NAMES = {
    "../x.mp4": "x.mp4",
    "/etc/passwd": "passwd",
    "a\x00b.mp4": "ab.mp4",
    "CON.mp4": "_CON.mp4",
    "con": "_con",
    "LPT9.tar.gz": "_LPT9.tar.gz",
    "nul .mp4": "_nul .mp4",
    "..": "artifact.mp4",
    "...": "artifact.mp4",
    "": "artifact.mp4",
    "..\\..\\Windows\\evil.mp4": "evil.mp4",
    "C:\\Users\\me\\clip.mp4": "clip.mp4",
    "out/": "artifact.mp4",
    'a<b>c:d"e|f?g*.mp4': "a_b_c_d_e_f_g_.mp4",
    " .hidden.mp4": "hidden.mp4",
    "trailing.mp4. ": "trailing.mp4",
    "evil\u202e4pm.exe.mp4": "evil4pm.exe.mp4",
    "tab\there\n.mp4": "tabhere.mp4",
    "caf\u0065\u0301.mp4": "caf\u00e9.mp4",  # NFC
}


@pytest.mark.parametrize(("hostile", "expected"), HOSTILE_NAMES.items())
def test_hostile_names_are_sanitised_and_stay_in_the_folder(harness, hostile, expected):
    assert safe_filename(hostile, media_type="video/mp4") == expected
    artifact = harness.run(reply(), original_name=hostile, media_type="video/mp4")
    assert artifact.path == harness.folder / expected
    assert artifact.path.resolve().parent == harness.folder.resolve()
    assert sorted(path.name for path in harness.folder.parent.iterdir()) == ["out"]
    assert artifact.provenance.original_name == hostile  # the server's name is kept as data


def test_empty_name_without_media_type_is_artifact():
    assert safe_filename("..") == "artifact"


@pytest.mark.parametrize(
    "name",
    ["v" * 300 + ".mp4", "é" * 300 + ".mp4", "x." + "y" * 300, "CON." + "a" * 300, "日本語" * 100 + ".mp4"],
)
def test_long_names_are_cut_to_the_byte_limit_keeping_the_extension(name):
    result = safe_filename(name)
    assert len(result.encode("utf-8")) <= MAX_NAME_BYTES
    assert len(result.encode("utf-8")) >= MAX_NAME_BYTES - 3  # cut, not emptied (a split character may go)
    suffix = os.path.splitext(name)[1]
    if len(suffix) <= 5:
        assert result.endswith(suffix)


def test_numbered_inserts_before_the_extension():
    assert numbered("video.mp4", 0) == "video.mp4"
    assert numbered("video.mp4", 2) == "video (2).mp4"
    assert numbered("README", 1) == "README (1)"


_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789"}


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=300))
def test_any_text_becomes_one_creatable_name_inside_the_folder(name):
    result = safe_filename(name)
    assert result and result == safe_filename(result)  # idempotent
    assert not set(result) & set('/\\<>:"|?*\x00')
    assert result[0] not in ". " and result[-1] not in ". "
    assert len(result.encode("utf-8")) <= MAX_NAME_BYTES
    assert result.split(".")[0].rstrip(" ").upper() not in _RESERVED
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / result
        assert path.resolve().parent == Path(folder).resolve()
        path.touch(exist_ok=False)  # the OS accepts it
        assert os.listdir(folder) == [result]


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=60))
def test_download_with_any_name_lands_directly_in_the_folder(name):
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "out"
        folder.mkdir()
        artifact = Harness(folder).run(reply(), original_name=name)
        assert artifact.path.parent == folder and artifact.path.read_bytes() == MP4
        assert os.listdir(root) == ["out"]
        assert sorted(os.listdir(folder)) == sorted([artifact.path.name, artifact.path.name + ".json"])


def test_existing_files_are_never_overwritten(harness):
    for name in ("video.mp4", "video (1).mp4"):
        (harness.folder / name).write_bytes(b"precious " + name.encode())
    artifact = harness.run(reply())
    assert artifact.path.name == "video (2).mp4"
    assert artifact.manifest_path.name == "video (2).mp4.json"
    assert (harness.folder / "video.mp4").read_bytes() == b"precious video.mp4"
    assert (harness.folder / "video (1).mp4").read_bytes() == b"precious video (1).mp4"


def test_a_foreign_sidecar_is_not_adopted(harness):
    (harness.folder / "video.mp4.json").write_text("somebody else's")
    artifact = harness.run(reply())
    assert artifact.path.name == "video (1).mp4"
    assert (harness.folder / "video.mp4.json").read_text() == "somebody else's"


def test_running_out_of_numbered_names_is_a_file_exists_error(harness, monkeypatch):
    monkeypatch.setattr(download_module, "MAX_COLLISIONS", 2)
    for name in ("video.mp4", "video (1).mp4"):
        (harness.folder / name).write_bytes(b"x")
    with pytest.raises(FileExistsError, match="2 numbered copies"):
        harness.run(reply())
    assert harness.request_count == 1  # not retried
    assert harness.names() == ["video (1).mp4", "video.mp4"]


def test_a_name_escaping_the_folder_is_refused_even_if_sanitising_failed(harness, monkeypatch):
    monkeypatch.setattr(download_module, "safe_filename", lambda name, media_type=None: "../escaped.mp4")
    with pytest.raises(InvalidRequestError, match="leaves"):
        harness.run(reply())
    assert harness.names() == [] and sorted(p.name for p in harness.folder.parent.iterdir()) == ["out"]


def _download_concurrently(folder: Path, count: int) -> list[Artifact]:
    """``count`` threads download different bodies under the same name, all answered at once."""
    barrier = threading.Barrier(count, timeout=10)

    def handler(request: httpx.Request) -> httpx.Response:
        barrier.wait()  # every download is in flight before any finishes
        return httpx.Response(200, content=mp4_bytes(request.headers["X-Payload"].encode() * 500))

    results: list[Artifact | BaseException] = [None] * count  # type: ignore[list-item]

    def worker(index: int) -> None:
        try:
            with httpx.Client(transport=httpx.MockTransport(handler)) as http:
                results[index] = download_verified(
                    http, URL, folder, original_name="video.mp4", provenance=PROVENANCE,
                    headers={"X-Payload": f"{index:03d}"},
                )
        except BaseException as exc:  # reported below
            results[index] = exc

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, errors
    return results  # type: ignore[return-value]


def _assert_distinct_and_complete(folder: Path, artifacts: list[Artifact], count: int) -> None:
    expected = {sha256(mp4_bytes(f"{index:03d}".encode() * 500)) for index in range(count)}
    assert {artifact.sha256 for artifact in artifacts} == expected
    for artifact in artifacts:
        assert sha256(artifact.path.read_bytes()) == artifact.sha256  # nobody clobbered it
        assert json.loads(artifact.manifest_path.read_text())["sha256"] == artifact.sha256
    names = {numbered("video.mp4", number) for number in range(count)}
    assert {artifact.path.name for artifact in artifacts} == names
    assert sorted(os.listdir(folder)) == sorted(names | {name + ".json" for name in names})


def test_concurrent_downloads_of_the_same_name_get_distinct_complete_files(harness):
    artifacts = _download_concurrently(harness.folder, 8)
    _assert_distinct_and_complete(harness.folder, artifacts, 8)


def test_concurrent_downloads_without_hard_link_support_use_the_lock(harness, monkeypatch):
    def no_links(source, target):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(download_module.os, "link", no_links)
    (harness.folder / "video.mp4").write_bytes(b"precious")
    artifacts = _download_concurrently(harness.folder, 6)
    assert (harness.folder / "video.mp4").read_bytes() == b"precious"
    assert {artifact.path.name for artifact in artifacts} == {numbered("video.mp4", n) for n in range(1, 7)}


# ------------------------------------------------------------------------------------------------
# Progress and memory
# ------------------------------------------------------------------------------------------------


def _assert_progress(calls: list[tuple[int, int | None]], size: int, total: int | None) -> None:
    done = [value for value, _ in calls]
    assert calls[0] == (0, total) and calls[-1] == (size, total)
    assert done == sorted(done) and len(set(done)) == len(done)  # strictly increasing
    assert {reported for _, reported in calls} == {total}
    gaps = [later - earlier for earlier, later in zip(done[1:-1], done[2:-1])]
    assert all(gap >= download_module.PROGRESS_EVERY for gap in gaps)
    assert len(calls) <= size // download_module.PROGRESS_EVERY + 2


@pytest.mark.parametrize("announce", [True, False])
def test_progress_is_throttled_monotonic_and_ends_at_the_total(harness, announce):
    body = mp4_bytes(b"\x01" * (1024 * 1024 + 12345))
    calls: list[tuple[int, int | None]] = []
    content = body if announce else _chunked(body, 8192)
    harness.run(lambda request: httpx.Response(200, content=content), progress=lambda *args: calls.append(args))
    _assert_progress(calls, len(body), len(body) if announce else None)
    assert len(calls) >= 5  # 1 MiB in 256 KiB steps: really throttled, not just start and end


def test_progress_total_falls_back_to_expected_size(harness):
    calls: list[tuple[int, int | None]] = []
    harness.run(
        lambda request: httpx.Response(200, content=_chunked(MP4)),
        expected_size=len(MP4),
        progress=lambda *args: calls.append(args),
    )
    _assert_progress(calls, len(MP4), len(MP4))


def test_memory_stays_constant_for_a_large_download(harness):
    """64 MiB streamed through: Python allocations peak far below the file size."""
    size = 64 * 1024 * 1024
    chunk = b"\x00" * (64 * 1024)
    header = mp4_bytes(b"")[:-8] + (8 + size).to_bytes(4, "big") + b"mdat"

    def body():
        yield header
        for _ in range(size // len(chunk)):
            yield chunk  # the same object every time: the test itself allocates nothing

    tracemalloc.start()
    try:
        artifact = harness.run(
            lambda request: httpx.Response(200, headers={"Content-Length": str(len(header) + size)}, content=body())
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert artifact.size == len(header) + size
    assert peak < 4 * 1024 * 1024, f"peak Python allocation {peak / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------------------------
# The writer thread, progressive writeback and durability
# ------------------------------------------------------------------------------------------------


def _writer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "vidbridge-download-writer"]


def _big_mp4(size: int = 3 * 1024 * 1024 + 123) -> bytes:
    return mp4_bytes(bytes(range(256)) * (size // 256) + b"\x05" * (size % 256))


def test_a_write_error_in_the_writer_thread_reaches_the_caller_and_removes_the_part(harness, monkeypatch):
    calls = []

    def disk_full(fd, pieces):
        calls.append(len(pieces))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_module, "_write_all", disk_full)
    with pytest.raises(OSError) as caught:
        harness.run(reply(_big_mp4()))
    assert caught.value.errno == errno.ENOSPC
    assert calls == [calls[0]]  # the writer stopped at the first error; nothing retried it
    assert harness.request_count == 1 and harness.names() == [] and _writer_threads() == []


def test_an_interrupted_download_stops_the_writer_thread(harness):
    body = _big_mp4()

    def interrupt(done: int, total: int | None) -> None:
        if done > len(body) // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        harness.run(reply(body), progress=interrupt)
    assert harness.names() == [] and _writer_threads() == []


def test_a_runaway_body_is_not_written_past_the_announced_size(harness, monkeypatch):
    written: list[int] = []
    real = download_module._write_all
    monkeypatch.setattr(download_module, "_write_all", lambda fd, pieces: written.append(real(fd, pieces)) or written[-1])
    announced = 2 * download_module.BATCH_SIZE
    with pytest.raises(IntegrityError, match="more than"):
        harness.run(reply(_big_mp4(4 * 1024 * 1024), Content_Length=str(announced)), attempts=1)
    assert sum(written) <= announced and harness.names() == []


def test_batches_preserve_order_and_bytes_for_a_multi_batch_body(harness):
    body = _big_mp4()
    # Irregular chunk sizes, some bigger than READ_SIZE, so batches and views are exercised.
    sizes = [1, 7, 65536, 200_000, 3, 1 << 20]
    chunks, offset, index = [], 0, 0
    while offset < len(body):
        chunks.append(body[offset : offset + sizes[index % len(sizes)]])
        offset += sizes[index % len(sizes)]
        index += 1
    artifact = harness.run(lambda request: httpx.Response(200, content=iter(chunks)), expected_sha256=sha256(body))
    assert artifact.path.read_bytes() == body and artifact.size == len(body)


def test_write_all_continues_short_writes(monkeypatch, tmp_path):
    path = tmp_path / "short"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    real_write = os.write
    monkeypatch.setattr(download_module.os, "writev", lambda fd, pieces: real_write(fd, bytes(pieces[0])[:3]))
    monkeypatch.setattr(download_module.os, "write", lambda fd, data: real_write(fd, bytes(data)[:5]))
    try:
        assert download_module._write_all(fd, [b"abcdefgh", memoryview(b"ijklmnopqrst")[2:], b"", b"uvw"]) == 21
    finally:
        os.close(fd)
    assert path.read_bytes() == b"abcdefghklmnopqrstuvw"


def test_write_all_without_writev(monkeypatch, tmp_path):
    path = tmp_path / "nowritev"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    monkeypatch.delattr(download_module.os, "writev")
    try:
        download_module._write_all(fd, [b"abc", b"def"])
    finally:
        os.close(fd)
    assert path.read_bytes() == b"abcdef"


@pytest.mark.parametrize("durable", [True, False])
def test_durable_controls_fsync_and_progressive_writeback(harness, monkeypatch, durable):
    fsyncs: list[int] = []
    advice: list[tuple[int, int]] = []
    real_fsync = os.fsync
    monkeypatch.setattr(download_module.os, "fsync", lambda fd: fsyncs.append(fd) or real_fsync(fd))
    monkeypatch.setattr(download_module, "FLUSH_WINDOW", 1024 * 1024)
    if hasattr(os, "posix_fadvise"):
        real_fadvise = os.posix_fadvise
        monkeypatch.setattr(
            download_module.os, "posix_fadvise",
            lambda fd, offset, length, how: advice.append((offset, length)) or real_fadvise(fd, offset, length, how),
        )  # fmt: skip
    body = _big_mp4()
    artifact = harness.run(reply(body), durable=durable, expected_sha256=sha256(body))
    assert artifact.path.read_bytes() == body and artifact.manifest_path.exists()
    if durable:
        assert len(fsyncs) == 2  # the file before its rename, and the manifest
        if hasattr(os, "posix_fadvise"):
            # Contiguous windows from the start, each at least FLUSH_WINDOW, none past the end.
            assert advice and advice[0][0] == 0 and all(length >= 1024 * 1024 for _, length in advice)
            assert all(a + n == b for (a, n), (b, _) in zip(advice, advice[1:]))
            assert advice[-1][0] + advice[-1][1] <= len(body)
    else:
        assert fsyncs == [] and advice == []


# ------------------------------------------------------------------------------------------------
# Symlinks in the folder: a taken name, never followed nor replaced (issue 14, item 11)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["outside", "dangling", "inside", "dangling-inside"])
def test_a_symlink_with_the_name_is_skipped_never_followed(harness, kind):
    outside = harness.folder.parent / "elsewhere.mp4"
    outside.write_bytes(b"precious outside")
    (harness.folder / "other.mp4").write_bytes(b"precious inside")
    target = {
        "outside": str(outside),
        "dangling": str(harness.folder.parent / "missing" / "gone.mp4"),
        "inside": "other.mp4",
        "dangling-inside": "not-there.mp4",
    }[kind]
    link = harness.folder / "video.mp4"
    os.symlink(target, link)
    artifact = harness.run(reply())
    assert artifact.path == harness.folder / "video (1).mp4" and artifact.path.read_bytes() == MP4
    assert not artifact.path.is_symlink()
    assert os.readlink(link) == target  # the link itself untouched
    assert outside.read_bytes() == b"precious outside"
    assert (harness.folder / "other.mp4").read_bytes() == b"precious inside"
    assert not (harness.folder / "not-there.mp4").exists() and not (harness.folder.parent / "missing").exists()
    assert harness.names() == sorted(["other.mp4", "video (1).mp4", "video (1).mp4.json", "video.mp4"])


def test_symlinks_on_numbered_and_manifest_names_are_skipped_too(harness):
    outside = harness.folder.parent / "elsewhere"
    outside.write_bytes(b"precious")
    for name in ("video.mp4.json", "video (1).mp4", "video (2).mp4.json"):
        os.symlink(outside, harness.folder / name)
    artifact = harness.run(reply())
    assert artifact.path.name == "video (3).mp4" and artifact.manifest_path.name == "video (3).mp4.json"
    assert outside.read_bytes() == b"precious"
    assert all((harness.folder / name).is_symlink() for name in ("video.mp4.json", "video (1).mp4"))


def test_a_symlink_is_skipped_without_hard_link_support(harness, monkeypatch):
    monkeypatch.setattr(download_module.os, "link", lambda source, target: (_ for _ in ()).throw(
        OSError(errno.EPERM, "hard links not supported")))
    outside = harness.folder.parent / "elsewhere.mp4"
    outside.write_bytes(b"precious")
    os.symlink(outside, harness.folder / "video.mp4")
    os.symlink(harness.folder / "nowhere.mp4", harness.folder / "video (1).mp4")
    artifact = harness.run(reply())
    assert artifact.path.name == "video (2).mp4" and outside.read_bytes() == b"precious"
    assert not (harness.folder / "nowhere.mp4").exists()


def test_a_symlinked_destination_folder_is_fine(harness, tmp_path):
    alias = tmp_path / "alias"
    os.symlink(harness.folder, alias)
    with httpx.Client(transport=httpx.MockTransport(reply())) as http:
        artifact = download_verified(http, URL, alias, original_name="video.mp4", provenance=PROVENANCE)
    assert artifact.path == alias / "video.mp4" and (harness.folder / "video.mp4").read_bytes() == MP4


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b.mp4", "/tmp/abs.mp4"])
def test_names_that_are_not_one_component_are_refused(harness, monkeypatch, bad):
    monkeypatch.setattr(download_module, "safe_filename", lambda name, media_type=None: bad)
    with pytest.raises(InvalidRequestError, match="leaves") as caught:
        harness.run(reply())
    assert caught.value.field == "original_name"
    assert harness.request_count == 0 and harness.names() == []


# ------------------------------------------------------------------------------------------------
# Cancelling: between reads, before the final name, between attempts (issue 14, item 12)
# ------------------------------------------------------------------------------------------------


def _streamed(chunks: int, before: Callable[[int], None]) -> tuple[Reply, list[int]]:
    """A reply streaming ``chunks`` pieces of an MP4; ``before(i)`` runs before piece i is sent."""
    body = _big_mp4(chunks * 64 * 1024)
    size = -(-len(body) // chunks)
    sent: list[int] = []

    def pieces():
        for index in range(chunks):
            before(index)
            sent.append(index)
            yield body[index * size : (index + 1) * size]

    return (lambda request: httpx.Response(200, headers={"Content-Length": str(len(body))}, content=pieces())), sent


def test_cancel_between_reads_stops_at_once_removes_the_part_and_is_not_retried(harness):
    cancel = threading.Event()
    answer, sent = _streamed(40, lambda index: cancel.set() if index == 3 else None)
    with pytest.raises(vidbridge.JobCancelledError) as caught:
        harness.run(answer, cancel=cancel)
    assert sent == [0, 1, 2, 3]  # piece 3 arrived after the cancel: nothing more was read
    assert caught.value.server_stopped is False and not caught.value.retryable
    assert "downloading video.mp4 from" in str(caught.value) and "cancelled" in str(caught.value)
    assert harness.request_count == 1 and harness.names() == [] and _writer_threads() == []


def test_cancel_from_another_thread_while_a_read_waits(harness):
    cancel, waiting = threading.Event(), threading.Event()

    def before(index: int) -> None:
        if index == 1:
            waiting.set()
            assert cancel.wait(30)  # the "network" delivers the next piece only after the cancel

    answer, sent = _streamed(8, before)
    outcome: list[BaseException] = []

    def download() -> None:
        try:
            harness.run(answer, cancel=cancel)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    worker = threading.Thread(target=download)
    worker.start()
    assert waiting.wait(30)
    assert [path.name.endswith(".part") for path in harness.folder.iterdir()] == [True]  # mid-download
    cancel.set()
    worker.join(30)
    assert [type(exc) for exc in outcome] == [vidbridge.JobCancelledError]
    assert sent == [0, 1] and harness.names() == [] and _writer_threads() == []


def test_cancel_after_the_last_read_still_gives_no_final_name(harness):
    cancel = threading.Event()

    def progress(done: int, total: int | None) -> None:
        if done == total:
            cancel.set()  # all bytes are in; the check before claiming the name must see it

    with pytest.raises(vidbridge.JobCancelledError):
        harness.run(reply(), cancel=cancel, progress=progress)
    assert harness.names() == []


def test_a_cancelled_download_sends_no_request(harness):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(vidbridge.JobCancelledError):
        harness.run(reply(), cancel=cancel)
    assert harness.request_count == 0 and harness.names() == []


def test_cancel_ends_the_wait_between_attempts(harness):
    cancel = threading.Event()

    def busy(request: httpx.Request) -> httpx.Response:
        cancel.set()
        return httpx.Response(503, headers={"Retry-After": "30"})

    server = FakeServer([busy, reply()])
    with httpx.Client(transport=httpx.MockTransport(server)) as http, pytest.raises(vidbridge.JobCancelledError):
        # the default sleep: the back-off of ~20 s is a wait on the cancel, which returns at once
        download_verified(http, URL, harness.folder, original_name="video.mp4", provenance=PROVENANCE, cancel=cancel)
    assert len(server.requests) == 1 and harness.names() == []


def test_fetch_scope_cancels_and_records_the_downloads_in_it(harness):
    from vidbridge.download import FetchScope, current_fetch_scope

    scope = FetchScope()
    with scope.active():
        assert current_fetch_scope() is scope
        first = harness.run(reply())
        scope.cancel()
        with pytest.raises(vidbridge.JobCancelledError):
            harness.run(reply(), original_name="second.mp4")
    assert current_fetch_scope() is None
    assert scope.artifacts == [first] and harness.request_count == 0
    assert harness.names() == ["video.mp4", "video.mp4.json"]
    later = harness.run(reply(), original_name="later.mp4")  # outside the scope: not cancelled
    assert later.path.name == "later.mp4" and scope.artifacts == [first]


# ------------------------------------------------------------------------------------------------
# At interpreter exit, downloads still running on worker threads are stopped and cleaned up
# ------------------------------------------------------------------------------------------------


def _download_in_thread(harness: Harness, answer: Reply, **options) -> tuple[threading.Thread, list[BaseException]]:
    outcome: list[BaseException] = []

    def download() -> None:
        try:
            harness.run(answer, **options)
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    worker = threading.Thread(target=download)
    worker.start()
    return worker, outcome


def test_exit_cancels_running_downloads_and_waits_for_their_cleanup(harness):
    cancel, streaming = threading.Event(), threading.Event()

    def before(index: int) -> None:
        if index == 1:
            streaming.set()
            assert cancel.wait(30)

    answer, sent = _streamed(8, before)
    worker, outcome = _download_in_thread(harness, answer, cancel=cancel)
    assert streaming.wait(30)
    download_module._cancel_running_downloads(grace=30)
    assert cancel.is_set() and harness.names() == [] and download_module._RUNNING == {}
    worker.join(30)
    assert [type(exc) for exc in outcome] == [vidbridge.JobCancelledError] and _writer_threads() == []


def test_exit_removes_the_part_of_a_download_stuck_in_a_read(harness):
    streaming, release = threading.Event(), threading.Event()

    def before(index: int) -> None:
        if index == 1:
            streaming.set()
            assert release.wait(30)  # a server that sends nothing more

    answer, _ = _streamed(8, before)
    worker, outcome = _download_in_thread(harness, answer)
    assert streaming.wait(30)
    download_module._cancel_running_downloads(grace=0)
    assert harness.names() == []  # removed although the download could not stop yet
    release.set()
    worker.join(30)
    assert [type(exc) for exc in outcome] == [vidbridge.JobCancelledError] and harness.names() == []


EXIT_SCRIPT = r"""
import sys, threading, httpx
sys.path.insert(0, sys.argv[2])
from test_containers import mp4_bytes
from vidbridge.download import FetchScope, download_verified
from vidbridge.models import Provenance

scope, streaming = FetchScope(), threading.Event()

def body():
    yield mp4_bytes(b"x" * 1000)[:500]
    streaming.set()
    scope.cancelled.wait(60)  # the next piece arrives once the download was told to stop
    yield b"y" * 1000

def download():
    with scope.active(), httpx.Client(transport=httpx.MockTransport(
            lambda request: httpx.Response(200, headers={"Content-Length": "100000"}, content=body()))) as http:
        download_verified(http, "http://127.0.0.1/v.mp4", sys.argv[1], original_name="v.mp4",
                          provenance=Provenance(backend="mock", endpoint="http://127.0.0.1", job_id="j"))

threading.Thread(target=download, daemon=True).start()
streaming.wait(60)
print("leaving", flush=True)  # the main thread ends while the daemon thread downloads
"""


def test_a_program_ending_mid_download_leaves_no_part_file(harness):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(harness.folder), str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and result.stdout == "leaving\n", result.stderr
    assert harness.names() == []
