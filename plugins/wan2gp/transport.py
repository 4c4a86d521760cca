"""gradio_client's queue transport, pooled and event-driven (gradio_client 2.7 only).

What stock gradio_client 2.7.2 does per call, and what it costs (measured with py-spy on a job
loop against a subprocess mock: 44% of the client's CPU was ``ssl.create_default_context``):

* ``Client.send_data`` (``POST /queue/join``) opens a throw-away ``httpx`` client: a new
  ``SSLContext`` (certifi bundle parsed) and a new TCP connection for every call;
* ``Client.stream_messages`` (``GET /queue/data``, the SSE result stream) does the same per stream;
* ``utils.get_pred_from_sse_v1plus`` starts two helper threads per call that sleep-poll every
  50 ms (one for the event's messages, one for cancellation) for as long as the call runs.

:class:`PooledTransport` (mixed into :class:`~.connection.FastClient`) sends both over one pooled
``httpx.Client`` per gradio session and wakes the waiting call through a condition variable tied
to gradio_client's own ``pending_lock`` instead of polling. The message handling is a copy of
gradio_client 2.7.2's (same ``StatusUpdate``/``OutputUpdate`` objects, same diffs, same
``Communicator``), so ``Job.result()/status()/cancel()`` behave as before.

One behaviour is added: a result stream refused *before it started* (HTTP 429/5xx, or a
connection reset with no answer) while events are pending is re-opened (a few tries, Retry-After
honoured up to 2 s). That is safe: the server keeps a session's messages until a stream reads
them, and a request that never reached the app cannot have cancelled anything. A stream cut after
it started is *not* re-opened (the server may have dropped the session's events); the calls
waiting on it end with ``CancelledError`` as before and the job decides what is safe.

Other gradio_client versions keep their stock behaviour (:data:`ENABLED` is false).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import socket
import threading
import weakref
from collections import deque
from datetime import datetime
from typing import Any, Callable

import gradio_client
import httpx
from gradio_client.exceptions import ValidationError
from gradio_client.utils import (
    OutputUpdate,
    ProgressUnit,
    QueueError,
    ServerMessage,
    Status,
    StatusUpdate,
    apply_diff,
    extract_validation_message,
)

__all__ = ["ENABLED", "SignalQueue", "PooledTransport", "follow_event"]

log = logging.getLogger("vidbridge.plugins.wan2gp")

#: The overrides copy gradio_client 2.7's internals: anything else runs stock gradio_client.
ENABLED = gradio_client.__version__.startswith("2.7.")

_STREAM_RETRIES = 5
_SAFETY_WAKE = 30.0  # a waiting call re-checks its state at least this often (no busy loop)


class SignalQueue(asyncio.Queue):
    """gradio_client's per-call update queue (``Communicator.updates``) that also calls listeners
    on every put: a job waits on an event instead of polling the queue."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: list[Callable[[], None]] = []

    def listen(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
        listener()  # updates may have arrived before the listener: let it drain them

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        for listener in list(self._listeners):
            listener()


class _Refused(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


class PooledTransport:
    """Overrides of ``gradio_client.Client`` methods (a mixin placed before ``Client``)."""

    _http: httpx.Client | None = None
    _arrived: threading.Condition

    def _init_transport(self, heartbeat: bool) -> None:
        """Call at the end of ``__init__``: the pooled client, the wake-up condition and (when the
        server wants one and gradio_client's own was not started) the session heartbeat."""
        self._arrived = threading.Condition(self.pending_lock)  # type: ignore[attr-defined]
        self._heartbeat_socket: Any = None
        self._stream_socket: Any = None
        if ENABLED:
            self._http = httpx.Client(verify=self.ssl_verify, cookies=self.cookies or None,  # type: ignore[attr-defined]
                                      **self.httpx_kwargs)  # type: ignore[attr-defined]
            if heartbeat:
                self._heartbeat_thread = threading.Thread(
                    target=_heartbeat, args=(weakref.ref(self), self._kill_heartbeat),  # type: ignore[attr-defined]
                    name="wan2gp-heartbeat", daemon=True)
                self._heartbeat_thread.start()

    def _close_transport(self) -> None:
        self._kill_heartbeat.set()  # type: ignore[attr-defined]
        for sock in (self._heartbeat_socket, self._stream_socket):
            if sock is not None:
                try:  # wakes a reader thread out of its blocking read at once
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        http, self._http = self._http, None
        if http is not None:
            try:
                http.close()
            except Exception:  # pragma: no cover - closing never matters more than the caller
                pass
        thread = getattr(self, "_heartbeat_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    def new_helper(self, fn_index: int, headers: dict[str, str] | None = None) -> Any:
        helper = super().new_helper(fn_index, headers)  # type: ignore[misc]
        helper.updates = SignalQueue()
        return helper

    # -- POST /queue/join -------------------------------------------------------------------

    def send_data(self, data: dict, hash_data: dict, protocol: str, request_headers: dict | None) -> str:
        http = self._http
        if http is None:
            return super().send_data(data, hash_data, protocol, request_headers)  # type: ignore[misc]
        headers = self.add_zero_gpu_headers(self.headers)  # type: ignore[attr-defined]
        if request_headers is not None:
            headers = {**request_headers, **headers}
        req = http.post(self.sse_data_url, json={**data, **hash_data}, headers=headers)  # type: ignore[attr-defined]
        if req.status_code == 503:
            raise QueueError("Queue is full! Please try again.")
        if (validation_message := extract_validation_message(req)) is not None:
            raise ValidationError(validation_message)
        req.raise_for_status()
        event_id = req.json()["event_id"]
        with self.pending_lock:  # type: ignore[attr-defined]
            open_reader = not self.stream_open  # type: ignore[has-type]
            if open_reader:
                self.stream_open = True
                self.stream_epoch += 1  # type: ignore[attr-defined]
            epoch = self.stream_epoch  # type: ignore[attr-defined]
            self.pending_event_ids.add(event_id)  # type: ignore[attr-defined]
            self.pending_messages_per_event.setdefault(event_id, deque())  # type: ignore[attr-defined]
            self.pending_event_epoch[event_id] = epoch  # type: ignore[attr-defined]
            live = set(self.pending_messages_per_event)  # type: ignore[attr-defined]
            self.pending_event_ids &= live  # type: ignore[attr-defined]
            self.pending_event_epoch = {eid: tagged for eid, tagged in self.pending_event_epoch.items()
                                        if eid in live}
        if open_reader:
            def open_stream() -> None:
                return self.stream_messages(protocol, session_hash=hash_data["session_hash"])

            def close_stream(future: Any) -> None:
                with self._arrived:
                    if self.streaming_future is future:  # type: ignore[has-type]
                        self.streaming_future = None
                    if self.stream_epoch == epoch:  # type: ignore[attr-defined]
                        self.stream_open = False
                    for eid, messages in self.pending_messages_per_event.items():  # type: ignore[attr-defined]
                        if self.pending_event_epoch.get(eid, epoch + 1) <= epoch:
                            messages.append(None)
                    self._arrived.notify_all()

            self.streaming_future = self.stream_executor.submit(open_stream)  # type: ignore[attr-defined]
            self.streaming_future.add_done_callback(close_stream)
        return event_id

    # -- GET /queue/data (SSE) ---------------------------------------------------------------

    def stream_messages(self, protocol: str, session_hash: str) -> None:
        http = self._http
        if http is None:
            return super().stream_messages(protocol, session_hash)  # type: ignore[misc]
        attempt = 0
        while True:
            started = False
            try:
                with http.stream("GET", self.sse_url, params={"session_hash": session_hash},  # type: ignore[attr-defined]
                                 headers=self.headers) as response:  # type: ignore[attr-defined]
                    if response.status_code != 200:
                        from vidbridge.httperrors import retry_after_seconds

                        raise _Refused(response.status_code, retry_after_seconds(response.headers.get("Retry-After")))
                    started = True
                    stream = response.extensions.get("network_stream")
                    self._stream_socket = stream.get_extra_info("socket") if stream is not None else None
                    self._read_stream(response, protocol)
                    return
            except (_Refused, httpx.TransportError) as exc:
                if started or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                    log.debug("result stream ended: %s", type(exc).__name__)
                    return  # the pending calls end through close_stream
                attempt += 1
                with self.pending_lock:  # type: ignore[attr-defined]
                    pending = bool(self.pending_event_ids)  # type: ignore[attr-defined]
                if attempt > _STREAM_RETRIES or not pending:
                    return
                delay = getattr(exc, "retry_after", None)
                delay = min(2.0, delay if delay is not None else 0.1 * 2 ** attempt)
                log.debug("result stream refused (%s); opening it again in %.2f s", exc, delay)
                if self._kill_heartbeat.wait(delay):  # type: ignore[attr-defined]  # the client is closing
                    return

    def _read_stream(self, response: httpx.Response, protocol: str) -> None:
        buffer = b""
        for chunk in response.iter_bytes():
            buffer += chunk
            while b"\n\n" in buffer:
                line_bytes, buffer = buffer.split(b"\n\n", 1)
                line = line_bytes.decode("utf-8").rstrip("\n")
                if not line:
                    continue
                if not line.startswith("data:"):
                    raise ValueError(f"Unexpected SSE line: '{line}'")
                resp = json.loads(line[5:])
                if resp["msg"] == ServerMessage.heartbeat:
                    continue
                if resp.get("message", "") == ServerMessage.server_stopped:
                    with self._arrived:
                        for pending in self.pending_messages_per_event.values():  # type: ignore[attr-defined]
                            pending.append(resp)
                        self._arrived.notify_all()
                    return
                if resp["msg"] == ServerMessage.close_stream:
                    with self.pending_lock:  # type: ignore[attr-defined]
                        self.stream_open = False
                    return
                event_id = resp["event_id"]
                with self._arrived:
                    queue = self.pending_messages_per_event.setdefault(event_id, deque())  # type: ignore[attr-defined]
                    queue.append(resp)
                    if resp["msg"] == ServerMessage.process_completed:
                        self.pending_event_ids.discard(event_id)  # type: ignore[attr-defined]
                    close = len(self.pending_event_ids) == 0 and protocol != "sse_v3"  # type: ignore[attr-defined]
                    if close:
                        self.stream_open = False
                    self._arrived.notify_all()
                if close:
                    return


def _heartbeat(client_ref: Any, kill: threading.Event) -> None:
    """gradio_client's session heartbeat (``GET /heartbeat/<session>``, kept open: the server
    keeps the session's state while it is connected), over the pooled client, retried with
    back-off, and ended at once by :meth:`PooledTransport._close_transport`."""
    delay = 0.5
    while not kill.is_set():
        client = client_ref()
        if client is None or client._http is None:
            return
        http, headers = client._http, client.headers
        url = client.heartbeat_url.format(session_hash=client.session_hash)
        del client
        try:
            with http.stream("GET", url, headers=headers) as response:
                if not response.is_success and not (response.is_server_error or response.status_code == 429):
                    return
                if response.is_success:
                    stream = response.extensions.get("network_stream")
                    owner = client_ref()
                    if owner is not None and stream is not None:
                        owner._heartbeat_socket = stream.get_extra_info("socket")
                    del owner
                    for _ in response.iter_lines():
                        delay = 0.5
                        if kill.is_set():
                            return
        except Exception:  # noqa: BLE001 - a lost heartbeat is retried; closing ends the loop
            if kill.is_set():
                return
        if kill.wait(delay):
            return
        delay = min(delay * 2, 10.0)


def follow_event(client: Any, helper: Any, event_id: str, protocol: str) -> dict[str, Any]:
    """gradio_client 2.7.2's ``stream_sse_v1plus`` + ``check_for_cancel``, waking on messages
    (``client._arrived``) and on ``Job.cancel()`` instead of two 50 ms polling threads."""
    helper.thread_complete = False
    arrived: threading.Condition = client._arrived
    try:
        with arrived:
            pending = client.pending_messages_per_event[event_id]
        diffs: list[Any] | None = None
        while True:
            with arrived:
                while not pending and not helper.should_cancel:
                    arrived.wait(_SAFETY_WAKE)
                msg = None if helper.should_cancel else pending.popleft()
                cancel = helper.should_cancel
            if cancel:
                http = client._http
                if helper.event_id and http is not None:
                    try:
                        http.post(helper.reset_url, json={"event_id": helper.event_id}, headers=client.headers)
                    except httpx.HTTPError:
                        pass
                raise concurrent.futures.CancelledError()
            if msg is None:
                raise concurrent.futures.CancelledError()
            with helper.lock:
                log_message = None
                if msg["msg"] == ServerMessage.log:
                    text, level = msg.get("log"), msg.get("level")
                    if text and level:
                        log_message = (text, level)
                status_update = StatusUpdate(
                    code=Status.msg_to_status(msg["msg"]), queue_size=msg.get("queue_size"),
                    rank=msg.get("rank", None), success=msg.get("success"), time=datetime.now(),
                    eta=msg.get("rank_eta"),
                    progress_data=ProgressUnit.from_msg(msg["progress_data"]) if "progress_data" in msg else None,
                    log=log_message,
                )
                output = msg.get("output", {}).get("data", [])
                if msg["msg"] == ServerMessage.process_generating and protocol in ("sse_v2", "sse_v2.1", "sse_v3"):
                    if diffs is None:
                        diffs = list(output)
                    else:
                        for i, value in enumerate(output):
                            if i >= len(diffs):
                                diffs.append(None)
                            diffs[i] = apply_diff(diffs[i], value)
                            output[i] = diffs[i]
                if output and status_update.code != Status.FINISHED:
                    try:
                        result = helper.prediction_processor(*output)
                    except Exception as e:  # noqa: BLE001 - as gradio_client
                        result = [e]
                    helper.job.outputs.append(result)
                    helper.updates.put_nowait(OutputUpdate(outputs=result, success=msg.get("success", True)))
                helper.job.latest_status = status_update
                helper.updates.put_nowait(status_update)
            if msg["msg"] == ServerMessage.process_completed:
                with arrived:
                    client.pending_messages_per_event.pop(event_id, None)
                final = dict(msg["output"].items()) if not msg.get("success", True) else msg["output"]
                helper.updates.put_nowait(OutputUpdate(outputs=final, final=True, success=msg.get("success", True)))
                return msg["output"]
            if msg["msg"] == ServerMessage.server_stopped:
                raise ValueError("Server stopped.")
    finally:
        helper.thread_complete = True


def wake_on_cancel(client: Any, cancel: Callable[[], None] | None) -> Callable[[], None] | None:
    """Wrap an Endpoint's cancel function so a call waiting in :func:`follow_event` wakes up."""
    if cancel is None:
        return None

    def _cancel() -> None:
        try:
            cancel()
        finally:
            arrived = getattr(client, "_arrived", None)
            if arrived is not None:
                with arrived:
                    arrived.notify_all()

    return _cancel
