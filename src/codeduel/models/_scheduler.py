"""The one scheduler under both batch engines (llama.cpp's and the torch one).

A worker thread owns the engine: it waits for work, takes waiting requests into free slots and
steps the active ones, until the engine is closed. Requests come from any thread, each with a
future that the worker settles with `Finished`, or with the error that failed its step.

An engine supplies its slot state and two methods: `_admit` (waiting requests into free slots,
called under the lock) and `_step` (one forward for the active slots, which settles the
requests that end in it); `_drop`, `_gather` and `_free_engine` are hooks for what it holds.
"""

from __future__ import annotations

import abc
import collections
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from codeduel.errors import ModelError

__all__ = ["Finished", "Request", "Scheduler", "Slot"]


@dataclass(frozen=True)
class Finished:
    """When a request's first token came and when it ended (perf_counter seconds)."""

    started: float
    first_token: float | None
    ended: float
    # This request's share of the engine's time: each step's time x its share of the tokens.
    busy_s: float
    # The tokens given to the request's sink.
    tokens: list[int]


@dataclass(kw_only=True)
class Request:
    """A prompt waiting for a slot; each engine adds what its step needs."""

    tokens: list[int]
    future: concurrent.futures.Future[Finished] = field(default_factory=concurrent.futures.Future)


R = TypeVar("R", bound=Request)


@dataclass(kw_only=True)
class Slot(Generic[R]):
    """A request being decoded; each engine adds its own state."""

    request: R
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    busy_s: float = 0.0
    out: list[int] = field(default_factory=list)


S = TypeVar("S", bound=Slot[Any])
T = TypeVar("T")


def resolve(future: concurrent.futures.Future[T], value: T) -> None:
    # A request cancelled meanwhile (its caller gave up) has nobody to tell.
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_result(value)


def fail(future: concurrent.futures.Future[T], error: BaseException) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_exception(error)


class Scheduler(abc.ABC, Generic[R, S]):
    """Runs requests `R` in up to `slots` slots `S` on one worker thread.

    An engine calls `_start` last in its `__init__`, once its state is ready, and `_enqueue`
    from its `submit`.
    """

    def __init__(self, *, slots: int, what: str, thread: str) -> None:
        self.slots = slots
        self._what = what
        self._queue: collections.deque[R] = collections.deque()
        self._active: list[S] = []
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=thread, daemon=True)

    @abc.abstractmethod
    def _admit(self) -> None:
        """Move waiting requests from `_queue` into free slots in `_active` (under the lock)."""

    @abc.abstractmethod
    def _step(self) -> None:
        """One forward for the slots in `_active`; settle (`_resolve`) those that end."""

    def _drop(self, slot: S) -> None:
        """Free what `slot` holds in the engine; its request is settled apart."""

    def _gather(self) -> None:
        """Called when work arrives at an idle engine, before it is admitted."""

    def _free_engine(self) -> None:
        """Free the engine itself, once the worker has stopped."""

    def _start(self) -> None:
        self._thread.start()

    def _enqueue(self, request: R) -> concurrent.futures.Future[Finished]:
        with self._cv:
            if self._closing:
                raise ModelError(f"{self._what} is closed")
            self._queue.append(request)
            self._cv.notify()
        return request.future

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join()
        for slot in self._active:
            self._drop(slot)
            fail(slot.request.future, ModelError(f"{self._what} was closed"))
        for request in self._queue:
            fail(request.future, ModelError(f"{self._what} was closed"))
        self._active.clear()
        self._queue.clear()
        self._free_engine()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._queue and not self._active:
                    self._cv.wait()
                if self._closing:
                    return
                idle = not self._active
            if idle:
                self._gather()
            with self._cv:
                self._admit()
            if not self._active:
                continue
            try:
                self._step()
            except Exception as exc:  # a failed forward fails every request in it
                for slot in self._active:
                    self._drop(slot)
                    fail(slot.request.future, exc)
                self._active.clear()

    @staticmethod
    def _charge(elapsed: float, shares: Iterable[tuple[S, int]], total: int) -> None:
        """Split `elapsed` seconds of engine time among slots by their share of `total` tokens."""
        for slot, tokens in shares:
            slot.busy_s += elapsed * tokens / total

    @staticmethod
    def _resolve(slot: S, ended: float) -> None:
        finished = Finished(slot.started, slot.first_token, ended, slot.busy_s, slot.out)
        resolve(slot.request.future, finished)
