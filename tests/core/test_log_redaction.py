"""vidbridge.redaction: secrets out of log records, in every shape libraries print them."""

from __future__ import annotations

import gc
import logging
import sys
import traceback

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidbridge import Credentials
from vidbridge import redaction
from vidbridge.redaction import (
    REDACTED,
    RedactingFilter,
    install_log_redaction,
    redact_record,
    redact_text,
    register_credentials,
    register_secrets,
)

SECRET = "s3cr3t-Canary-91fe"


def _record(msg: object, args: tuple | None = (), exc_info=None, name: str = "tests.redaction",
            ) -> logging.LogRecord:
    # LogRecord itself, not the factory: these tests look at redact_record alone.
    return logging.LogRecord(name, logging.DEBUG, __file__, 1, msg, args, exc_info)


def _text(record: logging.LogRecord) -> str:
    """Everything a formatter prints for ``record``."""
    return logging.Formatter("%(name)s %(message)s").format(record)


@pytest.fixture
def own_factory():
    """Restore the process's record factory (and the module's notion of ours) after the test."""
    saved, saved_ours = logging.getLogRecordFactory(), redaction._our_factory
    yield
    logging.setLogRecordFactory(saved)
    redaction._our_factory = saved_ours


# ------------------------------------------------------------------------------------------------
# Shapes of secrets in text
# ------------------------------------------------------------------------------------------------


def test_httpcore_byte_tuple_headers() -> None:
    line = ("receive_response_headers.complete return_value=(b'HTTP/1.1', 200, b'OK', [(b'date', b'Tue'), "
            f"(b'set-cookie', b'access-token-aQk={SECRET}; HttpOnly; Path=/'), (b'Cookie', b\"a='{SECRET}'\"), "
            f"(b'authorization', b'Basic {SECRET}'), (b'content-type', b'application/json')])")
    clean = redact_text(line)
    assert SECRET not in clean
    assert f"(b'set-cookie', b'{REDACTED}')" in clean and f"(b'Cookie', b\"{REDACTED}\")" in clean
    assert "(b'date', b'Tue')" in clean and "(b'content-type', b'application/json')" in clean  # the rest stays


def test_escaped_quotes_inside_a_value_do_not_end_it() -> None:
    clean = redact_text(repr([(b"cookie", f"a='{SECRET}\"".encode())]))
    assert SECRET not in clean


def test_dict_and_json_headers() -> None:
    headers = {"Cookie": f"a={SECRET}; c=d", "Authorization": f"Bearer {SECRET}", "Accept": "*/*",
               "x-hf-authorization": f"Bearer {SECRET}", "Proxy-Authorization": SECRET, "X-Api-Key": SECRET}
    for text in (repr(headers), str(headers).replace("'", '"')):
        clean = redact_text(text)
        assert SECRET not in clean and "'Accept': '*/*'" in clean.replace('"', "'")


def test_header_lines() -> None:
    assert redact_text(f"Cookie: a={SECRET}; c=d") == f"Cookie: {REDACTED}"
    assert redact_text(f"Authorization: Bearer {SECRET}") == f"Authorization: {REDACTED}"
    assert redact_text(f"set-cookie:{SECRET}") == f"set-cookie:{REDACTED}"
    assert redact_text("Content-Type: text/plain") == "Content-Type: text/plain"
    # a secret after a harmless header on the same line, and a name inside a value already hidden
    assert redact_text("Content-Type: text/plain; x-api-key: abc") == f"Content-Type: text/plain; x-api-key: {REDACTED}"
    assert redact_text(f"Authorization: Bearer {SECRET}, Cookie: c") == f"Authorization: {REDACTED}"


def test_fields_queries_and_urls() -> None:
    assert redact_text(f"Credentials(username='ann', password='{SECRET}')") == \
        f"Credentials(username='ann', password='{REDACTED}')"
    clean = redact_text(f'GET http://ann:{SECRET}@host:1/x?access_token={SECRET}&session_hash=42 "HTTP/1.1 200"')
    assert clean == f'GET http://{REDACTED}@host:1/x?access_token={REDACTED}&session_hash=42 "HTTP/1.1 200"'
    assert redact_text(f"<Cookies[<Cookie anything={SECRET} for 127.0.0.1 />]>") == \
        f"<Cookies[<Cookie anything={REDACTED} for 127.0.0.1 />]>"
    assert redact_text(f"sent Bearer {SECRET} along") == f"sent Bearer {REDACTED} along"
    token = "hf_" + "aB3" * 12
    assert redact_text(f"token {token}.") == f"token {REDACTED}."


def test_ordinary_text_is_left_alone() -> None:
    text = "downloading video.mp4 from http://127.0.0.1:7860/gradio_api/file=a.mp4 (17 frames, step 3/8)"
    assert redact_text(text) == text
    assert redact_text("httpx.CookieConflict: two cookies") == "httpx.CookieConflict: two cookies"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
       st.sampled_from(["cookie", "Set-Cookie", "authorization", "x-hf-authorization", "X-Api-Key"]))
def test_any_header_value_is_hidden_in_tuples_and_dicts(value: str, name: str) -> None:
    marked = f"<<{value}>>"  # a value of at least a few characters, any of them
    for shape in (repr([(name.encode(), marked.encode())]), repr([(name, marked)]), repr({name: marked})):
        assert marked not in redact_text(shape)


# ------------------------------------------------------------------------------------------------
# Known values
# ------------------------------------------------------------------------------------------------


def test_registered_values_are_hidden_until_released() -> None:
    with register_secrets([SECRET, "Bearer Tok-3c1d9a"], names=["X-Proxy-Pass"]) as registration:
        assert registration.active and SECRET not in repr(registration)
        clean = redact_text(f"body user={SECRET}x and Tok-3c1d9a, encoded {SECRET.replace('-', '%2D')}")
        assert SECRET not in clean and "Tok-3c1d9a" not in clean
        assert redact_text("X-Proxy-Pass: ab") == f"X-Proxy-Pass: {REDACTED}"  # a short value, by its name
        assert redact_text("('x-proxy-pass', 'ab')") == f"('x-proxy-pass', '{REDACTED}')"
    assert not registration.active and repr(registration) == "<SecretRegistration released>"
    assert SECRET in redact_text(f"now {SECRET}") and redact_text("X-Proxy-Pass: ab") == "X-Proxy-Pass: ab"
    registration.release()  # idempotent


def test_url_encoded_forms_are_known_too() -> None:
    with register_secrets(["p@ss w/rd!"]):
        assert redact_text("password=p%40ss+w%2Frd%21 q=p%40ss%20w%2Frd%21") == f"password={REDACTED} q={REDACTED}"


def test_short_values_are_not_matched_by_value() -> None:
    with register_secrets(["abc", "7"]):
        assert redact_text("abc 7 frames") == "abc 7 frames"


def test_nothing_to_register_gives_an_inactive_registration() -> None:
    registration = register_secrets(["", ""])
    assert not registration.active
    registration.release()


def test_registration_ends_with_its_owner() -> None:
    class Owner:
        pass

    owner = Owner()
    before = len(redaction._registry)
    registration = register_secrets([SECRET], owner=owner)
    assert len(redaction._registry) == before + 1 and registration.active
    del owner
    gc.collect()
    assert not registration.active and len(redaction._registry) == before
    assert SECRET in redact_text(SECRET)


def test_explicit_release_of_an_owned_registration() -> None:
    class Owner:
        pass

    owner = Owner()
    registration = register_secrets([SECRET], owner=owner)
    registration.release()
    assert not registration.active and SECRET in redact_text(SECRET)
    del owner  # the finalizer is already dead: nothing happens twice
    gc.collect()


def test_register_credentials() -> None:
    credentials = Credentials(username="ann-the-user", password=SECRET, token="hf_tok-4b2e",
                              headers={"X-Gate": "gate-key-77"})
    with register_credentials(credentials):
        clean = redact_text(f"ann-the-user {SECRET} hf_tok-4b2e gate-key-77 X-Gate: xy")
    assert clean == f"ann-the-user {REDACTED} {REDACTED} {REDACTED} X-Gate: {REDACTED}"
    assert not register_credentials(Credentials()).active


# ------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------


def test_args_tuple_is_formatted_then_redacted() -> None:
    record = redact_record(_record("headers %s then %r", ({"Cookie": SECRET}, [(b"set-cookie", SECRET.encode())])))
    assert SECRET not in _text(record) and record.args == ()
    assert record.getMessage() == f"headers {{'Cookie': '{REDACTED}'}} then [(b'set-cookie', b'{REDACTED}')]"


def test_args_mapping_and_non_string_messages() -> None:
    assert SECRET not in _text(redact_record(_record("%(h)s", ({"h": f"Cookie: {SECRET}"},))))
    assert SECRET not in _text(redact_record(_record({"authorization": SECRET}, None)))


def test_a_record_without_secrets_keeps_its_template() -> None:
    record = redact_record(_record("job %s at step %d", ("j1", 3)))
    assert record.msg == "job %s at step %d" and record.args == ("j1", 3)


def test_redacted_once_per_content() -> None:
    record = redact_record(_record("Cookie: %s", (SECRET,)))
    mark = getattr(record, redaction._MARK)
    assert RedactingFilter().filter(record) is True and getattr(record, redaction._MARK) is mark  # not again
    record.msg, record.args = "token=%s", (SECRET,)  # replaced afterwards: redacted again
    assert SECRET not in _text(redact_record(record))


def test_arguments_that_do_not_format() -> None:
    record = redact_record(_record("%d cookies", (f"Cookie: {SECRET}",)))
    text = _text(record)
    assert SECRET not in text and "arguments that did not format" in text


def test_exception_text_with_a_secret() -> None:
    try:
        raise ValueError(f"request failed, headers {{'Authorization': 'Bearer {SECRET}'}}")
    except ValueError:
        record = redact_record(_record("failed", exc_info=sys.exc_info()))
    assert record.exc_info is None and "ValueError" in record.exc_text
    text = _text(record)
    assert SECRET not in text and "Traceback" in text


def test_exception_text_without_secrets_keeps_exc_info() -> None:
    try:
        raise ValueError("plain failure")
    except ValueError:
        record = redact_record(_record("failed", exc_info=sys.exc_info()))
    assert record.exc_info is not None and record.exc_text is None
    assert "plain failure" in _text(record)


def test_preformatted_exception_and_stack_text() -> None:
    record = logging.makeLogRecord({"msg": "from elsewhere", "exc_text": f"Traceback...\nCookie: {SECRET}",
                                    "stack_info": f"Stack (most recent call last):\n  token={SECRET}"})
    RedactingFilter().filter(record)
    assert SECRET not in _text(record) and SECRET not in record.exc_text + record.stack_info


def test_a_failing_redaction_withholds_the_record() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        __repr__ = __str__

    record = redact_record(_record("value %s", (Hostile(),)))
    assert record.msg.startswith("[log record withheld") and record.args == ()


def test_stack_info_of_a_real_call() -> None:
    with register_secrets([SECRET]):
        record = _record("x")
        record.stack_info = "".join(traceback.format_stack()) + f"  # {SECRET}"
        redact_record(record)
    assert SECRET not in record.stack_info


# ------------------------------------------------------------------------------------------------
# Installation: every logger, the user's handlers, idempotent
# ------------------------------------------------------------------------------------------------


def test_every_logger_is_covered_once_installed(own_factory, caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep(logging.DEBUG)
    child = logging.getLogger("tests.redaction.lib.http11")  # a child no filter was ever put on
    child.addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG):
            child.debug("receive_response_headers.complete return_value=%r", [(b"set-cookie", SECRET.encode())])
            logging.getLogger("tests.redaction.other").info("Authorization: Bearer %s", SECRET)
    finally:
        child.removeHandler(handler)
    assert len(caplog.records) == 2 and SECRET not in caplog.text
    assert seen and all(SECRET not in _text(record) for record in seen)


def test_install_is_idempotent_and_keeps_wrappers(own_factory) -> None:
    install_log_redaction()
    ours = logging.getLogRecordFactory()
    install_log_redaction()
    assert logging.getLogRecordFactory() is ours

    created: list[str] = []

    def wrapper(*args, **kwargs):  # another library's factory, chaining ours
        created.append(args[0])
        return ours(*args, **kwargs)

    logging.setLogRecordFactory(wrapper)
    install_log_redaction()
    assert logging.getLogRecordFactory() is wrapper and created == ["vidbridge.redaction"]  # one probe

    logging.setLogRecordFactory(logging.LogRecord)  # someone replaced the factory without chaining
    install_log_redaction()
    assert logging.getLogRecordFactory() is not logging.LogRecord
    assert SECRET not in logging.getLogRecordFactory()("x", logging.INFO, "f", 1, "Cookie: " + SECRET, (), None).msg


def test_registering_installs(own_factory) -> None:
    logging.setLogRecordFactory(logging.LogRecord)
    register_secrets(["0123456789"]).release()
    assert hasattr(logging.getLogRecordFactory()("x", logging.INFO, "f", 1, "m", (), None), redaction._MARK)
