"""The recovery decisions after a server restart, the output names, and the look-ups (httpx
MockTransport for our own HTTP calls)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from vidbridge import Credentials
from vidbridge.plugins.wan2gp import compat, recovery
from vidbridge.plugins.wan2gp.recovery import Decision, Evidence, decide


@pytest.mark.parametrize(("evidence", "expected"), [
    (Evidence(back=True, restarted=True, named=True, found=True), Decision.FETCH),
    (Evidence(back=True, restarted=False, named=True, found=True), Decision.FETCH),
    (Evidence(back=True, restarted=True, named=True, found=False), Decision.RESUBMIT),
    # the same process answers: its gradio session may still run the task
    (Evidence(back=True, restarted=False, named=True, found=False), Decision.OUTPUT_POSSIBLE),
    # never came back: the process may be generating where we cannot see
    (Evidence(back=False, restarted=None, named=True, found=False), Decision.OUTPUT_POSSIBLE),
    # no name of ours: an output under an automatic name cannot be ruled out
    (Evidence(back=True, restarted=True, named=False, found=False), Decision.OUTPUT_POSSIBLE),
])
def test_decide(evidence: Evidence, expected: Decision) -> None:
    assert decide(evidence) is expected


def test_output_stem_is_literal_unique_and_template_safe() -> None:
    stem = recovery.output_stem("A red fox, in {snow}! at dawn", 7, "ab12")
    assert stem == "A_red_fox_in_seed7_vb-ab12"
    assert recovery.output_stem("", None, "x") == "video_vb-x"
    assert recovery.output_stem("fox", -1, "x") == "fox_vb-x"  # a random seed is not known here
    first, second = recovery.output_stem("fox", 1), recovery.output_stem("fox", 1)
    assert first != second and all(c.isalnum() or c in "_-" for c in first)


def test_candidate_paths_known_folders_first_then_wangp_default() -> None:
    paths = [p for p, _, _ in recovery.candidate_paths("s", ["/srv/out", "/srv/out/", "outputs"])]
    assert paths[:2] == ["/srv/out/s.mp4", "/srv/out/s.mkv"]
    assert "outputs/s.mp4" in paths and "/srv/out/s.png" in paths
    assert len(paths) == len(set(paths)) == 2 * 4  # "outputs" given and default: once


def _session(handler: Any) -> Any:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return SimpleNamespace(http=http, url="http://wangp:7860", src_prefixed="http://wangp:7860/gradio_api/",
                           credentials=Credentials(), server=SimpleNamespace(cookies={}),
                           options=SimpleNamespace(request_timeout=5.0), output_folders=[])


def test_find_output_asks_one_byte_per_candidate_until_one_is_served() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        assert request.headers["Range"] == "bytes=0-0"
        return httpx.Response(206 if request.url.path.endswith("outputs/s.mp4") else 404, content=b"x")

    lookup = recovery.find_output(_session(handler), "s", ["/srv/out"])
    item = lookup.item
    assert item is not None and item.path == "outputs/s.mp4" and item.orig_name == "s.mp4"
    assert item.mime_type == "video/mp4" and len(asked) == 5  # 4 extensions in /srv/out, then found
    assert recovery.find_output(_session(lambda r: httpx.Response(404)), "s", []) == recovery.Lookup(None, True)


def test_a_look_up_cut_by_transient_errors_proves_no_absence() -> None:
    """The soak's one duplicate: a 502 on the probe of the file that existed was read as "not
    there", and the job was submitted again. Now a transient answer is asked again, and one that
    stays unclear leaves an output possible (never a resubmit)."""
    answers = iter([502, 429, 206])
    found = recovery.find_output(_session(lambda r: httpx.Response(next(answers, 404))), "s", [], tries=3)
    assert found.item is not None and found.item.path == "outputs/s.mp4"

    unclear = recovery.find_output(_session(lambda r: httpx.Response(503)), "s", [], tries=1)
    assert unclear == recovery.Lookup(None, False)
    assert decide(Evidence(back=True, restarted=True, named=True, found=False,
                           answered=unclear.answered)) is Decision.OUTPUT_POSSIBLE


def test_a_cancel_ends_the_look_up_back_off_at_once_and_leaves_it_unclear() -> None:
    """The job's stop event is set while a probe gets no telling answer: no further back-off or
    probe (it used to sleep up to 3.75 s per candidate), and the result proves nothing."""
    asked: list[str] = []
    stop = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        stop.set()  # cancelled while this probe was on its way
        return httpx.Response(503)

    lookup = recovery.find_output(_session(handler), "s", ["/srv/out"], tries=4, stop=stop)
    assert lookup == recovery.Lookup(None, False) and len(asked) == 1


def test_server_identity_reads_the_app_id_or_says_none() -> None:
    assert recovery.server_identity(_session(lambda r: httpx.Response(200, json={"app_id": 42}))) == "42"
    assert recovery.server_identity(_session(lambda r: httpx.Response(200, json={}))) is None
    assert recovery.server_identity(_session(lambda r: httpx.Response(503))) is None
    assert recovery.server_identity(_session(lambda r: httpx.Response(200, content=b"<html>"))) is None

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert recovery.server_identity(_session(refused)) is None


def test_remember_folders_notes_each_folder_once() -> None:
    from vidbridge.plugins.wan2gp.gallery import GalleryItem

    session = _session(lambda r: httpx.Response(404))
    items = [GalleryItem(path=p, kind="video") for p in ("/a/x.mp4", "/a/y.mp4", "/b/z.mp4", "bare.mp4")]
    recovery.remember_folders(session, items)
    assert session.output_folders == ["/a", "/b"]


def test_app_id_of_a_client_config() -> None:
    assert compat.app_id(SimpleNamespace(config={"app_id": 5})) == "5"
    assert compat.app_id(SimpleNamespace(config={})) is None
    assert compat.app_id(object()) is None


class _Job:
    """The parts of a Wan2GPJob that :func:`recovery.recover` reads."""

    def __init__(self, session: Any, stem: str | None, cancel: bool = False) -> None:
        self.session, self.job_id, self.server_id, self.server_gone = session, "j", "1", False
        self.pooled = SimpleNamespace(broken=False)
        self.flow = SimpleNamespace(output_stem=stem, stop=None)
        self.state = SimpleNamespace(snapshot=lambda: SimpleNamespace(cancel_requested=cancel, server_stopped=False))


def _recovering(app_id: int, files: set[str]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/config":
            return httpx.Response(200, json={"app_id": app_id})
        return httpx.Response(206 if request.url.path.rsplit("file=", 1)[-1] in files else 404)

    session = _session(handler)
    session.wait_until_up = lambda deadline, error, stop_event=None: None
    session.options.connect_deadline = lambda: None
    return session


def test_recover_fetches_resubmits_or_says_output_possible() -> None:
    from vidbridge import JobCancelledError, JobLostError

    gone = recovery.ServerGone("http://wangp:7860: the server went away", endpoint="http://wangp:7860")
    job = _Job(_recovering(2, {"outputs/s.mp4"}), "s")
    [item] = recovery.recover(job, gone)
    assert item.path == "outputs/s.mp4" and job.server_gone and job.pooled.broken
    with pytest.raises(JobLostError) as lost:
        recovery.recover(_Job(_recovering(2, set()), "s"), gone)
    assert lost.value.output_possible is False
    with pytest.raises(JobLostError) as same:
        recovery.recover(_Job(_recovering(1, set()), "s"), gone)  # app_id unchanged
    assert same.value.output_possible and "same server process" in same.value.message
    with pytest.raises(JobLostError) as unnamed:
        recovery.recover(_Job(_recovering(2, set()), None), gone)
    assert unnamed.value.output_possible and "no name of its own" in unnamed.value.message
    down = _recovering(2, set())

    def never_up(deadline: Any, error: Exception, stop_event: Any = None) -> None:
        raise error

    down.wait_until_up = never_up
    with pytest.raises(JobLostError) as away:
        recovery.recover(_Job(down, "s"), gone)
    assert away.value.output_possible and "did not answer again" in away.value.message
    with pytest.raises(JobCancelledError):
        recovery.recover(_Job(_recovering(2, {"outputs/s.mp4"}), "s", cancel=True), gone)


def _ranged(content: bytes) -> Any:
    """A handler serving ``content`` with byte ranges, as gradio's file route does."""
    def handler(request: httpx.Request) -> httpx.Response:
        first, _, last = request.headers["Range"].removeprefix("bytes=").partition("-")
        start, end = int(first), min(int(last), len(content) - 1)
        if start >= len(content):
            return httpx.Response(416)
        return httpx.Response(206, content=content[start:end + 1],
                              headers={"Content-Range": f"bytes {start}-{end}/{len(content)}"})
    return handler


def _box(kind: bytes, body: bytes) -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + kind + body


def test_whole_output_reads_box_headers_by_range() -> None:
    from vidbridge.plugins.wan2gp.gallery import GalleryItem

    mp4 = _box(b"ftyp", b"isom" + b"\0" * 8) + _box(b"mdat", b"x" * 5000) + _box(b"moov", b"y" * 40)
    item = GalleryItem(path="outputs/s.mp4", kind="video", orig_name="s.mp4", mime_type="video/mp4")
    assert recovery.whole_output(_session(_ranged(mp4)), item) is True
    assert recovery.whole_output(_session(_ranged(mp4[:2600])), item) is False  # cut inside mdat
    assert recovery.whole_output(_session(lambda r: httpx.Response(503)), item) is None
    png = GalleryItem(path="outputs/s.png", kind="image", orig_name="s.png", mime_type="image/png")
    assert recovery.whole_output(_session(_ranged(b"anything")), png) is None  # the download checks it


def test_a_partial_output_on_a_new_process_is_resubmitted_on_the_same_process_possible() -> None:
    assert decide(Evidence(back=True, restarted=True, named=True, found=True, partial=True)) is Decision.RESUBMIT
    assert decide(Evidence(back=True, restarted=False, named=True, found=True,
                           partial=True)) is Decision.OUTPUT_POSSIBLE
