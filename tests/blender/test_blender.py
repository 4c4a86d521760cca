"""The add-on in real Blender: the bpy wheel of 4.5 LTS (CPython 3.11), the newest bpy wheel
(CPython 3.13) and Debian's blender (3.4, its own Python, through the legacy ``bl_info`` entry);
plus a screenshot of the panels in a real window under Xvfb.

Each variant is one Blender process that runs every check of ``inblender_checks.py`` and writes
its results as JSON; the assertion names the checks that failed. A missing interpreter or
``blender`` binary fails, unless ``VIDBRIDGE_SKIP_BLENDER=1`` (then it is skipped, with the reason).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

import blender_provision as provision

HERE = Path(__file__).resolve().parent
CHECKS = HERE / "inblender_checks.py"
SCREENSHOT = provision.ROOT / "hosts" / "blender" / "screenshot.py"
INSTALL = HERE / "install_extension.py"
RESTART = HERE / "inblender_restart.py"
SKIP = os.environ.get("VIDBRIDGE_SKIP_BLENDER") == "1"
EXPECTED = {"import_is_cheap", "enable_addon", "preferences", "test_connection_health", "generate_operator",
            "scripting_api", "audio_becomes_a_sound_strip", "cancel", "server_down_is_a_report",
            "invalid_request_is_a_report", "active_image_strip_is_the_start_image", "jobs_survive_reopen_and_resume",
            "resume_a_ledger_job_not_in_the_file", "panels_registered", "unregister_leaves_no_thread"}

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mock_url(tmp_path_factory: pytest.TempPathFactory):
    """A mock WanGP server in this process (the Blender processes get its URL)."""
    from vidbridge.plugins.mock_backend.server import MockServer

    with MockServer(port=0, step_delay=0.05, state_dir=tmp_path_factory.mktemp("blender-mock")) as server:
        yield server.url


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(tmp: Path, **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(VB_ADDON_DIR=str(provision.ROOT / "hosts" / "blender"), VB_TMP=str(tmp),
               VIDBRIDGE_LEDGER=str(tmp / "ledger.sqlite3"), VIDBRIDGE_CACHE_DIR=str(tmp / "cache"),
               HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", **extra)
    return env


def _run_variant(variant: str, provisioned: Future, mock_url: str, tmp: Path) -> dict:
    """Wait for the variant's environment, then run every in-Blender check in one process."""
    info = provisioned.result(timeout=1800)
    tmp.mkdir(parents=True, exist_ok=True)
    result = tmp / "result.json"
    env = _env(tmp, VB_URL=mock_url, VB_DOWN_URL=f"http://127.0.0.1:{_closed_port()}",
               VB_RESULT=str(result), VB_SITE=info["site"])
    started = time.monotonic()
    done = subprocess.run([*info["command"], str(CHECKS)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp)
    timing = {"variant": variant, "provision_s": info["provision_s"], "run_s": round(time.monotonic() - started, 1)}
    (provision.BUILD / f"timing-{variant}.json").write_text(json.dumps(timing))
    report = json.loads(result.read_text()) if result.exists() else None
    return {"done": done, "report": report, "timing": timing}


@pytest.fixture(scope="module")
def blender_runs(blender_futures, mock_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Variant (and ``farm``, ``screenshot``, ``extension``) -> the future of its run: all run at once (they mostly
    wait on the mock server or on Blender's start)."""
    # Three Blender processes at a time: the variants first, then the farm and the screenshot.
    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="blender-run")
    runs = {name: pool.submit(_run_variant, name, future, mock_url, tmp_path_factory.mktemp(f"blender-{name}"))
            for name, future in blender_futures.items()}
    runs["farm"] = pool.submit(_farm_run, blender_futures["debian"], mock_url, tmp_path_factory.mktemp("farm"))
    runs["screenshot"] = pool.submit(_screenshot_run, blender_futures["debian"], tmp_path_factory.mktemp("shot"))
    runs["extension"] = pool.submit(_extension_run, blender_futures["bpy45"], tmp_path_factory.mktemp("extension"))
    yield runs
    pool.shutdown(wait=True)


def _outcome(runs: dict, name: str, timeout: float = 2400) -> dict:
    """``runs[name]``'s result (a provisioning or a Blender run); a missing prerequisite fails
    the test, or skips it under ``VIDBRIDGE_SKIP_BLENDER=1``."""
    try:
        return runs[name].result(timeout=timeout)
    except provision.Missing as exc:
        if SKIP:
            pytest.skip(f"{name}: {exc} (VIDBRIDGE_SKIP_BLENDER=1)")
        pytest.fail(f"{name}: {exc}; install it, or set VIDBRIDGE_SKIP_BLENDER=1 to skip these tests")


@pytest.mark.parametrize("variant", list(provision.VARIANTS))
def test_addon_in_blender(variant: str, blender_runs: dict) -> None:
    """Every in-Blender check passes in this Blender variant."""
    outcome = _outcome(blender_runs, variant)
    done, report, timing = outcome["done"], outcome["report"], outcome["timing"]
    print(f"\nblender {variant}: provision {timing['provision_s']} s, run {timing['run_s']} s", file=sys.stderr)
    assert report is not None, f"no result (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    checks = report["checks"]
    failed = {name: check["detail"] for name, check in checks.items() if not check["ok"]}
    missing = EXPECTED - set(checks)
    assert not failed and not missing, (
        f"Blender {report.get('blender')} (Python {report.get('python')}): failed {sorted(failed)}, "
        f"did not run {sorted(missing)}\n" + "\n".join(f"--- {k}\n{v}" for k, v in failed.items())
        + f"\n--- stderr\n{done.stderr[-3000:]}")
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]


def _farm_run(provisioned: Future, mock_url: str, tmp: Path) -> dict:
    """Two farm command lines at once (a job that lands, one whose server is down), then a look
    into the saved file."""
    info = provisioned.result(timeout=1800)
    blender = info["command"][0]
    addon = provision.ROOT / "hosts" / "blender"
    runs = {}
    for name, url in (("ok", mock_url), ("down", f"http://127.0.0.1:{_closed_port()}")):
        folder = tmp / name
        folder.mkdir(parents=True)
        expr = (f"import sys; sys.path[:0] = [{str(addon)!r}, {info['site']!r}]; import bpy; "
                f"bpy.ops.wm.save_as_mainfile(filepath={str(folder / 'shot.blend')!r}); "
                "import vidbridge_blender as vb; "
                f"vb.generate(prompt='farm shot', frames=17, seed=5, steps=1, url={url!r}, output_dir='//out/'); "
                "assert vb.run_pending(timeout=120); bpy.ops.wm.save_mainfile()")
        runs[name] = subprocess.Popen([blender, "-b", "--factory-startup", "--python-exit-code", "1",
                                       "--python-expr", expr], env=_env(folder), cwd=folder, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    outputs = {name: process.communicate(timeout=300)[0] for name, process in runs.items()}
    check = ("import bpy, sys; e = bpy.context.scene.sequence_editor; "
             "s = [x for x in e.sequences_all if x.type == 'MOVIE']; "
             "print('STRIPS', len(s), s[0].frame_final_duration, s[0].filepath, s[0]['vidbridge_seed'])")
    done = subprocess.run([blender, "-b", str(tmp / "ok" / "shot.blend"), "--python-expr", check],
                          capture_output=True, text=True, timeout=120, env=_env(tmp))
    line = next((line for line in done.stdout.splitlines() if line.startswith("STRIPS")), done.stdout[-2000:])
    return {"codes": {name: process.returncode for name, process in runs.items()}, "outputs": outputs,
            "strips": line}


def _screenshot_run(provisioned: Future, tmp: Path) -> dict:
    """hosts/blender/screenshot.py in a real window under Xvfb."""
    provisioned.result(timeout=1800)
    info = provision.xvfb_blender()
    tmp.mkdir(parents=True, exist_ok=True)
    png, report = tmp / "panels.png", tmp / "draws.json"
    done = subprocess.run([*info["command"], str(SCREENSHOT), "--", str(png), str(report)],
                          env=_env(tmp, VB_SITE=info["site"]), capture_output=True, text=True, timeout=300, cwd=tmp)
    return {"done": done, "png": png, "draws": json.loads(report.read_text()) if report.exists() else None}


def _extension_run(provisioned: Future, tmp: Path) -> dict:
    """build.py for this machine (Linux x64, CPython 3.11), then the zip installed in bpy 4.5."""
    info = provisioned.result(timeout=1800)
    out = tmp / "out"
    built = subprocess.run([sys.executable, str(provision.ROOT / "hosts" / "blender" / "build.py"), "--out", str(out),
                            "--python", "3.11", "--platform", "linux-x64"], capture_output=True, text=True, timeout=600)
    zips = sorted(out.glob("vidbridge_blender-*.zip"))
    if built.returncode != 0 or not zips:
        return {"error": f"build.py failed ({built.returncode}): {built.stderr[-3000:]}"}
    result = tmp / "install.json"
    done = subprocess.run([*info["command"], str(INSTALL), str(zips[0]), str(result)],
                          env=_env(tmp, BLENDER_USER_RESOURCES=str(tmp / "user")), capture_output=True, text=True,
                          timeout=300, cwd=tmp)
    if not result.exists():
        return {"error": f"no result (exit {done.returncode}): {done.stderr[-3000:]}"}
    return json.loads(result.read_text())


def test_extension_zip_installs_in_blender_4_5(blender_runs: dict) -> None:
    """The built zip installs as an extension: Blender installs its bundled wheels and enables it."""
    outcome = _outcome(blender_runs, "extension")
    assert not outcome.get("error"), outcome.get("error")
    assert outcome["install"] == ["FINISHED"], outcome
    assert outcome["enabled"] == ["bl_ext.user_default.vidbridge_blender"], outcome
    assert outcome["ops"], outcome
    assert {"vidbridge", "pydantic_core", "gradio_client", "mcp"} <= set(outcome["wheels_installed"]), outcome


def test_farm_command_line(blender_runs: dict) -> None:
    """``blender -b FILE --python-expr "...vb.generate(...); assert vb.run_pending(...)"``: exit 0 and a
    saved strip when the job lands, non-zero when it fails (Debian's blender, no UI, add-on not enabled)."""
    outcome = _outcome(blender_runs, "farm")
    codes, outputs, line = outcome["codes"], outcome["outputs"], outcome["strips"]
    assert codes["ok"] == 0, outputs["ok"][-3000:]
    assert codes["down"] != 0, outputs["down"][-3000:]
    assert "BackendConnectionError" in outputs["down"], outputs["down"][-3000:]
    assert line.split()[:3] == ["STRIPS", "1", "17"] and "//out/" in line and line.endswith(" 5"), line


def test_panels_screenshot(blender_runs: dict) -> None:
    """The panels draw in a real Blender window (Xvfb), without Python errors; a PNG is written."""
    outcome = _outcome(blender_runs, "screenshot")
    done, draws, png = outcome["done"], outcome["draws"], outcome["png"]
    assert draws is not None, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert all(draws["draw_counts"][name] > 0 for name in ("connection", "generate", "jobs")), draws
    assert not draws["errors"], draws["errors"]
    assert draws["reported"], "a job's error did not become a Blender report in the window"
    assert "Traceback" not in done.stderr and "Error in" not in done.stderr, done.stderr[-3000:]
    assert png.exists() and png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- jobs survive a real Blender restart ---------------------------------------------------------

#: The restart test's Blender variants: the bpy wheels (Debian's blender may be absent in CI).
RESTART_VARIANTS = ("bpy45", "bpy-latest")


@pytest.fixture(scope="module")
def restart_servers(tmp_path_factory: pytest.TempPathFactory):
    """Both faces of the mock WanGP, slow enough (40 steps, 0.1 s each) that a job still runs
    while one Blender process dies and the next one starts: face -> URL."""
    from vidbridge.plugins.mock_backend.server import MockServer

    with MockServer(port=0, mcp=True, step_delay=0.1, state_dir=tmp_path_factory.mktemp("restart-mcp")) as mcp, \
            MockServer(port=0, step_delay=0.1, state_dir=tmp_path_factory.mktemp("restart-web")) as web:
        yield {"mcp": mcp.url, "gradio": web.url}


def _restart_run(info: dict, face: str, url: str, tmp: Path, variant: str) -> dict:
    """Blender process 1 submits and is SIGKILLed while the job runs; process 2 opens the file
    and resumes. Returns both processes' results and the seconds each took."""
    from vidbridge.plugins.mock_backend import faults

    tmp.mkdir(parents=True, exist_ok=True)
    prompt = f"a lighthouse after a crash ({face}, {variant})"  # one per run: the counter counts by prompt
    common = dict(VB_URL=url, VB_FACE=face, VB_PROMPT=prompt, VB_BLEND=str(tmp / "shot.blend"),
                  VB_SITE=info["site"], BLENDER_USER_RESOURCES=str(tmp / "user"))
    started = time.monotonic()
    with open(tmp / "submit.stderr", "w") as errors:
        first = subprocess.Popen([*info["command"], str(RESTART)], cwd=tmp, text=True, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=errors,
                                 env=_env(tmp, VB_PHASE="submit", VB_RESULT=str(tmp / "submit.json"), **common))
        reader = ThreadPoolExecutor(max_workers=1)
        try:
            # The script prints VB_READY once the job runs on the server and the .blend is saved.
            ready = reader.submit(lambda: any(line.startswith("VB_READY") for line in first.stdout))
            ready.result(timeout=180)
            if face == "mcp":  # still running when the next Blender attaches, however slow its start
                faults.set_options(url, step_delay=1.0)  # (the resume phase sets it back)
        finally:
            first.kill()  # SIGKILL: no save, no unregister, no cancel, as when Blender crashes
            first.wait()
            reader.shutdown(wait=True)
    if face == "gradio":  # the lost task has started, which is all this face's case needs: the
        faults.set_options(url, step_delay=0.02)  # rest of it and its rerun (queued behind it) go fast
    killed = time.monotonic()
    submitted = json.loads((tmp / "submit.json").read_text()) if (tmp / "submit.json").exists() else None
    second = subprocess.run([*info["command"], str(RESTART)], cwd=tmp, text=True, capture_output=True, timeout=300,
                            env=_env(tmp, VB_PHASE="resume", VB_RESULT=str(tmp / "resume.json"), **common))
    resumed = json.loads((tmp / "resume.json").read_text()) if (tmp / "resume.json").exists() else None
    return {"prompt": prompt, "url": url, "submit": submitted, "resume": resumed,
            "submit_stderr": (tmp / "submit.stderr").read_text()[-3000:], "resume_stderr": second.stderr[-3000:],
            "seconds": {"submit": round(killed - started, 1), "resume": round(time.monotonic() - killed, 1)}}


@pytest.mark.parametrize("variant", RESTART_VARIANTS)
def test_jobs_survive_a_blender_restart(variant: str, blender_futures: dict, restart_servers: dict,
                                        tmp_path: Path) -> None:
    """A job running when Blender dies (SIGKILL) is listed as unfinished when a new Blender opens
    the file, and is not lost: on WanGP's MCP face it is re-attached (``Client.attach`` through the
    ledger) and lands with no second generation; on the web UI (gradio) face, whose task belonged
    to the dead process's session, it is reported as interrupted and then resubmitted, once."""
    from vidbridge.plugins.mock_backend import faults

    info = _outcome(blender_futures, variant, timeout=1800)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="restart") as pool:  # the two faces at once
        runs = {face: pool.submit(_restart_run, info, face, url, tmp_path / face, variant)
                for face, url in restart_servers.items()}
        outcome = {face: future.result() for face, future in runs.items()}
    print(f"\nrestart {variant}: " + ", ".join(f"{face} {run['seconds']}" for face, run in outcome.items()),
          file=sys.stderr)
    for face, run in outcome.items():
        shown = json.dumps({k: v for k, v in run.items() if not k.endswith("stderr")}, indent=1, default=str)
        context = (f"{face}:\n{shown}\n--- submit stderr\n{run['submit_stderr']}"
                   f"\n--- resume stderr\n{run['resume_stderr']}")
        submitted, resumed = run["submit"], run["resume"]
        assert submitted and submitted["ok"], context
        assert resumed and resumed["ok"], context
        job_id = submitted["entry"]["job_id"]
        # Listed after the restart: the scene's entry (offered for Resume) and the ledger's row.
        [listed] = resumed["listed"]
        assert listed["job_id"] == job_id and listed["resumable"], context
        assert listed["phase"] not in ("queued", "completed", "failed", "cancelled"), context
        assert job_id in {row["id"] for row in resumed["ledger_unfinished"]}, context
        counter = faults.read_counter(run["url"])["by_prompt"].get(run["prompt"])
        if face == "mcp":
            assert submitted["ledger"]["ref"]["data"].get("mcp_job"), context
            running = ("loading_model", "encoding", "inferring", "decoding")
            assert resumed["attached_at"][0] in running, context  # attached while it still ran
            assert resumed["resumed"]["landed"], context
            assert counter == 1, f"{counter} generations of the prompt\n{context}"  # attached, not run again
            assert resumed["ledger_final"] == {"status": "completed", "attempt": 1}, context
        else:
            entry = resumed["resumed"]["entry"]
            assert not resumed["resumed"]["landed"] and entry["phase"] == "interrupted", context
            assert "interrupted" in entry["error"] and "session_bound" in entry["error"], context
            assert any(job_id in error and "interrupted" in error for error in resumed["resumed"]["errors"]), context
            assert [e["job_id"] for e in resumed["after_interrupted"]] == [job_id], context  # still listed
            assert resumed["ledger_interrupted"]["status"] == "interrupted", context
            assert resumed["ledger_interrupted"]["error"]["reason"] == "session_bound", context
            assert resumed["resubmitted"]["landed"], context
            assert counter == 2, f"{counter} generations of the prompt\n{context}"  # the lost one and its rerun
            assert resumed["ledger_final"] == {"status": "completed", "attempt": 2}, context
        strip = resumed["strip"]
        assert strip["type"] == "MOVIE" and strip["frames"] == 17, context
        assert (strip["frame_start"], strip["channel"]) == (20, listed["channel"]), context
        assert strip["filepath"].startswith("//vidbridge") and strip["exists"], context
        props = strip["props"]
        assert props["vidbridge_job_id"] == job_id and props["vidbridge_seed"] == 11, context
        assert props["vidbridge_server"] == run["url"] and len(props["vidbridge_sha256"]) == 64, context
        assert props["vidbridge_manifest"].endswith(".json") and props["vidbridge_model"], context
