"""The shape of download_verified's cost: bounded memory in flight, and a container check that
reads box headers only, not the file again (the bench measures the speed itself)."""

from __future__ import annotations

import builtins
import threading

import httpx
import pytest
from test_containers import mp4_bytes

from vidbridge import containers
from vidbridge import download as download_module
from vidbridge.download import download_verified
from vidbridge.models import Provenance

PROVENANCE = Provenance(backend="mock", endpoint="http://127.0.0.1:7860", job_id="job-1")


class CountingFile:
    def __init__(self, stream, counter):
        self._stream, self._counter = stream, counter

    def read(self, size=-1):
        data = self._stream.read(size)
        self._counter.append(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stream.close()


@pytest.fixture
def read_counter(monkeypatch):
    counter: list[int] = []
    real_open = builtins.open
    monkeypatch.setattr(containers, "open", lambda *a, **k: CountingFile(real_open(*a, **k), counter), raising=False)
    return counter


def test_container_check_of_a_big_mp4_reads_only_box_headers(tmp_path, read_counter):
    path = tmp_path / "big.mp4"
    head = mp4_bytes(b"")[:-8]  # ftyp + moov, the mdat header comes next
    size = 256 * 1024 * 1024
    with open(path, "wb") as out:
        out.write(head + (1).to_bytes(4, "big") + b"mdat" + (16 + size).to_bytes(8, "big"))
        out.truncate(len(head) + 16 + size)  # sparse: costs no disk
    containers.check_container(path, "video/mp4")
    assert sum(read_counter) <= 64, read_counter  # three box headers, whatever the file's size


def test_bytes_in_flight_are_bounded_by_the_queue(tmp_path, monkeypatch):
    """The reader blocks when QUEUE_DEPTH batches wait: a slow disk cannot make memory grow."""
    monkeypatch.setattr(download_module, "BATCH_SIZE", 64 * 1024)
    gate = threading.Event()
    most_queued = []
    real_write_all = download_module._write_all
    writer_class = download_module._Writer

    def slow_write_all(fd, pieces):
        gate.wait(5)
        return real_write_all(fd, pieces)

    class Watched(writer_class):
        def put(self, batch):
            most_queued.append(self._queue.qsize())
            if self._queue.full():
                gate.set()  # the reader ran as far ahead as it may: let the disk go
            super().put(batch)

    monkeypatch.setattr(download_module, "_write_all", slow_write_all)
    monkeypatch.setattr(download_module, "_Writer", Watched)
    body = mp4_bytes(b"\x01" * (4 * 1024 * 1024))
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    folder = tmp_path / "out"
    folder.mkdir()
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=iter(chunks)))) as http:
        artifact = download_verified(http, "http://x/video.mp4", folder, original_name="video.mp4", provenance=PROVENANCE)
    assert artifact.path.read_bytes() == body
    assert max(most_queued) == download_module.QUEUE_DEPTH  # reached, never exceeded
