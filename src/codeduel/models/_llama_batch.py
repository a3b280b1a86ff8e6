"""Continuous batching on llama.cpp: many sequences decode together in one context.

On the shared scheduler (`_scheduler`), one thread owns a llama.cpp context with a KV stream
per slot. Each step it puts one token of every decoding sequence, plus as much of the waiting
prompts as the batch holds, into a single `llama_decode`, then samples each sequence from its
own row of logits. A request takes a free slot as soon as one is released, so a repair turn or
the next task joins the batch at once instead of waiting for the batch to drain (what
llama.cpp's own server calls continuous batching). Imported only by the `llamacpp` provider.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import time
from dataclasses import dataclass
from typing import Protocol

import llama_cpp

from codeduel.errors import ModelError
from codeduel.models._scheduler import Finished, Request, Scheduler, Slot
from codeduel.types import GenerateConfig

__all__ = ["BatchEngine", "TokenSink"]


class TokenSink(Protocol):
    """What a sequence does with each sampled token; returns True once the sequence is done."""

    def push(self, token: int) -> bool: ...


@dataclass(kw_only=True)
class _Request(Request):
    config: GenerateConfig
    sink: TokenSink


@dataclass(kw_only=True)
class _Slot(Slot[_Request]):
    seq_id: int
    sampler: ctypes.c_void_p
    n_past: int = 0
    # The last sampled token, still to be decoded, once the prompt is in.
    pending: int | None = None

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.request.tokens)


class BatchEngine(Scheduler[_Request, _Slot]):
    """Decodes up to `slots` sequences at once on `model` (a llama.cpp model pointer)."""

    def __init__(
        self,
        model: llama_cpp.llama_model_p,
        base: llama_cpp.llama_context_params,
        *,
        slots: int,
        n_ctx_per_slot: int,
        n_batch: int,
    ) -> None:
        super().__init__(slots=slots, what="the llama.cpp batch engine", thread="llama-batch")
        params = llama_cpp.llama_context_params.from_buffer_copy(base)
        params.n_ctx = slots * n_ctx_per_slot
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = slots
        # One KV stream per sequence: each attends to its own cells only.
        params.kv_unified = False
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model, params)
        if ctx is None:
            raise ModelError(f"llama.cpp could not create a context for {slots} sequences")
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_ctx_per_slot = llama_cpp.llama_n_ctx(ctx) // slots
        self._n_batch = n_batch
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._free = list(range(slots - 1, -1, -1))
        self._start()

    def submit(
        self, tokens: list[int], config: GenerateConfig, sink: TokenSink
    ) -> concurrent.futures.Future[Finished]:
        return self._enqueue(_Request(tokens=tokens, config=config, sink=sink))

    def _free_engine(self) -> None:
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)

    def _admit(self) -> None:
        while self._queue and self._free:
            request = self._queue.popleft()
            if request.future.cancelled():
                continue
            seq_id = self._free.pop()
            llama_cpp.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
            self._active.append(
                _Slot(request=request, seq_id=seq_id, sampler=_sampler(request.config))
            )

    def _step(self) -> None:
        """One token for every decoding sequence in one call, then prompts in their own calls.

        With a KV stream per sequence, llama.cpp splits a batch into micro-batches holding the
        same number of tokens of each sequence, so a prompt decoded together with one token of
        each other sequence would go through one token at a time.
        """
        decoding = [(slot, [slot.pending]) for slot in self._active if slot.pending is not None]
        if decoding:
            self._decode(decoding)
        budget = self._n_batch
        for slot in list(self._active):
            if budget <= 0:
                break
            if slot.prefilling:
                chunk = slot.request.tokens[slot.n_past : slot.n_past + budget]
                self._decode([(slot, chunk)])
                budget -= len(chunk)

    def _decode(self, parts: list[tuple[_Slot, list[int]]]) -> None:
        """Decode `parts` in one call; sample each slot whose last token needs its logits."""
        batch = self._batch
        n = 0
        sampled: list[tuple[_Slot, int]] = []
        for slot, tokens in parts:
            slot.pending = None
            for token in tokens:
                batch.token[n] = token
                batch.pos[n] = slot.n_past
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq_id
                batch.logits[n] = False
                slot.n_past += 1
                n += 1
            # Logits for the last token: always while decoding, at the prompt's end otherwise.
            if not slot.prefilling:
                batch.logits[n - 1] = True
                sampled.append((slot, n - 1))
        batch.n_tokens = n
        started = time.perf_counter()
        code = llama_cpp.llama_decode(self._ctx, batch)
        if code != 0:
            raise ModelError(f"llama_decode failed with code {code}")
        now = time.perf_counter()
        self._charge(now - started, [(slot, len(tokens)) for slot, tokens in parts], n)
        for slot, row in sampled:
            token = llama_cpp.llama_sampler_sample(slot.sampler, self._ctx, row)
            if slot.first_token is None:
                slot.first_token = now
            slot.out.append(token)
            done = slot.request.future.cancelled() or slot.request.sink.push(token)
            if done or slot.n_past >= self.n_ctx_per_slot:
                self._active.remove(slot)
                self._drop(slot)
                self._resolve(slot, time.perf_counter())
            else:
                slot.pending = token

    def _drop(self, slot: _Slot) -> None:
        llama_cpp.llama_sampler_free(slot.sampler)
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        self._free.append(slot.seq_id)


def _sampler(config: GenerateConfig) -> ctypes.c_void_p:
    """Greedy for temperature 0, else top-p then temperature then a seeded draw."""
    if config.temperature <= 0:
        sampler: ctypes.c_void_p = llama_cpp.llama_sampler_init_greedy()
        return sampler
    params = llama_cpp.llama_sampler_chain_default_params()
    chain: ctypes.c_void_p = llama_cpp.llama_sampler_chain_init(params)
    steps = [llama_cpp.llama_sampler_init_top_p(config.top_p, 1)] if config.top_p < 1.0 else []
    steps.append(llama_cpp.llama_sampler_init_temp(config.temperature))
    steps.append(llama_cpp.llama_sampler_init_dist(config.seed & 0xFFFFFFFF))
    for step in steps:
        llama_cpp.llama_sampler_chain_add(chain, step)
    return chain
