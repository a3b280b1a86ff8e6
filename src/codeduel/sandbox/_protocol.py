"""Length-prefixed JSON messages between the sandbox and its workers."""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

DISABLE_ENV = "CODEDUEL_SANDBOX_DISABLE"
"""For tests only: comma-separated layers a worker must not set up, as if they had failed."""
OUTER_IDS_ENV = "CODEDUEL_SANDBOX_OUTER_IDS"
"""Set for a worker that bubblewrap started in a user namespace where it is root: "uid:gid"
of the user outside, whom the samples run as."""
NOT_ROOT = "not root: samples run as the invoking user, who has no privileges to drop"
"""Why `dropped_privileges` is off for a non-root user: nothing to warn about."""

_HEADER = struct.Struct(">I")
_MAX_MESSAGE = 1 << 30


class ChannelClosed(Exception):
    """The other end closed the pipe or did not answer in time."""


def encode_message(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def write_message(fd: int, message: dict[str, Any]) -> None:
    """Write one message; blocks until the pipe took all of it."""
    data = memoryview(encode_message(message))
    try:
        while data:
            data = data[os.write(fd, data) :]
    except BrokenPipeError as exc:
        raise ChannelClosed("the other end closed the pipe") from exc


def read_message(fd: int, deadline: float | None = None) -> dict[str, Any] | None:
    """Read one message; None on a clean end of stream before its first byte."""
    header = _read_exactly(fd, _HEADER.size, deadline, eof_ok=True)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > _MAX_MESSAGE:
        raise ChannelClosed(f"message of {size} bytes is too large")
    body = _read_exactly(fd, size, deadline, eof_ok=False)
    assert body is not None
    return _decode(body)


class MessageBuffer:
    """Bytes read so far from a stream of messages; `pop` returns each complete one."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, data: bytes) -> None:
        self._data += data

    def pop(self) -> dict[str, Any] | None:
        if len(self._data) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._data)
        if size > _MAX_MESSAGE:
            raise ChannelClosed(f"message of {size} bytes is too large")
        end = _HEADER.size + size
        if len(self._data) < end:
            return None
        body = bytes(self._data[_HEADER.size : end])
        del self._data[:end]
        return _decode(body)

    @property
    def empty(self) -> bool:
        return not self._data


def _decode(body: bytes) -> dict[str, Any]:
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ChannelClosed("message is not a JSON object")
    return message


def _read_exactly(fd: int, size: int, deadline: float | None, *, eof_ok: bool) -> bytes | None:
    chunks: list[bytes] = []
    missing = size
    while missing:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ChannelClosed("no answer in time")
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            if eof_ok and missing == size:
                return None
            raise ChannelClosed("the other end closed the pipe")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
