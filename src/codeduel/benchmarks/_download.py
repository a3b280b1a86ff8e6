"""What the benchmarks' downloads share: the errors that mean the file could not be fetched,
and the atomic write that lands it (nothing of a failed write is left behind)."""

from __future__ import annotations

import http.client
import os
import tempfile
import urllib.error
from pathlib import Path

__all__ = ["FETCH_ERRORS", "write_atomically"]

FETCH_ERRORS: tuple[type[BaseException], ...] = (
    urllib.error.URLError,
    TimeoutError,
    OSError,
    http.client.HTTPException,  # IncompleteRead: a download cut short
)
"""What `urllib.request.urlopen(...).read()` raises when the file does not arrive whole."""


def write_atomically(target: Path, data: bytes) -> Path:
    """`data` as `target`, through a hidden temporary file beside it renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
