"""Shared helpers of the bench scripts: timing, ratios, JSON output, RSS sampling, servers.

Every figure is measured against its baseline *in the same run*, and reported as
``{"vidbridge": x, "baseline": y, "ratio": x / y}``. The machine is small and shared, so
repetitions are interleaved (vidbridge, baseline, vidbridge, ...) and medians are reported.
Servers always run in child processes so their CPU never competes with the measured client's GIL.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable

QUIET_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}
for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)


def log(*parts: Any) -> None:
    """Progress on stderr (stdout is reserved for the JSON document)."""
    print("[bench]", *parts, file=sys.stderr, flush=True)


# -- statistics -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ratio(vidbridge: float, baseline: float, **extra: Any) -> dict[str, Any]:
    """The standard figure: ``{"vidbridge", "baseline", "ratio"}`` (+ anything in ``extra``)."""
    value = vidbridge / baseline if baseline else float("inf")
    return {"vidbridge": round(vidbridge, 6), "baseline": round(baseline, 6), "ratio": round(value, 4), **extra}


def ratio_of_samples(xs: Sequence[float], ys: Sequence[float], **extra: Any) -> dict[str, Any]:
    """:func:`ratio` of the medians, plus the ratio of the minima (less sensitive to a noisy machine),
    each side's maximum, and the ratios of the pairs :func:`interleaved` ran back to back
    (``paired_ratios``: min, median, max), which cancel noise slower than one repetition."""
    best = min(xs) / min(ys) if xs and ys and min(ys) else float("nan")
    pairs = sorted(x / y for x, y in zip(xs, ys) if y)
    spread = [round(pairs[0], 4), round(median(pairs), 4), round(pairs[-1], 4)] if pairs else []
    return ratio(median(xs), median(ys), min_vidbridge=round(min(xs), 6), min_baseline=round(min(ys), 6),
                 min_ratio=round(best, 4), max_vidbridge=round(max(xs), 6), max_baseline=round(max(ys), 6),
                 paired_ratios=spread, **extra)


def interleaved(reps: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[list[float], list[float]]:
    """Run ``a`` and ``b`` alternately ``reps`` times each (order flipped every rep) and return
    their samples; alternating spreads machine noise evenly over both sides."""
    xs: list[float] = []
    ys: list[float] = []
    for i in range(reps):
        if i % 2 == 0:
            xs.append(a())
            ys.append(b())
        else:
            ys.append(b())
            xs.append(a())
    return xs, ys


# -- process state ----------------------------------------------------------------------------


def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        import psutil

        return psutil.Process().memory_info().rss


class PeakSampler:
    """Samples ``measure()`` every ``interval`` s in a thread; ``peak`` is the highest seen."""

    def __init__(self, measure: Any, interval: float = 0.005) -> None:
        self.measure = measure
        self.interval = interval
        self.start = measure()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.measure())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure())


class RssSampler(PeakSampler):
    """This process's RSS, sampled; ``start_rss`` is the RSS when it was made."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__(rss_bytes, interval)
        self.start_rss = self.start

    @property
    def growth(self) -> int:
        return self.peak - self.start_rss


def machine() -> dict[str, Any]:
    """Date, CPU and versions, for the record."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    versions = {}
    for name in ("gradio", "gradio_client", "httpx", "vidbridge"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # pragma: no cover
            versions[name] = None
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(), "cpu": cpu,
            "python": platform.python_version(), **versions}


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print the result: one JSON object, or a readable table."""
    if as_json:
        print(json.dumps(result, indent=2, default=str), flush=True)
        return
    for key, value in result.items():
        print(f"{key}: {json.dumps(value, default=str)}")


# -- child processes --------------------------------------------------------------------------


def run_child(code: str, *args: str, timeout: float = 300.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run Python ``code`` in a fresh interpreter (new process-level state: caches, imports,
    thread pools) and return the JSON object it prints on its last stdout line."""
    completed = subprocess.run(
        [PYTHON, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **QUIET_ENV, **(env or {})}, cwd=str(REPO),
    )
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1])


@contextmanager
def mock_servers(count: int = 1, **options: Any) -> Iterator[list[Any]]:
    """``count`` mock WanGP servers in child processes (SubprocessMockServer), stopped on exit.

    They start in parallel (a full-surface server takes a few seconds to build)."""
    from vidbridge.plugins.mock_backend import SubprocessMockServer

    servers = [SubprocessMockServer(**options) for _ in range(count)]
    errors: list[BaseException] = []

    def start(server: Any) -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
        threads = [threading.Thread(target=start, args=(s,)) for s in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        yield servers


def close_gradio_client(client: Any) -> None:
    """Release a plain gradio_client.Client without its 1 s blocking close() (see GRADIO_CLIENT.md)."""
    kill = getattr(client, "_kill_heartbeat", None)
    if kill is not None:
        kill.set()
    for name in ("executor", "helper_executor", "stream_executor"):
        pool = getattr(client, name, None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def fresh_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"vidbridge-bench-{prefix}-"))


def frame_count(path: str | os.PathLike) -> int:
    """Decoded video frames of an MP4 (PyAV)."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def sha256_file(path: str | os.PathLike) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
