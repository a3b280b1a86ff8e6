"""Continuous batching on llama.cpp: many sequences decode together in one context.

On the shared scheduler (`_scheduler`), one thread owns a llama.cpp context with a KV stream
per slot. Each step it puts one token of every decoding sequence into a single `llama_decode`,
then as much of the waiting prompts as the batch holds into another, and reads one token per
sequence. A request takes a free slot as soon as one is released, so a repair turn or the next
task joins the batch at once instead of waiting for the batch to drain (what llama.cpp's own
server calls continuous batching). Imported only by the `llamacpp` provider.

Two things keep the host off the GPU's critical path (docs/performance.md, llama.cpp on CUDA):

- **backend sampling**: a greedy sequence's argmax runs inside llama.cpp's graph (a sampler
  chain attached to its sequence), so a step copies one token per sequence to the host, not a
  row of 151,936 logits, and no host loop over the vocabulary runs;
- **one step in flight**: `llama_decode` only queues its work, so the tokens it decodes are
  given to their sinks (detokenised, stop strings checked) while the device computes them. A
  sequence whose sink ends it then had one token decoded for nothing, and drops it.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import time
from collections.abc import Callable
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
    # Whether `sampler` is llama.cpp's own chain attached to the sequence (backend sampling).
    attached: bool
    n_past: int = 0
    # The last sampled token, still to be given to the sink and decoded, once the prompt is in.
    pending: int | None = None
    done: bool = False

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.request.tokens)


class BatchEngine(Scheduler[_Request, _Slot]):
    """Decodes up to `slots` sequences at once on `model` (a llama.cpp model pointer).

    With `backend_sampling`, greedy sequences are sampled inside llama.cpp's graph; sampled
    ones (temperature > 0) always go through llama.cpp's sampler chain on the host, seeded
    per call.
    """

    def __init__(
        self,
        model: llama_cpp.llama_model_p,
        base: llama_cpp.llama_context_params,
        *,
        slots: int,
        n_ctx_per_slot: int,
        n_batch: int,
        backend_sampling: bool = False,
        kv_unified: bool = False,
    ) -> None:
        super().__init__(slots=slots, what="the llama.cpp batch engine", thread="llama-batch")
        params = llama_cpp.llama_context_params.from_buffer_copy(base)
        params.n_ctx = slots * n_ctx_per_slot
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = slots
        # By default one KV stream per sequence: each attends to its own cells only.
        params.kv_unified = kv_unified
        params.no_perf = True
        # A greedy chain per sequence, attached at creation: attaching one later makes
        # llama.cpp reserve its graphs again.
        self._greedy = [_greedy_chain() for _ in range(slots)] if backend_sampling else []
        if self._greedy:
            configs = (llama_cpp.llama_sampler_seq_config * slots)(
                *(
                    llama_cpp.llama_sampler_seq_config(seq, ctypes.cast(chain, ctypes.c_void_p))
                    for seq, chain in enumerate(self._greedy)
                )
            )
            params.samplers = configs
            params.n_samplers = slots
            params.n_outputs_max_per_seq = 1
        ctx = llama_cpp.llama_init_from_model(model, params)
        if ctx is None:
            for chain in self._greedy:
                llama_cpp.llama_sampler_free(chain)
            raise ModelError(f"llama.cpp could not create a context for {slots} sequences")
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self.n_ctx_per_slot = llama_cpp.llama_n_ctx(ctx) // slots
        self._n_batch = n_batch
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._start()

    @property
    def backend_sampling(self) -> bool:
        return bool(self._greedy)

    def submit(
        self, tokens: list[int], config: GenerateConfig, sink: TokenSink
    ) -> concurrent.futures.Future[Finished]:
        return self._enqueue(_Request(tokens=tokens, config=config, sink=sink))

    def _free_engine(self) -> None:
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
        for chain in self._greedy:
            llama_cpp.llama_sampler_free(chain)

    def _admit(self) -> None:
        while self._queue and len(self._active) < self.slots:
            request = self._queue.popleft()
            if request.future.cancelled():
                continue
            seq_id = len(self._active)  # the active sequences hold ids 0 … n-1 (`_sweep`)
            llama_cpp.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
            greedy = request.config.temperature <= 0
            if self._greedy and greedy:
                slot = _Slot(
                    request=request, seq_id=seq_id, sampler=self._greedy[seq_id], attached=True
                )
            else:
                if self._greedy:  # a sampled call on a sequence that has a greedy chain
                    llama_cpp.llama_set_sampler(self._ctx, seq_id, None)
                slot = _Slot(
                    request=request, seq_id=seq_id, sampler=_sampler(request.config), attached=False
                )
            self._active.append(slot)

    def _step(self) -> None:
        """One token for every decoding sequence in one call, then prompts in another.

        With a KV stream per sequence, llama.cpp splits a batch into micro-batches holding the
        same number of tokens of each sequence, so a prompt decoded together with one token of
        each other sequence would go through one token at a time.
        """
        decoding = [slot for slot in self._active if slot.pending is not None]
        for slot in decoding:
            if slot.n_past >= self.n_ctx_per_slot:  # no room to decode its last token
                self._give(slot)
                slot.done = True
        decoding = [slot for slot in decoding if not slot.done]
        if decoding:
            # The device decodes the pending tokens while the sinks take them.
            parts = [(slot, [token]) for slot in decoding if (token := slot.pending) is not None]
            self._decode(parts, self._give)
        self._sweep()
        parts = []
        budget = self._n_batch
        for slot in self._active:
            if budget <= 0:
                break
            if slot.prefilling:
                chunk = slot.request.tokens[slot.n_past : slot.n_past + budget]
                parts.append((slot, chunk))
                budget -= len(chunk)
        if parts:
            self._decode(parts)

    def _decode(
        self,
        parts: list[tuple[_Slot, list[int]]],
        meanwhile: Callable[[_Slot], None] | None = None,
    ) -> None:
        """Decode `parts` in one call, calling `meanwhile` on each slot while the device works;
        then the next token of each slot whose last token has logits and is not done."""
        batch = self._batch
        n = 0
        rows: list[tuple[_Slot, int]] = []
        for slot, tokens in parts:
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
                rows.append((slot, n - 1))
        batch.n_tokens = n
        started = time.perf_counter()
        code = llama_cpp.llama_decode(self._ctx, batch)
        if code != 0:
            raise ModelError(f"llama_decode failed with code {code}")
        if meanwhile is not None:
            for slot, _ in parts:
                meanwhile(slot)
        for slot, row in rows:
            if slot.done:
                continue
            # The first read waits for the device. A greedy chain in the graph keeps no state
            # to update, so its token is read alone.
            if slot.attached:
                slot.pending = llama_cpp.llama_get_sampled_token_ith(self._ctx, row)
            else:
                slot.pending = llama_cpp.llama_sampler_sample(slot.sampler, self._ctx, row)
            if slot.first_token is None:
                slot.first_token = time.perf_counter()
        llama_cpp.llama_synchronize(self._ctx)
        self._charge(time.perf_counter() - started, [(s, len(t)) for s, t in parts], n)

    def _give(self, slot: _Slot) -> None:
        """The slot's pending token to its sink."""
        token = slot.pending
        assert token is not None
        slot.pending = None
        slot.out.append(token)
        request = slot.request
        slot.done = request.future.cancelled() or request.sink.push(token)

    def _sweep(self) -> None:
        """Settle the finished sequences, then move the highest active ones into their ids.

        With a KV stream per sequence llama.cpp puts only sequences of consecutive ids in one
        micro-batch (each its own pass over the weights: on an H200, 164 sequences whose ids
        had come apart decoded in 76-158 ms a step instead of ~10 ms), so the active
        sequences always hold ids 0 … n-1 and a step's tokens go in id order.
        """
        if not any(slot.done for slot in self._active):
            return
        now = time.perf_counter()
        done = [slot for slot in self._active if slot.done]
        keep = [slot for slot in self._active if not slot.done]
        for slot in done:
            self._drop(slot)
            self._resolve(slot, now)
        holes = iter(sorted(s.seq_id for s in done if s.seq_id < len(keep)))
        for slot in [s for s in keep if s.seq_id >= len(keep)]:
            self._move(slot, next(holes))
        keep.sort(key=lambda s: s.seq_id)
        self._active = keep

    def _move(self, slot: _Slot, seq_id: int) -> None:
        """The slot's sequence to the free id `seq_id`: llama.cpp copies its KV stream at the
        next decode; a greedy chain stays with each id, a sampled call's own chain moves."""
        old = slot.seq_id
        llama_cpp.llama_memory_seq_cp(self._memory, old, seq_id, -1, -1)
        llama_cpp.llama_memory_seq_rm(self._memory, old, -1, -1)
        slot.seq_id = seq_id
        if slot.attached:
            slot.sampler = self._greedy[seq_id]
        elif self._greedy:
            llama_cpp.llama_set_sampler(self._ctx, seq_id, None)
            self._reattach(old)

    def _drop(self, slot: _Slot) -> None:
        if not slot.attached:  # an attached chain stays with its sequence
            llama_cpp.llama_sampler_free(slot.sampler)
            if self._greedy:
                self._reattach(slot.seq_id)
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)

    def _reattach(self, seq_id: int) -> None:
        """A fresh greedy chain on `seq_id`: llama.cpp sets a chain up for one context once."""
        llama_cpp.llama_sampler_free(self._greedy[seq_id])
        self._greedy[seq_id] = _greedy_chain()
        llama_cpp.llama_set_sampler(self._ctx, seq_id, self._greedy[seq_id])


def _greedy_chain() -> ctypes.c_void_p:
    """A chain holding greedy: llama.cpp attaches only chains to a sequence."""
    chain: ctypes.c_void_p = llama_cpp.llama_sampler_chain_init(
        llama_cpp.llama_sampler_chain_default_params()
    )
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
    return chain


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
