"""Secrets out of every log line: cookies, auth headers, passwords, tokens, API-key headers.

Where secrets showed up (``vidbridge generate -vv`` against the mock behind gradio auth): httpcore's
debug trace prints response headers as byte tuples, ``receive_response_headers.complete
return_value=(b'HTTP/1.1', 200, b'OK', [(b'set-cookie', b'access-token-...=...; HttpOnly')])``: the
gradio login cookie, with which ``curl --cookie`` logs anyone in. httpx prints request URLs (with
user info and query) and tracebacks quote URLs and header mappings.

Decisions:

1. **Where records are caught: the log record factory.** A :class:`logging.Filter` on a logger sees
   only records created on that very logger, not on its children (httpcore logs on
   ``httpcore.http11``, ``httpcore.connection``, ``httpcore.proxy``, ``httpcore.http2``; libraries
   add loggers as they are imported), and a filter on a handler only helps for handlers we know of.
   :func:`install_log_redaction` therefore wraps the process's record factory
   (:func:`logging.setLogRecordFactory`): every record of every logger is redacted when it is
   created, before any filter, handler or formatter sees it (the CLI's stderr, a Python user's own
   handlers, pytest's caplog, a QueueHandler). The previous factory is chained, not replaced. The
   call is idempotent and cheap: if the current factory is not ours, one probe record tells whether
   our redaction is somewhere in its chain (another library may have wrapped ours), and only if not
   is it wrapped again. :class:`vidbridge.Client` calls it on creation, the CLI in ``main()``.
   :class:`RedactingFilter` is the same redaction as a filter, for handlers fed records built
   elsewhere (e.g. :func:`logging.makeLogRecord` in a socket or queue listener).
2. **What is redacted: patterns, plus the exact values vidbridge holds.** Patterns (always): the
   values of headers, cookies and fields whose names say secret (``Cookie``, ``Set-Cookie``,
   ``Authorization``, ``Proxy-Authorization``, ``x-hf-authorization``, ``X-Api-Key``, anything with
   ``token``, ``secret``, ``password``, ``api-key``, ``csrf``, ``session-id``...) in the shapes they are
   printed in: ``Name: value`` header lines (to the end of the line), ``('name', 'value')`` and
   ``(b'name', b'value')`` tuples, ``{'name': 'value'}`` dicts and JSON, ``name=value`` queries and
   forms, ``<Cookie name=value for ...>``; user info in URLs; ``Bearer ...``; Hugging Face tokens
   (``hf_...``). Exact values: the secrets vidbridge is given or receives (a
   :class:`~vidbridge.Credentials`' password, token and header values, and their URL-encoded forms;
   the cookies a login returned), and the names of the user's own headers (an API key may travel
   under any name), registered with :func:`register_secrets` / :func:`register_credentials`.
   **They are not kept forever**: a registration lives as long as the session using it (released
   when it closes) or its owner object (``weakref.finalize``); only live values are matched.
   Values shorter than 4 characters are not matched by value (that would blank every number of
   every line); the patterns still hide them where they are printed as header or field values.
   How: each shape is a regular expression that finds *a* name with its value, and the name
   decides (a secret word in it, or a registered name). One search of the lower-cased line for
   those words skips the shapes on the many lines that name nothing secret.
3. **Formatting-safe.** The message is formatted once (``record.getMessage()``); only if redaction
   changes it do ``msg``/``args`` become the redacted text and ``()``: records without secrets keep
   their template and arguments (aggregators group by template). A record whose arguments do not
   format is turned into its text plus the arguments' repr, redacted (logging's own error report
   would print the raw arguments). Traceback text is formatted and redacted at creation; when it held
   a secret, ``exc_info`` is dropped and only the redacted ``exc_text`` kept, so no handler can
   render the exception again with the secret. ``stack_info`` is redacted too. Should redaction
   itself fail, the record's text is withheld rather than passed on unredacted.

Cost (record creation, measured on the 2-core development machine): about +5 µs for an ordinary
record, +7 µs for httpcore's 216-character header line without secrets, 50 to 90 µs for
one with a ``set-cookie`` (the shapes run); ``install_log_redaction()`` when installed: 0.1 µs.
Loggers not enabled for a level create no record, so with logging off nothing is spent.

Limits: ``extra=`` fields of a record are not inspected; code that later installs a record factory
without chaining the previous one switches this off until vidbridge next creates a Client; output
that bypasses :mod:`logging` (``print``, ``warnings`` without ``logging.captureWarnings``) is not
covered.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:  # pragma: no cover
    from .models import Credentials

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "SecretRegistration",
    "install_log_redaction",
    "redact_record",
    "redact_text",
    "register_credentials",
    "register_secrets",
]

#: What a hidden value is replaced with.
REDACTED = "[redacted]"

#: Known values shorter than this are not matched by value (see the module docstring).
MIN_VALUE_LENGTH = 4

# A header, cookie or field name that says its value is secret, searched in the lower-cased name
# ("set-cookie", "x-hf-authorization", "x-api-key", "access-token-3f..", "password"). Lower-casing
# first is ten times faster than re.IGNORECASE, which disables the regex engine's prefix scan.
_SECRET_WORD = re.compile(
    r"cookie|authorization|auth[-_]?token|api[-_]?key|apikey|access[-_]?key|private[-_]?key|secret"
    r"|passw(?:or)?d|token|csrf|xsrf|session[-_]?id|signature"
)
_QUOTED = r"(?P<q>['\"])(?P<v>(?:\\.|(?!(?P=q))[^\\\r\n])*)(?P=q)"
# The shapes a name and its value are printed in. Each match ends before the value (a lookahead
# captures it as group v), so the value of a name that is not secret is still searched for names.
_NAMED_SHAPES = tuple(re.compile(pattern) for pattern in (
    # ('name', 'value') and (b'name', b'value'): httpx/httpcore header lists
    rf"\(\s*b?(?P<nq>['\"])(?P<n>[\w-]+)(?P=nq)\s*,\s*b?(?={_QUOTED}\s*\))",
    # {'name': 'value'}, {"name": "value"}: dicts and JSON
    rf"(?P<nq>['\"])(?P<n>[\w-]+)(?P=nq)\s*:\s*b?(?={_QUOTED})",
    # name='value', name: "value"
    rf"(?<![\w.-])(?P<n>[\w-]+)\s*[=:]\s*b?(?={_QUOTED})",
    # Name: value   (a header line: to the end of the line)
    r"(?<![\w.-])(?P<n>[\w-]+)[ \t]*:[ \t]*(?=(?P<v>[^\s'\"][^\r\n]*))",
    # name=value    (queries, forms, cookie strings)
    r"(?<![\w.-])(?P<n>[\w-]+)=(?=(?P<v>[^\s&;,'\"<>()\[\]{}]+))",
))
# Secrets recognised by their surroundings, each with a substring that must be present first.
_OTHER_SHAPES = (
    # <Cookie name=value for host/>   (http.cookiejar's repr, whatever the cookie's name)
    ("<cookie ", re.compile(r"<Cookie [^\s=]+=(?P<v>[^\s>]*) for ")),
    # scheme://user:password@host
    ("@", re.compile(r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]*://(?P<v>[^\s/?#@'\"<>]+)@")),
    ("bearer", re.compile(r"\bBearer\s+(?P<v>[\w.~+/=-]+)", re.IGNORECASE)),
    ("hf_", re.compile(r"(?<![A-Za-z0-9])(?P<v>hf_[A-Za-z0-9]{20,})(?![A-Za-z0-9])")),
)
_MARK = "_vidbridge_redacted"


def _blank(match: re.Match[str]) -> str:
    """The match with its group ``v`` replaced by :data:`REDACTED`."""
    start, end = match.span("v")
    text, offset = match.group(0), match.start()
    return text[: start - offset] + REDACTED + text[end - offset :]


class _Rules:
    """What to redact for one state of the registry (immutable; swapped as a whole)."""

    def __init__(self, values: Iterable[str], names: Iterable[str]) -> None:
        self.names = frozenset(name.lower() for name in names)
        known = sorted({value for value in values if len(value) >= MIN_VALUE_LENGTH}, key=len, reverse=True)
        self.values = re.compile("|".join(map(re.escape, known))) if known else None

    def is_secret(self, name: str) -> bool:
        """Whether a header/cookie/field of this name carries a secret value."""
        name = name.lower()
        return name in self.names or _SECRET_WORD.search(name) is not None

    def redact(self, text: str) -> str:
        lowered = text.lower()
        # Most lines name nothing secret: one search decides, the shapes run only when needed.
        if _SECRET_WORD.search(lowered) or any(name in lowered for name in self.names):
            for shape in _NAMED_SHAPES:
                text = self._blank_secret_values(shape, text)
        for marker, pattern in _OTHER_SHAPES:
            if marker in lowered:
                text = pattern.sub(_blank, text)
        if self.values is not None:
            text = self.values.sub(REDACTED, text)
        return text

    def _blank_secret_values(self, shape: re.Pattern[str], text: str) -> str:
        pieces: list[str] = []
        done = 0
        for match in shape.finditer(text):
            if match.start() < done or not self.is_secret(match.group("n")):
                continue  # a name inside a value already blanked, or a name that is not secret
            start, end = match.span("v")
            pieces += (text[done:start], REDACTED)
            done = end
        return "".join((*pieces, text[done:])) if pieces else text


class _Registry:
    """The secrets of live sessions: values and header names, by registration key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        self._entries: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
        self.rules = _Rules((), ())  # read without the lock: replaced as a whole, never mutated

    def add(self, values: frozenset[str], names: frozenset[str]) -> int:
        with self._lock:
            key = next(self._keys)
            self._entries[key] = (values, names)
            self._rebuild()
        return key

    def discard(self, key: int) -> None:
        with self._lock:
            self._entries.pop(key, None)  # each registration discards its key once
            self._rebuild()

    def __len__(self) -> int:
        return len(self._entries)

    def _rebuild(self) -> None:
        entries = list(self._entries.values())
        self.rules = _Rules(
            itertools.chain.from_iterable(values for values, _ in entries),
            itertools.chain.from_iterable(names for _, names in entries),
        )


_registry = _Registry()


class SecretRegistration:
    """A handle on registered secrets: :meth:`release` (or leaving ``with``) forgets them.

    Holds no secret itself, only the registry's key.
    """

    def __init__(self, key: int | None, owner: object | None) -> None:
        self._key = key
        self._finalizer = None
        if key is not None and owner is not None:
            # the callback must not refer to the owner, or the owner would never be collected
            self._finalizer = weakref.finalize(owner, _registry.discard, key)

    @property
    def active(self) -> bool:
        """True until released (explicitly or by the owner's collection)."""
        if self._finalizer is not None:
            return self._finalizer.alive
        return self._key is not None

    def release(self) -> None:
        """Stop redacting these values by value (patterns still apply). Idempotent."""
        if self._finalizer is not None:
            self._finalizer()  # runs discard once, then is dead
        elif self._key is not None:
            _registry.discard(self._key)
        self._key = None

    def __enter__(self) -> SecretRegistration:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<SecretRegistration {'active' if self.active else 'released'}>"


def _forms(value: str) -> set[str]:
    """The ways ``value`` may be printed: as is, URL-encoded, and its last word ("Bearer <this>")."""
    forms = {value, quote(value, safe=""), quote_plus(value)}
    forms.update(value.split()[-1:])
    return forms


def register_secrets(values: Iterable[str] = (), *, names: Iterable[str] = (),
                     owner: object | None = None) -> SecretRegistration:
    """Redact ``values`` (and their URL-encoded forms) in every log line until released.

    :param values: secret strings (e.g. cookie values received at login).
    :param names: header or field names whose values are secret (e.g. a proxy's API-key header).
    :param owner: release automatically when this object is garbage-collected (it must support
        weak references); without an owner, call :meth:`SecretRegistration.release`.
    :returns: the registration; with nothing to register it is already inactive.

    Also installs the log redaction (:func:`install_log_redaction`).
    """
    install_log_redaction()
    forms = frozenset(itertools.chain.from_iterable(_forms(value) for value in values if value))
    names = frozenset(name for name in names if name)
    if not forms and not names:
        return SecretRegistration(None, None)
    return SecretRegistration(_registry.add(forms, names), owner)


def register_credentials(credentials: Credentials, *, owner: object | None = None) -> SecretRegistration:
    """:func:`register_secrets` for a :class:`~vidbridge.Credentials`: its password, token and
    header values, and its header names. The username is not a secret and stays visible."""
    values = [secret.get_secret_value() for secret in (credentials.password, credentials.token) if secret is not None]
    values += credentials.header_values().values()
    return register_secrets(values, names=credentials.headers.keys(), owner=owner)


def redact_text(text: str) -> str:
    """``text`` with secrets replaced by :data:`REDACTED` (patterns and live registered values)."""
    return _registry.rules.redact(text)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact ``record`` in place (message, arguments, traceback and stack text); returns it.

    Done once per record content: a record already redacted is returned unchanged, unless its
    message, arguments or texts were replaced since (as :func:`logging.makeLogRecord` does after
    creating a record through the factory).
    """
    if getattr(record, _MARK, None) == _content(record):
        return record
    try:
        _redact(record, _registry.rules)
    except Exception as exc:  # never pass a record on unredacted, and never break the caller's logging
        record.msg = f"[log record withheld: redaction failed with {type(exc).__name__}]"
        record.args = ()
        record.exc_info = record.exc_text = record.stack_info = None
    setattr(record, _MARK, _content(record))
    return record


class _Same:
    """Compares by identity (never calls the objects' own ``__eq__``)."""

    __slots__ = ("item",)

    def __init__(self, item: object) -> None:
        self.item = item

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.item is self.item

    __hash__ = None  # type: ignore[assignment]


def _content(record: logging.LogRecord) -> tuple[_Same, ...]:
    return tuple(_Same(item) for item in (record.msg, record.args, record.exc_info, record.exc_text, record.stack_info))


def _redact(record: logging.LogRecord, rules: _Rules) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - any error of the caller's format string or arguments
        record.msg = rules.redact(f"{record.msg} (arguments that did not format: {record.args!r})")
        record.args = ()
    else:
        clean = rules.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = rules.redact(text)
        if clean != text:
            record.exc_text, record.exc_info = clean, None
    elif record.exc_text:
        record.exc_text = rules.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = rules.redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """A filter that redacts each record it sees (never drops one); see :func:`redact_record`.

    Not needed for records created in this process once :func:`install_log_redaction` ran; add
    it to a handler that receives records built elsewhere (a socket or queue listener).
    """

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 - logging's name
        """Redact ``record`` in place; always keep it."""
        redact_record(record)
        return True


_install_lock = threading.Lock()
_our_factory: Callable[..., logging.LogRecord] | None = None


def _redacts(factory: Callable[..., logging.LogRecord]) -> bool:
    probe = factory("vidbridge.redaction", logging.DEBUG, __file__, 0, "probe", (), None)
    return getattr(probe, _MARK, None) is not None


def install_log_redaction() -> None:
    """Redact every log record this process creates, from now on (see the module docstring).

    Idempotent and cheap; safe to call from any thread. Called by :class:`vidbridge.Client` and the
    command line, so hosts need not call it.
    """
    global _our_factory
    if logging.getLogRecordFactory() is _our_factory:
        return
    with _install_lock:
        current = logging.getLogRecordFactory()
        if current is _our_factory or _redacts(current):
            return

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return redact_record(current(*args, **kwargs))

        _our_factory = factory
        logging.setLogRecordFactory(factory)
