"""vidbridge benchmarks, each against its baseline in the same run.

    python bench/run.py [--quick] [--json] [--only NAME[,NAME...]]

Figures (``{"vidbridge", "baseline", "ratio"}`` where a baseline applies; see bench/README.md):

* ``connect_cold``      first connect (fresh process, empty cache dir) vs ``gradio_client.Client(url)``
* ``connect_warm``      a new session of the same Client to a server seen before, vs ``Client(url)``
* ``connect_warm_new_client`` the same with a new vidbridge Client, same process (extra figure)
* ``connect_warm_disk`` the same in a fresh process with the cache dir filled (extra figure)
* ``job_overhead``      one zero-generation-time t2v job, submit to verified file, vs baseline_gradio.py
* ``download``          verified download of a big MP4-shaped file vs raw ``httpx.stream`` + write
* ``status_call``       ``job.status()`` per call while a job runs, and network requests it made
* ``scale``             N jobs over 4 servers: makespan vs the ideal schedule, client CPU per job
* ``pool``              N jobs through one pool session over 4 servers (1 s generations): makespan vs
                        the ideal schedule, client CPU per job beside raw gradio_client's for the same
                        calls (same run, same servers), peak thread count
* ``ledger``            all job-ledger writes of one job (ms) vs the same writes in memory (ledger_cost.py)
* ``mcp``               WanGP's MCP face beside the Gradio face and raw gradio_client, one run: connect,
                        job overhead, client CPU per job, ``job.status()`` cost and status lag
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PYTHON,
    PeakSampler,
    RssSampler,
    close_gradio_client,
    emit,
    fresh_dir,
    interleaved,
    log,
    machine,
    median,
    mock_servers,
    ratio,
    ratio_of_samples,
    run_child,
)

FIGURES = ("connect_cold", "connect_warm", "job_overhead", "download", "status_call", "submit_latency", "scale",
           "pool", "ledger", "mcp")
GC_KWARGS = dict(verbose=False, download_files=False, analytics_enabled=False)

# -- connect --------------------------------------------------------------------------------------

# Runs in a fresh interpreter per repetition. Library imports happen before the clock starts on
# both sides (both import gradio_client and vidbridge's plugin), so only the connection is timed.
CONNECT_CHILD = r"""
import json, os, sys, tempfile, time
side, url, cache = sys.argv[1], sys.argv[2], sys.argv[3]
import gradio_client, vidbridge, vidbridge.plugins.wan2gp.plugin
if side == "vidbridge":
    client = vidbridge.Client(cache_dir=cache or tempfile.mkdtemp(prefix="vidbridge-bench-cold-"))
    client.plugins()
    start = time.perf_counter()
    session = client.connect(url, backend="wan2gp")
    seconds = time.perf_counter() - start
else:
    start = time.perf_counter()
    session = gradio_client.Client(url, verbose=False, download_files=False, analytics_enabled=False)
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds}), flush=True)
os._exit(0)  # skip closing: not part of the figure
"""


def connect_child(side: str, url: str, cache: str = "") -> float:
    return run_child(CONNECT_CHILD, side, url, cache, timeout=120)["seconds"]


def bench_connect_cold(url: str, reps: int) -> dict[str, Any]:
    connect_child("vidbridge", url)  # warm the server and the OS file cache (not measured)
    connect_child("baseline", url)
    xs, ys = interleaved(reps, lambda: connect_child("vidbridge", url), lambda: connect_child("baseline", url))
    log(f"connect_cold vidbridge={xs} baseline={ys}")
    return ratio_of_samples(xs, ys, unit="s", reps=reps, target="ratio <= 1.0",
                 note="fresh process and empty cache_dir per repetition; server with --full-surface")


def bench_connect_warm(url: str, reps: int) -> dict[str, dict[str, Any]]:
    """Warm connects, each against a new ``gradio_client.Client(url)`` in the same run:

    * ``connect_warm``: what a host does when it opens another session on its Client: same
      process, same ``vidbridge.Client``, the API description cached by an earlier session;
    * ``connect_warm_new_client``: a new ``vidbridge.Client`` in the same process (the plugin's
      memory of API descriptions is the process's, bounded: plugins/wan2gp/apicache.py);
    * ``connect_warm_disk``: a new process, whose only cache is the filled ``cache_dir``.
    """
    import gradio_client
    import vidbridge

    cache = fresh_dir("warm")
    client = vidbridge.Client(cache_dir=cache)
    client.connect(url, backend="wan2gp").close()  # the server is now "seen before"

    def timed_connect(on: Any) -> float:
        start = time.perf_counter()
        session = on.connect(url, backend="wan2gp")
        seconds = time.perf_counter() - start
        session.close()  # closing is not part of the figure
        return seconds

    def new_client_side() -> float:
        other = vidbridge.Client(cache_dir=cache)
        try:
            return timed_connect(other)
        finally:
            other.close()

    def baseline_side() -> float:
        start = time.perf_counter()
        plain = gradio_client.Client(url, **GC_KWARGS)
        seconds = time.perf_counter() - start
        close_gradio_client(plain)
        return seconds

    figures: dict[str, dict[str, Any]] = {}
    try:
        timed_connect(client), new_client_side(), baseline_side()
        xs, ys = interleaved(reps, lambda: timed_connect(client), baseline_side)
        log(f"connect_warm vidbridge={xs} baseline={ys}")
        figures["connect_warm"] = ratio_of_samples(
            xs, ys, unit="s", reps=reps, target="ratio <= 0.3 and vidbridge < 1 s",
            note="same process, same vidbridge.Client, a new session each repetition (API description cached)")
        nxs, nys = interleaved(reps, new_client_side, baseline_side)
        log(f"connect_warm_new_client vidbridge={nxs} baseline={nys}")
        figures["connect_warm_new_client"] = ratio_of_samples(
            nxs, nys, unit="s", reps=reps,
            note="same process, a new vidbridge.Client and session each repetition "
                 "(the process's memory of API descriptions)")
    finally:
        client.close()
    # A new process that finds the API description in cache_dir (e.g. the next run of a host app).
    dxs, dys = interleaved(2 if reps < 7 else reps // 2, lambda: connect_child("vidbridge", url, str(cache)),
                           lambda: connect_child("baseline", url))
    log(f"connect_warm_disk vidbridge={dxs} baseline={dys}")
    figures["connect_warm_disk"] = ratio_of_samples(dxs, dys, unit="s", reps=len(dxs),
                 note="fresh process per repetition, cache_dir filled by an earlier connect")
    return figures


# -- one job --------------------------------------------------------------------------------------

JOB = dict(frames=17, steps=4)


def bench_job_overhead(url: str, reps: int) -> dict[str, Any]:
    import gradio_client
    import vidbridge
    from baseline_gradio import BaselineFlow

    out = fresh_dir("job")
    client = vidbridge.Client(cache_dir=fresh_dir("jobcache"))
    session = client.connect(url, backend="wan2gp")
    plain = gradio_client.Client(url, **GC_KWARGS)
    flow = BaselineFlow(plain)
    counter = iter(range(10**9))

    def vidbridge_side() -> float:
        i = next(counter)
        start = time.perf_counter()
        artifacts = session.submit(prompt=f"bench job {i}", seed=i, output_dir=out, **JOB).result(timeout=120)
        seconds = time.perf_counter() - start
        assert artifacts and artifacts[0].path.is_file()
        return seconds

    def baseline_side() -> float:
        i = next(counter)
        start = time.perf_counter()
        path = flow.run(f"bench job {i}", out, frames=JOB["frames"], steps=JOB["steps"], seed=i)
        seconds = time.perf_counter() - start
        assert path.is_file()
        return seconds

    for _ in range(2):  # first job of a gradio session also selects the model: not measured
        vidbridge_side(), baseline_side()
    try:
        xs, ys = interleaved(reps, vidbridge_side, baseline_side)
    finally:
        client.close()
        close_gradio_client(plain)
    log(f"job_overhead vidbridge={xs} baseline={ys}")
    return ratio_of_samples(xs, ys, unit="s", reps=reps, target="ratio <= 1.2",
                 note=f"step_delay 0, {JOB['frames']} frames, {JOB['steps']} steps; connected client on both sides")


# -- status ---------------------------------------------------------------------------------------


class RequestCounter:
    """Counts HTTP requests per thread by wrapping httpx's transports (sync and async)."""

    def __init__(self) -> None:
        import httpx

        self.by_thread: dict[int, int] = {}
        self.total = 0
        self._lock = threading.Lock()
        self._patched: list[tuple[Any, str, Any]] = []
        for cls, name in ((httpx.HTTPTransport, "handle_request"),
                          (httpx.AsyncHTTPTransport, "handle_async_request")):
            original = getattr(cls, name)
            self._patched.append((cls, name, original))
            setattr(cls, name, self._wrap(original))

    def _wrap(self, original: Callable) -> Callable:
        counter = self

        def wrapper(transport: Any, request: Any) -> Any:
            with counter._lock:
                ident = threading.get_ident()
                counter.by_thread[ident] = counter.by_thread.get(ident, 0) + 1
                counter.total += 1
            return original(transport, request)

        return wrapper

    def restore(self) -> None:
        for cls, name, original in self._patched:
            setattr(cls, name, original)


def bench_status_call(url: str, calls: int) -> dict[str, Any]:
    import vidbridge
    from vidbridge.models import Phase
    from vidbridge.plugins.mock_backend import set_options

    set_options(url, step_delay=0.1)
    client = vidbridge.Client(cache_dir=fresh_dir("status"))
    session = client.connect(url, backend="wan2gp")
    counter = RequestCounter()
    try:
        job = session.submit(prompt="bench status", frames=17, steps=100, seed=1, output_dir=fresh_dir("status-out"))
        deadline = time.monotonic() + 30
        while job.status().phase in (Phase.QUEUED, Phase.STARTING) and time.monotonic() < deadline:
            time.sleep(0.01)
        running_phase = job.status().phase.value
        me = threading.get_ident()
        mine_before, total_before = counter.by_thread.get(me, 0), counter.total
        batch = 1000
        samples = []
        for _ in range(max(1, calls // batch)):
            start = time.perf_counter()
            for _ in range(batch):
                job.status()
            samples.append((time.perf_counter() - start) / batch)
        mine = counter.by_thread.get(me, 0) - mine_before
        others = counter.total - total_before - mine
        still_running = not job.done()
        job.cancel()
    finally:
        counter.restore()
        client.close()
        set_options(url, step_delay=0.0)
    per_call_us = median(samples) * 1e6
    log(f"status_call {per_call_us:.3f} us/call, requests from caller thread {mine}, background {others}")
    return {"vidbridge": round(per_call_us, 4), "unit": "us per call", "calls": len(samples) * batch,
            "phase_while_measured": running_phase, "job_still_running": still_running,
            "network_requests_by_status_calls": mine, "background_requests_meanwhile": others,
            "requests_counted_for_submit": total_before,  # shows the counter works
            "target": "microseconds, no network"}


def bench_submit_latency(url: str, reps: int) -> dict[str, Any]:
    """How long ``submit()`` takes to return while every backend slot is busy, against one pooled
    HTTP round trip to the same server (the most a host call may cost)."""
    import httpx

    import vidbridge
    from vidbridge.models import Phase
    from vidbridge.plugins.mock_backend import set_options

    set_options(url, step_delay=0.1)
    client = vidbridge.Client(cache_dir=fresh_dir("submit"), max_sessions=1)
    session = client.connect(url, backend="wan2gp")
    http = httpx.Client()
    try:
        busy = session.submit(prompt="bench busy", frames=17, steps=100, seed=1, output_dir=fresh_dir("submit-out"))
        for status in busy.updates(timeout=60):
            if status.phase not in (Phase.QUEUED, Phase.STARTING) or status.is_terminal:
                break
        health = f"{url}/mock_admin/health"
        http.get(health).raise_for_status()  # connection opened, not measured
        waiting = []

        def submit_once() -> float:
            start = time.perf_counter()
            waiting.append(session.submit(prompt="bench queued", frames=17, steps=1, output_dir=fresh_dir("q")))
            return time.perf_counter() - start

        def round_trip() -> float:
            start = time.perf_counter()
            http.get(health).raise_for_status()
            return time.perf_counter() - start

        submits, trips = interleaved(reps, submit_once, round_trip)
        queued = all(job.locally_queued for job in waiting)
        for job in [*waiting, busy]:
            job.cancel()
        for job in [*waiting, busy]:
            job.wait(60)
    finally:
        http.close()
        client.close()
        client.wait_closed(60)
        set_options(url, step_delay=0.0)
    figure = ratio_of_samples(submits, trips, all_locally_queued=queued, unit="seconds",
                              target="submit() <= one HTTP round trip while every slot is busy")
    log(f"submit_latency {median(submits) * 1e3:.2f} ms vs round trip {median(trips) * 1e3:.2f} ms")
    return figure


# -- download -------------------------------------------------------------------------------------

DOWNLOAD_CHILD = r"""
import hashlib, json, os, sys, time, threading
sys.path.insert(0, sys.argv[5])
from _common import RssSampler
side, url, dest, size, sha = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[6]
import httpx
from vidbridge.download import download_verified
from vidbridge.models import Provenance
http = httpx.Client(timeout=httpx.Timeout(30.0, read=None))
http.get(url.rsplit("/", 1)[0] + "/").close()  # connection and imports warmed, not measured
with RssSampler() as rss:
    start = time.perf_counter()
    if side == "vidbridge":
        artifact = download_verified(http, url, __import__("pathlib").Path(dest), original_name="big.mp4",
                                     provenance=Provenance(backend="bench", endpoint=url, job_id="bench"),
                                     expected_size=size, expected_sha256=sha, attempts=1)
        path = artifact.path
    else:
        path = os.path.join(dest, "big.mp4")
        with http.stream("GET", url) as response, open(path, "wb") as out:
            response.raise_for_status()
            for chunk in response.iter_bytes(64 * 1024):
                out.write(chunk)
            if side == "baseline_fsync":
                out.flush(); os.fsync(out.fileno())
    seconds = time.perf_counter() - start
assert os.path.getsize(path) == size, os.path.getsize(path)
print(json.dumps({"seconds": seconds, "rss_growth": rss.growth, "rss_start": rss.start_rss}), flush=True)
"""


def make_mp4_shaped(path: Path, size: int) -> str:
    """An ISO-BMFF file of ``size`` bytes: ftyp + empty moov + one big (64-bit) mdat of
    pseudo-random-looking bytes; returns its SHA-256."""
    import hashlib

    ftyp = (20).to_bytes(4, "big") + b"ftypisom" + (512).to_bytes(4, "big") + b"isom"
    moov = (8).to_bytes(4, "big") + b"moov"
    mdat_size = size - len(ftyp) - len(moov)
    header = (1).to_bytes(4, "big") + b"mdat" + mdat_size.to_bytes(8, "big")
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as out:
        for part in (ftyp, moov, header):
            out.write(part)
            digest.update(part)
        left = mdat_size - len(header)
        while left > 0:
            piece = block[: min(left, len(block))]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
    assert path.stat().st_size == size
    return digest.hexdigest()


def bench_download(size: int, reps: int) -> dict[str, Any]:
    import re
    import shutil
    import subprocess

    folder = fresh_dir("serve")
    dest = fresh_dir("download")
    sha = make_mp4_shaped(folder / "big.mp4", size)
    server = subprocess.Popen([PYTHON, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"], cwd=folder,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        port = int(re.search(r"port (\d+)", line)[1])
        url = f"http://127.0.0.1:{port}/big.mp4"
        bench_dir = str(Path(__file__).resolve().parent)

        def side(name: str) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                result = run_child(DOWNLOAD_CHILD, name, url, str(dest), str(size), bench_dir, sha, timeout=600)
                for item in dest.iterdir():
                    item.unlink()
                return result
            return run

        results: dict[str, list[dict[str, Any]]] = {"vidbridge": [], "baseline": [], "baseline_fsync": []}
        order = list(results)
        for i in range(reps):
            for name in order[i % 3:] + order[: i % 3]:
                results[name].append(side(name)())
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
    mib = size / 2**20

    def throughput(name: str) -> float:
        return mib / median([r["seconds"] for r in results[name]])

    growth = max(r["rss_growth"] for r in results["vidbridge"]) / 2**20
    log("download seconds", {k: [round(r["seconds"], 2) for r in v] for k, v in results.items()})
    return ratio(throughput("vidbridge"), throughput("baseline"), unit="MiB/s", size_mib=round(mib), reps=reps,
                 baseline_fsync=round(throughput("baseline_fsync"), 1),
                 ratio_vs_baseline_fsync=round(throughput("vidbridge") / throughput("baseline_fsync"), 4),
                 peak_rss_growth_mib=round(growth, 1),
                 baseline_peak_rss_growth_mib=round(max(r["rss_growth"] for r in results["baseline"]) / 2**20, 1),
                 target="ratio >= 0.8, peak RSS growth <= 64 MiB",
                 note="download_verified (SHA-256 + size + container check + fsync + manifest) vs httpx.stream "
                      "+ write (no hash, no fsync); http.server in a child process; one fresh process per download")


# -- scale ----------------------------------------------------------------------------------------


def bench_scale(jobs: int, servers: int = 4, steps: int = 10, step_delay: float = 0.1) -> dict[str, Any]:
    import vidbridge

    generation = steps * step_delay
    ideal = math.ceil(jobs / servers) * generation
    out = fresh_dir("scale")
    with mock_servers(servers, step_delay=step_delay) as running:
        urls = [s.url.rstrip("/") for s in running]
        client = vidbridge.Client(cache_dir=fresh_dir("scalecache"), max_sessions=4)
        sessions = [client.connect(url, backend="wan2gp") for url in urls]
        failures: list[str] = []
        # At most max_sessions jobs in flight per server: the wan2gp plugin's session pool fails a
        # submit that waits for a slot ("no free gradio session within None s", ServerLimiter.acquire
        # passes timeout=-1), so the host-side cap keeps that bug out of this figure (see README).
        gates = [threading.Semaphore(4) for _ in range(servers)]

        def one(i: int) -> None:
            try:
                session = sessions[i % servers]
                with gates[i % servers]:
                    session.submit(
                        prompt=f"scale job {i}", seed=i, frames=17, steps=steps, output_dir=out).result(timeout=600)
            except Exception as exc:  # counted, reported
                failures.append(f"{type(exc).__name__}: {exc}")

        cpu0, wall0 = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, range(jobs)))
        makespan = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        client.close()
    log(f"scale makespan {makespan:.2f}s ideal {ideal:.2f}s cpu {cpu:.2f}s failures {len(failures)}")
    return {"vidbridge": round(makespan, 3), "baseline": round(ideal, 3), "ratio": round(makespan / ideal, 4),
            "unit": "s (makespan vs ideal = ceil(jobs/servers) x steps x step_delay)", "jobs": jobs,
            "servers": servers, "generation_seconds": generation,
            "client_cpu_ms_per_job": round(cpu * 1000 / jobs, 2), "target_cpu_ms_per_job": "< 20",
            "failed": len(failures), "failures": failures[:5]}


# -- the MCP face -----------------------------------------------------------------------------------


def _three_way(reps: int, sides: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each side once per repetition, the order rotated each time (as :func:`interleaved`, for three)."""
    names = list(sides)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(reps):
        for name in names[i % len(names):] + names[: i % len(names)]:
            samples[name].append(sides[name]())
    return samples


def _summary(samples: dict[str, list[float]], unit: str, baseline: str = "raw_gradio_client", **extra: Any) -> dict[str, Any]:
    """Median and minimum per side, and each side's median over the baseline's."""
    base = median(samples[baseline])
    figure: dict[str, Any] = {"unit": unit, "reps": len(samples[baseline]), **extra}
    for name, values in samples.items():
        figure[name] = {"median": round(median(values), 6), "min": round(min(values), 6), "max": round(max(values), 6),
                        "ratio_to_" + baseline: round(median(values) / base, 4) if base else None}
    return figure


def bench_mcp(gradio_url: str, mcp_url: str, reps: int, status_calls: int) -> dict[str, Any]:
    """The MCP face (``wgp.py --mcp``), the Gradio face and raw gradio_client in one run.

    * ``connect``: a new session of a warm Client per repetition on each face (the MCP face: the
      probe and the SDK's initialize), vs ``gradio_client.Client(url)``;
    * ``job_overhead``: one t2v job (17 frames, 4 steps, step delay 0), submit to verified file,
      vs baseline_gradio.py; ``cpu_ms_per_job``: this process's CPU time over the same jobs
      (every thread: the MCP face polls, the Gradio face reads its SSE stream);
    * ``status``: ``job.status()`` per call while a job infers (no network on either face), and on
      the MCP face the lag from a step's event (its server timestamp) to the ``on_status`` callback
      that shows it (the face pushes nothing: the client polls every ``POLL_INTERVAL``).
    """
    import gradio_client
    import vidbridge
    from baseline_gradio import BaselineFlow
    from vidbridge.models import Phase
    from vidbridge.plugins.mock_backend import set_options
    from vidbridge.plugins.wan2gp.mcp.job import POLL_INTERVAL

    out = fresh_dir("mcp")
    client = vidbridge.Client(cache_dir=fresh_dir("mcpcache"))
    figures: dict[str, Any] = {}
    try:
        def connect(url: str) -> Callable[[], float]:
            def run() -> float:
                start = time.perf_counter()
                session = client.connect(url, backend="wan2gp")
                seconds = time.perf_counter() - start
                session.close()
                return seconds
            return run

        def raw_connect() -> float:
            start = time.perf_counter()
            plain = gradio_client.Client(gradio_url, **GC_KWARGS)
            seconds = time.perf_counter() - start
            close_gradio_client(plain)
            return seconds

        connect(mcp_url)(), connect(gradio_url)(), raw_connect()  # warm-up, not measured
        samples = _three_way(reps, {"mcp_face": connect(mcp_url), "gradio_face": connect(gradio_url),
                                    "raw_gradio_client": raw_connect})
        log(f"mcp connect {samples}")
        figures["connect"] = _summary(samples, "s", note="a new session of the same warm Client per repetition")

        mcp = client.connect(mcp_url, backend="wan2gp")
        gradio = client.connect(gradio_url, backend="wan2gp")
        plain = gradio_client.Client(gradio_url, **GC_KWARGS)
        flow = BaselineFlow(plain)
        counter = iter(range(10**9))
        cpu: dict[str, list[float]] = {"mcp_face": [], "gradio_face": [], "raw_gradio_client": []}

        def job(name: str, session: Any, **extra: Any) -> Callable[[], float]:
            def run() -> float:
                i = next(counter)
                cpu0, start = time.process_time(), time.perf_counter()
                artifacts = session.submit(prompt=f"bench job {i}", seed=i, output_dir=out, **JOB, **extra
                                           ).result(timeout=120)
                seconds = time.perf_counter() - start
                cpu[name].append(time.process_time() - cpu0)
                assert artifacts and artifacts[0].path.is_file()
                return seconds
            return run

        def raw_job() -> float:
            i = next(counter)
            cpu0, start = time.process_time(), time.perf_counter()
            path = flow.run(f"bench job {i}", out, frames=JOB["frames"], steps=JOB["steps"], seed=i)
            seconds = time.perf_counter() - start
            cpu["raw_gradio_client"].append(time.process_time() - cpu0)
            assert path.is_file()
            return seconds

        sides = {"mcp_face": job("mcp_face", mcp, model="t2v_1.3B"), "gradio_face": job("gradio_face", gradio),
                 "raw_gradio_client": raw_job}
        for _ in range(2):  # first jobs select the model and fill caches: not measured
            for run in sides.values():
                run()
        for values in cpu.values():
            values.clear()
        samples = _three_way(reps, sides)
        log(f"mcp job_overhead {samples} cpu {cpu}")
        figures["job_overhead"] = _summary(samples, "s", note=f"step_delay 0, {JOB['frames']} frames, "
                                           f"{JOB['steps']} steps; connected clients")
        figures["cpu_ms_per_job"] = {name: round(median(values) * 1000, 2) for name, values in cpu.items()}
        close_gradio_client(plain)

        status: dict[str, Any] = {"poll_interval_s": POLL_INTERVAL}
        for name, session, url, extra in (("mcp_face", mcp, mcp_url, {"model": "t2v_1.3B"}),
                                          ("gradio_face", gradio, gradio_url, {})):
            set_options(url, step_delay=0.1)
            seen: dict[int, float] = {}

            def on_status(s: Any) -> None:
                if s.step is not None and s.step not in seen:
                    seen[s.step] = time.time()

            try:
                running = session.submit(prompt="bench status", frames=17, steps=60, seed=1, output_dir=out,
                                         on_status=on_status, **extra)
                for update in running.updates(timeout=60):
                    if update.phase is Phase.INFERRING or update.is_terminal:
                        break
                batch, per_call = 1000, []
                for _ in range(max(1, status_calls // batch)):
                    start = time.perf_counter()
                    for _ in range(batch):
                        running.status()
                    per_call.append((time.perf_counter() - start) / batch)
                status[f"{name}_status_call_us"] = round(median(per_call) * 1e6, 4)
                if name == "mcp_face":
                    for update in running.updates(timeout=60):
                        if update.is_terminal or (update.step or 0) >= 30:
                            break
                    record = mcp.native.call("wangp_get_job", {"job_id": running.ref.data["mcp_job"],
                                                               "event_limit": 500})
                    stamps = {e["data"]["current_step"]: e["timestamp"] for e in record["events"]
                              if e.get("kind") == "progress" and isinstance(e.get("data"), dict)}
                    lags = [seen[step] - stamps[step] for step in seen if step in stamps]
                    status["mcp_face_step_lag_ms"] = {"median": round(median(lags) * 1000, 1),
                                                      "max": round(max(lags) * 1000, 1), "steps": len(lags)}
                running.cancel()
                running.wait(60)
            finally:
                set_options(url, step_delay=0.0)
        log(f"mcp status {status}")
        figures["status"] = status
    finally:
        client.close()
    return figures


# -- pool -----------------------------------------------------------------------------------------


def bench_pool(jobs: int, servers: int = 4, steps: int = 10, step_delay: float = 0.1,
               per_server: int = 4) -> dict[str, Any]:
    import queue as queue_module

    import gradio_client
    import vidbridge
    from baseline_gradio import BaselineFlow
    from vidbridge.plugins.mock_backend import reset_counter

    generation = steps * step_delay
    ideal = math.ceil(jobs / servers) * generation
    out = fresh_dir("pool")
    with mock_servers(servers, step_delay=step_delay) as running:
        urls = [s.url.rstrip("/") for s in running]
        # vidbridge: one pool session, every job submitted at once from this thread
        client = vidbridge.Client(cache_dir=fresh_dir("poolcache"), max_sessions=per_server, ledger=None)
        session = client.connect(urls, backend="wan2gp")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with PeakSampler(threading.active_count, 0.02) as threads:
            submitted = [session.submit(prompt=f"pool job {i}", seed=i, frames=17, steps=steps, output_dir=out)
                         for i in range(jobs)]
            failures = [f"{type(job.error).__name__}: {job.error}" for job in submitted
                        if job.wait(600).phase is not vidbridge.Phase.COMPLETED]
        makespan = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        spread = {url: sum(1 for job in submitted if job.server == url) for url in session.urls}
        busy = server_busy(urls)
        session.close()
        session.wait_closed(60)
        client.close()
        client.wait_closed(60)
        # raw gradio_client, the same calls: per_server sessions per server (WanGP queues per
        # session), each worker taking the next job of its server's queue
        flows = [BaselineFlow(gradio_client.Client(url, **GC_KWARGS)) for url in urls for _ in range(per_server)]
        work: list[queue_module.Queue[int]] = [queue_module.Queue() for _ in urls]
        for i in range(jobs):
            work[i % servers].put(i)
        baseline_failures: list[str] = []

        def worker(index: int) -> None:
            flow, jobs_of = flows[index], work[index // per_server]
            while True:
                try:
                    i = jobs_of.get_nowait()
                except queue_module.Empty:
                    return
                try:
                    flow.run(f"baseline job {i}", out, frames=17, steps=steps, seed=i)
                except Exception as exc:  # counted, reported
                    baseline_failures.append(f"{type(exc).__name__}: {exc}")

        for url in urls:
            reset_counter(url)
        bcpu0, bwall0 = time.process_time(), time.perf_counter()
        workers = [threading.Thread(target=worker, args=(n,)) for n in range(len(flows))]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        baseline_makespan = time.perf_counter() - bwall0
        baseline_cpu = time.process_time() - bcpu0
        baseline_busy = server_busy(urls)
        for flow in flows:
            close_gradio_client(flow.client)
    log(f"pool makespan {makespan:.2f}s ideal {ideal:.2f}s cpu {cpu:.2f}s vs gradio_client {baseline_cpu:.2f}s "
        f"({baseline_makespan:.2f}s) threads {threads.peak} failures {len(failures)}/{len(baseline_failures)}")
    log(f"pool servers' own time per job {busy['per_job_s']:.3f}s (idle between jobs {busy['gap_ms_median']} ms "
        f"median); makespan over their busy time {makespan / busy['ideal_s']:.3f}, raw gradio_client's "
        f"{baseline_makespan / baseline_busy['ideal_s']:.3f}")
    return {"vidbridge": round(makespan, 3), "baseline": round(ideal, 3), "ratio": round(makespan / ideal, 4),
            "unit": "s (makespan vs ideal = ceil(jobs/servers) x steps x step_delay)", "target": "ratio <= 1.15",
            "ratio_to_server_busy": round(makespan / busy["ideal_s"], 4), "server_busy": busy,
            "baseline_ratio_to_server_busy": round(baseline_makespan / baseline_busy["ideal_s"], 4),
            "baseline_server_busy": baseline_busy,
            "jobs": jobs, "servers": servers, "generation_seconds": generation, "per_server": per_server,
            "client_cpu_ms_per_job": round(cpu * 1000 / jobs, 2),
            "baseline_cpu_ms_per_job": round(baseline_cpu * 1000 / jobs, 2),
            "baseline_makespan": round(baseline_makespan, 3), "peak_threads": threads.peak,
            "peak_threads_per_100_jobs": round(threads.peak * 100 / jobs, 1), "spread": list(spread.values()),
            "failed": len(failures), "failures": failures[:5], "baseline_failed": len(baseline_failures),
            "baseline_failures": baseline_failures[:5]}


def server_busy(urls: list[str]) -> dict[str, Any]:
    """How long the servers themselves spent on the generations they ran, from the mock's counter
    (each run's ``started``/``ended``): the work no client can schedule away.

    ``ideal_s`` is the shortest makespan any client could reach for those runs: the busiest
    server's total, or the total spread evenly, whichever is longer. ``gap_ms_median`` is the
    idle time between one run's end and the next one's start on a server."""
    from vidbridge.plugins.mock_backend import read_counter

    totals, gaps, lengths = [], [], []
    for url in urls:
        runs = sorted((r for r in read_counter(url)["runs"] if r.get("ended")), key=lambda r: r["started"])
        lengths += [r["ended"] - r["started"] for r in runs]
        totals.append(sum(r["ended"] - r["started"] for r in runs))
        gaps += [max(0.0, b["started"] - a["ended"]) for a, b in zip(runs, runs[1:])]
    ideal = max(max(totals, default=0.0), sum(totals) / max(1, len(urls)))
    return {"ideal_s": round(ideal, 3), "per_job_s": round(median(lengths), 4) if lengths else 0.0,
            "gap_ms_median": round(median(gaps) * 1000, 1) if gaps else 0.0,
            "gap_ms_max": round(max(gaps) * 1000, 1) if gaps else 0.0, "runs": len(lengths)}


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes (< 3 min)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these figures (repeatable or comma-separated): {', '.join(FIGURES)}")
    args = parser.parse_args(argv)
    only = [name for value in args.only for name in value.split(",") if name]
    unknown = sorted(set(only) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {', '.join(FIGURES)}")
    wanted = [name for name in FIGURES if not only or name in only]
    quick = args.quick
    result: dict[str, Any] = {"mode": "quick" if quick else "full", "machine": machine()}
    started = time.perf_counter()
    needs_mock = {"connect_cold", "connect_warm", "job_overhead", "status_call", "submit_latency"} & set(wanted)
    if needs_mock:
        with mock_servers(1, full_surface=True) as (server,):
            url = server.url.rstrip("/")
            if "connect_cold" in wanted:
                result["connect_cold"] = bench_connect_cold(url, reps=5 if quick else 9)
            if "connect_warm" in wanted:
                result.update(bench_connect_warm(url, reps=5 if quick else 11))
            if "job_overhead" in wanted:
                result["job_overhead"] = bench_job_overhead(url, reps=5 if quick else 15)
            if "status_call" in wanted:
                result["status_call"] = bench_status_call(url, calls=20_000 if quick else 200_000)
            if "submit_latency" in wanted:
                result["submit_latency"] = bench_submit_latency(url, reps=20 if quick else 100)
    if "mcp" in wanted:
        with mock_servers(1, full_surface=True) as (gradio,), mock_servers(1, mcp=True) as (mcp,):
            result["mcp"] = bench_mcp(gradio.url.rstrip("/"), mcp.url, reps=5 if quick else 15,
                                      status_calls=20_000 if quick else 200_000)
    if "download" in wanted:
        size = (256 if quick else 1024) * 2**20
        result["download"] = bench_download(size, reps=2 if quick else 3)
    if "scale" in wanted:
        result["scale"] = bench_scale(jobs=24 if quick else 100)
    if "pool" in wanted:
        result["pool"] = bench_pool(jobs=24 if quick else 100)
    if "ledger" in wanted:
        from ledger_cost import bench_ledger

        result["ledger"] = bench_ledger(jobs=100 if quick else 500)
    result["seconds"] = round(time.perf_counter() - started, 1)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
