"""A real HTTP server on loopback speaking the Anthropic Messages and OpenAI Chat Completions APIs,
and both batch APIs (Anthropic's Message Batches; OpenAI's Files and Batch).

The official SDKs talk to it over a socket, as they would to the real services. Answers come
from a script (request JSON in, answer text out); faults are injected per request number or
every n-th request. Every request is recorded (path, headers less credentials, JSON body) so
tests can assert what the SDKs actually sent.

A batch stays in progress for `batch_polls` retrieves (or while `hold_batches` is set), then
ends; its requests are answered by the same script. Batch faults are set per batched request
(counting from 1 over every batch): `expired`, `errored` (a transient `overloaded_error`, a
500 on OpenAI's side), `invalid` (a 400 `invalid_request_error`), `canceled`;
`cancel_batch(n)` cancels the n-th batch as a whole (its requests end canceled).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "BatchFault",
    "FakeAPI",
    "Fault",
    "Recorded",
    "Script",
    "canonical_answers",
    "cut",
    "dropped",
    "error_event",
    "malformed",
    "overloaded",
    "rate_limited",
    "server_error",
    "slow",
    "status",
    "truncated",
]

Script = Callable[[dict[str, Any]], str]

FaultKind = Literal["status", "drop", "cut", "truncate", "malformed", "slow", "error_event"]
BatchFault = Literal["expired", "errored", "invalid", "canceled"]


@dataclass(frozen=True)
class Fault:
    """One injected failure; build them with the functions below."""

    kind: FaultKind
    status: int = 0
    message: str = ""
    retry_after: str | None = None
    retry_after_ms: str | None = None
    delay_s: float = 0.0
    # For faults inside a stream: how many text deltas go out before it.
    after_deltas: int = 2


def rate_limited(retry_after: float | None = 1, *, retry_after_ms: float | None = None) -> Fault:
    return Fault(
        "status",
        429,
        "Rate limited: slow down.",
        retry_after=None if retry_after is None else f"{retry_after:g}",
        retry_after_ms=None if retry_after_ms is None else f"{retry_after_ms:g}",
    )


def overloaded() -> Fault:
    return Fault("status", 529, "Overloaded")


def server_error() -> Fault:
    return Fault("status", 500, "Internal server error")


def status(code: int, message: str) -> Fault:
    return Fault("status", code, message)


def dropped() -> Fault:
    """Close the socket after reading the request, without any response."""
    return Fault("drop")


def cut(after_deltas: int = 2) -> Fault:
    """Close the socket mid-stream: no final events, no end of the chunked body."""
    return Fault("cut", after_deltas=after_deltas)


def truncated(after_deltas: int = 2) -> Fault:
    """End the body cleanly mid-message, before the stream's final events."""
    return Fault("truncate", after_deltas=after_deltas)


def malformed(after_deltas: int = 1) -> Fault:
    """One stream event whose data is not JSON; the rest of the stream is normal."""
    return Fault("malformed", after_deltas=after_deltas)


def error_event(after_deltas: int = 1) -> Fault:
    """An in-stream `overloaded_error` event (Anthropic) or error chunk (OpenAI), then the end."""
    return Fault("error_event", after_deltas=after_deltas)


def slow(delay_s: float) -> Fault:
    """Wait before the first byte of the response."""
    return Fault("slow", delay_s=delay_s)


@dataclass(frozen=True)
class Recorded:
    number: int
    method: str
    path: str
    # Lower-cased names; `authorization` and `x-api-key` are left out.
    headers: dict[str, str]
    body: dict[str, Any] | None
    # Whether the request carried the server's key (True when the server wants none).
    authorized: bool
    fault: FaultKind | None


def echo(request: dict[str, Any]) -> str:
    """Default script: repeat the last user message."""
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    return f"echo: {_content_text(users[-1]['content'])}" if users else "echo"


def canonical_answers(tasks: Sequence[Any], wrong_every: int = 6) -> Script:
    """A script that answers each task's chat prompt with its canonical solution in a code
    block, as a model that solves it would, but for every `wrong_every`-th task (the 6th, 12th,
    ... in the order given), which it gets wrong: its speed and accuracy are set by the caller
    and say nothing about a real model.

    A fill-in-the-middle task (its `fim()` gives the prefix and suffix, which its chat prompt
    shows around `<FILL_ME>`) is answered with the canonical middle alone, the wrong one with
    `return None` at the middle's indentation; any other task with its prompt and canonical
    body, the wrong one `    return None`. A prompt of no task gets `pass`. A prefilled
    answer (the request's last turn the assistant's) goes on from where the prefill ends."""
    hole = "<FILL_ME>"
    middles: dict[str, str] = {}
    bodies: dict[str, str] = {}
    for n, task in enumerate(tasks):
        wrong = wrong_every > 0 and n % wrong_every == wrong_every - 1
        solution = task.canonical_solution or ""
        fim = task.fim()
        if fim is not None:
            indent = solution[: len(solution) - len(solution.lstrip(" \t"))]
            middle = f"{indent}return None\n" if wrong else solution
            middles[f"{fim[0]}{hole}{fim[1]}"] = middle if middle.endswith("\n") else middle + "\n"
        else:
            body = "    return None\n" if wrong else solution
            bodies[task.prompt.strip()] = f"{task.prompt}{body}"

    def answer(content: str) -> str:
        for shown, middle in middles.items():
            if shown in content:
                return f"```python\n{middle}```"
        for prompt, code in bodies.items():
            if prompt in content:
                return f"```python\n{code}```"
        return "```python\npass\n```"

    def script(request: dict[str, Any]) -> str:
        messages = request.get("messages", [])
        users = [m for m in messages if m.get("role") == "user"]
        text = answer(_content_text(users[0]["content"]) if users else "")
        # A prefilled answer (a final assistant turn) is continued, not repeated.
        if messages and messages[-1].get("role") == "assistant":
            prefill = _content_text(messages[-1].get("content"))
            text = text.removeprefix(prefill)
        return text

    return script


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_SAMPLING = ("temperature", "top_p", "top_k")


@dataclass
class FakeAPI:
    """Start with `with FakeAPI(script) as api:`; it listens on 127.0.0.1 only."""

    script: Script = echo
    # When set, requests must carry it (x-api-key or Bearer) or get a 401.
    api_key: str | None = None
    # Pause between stream events, so latency exceeds time to first token.
    chunk_delay_s: float = 0.0
    # Wait before answering each generation request (a network round trip and a prefill, as a
    # remote API's first token comes after them).
    first_token_delay_s: float = 0.0
    # False acts like servers that ignore `stream_options.include_usage`.
    stream_usage: bool = True
    # Prompt tokens reported as cache reads: Anthropic's `cache_read_input_tokens` (apart
    # from `input_tokens`), OpenAI's `prompt_tokens_details.cached_tokens` (within them).
    cached_tokens: int = 0
    # Prompt tokens Anthropic reports as written to the cache (`cache_creation_input_tokens`).
    cache_write_tokens: int = 0
    # Retrieves a batch answers `in_progress` before it ends; `hold_batches` keeps every batch
    # in progress until it is cleared.
    batch_polls: int = 1
    hold_batches: bool = False
    batches: dict[str, _Batch] = field(default_factory=dict, init=False)
    _batch_faults: dict[int, BatchFault] = field(default_factory=dict, init=False)
    _cancel_batches: set[int] = field(default_factory=set, init=False)
    _batched: int = field(default=0, init=False)
    _files: dict[str, bytes] = field(default_factory=dict, init=False)
    # A reasoning model's API: a script's leading `<think>…</think>` goes out as the
    # reasoning apart from the text (Anthropic's thinking blocks, when the request enables
    # thinking; OpenAI-compatible servers' `reasoning_content`), within the same token limit.
    reasoning: bool = False
    requests: list[Recorded] = field(default_factory=list, init=False)
    # The most generation requests the server was answering at once.
    max_in_flight: int = field(default=0, init=False)
    _in_flight: int = field(default=0, init=False)
    _faults: dict[int, Fault] = field(default_factory=dict, init=False)
    _every: list[tuple[int, Fault]] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def fail(self, request_number: int, fault: Fault) -> None:
        """Make the n-th POST (counting from 1) fail with `fault`."""
        self._faults[request_number] = fault

    def fail_every(self, n: int, fault: Fault) -> None:
        """Make every n-th POST fail with `fault` (a fault set with `fail` wins)."""
        self._every.append((n, fault))

    def fail_batched(self, request_number: int, fault: BatchFault) -> None:
        """Make the n-th batched request (counting from 1 over all batches) end with `fault`."""
        self._batch_faults[request_number] = fault

    def cancel_batch(self, batch_number: int) -> None:
        """Cancel the n-th batch created (counting from 1) as a whole."""
        self._cancel_batches.add(batch_number)

    def _new_batch(self, kind: Literal["anthropic", "openai"], requests: list[Any]) -> _Batch:
        with self._lock:
            number = len(self.batches) + 1
            batch_id = ("msgbatch_" if kind == "anthropic" else "batch_") + f"fake{number:04d}"
            entries: list[tuple[Any, BatchFault | None]] = []
            for request in requests:
                self._batched += 1
                fault = self._batch_faults.get(self._batched)
                if number in self._cancel_batches:
                    fault = "canceled"
                entries.append((request, fault))
            batch = _Batch(batch_id, kind, entries, self.batch_polls)
            self.batches[batch_id] = batch
        return batch

    def _poll(self, batch: _Batch) -> bool:
        """One retrieve of `batch`: whether it has ended."""
        with self._lock:
            if batch.ended:
                return True
            if self.hold_batches:
                return False
            batch.polls_left -= 1
            batch.ended = batch.polls_left < 0
            return batch.ended

    @property
    def batched_requests(self) -> int:
        """Requests sent in batches so far, over every batch."""
        return self._batched

    @property
    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def start(self) -> FakeAPI:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        # A short poll interval makes `stop` quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(
        self, method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[Recorded, Fault | None]:
        given = {headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer ")}
        authorized = self.api_key is None or self.api_key in given
        public = {k: v for k, v in headers.items() if k not in ("authorization", "x-api-key")}
        with self._lock:
            number, fault = 0, None
            if method == "POST":
                number = len(self.posts) + 1
                fault = self._faults.get(number)
                if fault is None:
                    fault = next((f for n, f in self._every if number % n == 0), None)
            kind = fault.kind if fault else None
            record = Recorded(number, method, path, public, body, authorized, kind)
            self.requests.append(record)
        return record, fault

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, closed pools) are normal here; anything else is not."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    api: FakeAPI
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections end on their own, so the server can stop.
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `api.requests` instead."""

    # --- routing -------------------------------------------------------------------------

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        record, _ = self.api._record("GET", self.path, headers, None)
        if not record.authorized:
            self._json(401, {"error": {"message": "Incorrect API key provided.", "type": "auth"}})
        elif self.path == "/v1/models":
            model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fakeapi"}
            self._json(200, {"object": "list", "data": [model]})
        elif match := re.fullmatch(r"/v1/messages/batches/([^/]+)(/results)?", self.path):
            batch = self.api.batches.get(match[1])
            if batch is None or batch.kind != "anthropic":
                self._error(True, 404, f"no batch {match[1]}")
            elif match[2]:
                if not batch.ended:
                    self._error(True, 400, "the batch has not ended: no results yet")
                else:
                    self._jsonl(batch.anthropic_results(self.api))
            else:
                self.api._poll(batch)
                self._json(200, batch.anthropic_object(self.api))
        elif match := re.fullmatch(r"/v1/batches/([^/]+)", self.path):
            batch = self.api.batches.get(match[1])
            if batch is None or batch.kind != "openai":
                self._error(False, 404, f"no batch {match[1]}")
            else:
                self.api._poll(batch)
                self._json(200, batch.openai_object(self.api))
        elif match := re.fullmatch(r"/v1/files/([^/]+)/content", self.path):
            data = self.api._files.get(match[1])
            if data is None:
                self._error(False, 404, f"no file {match[1]}")
            else:
                self._raw(data, "application/octet-stream")
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        self.api._enter()
        try:
            self._post()
        finally:
            self.api._leave()

    def _post(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = None
        if self.path == "/v1/files":
            body = None
        record, fault = self.api._record("POST", self.path, headers, body)
        if self.path in ("/v1/messages/batches", "/v1/files", "/v1/batches"):
            if not record.authorized:
                self._error(self.path.startswith("/v1/messages"), 401, "invalid API key")
            else:
                self._batch_post(headers, raw, body)
            return
        anthropic = self.path == "/v1/messages"
        if self.path not in ("/v1/messages", "/v1/chat/completions"):
            self._error(anthropic, 404, f"no route {self.path}")
            return
        if self.api.first_token_delay_s:
            time.sleep(self.api.first_token_delay_s)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
            fault = None
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None and fault.kind == "status":
            extra = {}
            if fault.retry_after is not None:
                extra["retry-after"] = fault.retry_after
            if fault.retry_after_ms is not None:
                extra["retry-after-ms"] = fault.retry_after_ms
            self._error(anthropic, fault.status, fault.message, extra)
            return
        if not record.authorized:
            message = "invalid x-api-key" if anthropic else "Incorrect API key provided."
            self._error(anthropic, 401, message)
            return
        if not isinstance(body, dict):
            self._error(anthropic, 400, "the request body is not valid JSON")
            return
        problem = _anthropic_problem(body) if anthropic else _openai_problem(body)
        if problem:
            self._error(anthropic, 400, problem)
            return
        answer = _Answer.make(body, self.api.script(body), anthropic, self.api)
        if not body.get("stream"):
            self._json(200, answer.anthropic_message() if anthropic else answer.openai_completion())
            return
        events = answer.anthropic_events() if anthropic else answer.openai_events()
        self._stream(events, fault)

    def _batch_post(self, headers: dict[str, str], raw: bytes, body: Any) -> None:
        """Create a message batch (Anthropic), upload a batch input file or create a batch
        (OpenAI), refusing what the real APIs refuse."""
        if self.path == "/v1/messages/batches":
            requests = body.get("requests") if isinstance(body, dict) else None
            if not isinstance(requests, list) or not requests:
                self._error(True, 400, "requests: at least one request is required")
                return
            for request in requests:
                params = request.get("params") or {}
                problem = _anthropic_problem(params)
                if "stream" in params:
                    problem = "params.stream: batched requests cannot stream"
                if problem or not request.get("custom_id"):
                    self._error(True, 400, f"requests: {problem or 'custom_id is required'}")
                    return
            batch = self.api._new_batch("anthropic", requests)
            self._json(200, batch.anthropic_object(self.api))
        elif self.path == "/v1/files":
            head = f"content-type: {headers.get('content-type', '')}\r\n\r\n".encode()
            form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
            fields = {
                part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                for part in form.iter_parts()
            }
            if fields.get("purpose") != b"batch" or not fields.get("file"):
                self._error(False, 400, "a batch input file needs purpose=batch and a file")
                return
            file_id = f"file-fake{len(self.api._files) + 1:04d}"
            self.api._files[file_id] = fields["file"]
            self._json(200, _file_object(file_id, len(fields["file"])))
        else:
            data = self.api._files.get(body.get("input_file_id", "")) if body else None
            if data is None or body.get("endpoint") != "/v1/chat/completions":
                self._error(False, 400, "input_file_id: no such file, or not /v1/chat/completions")
                return
            if body.get("completion_window") != "24h":
                self._error(False, 400, "completion_window: only 24h is supported")
                return
            lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
            for line in lines:
                problem = _openai_problem(line.get("body") or {})
                if line.get("url") != "/v1/chat/completions" or line.get("method") != "POST":
                    problem = "each line must POST to /v1/chat/completions"
                if (line.get("body") or {}).get("stream"):
                    problem = "batched requests cannot stream"
                if problem or not line.get("custom_id"):
                    self._error(False, 400, problem or "custom_id is required")
                    return
            batch = self.api._new_batch("openai", lines)
            batch.input_file_id = body["input_file_id"]
            self._json(200, batch.openai_object(self.api))

    # --- responses -----------------------------------------------------------------------

    def _raw(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _jsonl(self, lines: list[dict[str, Any]]) -> None:
        self._raw(_jsonl(lines), "application/x-jsonl")

    def _json(
        self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(
        self, anthropic: bool, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        if anthropic:
            kind = _ANTHROPIC_ERROR_TYPES.get(code, "api_error")
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": "req_fake",
            }
        else:
            payload = {"error": {"message": message, "type": "error", "param": None, "code": None}}
        self._json(code, payload, headers)

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _stream(self, events: list[_Event], fault: Fault | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        deltas = 0
        for event in events:
            if fault is not None and event.is_delta and deltas == fault.after_deltas:
                if fault.kind == "cut":
                    self.wfile.flush()
                    self._drop()
                    return
                if fault.kind == "truncate":
                    break
                if fault.kind == "error_event":
                    self._chunk(_error_event(event.anthropic))
                    break
                if fault.kind == "malformed":
                    self._chunk(_malformed_event(event.anthropic))
                    fault = None
            if event.is_delta:
                deltas += 1
            if self.api.chunk_delay_s:
                time.sleep(self.api.chunk_delay_s)
            try:
                self._chunk(event.wire)
            except (BrokenPipeError, ConnectionResetError):
                return
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        """One piece of a chunked body; an empty one ends the body."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


@dataclass(frozen=True)
class _Event:
    wire: bytes
    is_delta: bool
    anthropic: bool


def _sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _error_event(anthropic: bool) -> bytes:
    if anthropic:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return _sse(error, "error")
    return _sse({"error": {"message": "The server had an error", "type": "server_error"}})


def _malformed_event(anthropic: bool) -> bytes:
    broken = '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_'
    return _sse(broken, "content_block_delta") if anthropic else _sse('{"id": "chatcmpl-fake", ')


@dataclass(frozen=True)
class _Answer:
    """The script's text after the request's stop sequences and token limit, in pieces."""

    model: str
    pieces: list[str]
    # "stop", "stop_sequence" or "length" (the API's own word is chosen on output).
    reason: Literal["end", "stop_sequence", "length"]
    stop_sequence: str | None
    prompt_tokens: int
    include_usage: bool
    cached_tokens: int
    cache_write_tokens: int = 0
    # The reasoning sent apart from the text, in pieces (counted in the output tokens).
    thinking: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, body: dict[str, Any], text: str, anthropic: bool, api: FakeAPI) -> _Answer:
        stops = body.get("stop_sequences") if anthropic else body.get("stop")
        if isinstance(stops, str):
            stops = [stops]
        thought = ""
        enabled = not anthropic or (body.get("thinking") or {}).get("type") == "enabled"
        if api.reasoning and enabled and text.startswith("<think>"):
            end = text.find("</think>")
            end = len(text) if end < 0 else end
            thought, text = text[len("<think>") : end], text[end + len("</think>") :].lstrip("\n")
        reason: Literal["end", "stop_sequence", "length"] = "end"
        hit = None
        cut_at = len(text)
        for stop in stops or []:
            at = text.find(stop)
            if 0 <= at < cut_at:
                cut_at, hit = at, stop
        if hit is not None:
            text, reason = text[:cut_at], "stop_sequence"
        pieces = _pieces(text)
        thinking = _pieces(thought)
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and len(thinking) + len(pieces) > limit:
            reason, hit = "length", None
            thinking, pieces = thinking[:limit], pieces[: max(0, limit - len(thinking))]
        words = sum(len(_content_text(m.get("content")).split()) for m in body["messages"])
        words += len(_content_text(body.get("system")).split())
        options = body.get("stream_options") or {}
        return cls(
            model=str(body.get("model")),
            pieces=pieces,
            reason=reason,
            stop_sequence=hit,
            prompt_tokens=words,
            include_usage=api.stream_usage and bool(options.get("include_usage")),
            cached_tokens=min(api.cached_tokens, words),
            cache_write_tokens=min(api.cache_write_tokens, words - min(api.cached_tokens, words)),
            thinking=thinking,
        )

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.thinking) + len(self.pieces)

    def _anthropic_reason(self) -> str:
        return {"end": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens"}[
            self.reason
        ]

    def _openai_reason(self) -> str:
        return "length" if self.reason == "length" else "stop"

    def anthropic_message(self) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "text", "text": self.text}],
            "stop_reason": self._anthropic_reason(),
            "stop_sequence": self.stop_sequence,
            "usage": {
                "input_tokens": self.prompt_tokens - self.cached_tokens - self.cache_write_tokens,
                "cache_read_input_tokens": self.cached_tokens,
                "cache_creation_input_tokens": self.cache_write_tokens,
                "output_tokens": self.completion_tokens,
            },
        }

    def anthropic_events(self) -> list[_Event]:
        start = self.anthropic_message() | {"content": [], "stop_reason": None}
        start["usage"] = {
            "input_tokens": self.prompt_tokens - self.cached_tokens - self.cache_write_tokens,
            "cache_read_input_tokens": self.cached_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            "output_tokens": 1,
        }
        out = [
            _sse({"type": "message_start", "message": start}, "message_start"),
            _sse({"type": "ping"}, "ping"),
        ]
        events = [_Event(wire, False, True) for wire in out]
        index = 0
        if self.thinking:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            events.append(_block_start(index, block))
            for piece in self.thinking:
                thought = {"type": "thinking_delta", "thinking": piece}
                delta = {"type": "content_block_delta", "index": index, "delta": thought}
                events.append(_Event(_sse(delta, "content_block_delta"), True, True))
            signature = {"type": "signature_delta", "signature": "c2lnbmVk"}
            delta = {"type": "content_block_delta", "index": index, "delta": signature}
            events.append(_Event(_sse(delta, "content_block_delta"), False, True))
            if self.pieces or self.reason != "length":
                stop = {"type": "content_block_stop", "index": index}
                events.append(_Event(_sse(stop, "content_block_stop"), False, True))
                index += 1
        if self.pieces or not self.thinking or self.reason != "length":
            events.append(_block_start(index, {"type": "text", "text": ""}))
        for piece in self.pieces:
            text = {"type": "text_delta", "text": piece}
            delta = {"type": "content_block_delta", "index": index, "delta": text}
            events.append(_Event(_sse(delta, "content_block_delta"), True, True))
        final = {
            "type": "message_delta",
            "delta": {"stop_reason": self._anthropic_reason(), "stop_sequence": self.stop_sequence},
            "usage": {"output_tokens": self.completion_tokens},
        }
        tail = [
            _sse({"type": "content_block_stop", "index": index}, "content_block_stop"),
            _sse(final, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return events + [_Event(wire, False, True) for wire in tail]

    def _usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.thinking:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(self.thinking)}
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage

    def openai_completion(self) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text},
                    "finish_reason": self._openai_reason(),
                }
            ],
            "usage": self._usage(),
        }

    def openai_events(self) -> list[_Event]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        events = [_Event(_sse(chunk({"role": "assistant", "content": ""})), False, False)]
        events += [
            _Event(_sse(chunk({"content": None, "reasoning_content": p})), True, False)
            for p in self.thinking
        ]
        events += [_Event(_sse(chunk({"content": p})), True, False) for p in self.pieces]
        events.append(_Event(_sse(chunk({}, self._openai_reason())), False, False))
        if self.include_usage:
            usage = chunk({}) | {"choices": [], "usage": self._usage()}
            events.append(_Event(_sse(usage), False, False))
        events.append(_Event(_sse("[DONE]"), False, False))
        return events


_request_ids = itertools.count(1)


@dataclass
class _Batch:
    """One batch: its requests with the fault each ends with, and how far it has got."""

    id: str
    kind: Literal["anthropic", "openai"]
    requests: list[tuple[Any, BatchFault | None]]
    polls_left: int
    ended: bool = False
    input_file_id: str = ""
    # OpenAI's output and error files, written when the batch is first seen ended.
    files: tuple[str | None, str | None] | None = None

    def _counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("succeeded", "expired", "errored", "invalid", "canceled"), 0)
        for _, fault in self.requests:
            counts[fault or "succeeded"] += 1
        return counts

    def _cancelled(self) -> bool:
        return all(fault == "canceled" for _, fault in self.requests)

    def anthropic_object(self, api: FakeAPI) -> dict[str, Any]:
        counts = self._counts()
        request_counts = dict.fromkeys(("succeeded", "errored", "canceled", "expired"), 0)
        request_counts["processing"] = len(self.requests)
        if self.ended:
            request_counts = {
                "processing": 0,
                "succeeded": counts["succeeded"],
                "errored": counts["errored"] + counts["invalid"],
                "canceled": counts["canceled"],
                "expired": counts["expired"],
            }
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": "ended" if self.ended else "in_progress",
            "request_counts": request_counts,
            "created_at": "2026-12-03T00:00:00Z",
            "expires_at": "2026-12-04T00:00:00Z",
            "ended_at": "2026-12-03T00:01:00Z" if self.ended else None,
            "cancel_initiated_at": "2026-12-03T00:00:30Z" if self._cancelled() else None,
            "archived_at": None,
            "results_url": (
                f"{api.url}/v1/messages/batches/{self.id}/results" if self.ended else None
            ),
        }

    def anthropic_results(self, api: FakeAPI) -> list[dict[str, Any]]:
        lines = []
        for request, fault in self.requests:
            params = request["params"]
            result: dict[str, Any]
            if fault is None:
                answer = _Answer.make(params, api.script(params), True, api)
                result = {"type": "succeeded", "message": answer.anthropic_message()}
            elif fault in ("expired", "canceled"):
                result = {"type": fault}
            else:
                kind, message = (
                    ("overloaded_error", "Overloaded")
                    if fault == "errored"
                    else ("invalid_request_error", "max_tokens: too large for this model")
                )
                error = {"type": kind, "message": message}
                result = {"type": "errored", "error": {"type": "error", "error": error}}
            lines.append({"custom_id": request["custom_id"], "result": result})
        return lines

    def openai_object(self, api: FakeAPI) -> dict[str, Any]:
        counts = self._counts()
        if self.ended and self.files is None:
            self.files = self._openai_files(api)
        status = "in_progress"
        if self.ended:
            status = "cancelled" if self._cancelled() else "completed"
            if counts["expired"] and not counts["succeeded"] + counts["errored"]:
                status = "expired"
        output, errors = self.files or (None, None)
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": status,
            "created_at": 1764720000,
            "output_file_id": output,
            "error_file_id": errors,
            "errors": None,
            "request_counts": {
                "total": len(self.requests),
                "completed": counts["succeeded"] if self.ended else 0,
                "failed": len(self.requests) - counts["succeeded"] if self.ended else 0,
            },
        }

    def _openai_files(self, api: FakeAPI) -> tuple[str | None, str | None]:
        """The output file (the answers) and the error file (requests the API refused, with
        their status; requests never run, expired or cancelled), as OpenAI writes them."""
        out: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for request, fault in self.requests:
            line: dict[str, Any] = {
                "id": f"batch_req_fake{next(_request_ids)}",
                "custom_id": request["custom_id"],
            }
            body = request["body"]
            if fault is None:
                answer = _Answer.make(body, api.script(body), False, api)
                response = {
                    "status_code": 200,
                    "request_id": "req",
                    "body": answer.openai_completion(),
                }
                out.append(line | {"response": response, "error": None})
            elif fault in ("errored", "invalid"):
                code = 500 if fault == "errored" else 400
                error = {
                    "message": "The server had an error"
                    if code == 500
                    else "max_tokens is too large",
                    "type": "server_error" if code == 500 else "invalid_request_error",
                    "param": None,
                    "code": None,
                }
                response = {"status_code": code, "request_id": "req", "body": {"error": error}}
                failed.append(line | {"response": response, "error": None})
            else:
                code_name = "batch_expired" if fault == "expired" else "batch_cancelled"
                message = (
                    "This request could not be executed before the completion window expired."
                    if fault == "expired"
                    else "This request was cancelled before it was executed."
                )
                error = {"code": code_name, "message": message}
                failed.append(line | {"response": None, "error": error})
        ids: list[str | None] = []
        for lines in (out, failed):
            file_id = None
            if lines:
                file_id = f"file-fake{len(api._files) + 1:04d}"
                api._files[file_id] = _jsonl(lines)
            ids.append(file_id)
        return ids[0], ids[1]


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _file_object(file_id: str, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": 1764720000,
        "filename": "batch.jsonl",
        "purpose": "batch",
        "status": "processed",
    }


def _block_start(index: int, block: dict[str, Any]) -> _Event:
    start = {"type": "content_block_start", "index": index, "content_block": block}
    return _Event(_sse(start, "content_block_start"), False, True)


def _pieces(text: str) -> list[str]:
    """Split like a tokenizer would, roughly: words with their trailing space, and newlines."""
    return re.findall(r"[^\S\n]*\S+[^\S\n]*|\n", text) or ([text] if text else [])


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _anthropic_problem(body: dict[str, Any]) -> str | None:
    """The 400s the real Messages API gives for requests this project could get wrong."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for name in _SAMPLING:
        if name in body:
            return f"{name}: Extra inputs are not permitted"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
        if messages[-1].get("role") == "assistant":
            return "thinking is not supported with a prefilled final assistant message"
    last = messages[-1]
    if last.get("role") == "assistant":
        text = _content_text(last.get("content"))
        if text != text.rstrip():
            return "messages: final assistant content cannot end with trailing whitespace"
    for stop in body.get("stop_sequences") or []:
        if not stop.strip():
            return "stop_sequences: each stop sequence must contain non-whitespace"
    return None


def _openai_problem(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' is a required property"
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > 4:
        return "'stop': array too long. Expected an array with maximum length 4."
    return None
