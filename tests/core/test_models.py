"""Typed models: invalid input refused at construction naming the field; secrets never printed."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from vidbridge import (
    Credentials,
    Endpoint,
    GenerationRequest,
    InvalidRequestError,
    JobStatus,
    LoRA,
    Phase,
)
from vidbridge import models
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


@given(st.integers(4, 8_192).map(lambda half: 2 * half), st.integers(4, 8_192).map(lambda half: 2 * half))
def test_resolution_round_trips(width, height):
    request = GenerationRequest(prompt="x", resolution=f"{width}x{height}")
    assert request.size == (width, height)


@pytest.mark.parametrize("text", ["1x1", "7x8", "832x481", "6x480", "16386x480", "0x480", "abc", "832*480", "x" * 5000])
def test_resolution_refusal_says_what_is_allowed(text):
    error = refused(prompt="x", resolution=text)
    assert error.field == "resolution"
    assert "even number of pixels from 8 to 16384" in error.allowed and "832x480" in error.allowed
    assert "positive integers" not in error.message and len(error.message) < 400


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


# -------------------------------------------------------------------------------------------------
# Input files: the content must be what the name says, before anything is uploaded
# -------------------------------------------------------------------------------------------------

#: The first bytes of each accepted format (enough for the sniffer; the rest is filler).
MAGIC = {
    "start.png": b"\x89PNG\r\n\x1a\n",
    "start.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF",
    "start.webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "start.gif": b"GIF89a\x01\x00\x01\x00",
    "start.bmp": b"BM\x46\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00",
    "clip.mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00",
    "clip.mov": b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00",
    "clip.webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01",
    "clip.mkv": b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01",
    "clip.avi": b"RIFF\x24\x00\x00\x00AVI LIST",
    "voice.wav": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "voice.mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "frames.mp3": b"\xff\xfb\x90\x64\x00\x00\x00\x00",
    "voice.flac": b"fLaC\x00\x00\x00\x22",
    "voice.ogg": b"OggS\x00\x02\x00\x00",
    "voice.m4a": b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00",
    "isom.m4a": b"\x00\x00\x00\x1cftypisom\x00\x00\x00\x00",
    "voice.aac": b"\xff\xf1\x50\x80\x02\x1f\xfc",
}
KIND_FIELD = {"start": "image_start", "clip": "video", "voice": "audio", "frames": "audio", "isom": "audio"}


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data + b"\0" * 64)
    return path


@pytest.mark.parametrize("name", sorted(MAGIC))
def test_every_accepted_format_is_recognised_by_its_first_bytes(tmp_path, name):
    path = _write(tmp_path, name, MAGIC[name])
    field = KIND_FIELD[name.split(".")[0]]
    assert getattr(GenerationRequest(prompt="x", **{field: path}), field) == path


@pytest.mark.parametrize(
    ("name", "data", "field", "words"),
    [("start.png", b"just some text, not an image", "image_start", "is not an image file"),
     ("start.jpg", b"\x89PNG\r\n\x1a\n", "image_start", None),  # a PNG named .jpg is still an image
     ("clip.mp4", b"\x89PNG\r\n\x1a\n", "video", "holds image/png"),
     ("clip.mp4", b"\x00\x00\x00\x1cftypM4A ", "video", "holds audio/mp4"),
     ("voice.wav", b"RIFF\x24\x00\x00\x00AVI LIST", "audio", "holds video/x-msvideo"),
     ("voice.mp3", b"\xff" * 16, "audio", "is not an audio file"),
     ("clip.avi", b"<html>502 Bad Gateway</html>", "video", "is not a video file")],
    ids=["text-as-png", "png-as-jpg", "png-as-mp4", "m4a-as-video", "avi-as-wav", "ff-bytes", "html-as-avi"],
)
def test_content_must_match_the_kind(tmp_path, name, data, field, words):
    path = _write(tmp_path, name, data)
    if words is None:
        assert GenerationRequest(prompt="x", **{field: path})
        return
    error = refused(prompt="x", **{field: path})
    assert error.field == field and words in error.message
    assert error.allowed.startswith("an existing, readable") and "of 1 byte to " in error.allowed


def test_huge_sparse_files_are_refused_without_reading_them(tmp_path):
    video = tmp_path / "huge.mp4"
    with open(video, "wb") as stream:
        stream.truncate(3 * 2**30)  # sparse: no valid header, a few KB on disk
    error = refused(prompt="x", video=video)
    assert error.field == "video" and "is not a video file" in error.message
    image = tmp_path / "huge.png"
    with open(image, "wb") as stream:
        stream.write(MAGIC["start.png"])
        stream.truncate(65 * 2**20)
    error = refused(prompt="x", image_start=image)
    assert "more than the 64 MiB allowed" in error.message and "68157440 bytes" in error.message


def test_missing_links_directories_and_special_files_are_refused(tmp_path):
    good = _write(tmp_path, "good.png", MAGIC["start.png"])
    (tmp_path / "link.png").symlink_to(good)
    assert GenerationRequest(prompt="x", image_start=tmp_path / "link.png").image_start == tmp_path / "link.png"
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "loop1.png").symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(tmp_path / "loop1.png")
    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    cases = {
        tmp_path / "gone.png": "does not exist",
        good / "under-a-file.png": "does not exist",
        tmp_path / "dangling.png": "is a symbolic link to a file that does not exist",
        tmp_path / "loop1.png": "cannot be accessed",
        tmp_path / "folder.png": "is a directory",
        tmp_path / "pipe.png": "is not a regular file",
        Path("nul\0byte.png"): "cannot be accessed",
    }
    for path, words in cases.items():
        error = refused(prompt="x", image_end=path)
        assert error.field == "image_end" and words in error.message, (path, error.message)
        assert error.allowed


def test_an_unreadable_file_is_refused(tmp_path, monkeypatch):
    path = _write(tmp_path, "locked.png", MAGIC["start.png"])
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads everything: make the open fail as it does for anyone else
        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(models, "open", denied, raising=False)
    error = refused(prompt="x", image_start=path)
    assert error.field == "image_start" and "cannot be read (Permission denied)" in error.message


def test_a_long_path_is_quoted_by_its_end(tmp_path):
    deep = tmp_path / ("d" * 200)
    deep.mkdir()
    error = refused(prompt="x", audio=deep / "missing-voice.wav")
    assert "missing-voice.wav" in error.message and "characters)" in error.message
    assert len(error.message) < 250


def test_a_bad_reference_image_is_named_by_its_number(tmp_path):
    good = _write(tmp_path, "good.png", MAGIC["start.png"])
    bad = _write(tmp_path, "bad.png", b"GIF88a")
    error = refused(prompt="x", ref_images=[good, good, bad])
    assert error.field == "ref_images" and "reference image 3 of 3" in error.message and error.allowed


# -------------------------------------------------------------------------------------------------
# Settings: the file is parsed at construction, values must be JSON
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [(b'{"prompt": ', "is not JSON (Expecting value at line 1 column 12)"),
     (b"\xff\xfe\x00 not utf-8", "is not UTF-8 text"),
     (b'["a", "list"]', "holds a JSON list, not an object"),
     (b'"SECRET-CANARY text"', "holds a JSON str, not an object"),
     (b"SECRET-CANARY " * 1000, "is not JSON")],
    ids=["truncated", "not-utf8", "list", "string", "long-text"],
)
def test_settings_file_must_be_a_json_object(tmp_path, content, words):
    path = tmp_path / "export.json"
    path.write_bytes(content)
    error = refused(prompt="x", settings_file=path)
    assert error.field == "settings_file" and words in error.message
    assert "SECRET-CANARY" not in error.message and "JSON file holding one object" in error.allowed


def test_settings_file_checks(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('\ufeff{"model_type": "t2v"}', encoding="utf-8")  # a BOM, as some editors write
    assert GenerationRequest(prompt="x", settings_file=good).settings_file == good
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as stream:
        stream.truncate(17 * 2**20)
    assert "more than the 16 MiB allowed" in refused(prompt="x", settings_file=huge).message
    assert "is a directory" in refused(prompt="x", settings_file=tmp_path).message
    assert "does not exist" in refused(prompt="x", settings_file=tmp_path / "gone.json").message


@pytest.mark.parametrize(
    ("settings", "words"),
    [({"flow_shift": float("nan")}, "'flow_shift': the value is not JSON-compatible"),
     ({"when": object()}, "'when': the value is not JSON-compatible ('object is not JSON serializable')"),
     ({"": 1}, "key '' is not a field name"),
     ({"a\nb": 1}, "is not a field name"),
     ({"k" * 300: 1}, "characters)")],
    ids=["nan", "object", "empty-key", "newline-key", "long-key"],
)
def test_settings_values_must_be_sendable_as_json(settings, words):
    error = refused(prompt="x", settings=settings)
    assert error.field == "settings" and words in error.message and "JSON values" in error.allowed
    assert len(error.message) < 300


# -------------------------------------------------------------------------------------------------
# Text fields: bounded messages, no control characters
# -------------------------------------------------------------------------------------------------


def test_a_huge_prompt_gives_a_short_message_with_its_length():
    error = refused(prompt="word " * 200_000)
    assert error.field == "prompt" and "(1000000 characters)" in error.message
    assert len(error.message) < 300 and error.allowed == "text of 1 to 20000 characters"


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\r", "\x7f", "\x85", "\ud800"])
def test_control_characters_are_refused_in_prompts(field, char):
    fields = {"prompt": "ok", field: f"a cat{char}dog " * 10}
    error = refused(**fields)
    assert error.field == field and len(error.message) < 300
    if char != "\ud800":  # an unpaired surrogate (undecodable input) is not even a string for pydantic
        assert "at position 5 (of 100 characters)" in error.message and "newline and tab" in error.allowed


def test_newlines_and_tabs_are_fine_in_prompts_but_not_in_names():
    assert GenerationRequest(prompt="line one\n\tline two", negative_prompt="blur\nnoise").prompt
    for field in ("model", "sampler", "preset"):
        error = refused(prompt="x", **{field: "t2v\n"})
        assert error.field == field and error.allowed == "one line of text without control characters"
    assert refused(prompt="x", loras=[{"name": "a\tb"}]).allowed == "one line of text without control characters"
    assert refused(prompt=" \n\t ").allowed == "text with at least one visible character"


@given(field=st.sampled_from(["prompt", "negative_prompt", "model", "sampler", "preset", "resolution"]),
       text=st.text(min_size=1, max_size=50), repeat=st.integers(1, 3_000))
def test_no_message_repeats_a_long_input(field, text, repeat):
    value = text * repeat
    try:
        GenerationRequest(**{"prompt": "x", field: value})
    except InvalidRequestError as error:
        assert len(error.message) < 400 and error.allowed
        if len(value) > 200:
            assert value not in error.message


@pytest.mark.parametrize(
    ("fields", "allowed"),
    [({"prompt": "x", "frames": 0}, "an integer from 1 to 10000 (or None: the backend's default)"),
     ({"prompt": "x", "frames": "many"}, "an integer from 1 to 10000 (or None: the backend's default)"),
     ({"prompt": "x", "steps": 5000}, "an integer from 1 to 1000 (or None: the backend's default)"),
     ({"prompt": "x", "guidance": float("nan")}, "a finite number from 0 to 100 (or None: the backend's default)"),
     ({"prompt": "x", "guidance": float("inf")}, "a finite number from 0 to 100 (or None: the backend's default)"),
     ({"prompt": "x", "seed": -2}, "an integer from -1 to 4294967295 (or None: the backend's default)"),
     ({"prompt": "x", "model": ""}, "text of 1 to 200 characters (or None: the backend's default)"),
     ({"prompt": "x", "negative_prompt": "n" * 20_001}, "text of 0 to 20000 characters"),
     ({"prompt": "x", "image_start": 12}, "a path to a local file (or None: the backend's default)"),
     ({"prompt": "x", "loras": 5}, "a list"),
     ({"prompt": "x", "loras": [{"name": "a", "weight": float("nan")}]}, "a finite number from -10 to 10"),
     ({"prompt": "x", "colour": "red"}, "known fields: prompt, negative_prompt, model"),
     ({}, "text of 1 to 20000 characters")],
)
def test_every_construction_error_says_what_is_allowed(fields, allowed):
    assert refused(**fields).allowed.startswith(allowed)


def test_allowed_for_other_models_and_without_a_model():
    for fields, allowed in [({"url": "http://h", "queue_size": "many"}, "an integer (or None"),
                            ({"url": "http://h", "latency_ms": "slow"}, "a finite number (or None"),
                            ({"url": 7}, "text"),
                            ({"url": "http://h", "healthy": "maybe"}, "true or false")]:
        with pytest.raises(InvalidRequestError) as caught:
            Endpoint(**fields)
        assert caught.value.allowed.startswith(allowed), fields
    with pytest.raises(ValidationError) as caught:  # JobStatus is not an _Input model: pydantic's own error
        JobStatus(job_id="j", progress="lots")
    assert models.invalid_request_from(caught.value).allowed == "a number"


def test_field_labels_rename_fields_in_messages_only():
    with models.field_labels({"frames": "--frames", "loras": "--lora"}):
        error = refused(prompt="x", frames=-3)
        nested = refused(prompt="x", loras=[{"name": "ok"}, {"name": "", "weight": 1}])
    assert error.field == "frames" and "--frames: Input should be greater than or equal to 1" in error.message
    assert nested.field == "loras.1" and "--lora (1): invalid LoRA: name" in nested.message
    assert "--frames" not in refused(prompt="x", frames=-3).message  # the labels ended with the block


def test_excerpt_is_short_and_states_the_length():
    assert models.excerpt("short") == "'short'"
    assert models.excerpt(12) == "12"
    assert models.excerpt(list(range(100)), 20) == "[0, 1, 2, 3, 4, 5, 6... (390 characters)"
    long = models.excerpt("\0" * 1000)
    assert long.endswith("... (1000 characters)") and len(long) < 100
    assert models.excerpt("/a/" + "b" * 100 + "/name.png", 20, tail=True).startswith("...'")


# -------------------------------------------------------------------------------------------------
# URLs and credentials
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [("http://[::1", "is not a valid URL (Invalid IPv6 URL)"),
     ("http://host:99999", "is not a valid URL (Port out of range"),
     ("http://host:port", "is not a valid URL"),
     (f"http://ann:{CANARY}@host:7860", "must not contain a user name or password"),
     (f"https://{CANARY}@host", "must not contain a user name or password"),
     ("http://", "with a host"),
     ("http://host/?__theme=dark", "takes no query"),
     ("http://host/#top", "takes no query"),
     ("http://host/?", "takes no query"),
     ("http://ho st", "spaces or control characters"),
     ("http://" + "h" * 3000, "3007 characters")],
)
def test_bad_urls_are_refused_without_echoing_them(url, words):
    with pytest.raises(InvalidRequestError) as caught:
        Endpoint(url=url)
    error = caught.value
    assert error.field == "url" and words in error.message and "base URL" in error.allowed
    assert CANARY not in error.message and len(error.message) < 400
    if "@" in url:
        assert "VIDBRIDGE_PASSWORD" in error.message and "--username" in error.message


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"username": "ann", "password": f"{CANARY}\r\nX-Injected: 1"}, "password"),
     ({"token": f"{CANARY}\n"}, "token"),
     ({"headers": {"X-Api-Key": f"{CANARY}\x00"}}, "headers"),
     ({"username": "ann\nroot", "password": CANARY}, "username")],
)
def test_credentials_with_control_characters_are_refused_unseen(fields, field):
    with pytest.raises(InvalidRequestError) as caught:
        Credentials(**fields)
    assert caught.value.field == field and caught.value.allowed
    assert CANARY not in str(caught.value.to_dict())


def test_lora_parse_messages_are_bounded():
    with pytest.raises(InvalidRequestError) as caught:
        LoRA.parse("style:" + "x" * 10_000)
    assert len(caught.value.message) < 200 and "WEIGHT a number from -10 to 10" in caught.value.allowed
    with pytest.raises(InvalidRequestError) as caught:
        LoRA.parse("style:nan")
    assert caught.value.field == "weight" and caught.value.allowed == "a finite number from -10 to 10"


def test_the_download_sniffer_knows_the_new_formats_without_checking_their_structure(tmp_path):
    from vidbridge.containers import check_container, sniff_media_type

    for name in ("voice.flac", "voice.ogg", "voice.mp3", "start.bmp", "voice.aac"):
        check_container(_write(tmp_path, name, MAGIC[name]), "application/octet-stream")  # nothing to verify
    assert sniff_media_type(b"BMW is a car brand") is None  # 'BM' text is not a bitmap
    assert sniff_media_type(b"\xff\xfb") is None  # too short for an MPEG frame header
    assert sniff_media_type(b"\xff\xfb\xf0\x00") is None  # bitrate index 15 does not exist


def test_settings_may_hold_local_paths_and_the_first_of_several_errors_decides(tmp_path):
    mask = _write(tmp_path, "mask.png", MAGIC["start.png"])
    assert GenerationRequest(prompt="x", settings={"image_mask": mask}).settings["image_mask"] == mask
    error = refused(prompt="x", steps=0, frames=0)
    assert error.field == "frames" and "steps: Input should be" in error.message
    assert error.allowed.startswith("an integer from 1 to 10000")
