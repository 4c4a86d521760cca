"""Typed models: invalid input refused at construction naming the field; secrets never printed."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidbridge import (
    Credentials,
    Endpoint,
    GenerationRequest,
    InvalidRequestError,
    JobStatus,
    LoRA,
    Phase,
)
from vidbridge.models import TERMINAL_PHASES, build, guess_media_type

CANARY = "s3cr3t-CANARY-7f1d"


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "start.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    return path


def refused(**fields) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        GenerationRequest(**fields)
    return caught.value


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"prompt": ""}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "x", "frames": 0}, "frames"),
        ({"prompt": "x", "steps": 0}, "steps"),
        ({"prompt": "x", "resolution": "abc"}, "resolution"),
        ({"prompt": "x", "resolution": "0x480"}, "resolution"),
        ({"prompt": "x", "seed": -2}, "seed"),
        ({"prompt": "x", "guidance": 101}, "guidance"),
        ({"prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "x", "image_start": "/no/such/file.png"}, "image_start"),
        ({"prompt": "x", "settings_file": "/no/such/settings.json"}, "settings_file"),
    ],
)
def test_invalid_request_names_the_field(fields, field):
    error = refused(**fields)
    assert error.field == field
    assert field in str(error)
    assert not error.retryable
    assert isinstance(error, ValueError)


def test_unknown_field_says_so():
    error = refused(prompt="x", colour="red")
    assert "colour: is not a known field" in error.message


def test_wrong_suffix_lists_what_is_allowed(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    error = refused(prompt="x", image_start=text)
    assert error.field == "image_start"
    assert ".png" in error.message and "notes.txt" in error.message


def test_empty_media_file_is_refused(tmp_path):
    empty = tmp_path / "empty.png"
    empty.touch()
    assert refused(prompt="x", image_end=empty).field == "image_end"


def test_ref_images_are_each_checked(png, tmp_path):
    assert GenerationRequest(prompt="x", ref_images=[png]).ref_images == (png,)
    error = refused(prompt="x", ref_images=[png, tmp_path / "missing.jpg"])
    assert error.field == "ref_images"
    assert "missing.jpg" in error.message


def test_video_must_be_a_video(png):
    assert refused(prompt="x", video=png).field == "video"


def test_valid_request_and_its_helpers(png, tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text("{}")
    request = GenerationRequest(
        prompt="a fox", resolution=" 832 X 480 ", image_start=png, ref_images=[png], settings_file=settings,
        loras=[{"name": "detail", "weight": 0.5}], settings={"flow_shift": 3},
    )
    assert request.resolution == "832x480"
    assert request.size == (832, 480)
    assert request.input_files() == {"image_start": (png,), "ref_images": (png,)}
    assert request.loras == (LoRA(name="detail", weight=0.5),)
    assert GenerationRequest(prompt="x").size is None
    with pytest.raises(Exception):
        request.prompt = "changed"  # frozen


@given(st.integers(10, 99_999), st.integers(10, 99_999))
def test_resolution_round_trips(width, height):
    request = GenerationRequest(prompt="x", resolution=f"{width}x{height}")
    assert request.size == (width, height)


def test_lora_parse():
    assert LoRA.parse("detail:0.7") == LoRA(name="detail", weight=0.7)
    assert LoRA.parse("detail") == LoRA(name="detail")
    with pytest.raises(InvalidRequestError) as caught:
        LoRA.parse("detail:lots")
    assert caught.value.field == "loras"
    with pytest.raises(InvalidRequestError) as caught:
        LoRA.parse("detail:99")
    assert caught.value.field == "weight"


def test_endpoint_url_is_checked_and_normalised():
    assert Endpoint(url="http://127.0.0.1:7860/").url == "http://127.0.0.1:7860"
    with pytest.raises(InvalidRequestError) as caught:
        Endpoint(url="127.0.0.1:7860")
    assert caught.value.field == "url"
    assert build(Endpoint, url="https://x").url == "https://x"
    with pytest.raises(InvalidRequestError):
        build(Endpoint, url="ftp://x")


# -------------------------------------------------------------------------------------------------
# Credentials never print their secrets
# -------------------------------------------------------------------------------------------------


def test_credentials_never_show_secrets():
    credentials = Credentials(username="ada", password=CANARY, token=CANARY, headers={"X-Api-Key": CANARY})
    for text in (repr(credentials), str(credentials), credentials.model_dump_json(), str(credentials.model_dump())):
        assert CANARY not in text
    assert credentials.password.get_secret_value() == CANARY
    assert credentials.header_values() == {"X-Api-Key": CANARY}
    assert not credentials.is_empty
    assert Credentials().is_empty


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "ada"},  # password missing
        {"password": CANARY},  # username missing
        {"headers": {"bad header": CANARY}},
        {"token": 12345678, "password": CANARY},
        {"token": CANARY, "colour": CANARY},
    ],
)
def test_invalid_credentials_error_hides_secrets(fields):
    with pytest.raises(InvalidRequestError) as caught:
        Credentials(**fields)
    error = caught.value
    for text in (str(error), repr(error), error.message, str(error.to_dict())):
        assert CANARY not in text
    assert CANARY not in repr(error.__cause__) if error.__cause__ else True


def test_credentials_survive_pickle_without_leaking():
    credentials = Credentials(token=CANARY)
    assert pickle.loads(pickle.dumps(credentials)).token.get_secret_value() == CANARY


# -------------------------------------------------------------------------------------------------
# Status snapshots
# -------------------------------------------------------------------------------------------------


def test_phase_vocabulary():
    assert {phase for phase in Phase if phase.is_terminal} == TERMINAL_PHASES == {
        Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED}
    assert Phase("inferring") is Phase.INFERRING


def test_evolve_clears_the_previous_phase_progress():
    queued = JobStatus(job_id="j", queue_position=2, queue_size=3)
    running = queued.evolve(phase=Phase.INFERRING, step=3, total_steps=10, progress=0.3)
    assert running.queue_position is None and running.queue_size == 3
    assert "inferring" in running.phase_started_at
    assert running.updated_at >= queued.updated_at
    decoding = running.evolve(phase="decoding")
    assert decoding.phase is Phase.DECODING
    assert (decoding.step, decoding.total_steps, decoding.progress) == (None, None, None)
    same = decoding.evolve(message="still decoding")
    assert same.phase_started_at == decoding.phase_started_at
    assert decoding.same_state(decoding.evolve())
    assert not decoding.same_state(same)
    assert same.evolve(phase=Phase.COMPLETED).is_terminal


def test_status_ranges_are_enforced():
    with pytest.raises(Exception):
        JobStatus(job_id="j", progress=1.5)
    with pytest.raises(Exception):
        JobStatus(job_id="j", queue_position=-1)


def test_media_type_guess():
    assert guess_media_type("a/b/clip.mp4") == "video/mp4"
    assert guess_media_type("x.png") == "image/png"
    assert guess_media_type("x.unknownsuffix") == "application/octet-stream"
