"""Batch mode for the cloud APIs (`-M batch=true`): calls gathered into one batch request,
polled with backoff until it ends, each result handed to its caller as it is read.

A provider supplies the API's three verbs (`BatchApi`: submit, ended, results); `Batcher` does
the rest. A `BatchLedger` records which request went out in which batch: the run store's
(`store.StoredBatches`) outlives the driver, so a run resumed after a kill finds its pending
batch and waits for it instead of sending (and paying for) its requests again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from codeduel.errors import ModelUnusableError
from codeduel.models._provider import RetryableError
from codeduel.types import ModelOutput

__all__ = ["BatchApi", "BatchLedger", "Batcher", "MemoryLedger", "PollPolicy"]

log = logging.getLogger("codeduel.models")


class BatchLedger(Protocol):
    """Where the requests of submitted batches are recorded (by the hash of the request)."""

    def claim(self, provider: str, key: str) -> tuple[str, str] | None:
        """A pending (batch id, custom id) sent earlier for this request, not yet claimed."""

    def submitted(self, provider: str, batch_id: str, entries: Sequence[tuple[str, str]]) -> None:
        """`entries` (custom id, request key) went out in batch `batch_id`."""

    def delivered(self, batch_id: str, custom_id: str) -> None:
        """The request's result was handed back: it is no longer pending."""


class MemoryLedger:
    """A ledger for one process (a library caller without a store): nothing to resume."""

    def claim(self, provider: str, key: str) -> tuple[str, str] | None:
        return None

    def submitted(self, provider: str, batch_id: str, entries: Sequence[tuple[str, str]]) -> None:
        pass

    def delivered(self, batch_id: str, custom_id: str) -> None:
        pass


# One request's result: its output, or the error its caller gets (retryable or not).
Result = ModelOutput | Exception


class BatchApi(Protocol):
    async def submit(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> str:
        """Create a batch of (custom id, request params); its id."""

    async def ended(self, batch_id: str) -> bool:
        """Whether the batch has ended (its results can be read)."""

    def results(self, batch_id: str) -> AsyncIterator[tuple[str, Result]]:
        """The ended batch's results, by custom id, as they are read."""


@dataclass(frozen=True)
class PollPolicy:
    """How a batch is waited for: the first poll after `first_s`, each wait `factor` times
    the last, at most `cap_s`; requests arriving within `gather_s` of each other share a batch."""

    first_s: float = 5.0
    factor: float = 1.5
    cap_s: float = 120.0
    gather_s: float = 1.0


@dataclass
class _Queued:
    custom_id: str
    key: str
    params: dict[str, Any]
    future: asyncio.Future[Result]


@dataclass
class _LoopState:
    queue: list[_Queued] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None
    waiters: dict[tuple[str, str], asyncio.Future[Result]] = field(default_factory=dict)
    polling: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class Batcher:
    """One provider instance's batch mode."""

    def __init__(
        self,
        provider: str,
        api: BatchApi,
        policy: PollPolicy,
        scope: str,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.api = api
        self.policy = policy
        # What, beside the request, decides its answer (the server's address).
        self.scope = scope
        self.ledger: BatchLedger = MemoryLedger()
        self._sleep = sleep
        self._loop: asyncio.AbstractEventLoop | None = None
        self._current = _LoopState()

    def _state(self) -> _LoopState:
        # Futures and tasks belong to one event loop; a run may use several in turn.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._current = loop, _LoopState()
        return self._current

    def request_key(self, params: dict[str, Any]) -> str:
        blob = json.dumps({"scope": self.scope, "params": params}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    async def call(self, params: dict[str, Any]) -> ModelOutput:
        """`params` sent in a batch (or found pending in one); its output once it has ended."""
        state = self._state()
        start = time.perf_counter()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        key = self.request_key(params)
        pending = self.ledger.claim(self.provider, key)
        if pending is not None:
            batch_id, custom_id = pending
            state.waiters[pending] = future
            self._poll(state, batch_id)
        else:
            custom_id = f"cd-{secrets.token_hex(8)}"
            state.queue.append(_Queued(custom_id, key, params, future))
            if state.flusher is None or state.flusher.done():
                state.flusher = asyncio.create_task(self._flush(state))
        result = await future
        if isinstance(result, Exception):
            raise result
        latency = time.perf_counter() - start
        return replace(result, latency_s=latency)

    async def _flush(self, state: _LoopState) -> None:
        """Submit what has queued once no request arrived for `gather_s`."""
        seen = -1
        while len(state.queue) != seen:
            seen = len(state.queue)
            await asyncio.sleep(self.policy.gather_s)
        batch, state.queue = state.queue, []
        state.flusher = None
        live = [q for q in batch if not q.future.done()]
        if not live:
            return
        try:
            batch_id = await self.api.submit([(q.custom_id, q.params) for q in live])
        except Exception as exc:  # the callers' Model retries or reports it
            for q in live:
                if not q.future.done():
                    q.future.set_result(exc)
            return
        log.info("%s: batch %s submitted with %d requests", self.provider, batch_id, len(live))
        self.ledger.submitted(self.provider, batch_id, [(q.custom_id, q.key) for q in live])
        for q in live:
            state.waiters[(batch_id, q.custom_id)] = q.future
        self._poll(state, batch_id)

    def _poll(self, state: _LoopState, batch_id: str) -> None:
        if batch_id not in state.polling:
            state.polling[batch_id] = asyncio.create_task(self._wait(state, batch_id))

    async def _wait(self, state: _LoopState, batch_id: str) -> None:
        delay = self.policy.first_s
        try:
            while True:
                await self._sleep(delay)
                try:
                    if await self.api.ended(batch_id):
                        break
                except RetryableError as exc:
                    log.warning("%s: polling batch %s: %s", self.provider, batch_id, exc)
                delay = min(self.policy.cap_s, delay * self.policy.factor)
            await self._deliver(state, batch_id)
        except Exception as exc:
            self._fail(state, batch_id, exc)
        finally:
            state.polling.pop(batch_id, None)
        # Callers of this batch that got no result: sent again by their Model's retry.
        self._fail(state, batch_id, RetryableError(f"batch {batch_id} returned no result"))

    async def _deliver(self, state: _LoopState, batch_id: str) -> None:
        async for custom_id, result in self.api.results(batch_id):
            future = state.waiters.pop((batch_id, custom_id), None)
            if future is None:
                continue
            self.ledger.delivered(batch_id, custom_id)
            if not future.done():
                if isinstance(result, ModelOutput):
                    result = replace(result, extra={**result.extra, "batch": True})
                    result.extra["batch_id"] = batch_id
                future.set_result(result)

    def _fail(self, state: _LoopState, batch_id: str, exc: Exception) -> None:
        if not isinstance(exc, (RetryableError, ModelUnusableError)):
            log.warning("%s: batch %s failed: %s", self.provider, batch_id, exc)
        for (bid, custom_id), future in list(state.waiters.items()):
            if bid == batch_id:
                del state.waiters[(bid, custom_id)]
                # A retry sends it in a new batch; this one is not waited for again.
                self.ledger.delivered(bid, custom_id)
                if not future.done():
                    future.set_result(exc)
