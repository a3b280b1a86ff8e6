"""Settling the futures of the batch engines' requests, whose callers may have given up."""

from __future__ import annotations

import concurrent.futures
import contextlib
from typing import TypeVar

__all__ = ["fail", "resolve"]

T = TypeVar("T")


def resolve(future: concurrent.futures.Future[T], value: T) -> None:
    # A request cancelled meanwhile (its caller gave up) has nobody to tell.
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_result(value)


def fail(future: concurrent.futures.Future[T], error: BaseException) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_exception(error)
