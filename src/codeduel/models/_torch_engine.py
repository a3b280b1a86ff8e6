"""Continuous batching in PyTorch for Llama-family decoders (Llama, Qwen2): the GPU path.

On the shared scheduler (`_scheduler`), one thread owns the model's forward (`_torch_forward`,
over weights from `_torch_weights`) and its static KV cache with one row per slot. Each step
decodes one token of every active sequence with a single forward. Active sequences always sit
in the lowest slots: when one ends, the highest is moved into its place, so the batch shrinks
to the next smaller bucket as the answers finish and the long tail of a run decodes at the
speed of a small batch instead of waiting inside a static batch for its longest member.
Waiting prompts are prefilled together and join the batch at the next step. Imported only by
the `transformers` provider and the GPU benchmarks.

With `speculate` = k > 0, a small greedy batch (the long tail of a run, or a lone request)
decodes by prompt lookup: each sequence's last few tokens are looked up earlier in its prompt
and answer (`propose`), the k tokens that followed there are verified in one forward with its
pending token, and the drafts the model agrees with are taken with its next token, 1..k+1
tokens per step. A small batch's step is launch-bound, so checking k + 1 tokens costs about
what one does, and greedy answers are the tokens the plain path decodes.
"""

from __future__ import annotations

import concurrent.futures
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from codeduel.errors import ModelError
from codeduel.models._scheduler import Finished, Request, Scheduler, Slot
from codeduel.models._torch_forward import Forward
from codeduel.models._torch_weights import Weights

__all__ = ["Sink", "TorchEngine", "propose"]


def propose(tokens: list[int], k: int, max_ngram: int = 3) -> list[int]:
    """Up to `k` tokens that followed the most recent earlier occurrence of the last n tokens
    of `tokens`, trying n = `max_ngram` down to 1 (prompt lookup); none if there is none.

    Searched as bytes (`rfind` runs in C, ~15 us over 800 tokens where a Python loop takes
    ~230 us, a sixth of a step); a hit that straddles two tokens is skipped.
    """
    width = array("i").itemsize
    data = array("i", tokens).tobytes()
    for n in range(min(max_ngram, len(tokens) - 1), 0, -1):
        tail = data[-width * n :]
        end = len(data) - width  # an earlier occurrence ends before the last token
        while (at := data.rfind(tail, 0, end)) >= 0:
            if at % width == 0:
                start = at // width + n
                return tokens[start : start + k]
            end = at + len(tail) - 1
    return []


class Sink(Protocol):
    """What a sequence does with its tokens: `push` returns True once a stop string is out;
    `end_of_turn` is called instead when the model ends its turn (a stop token)."""

    def push(self, token: int) -> bool: ...

    def end_of_turn(self) -> None: ...


@dataclass(kw_only=True)
class _Request(Request):
    budget: int
    temperature: float
    top_p: float
    sink: Sink


@dataclass(kw_only=True)
class _Seq(Slot[_Request]):
    # Its row in the KV cache and the step buffers.
    row: int
    pos: int = 0
    done: bool = False

    @property
    def prefilling(self) -> bool:
        return self.pos == 0


class TorchEngine(Scheduler[_Request, _Seq]):
    """Decodes up to `slots` sequences at once; `submit` from any thread.

    `stop_ids` end a sequence by token (end-of-turn markers); text stops are the sink's.
    `speculate` draft tokens per step (0: off) while at most `speculate_max_batch` sequences
    are active and all are greedy: up to 4, a verify step of (k + 1) tokens a row costs about a
    plain step of that many rows (still launch-bound: <=32 rows 1.83 ms against 1.45 alone),
    so it pays once ~1 draft in 4 steps is accepted; larger batches gain little and the host's
    per-step lookups and sync grow with them.
    """

    def __init__(
        self,
        weights: Weights,
        *,
        slots: int,
        max_len: int,
        stop_ids: Sequence[int],
        cuda_graphs: bool = True,
        compile: bool = False,
        lookahead: int = 8,
        speculate: int = 0,
        speculate_max_batch: int = 4,
        max_ngram: int = 3,
        attention: str = "torch",
        gather_s: float = 0.002,
        prefill_tokens: int = 32768,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        super().__init__(slots=slots, what="the transformers batch engine", thread="torch-batch")
        self.forward = Forward(
            weights,
            slots=slots,
            max_len=max_len,
            steps_per_read=lookahead,
            cuda_graphs=cuda_graphs,
            compile=compile,
            draft=speculate,
            draft_rows=speculate_max_batch,
            attention=attention,
        )
        self.attention = attention
        self.max_len = max_len
        self.prefill_tokens = prefill_tokens
        self.lookahead = lookahead
        self.speculate = speculate
        self.speculate_max_batch = speculate_max_batch
        self.max_ngram = max_ngram
        # Positions past a sequence's budget that a step may write: a chunk's or a draft's.
        self.headroom = max(lookahead, speculate) + 1
        self.gather_s = gather_s
        self.on_step = on_step
        self._stop_set = set(stop_ids)
        self.steps = 0
        self.step_s = 0.0
        # Draft tokens verified and accepted (the acceptance rate is their ratio).
        self.drafted = 0
        self.accepted = 0
        self._start()

    def submit(
        self,
        tokens: list[int],
        *,
        budget: int,
        sink: Sink,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> concurrent.futures.Future[Finished]:
        if not tokens:
            raise ModelError("an empty prompt cannot be generated from")
        # Room is kept for the steps of a chunk, or the drafts, that follow a sequence's end.
        budget = min(budget, self.max_len - len(tokens) - self.headroom)
        if budget <= 0:
            raise ModelError(
                f"a prompt of {len(tokens)} tokens leaves no room in a context of {self.max_len}"
            )
        request = _Request(
            tokens=tokens, budget=budget, temperature=temperature, top_p=top_p, sink=sink
        )
        return self._enqueue(request)

    def _free_engine(self) -> None:
        self.forward.graphs.clear()
        self.forward.verify_graphs.clear()

    def _gather(self) -> None:
        if self.gather_s:
            # Work arriving at an idle engine comes in a burst: prefill it together.
            time.sleep(self.gather_s)

    def _admit(self) -> None:
        admitted = 0
        longest = 0
        while self._queue and len(self._active) < self.slots:
            request = self._queue[0]
            # The prefill is right-padded: its size is rows × the longest prompt.
            padded = (admitted + 1) * max(longest, len(request.tokens))
            if admitted and padded > self.prefill_tokens:
                break
            self._queue.popleft()
            if request.future.cancelled():
                continue
            self._active.append(_Seq(request=request, row=len(self._active)))  # slots stay dense
            admitted += 1
            longest = max(longest, len(request.tokens))

    def _step(self) -> None:
        fresh = [seq for seq in self._active if seq.prefilling]
        if fresh:
            self._prefill(fresh)
            self._sweep()
        if self._active and not self._speculate():
            self._decode()

    def _prefill(self, seqs: list[_Seq]) -> None:
        """The prompts of `seqs` in one forward; their first tokens out."""
        start = time.perf_counter()
        firsts = self.forward.prefill(
            [q.request.tokens for q in seqs],
            [q.row for q in seqs],
            [q.request.temperature for q in seqs],
            [q.request.top_p for q in seqs],
        )
        now = time.perf_counter()
        for seq, token in zip(seqs, firsts, strict=True):
            seq.pos = len(seq.request.tokens)
            seq.first_token = now
            self._accept(seq, token)
        total = sum(len(q.request.tokens) for q in seqs)
        self._charge(time.perf_counter() - start, [(q, len(q.request.tokens)) for q in seqs], total)

    def _decode(self) -> None:
        """`lookahead` decode steps launched back to back, then one read of all their tokens.

        A sequence that ends inside a chunk decodes a few discarded tokens.
        """
        n = len(self._active)
        k = self.lookahead
        sample = any(q.request.temperature > 0 for q in self._active)
        start = time.perf_counter()
        rows = self.forward.decode(n, k, max(q.pos for q in self._active) + k, sample)
        elapsed = (time.perf_counter() - start) / k
        self.steps += k
        self.step_s += elapsed * k
        for row in rows:
            if self.on_step is not None:
                self.on_step(n, elapsed)
            pairs = zip(self._active, row, strict=True)
            live = [(seq, token) for seq, token in pairs if not seq.done]
            self._charge(elapsed, [(seq, 1) for seq, _ in live], n)
            for seq, token in live:
                seq.pos += 1
                self._accept(seq, token)
        self._sweep()

    def _speculate(self) -> bool:
        """One verify step of prompt-lookup drafts, if the batch is small and greedy and some
        sequence has a draft; False (nothing done) otherwise."""
        active, k = self._active, self.speculate
        if not k or len(active) > self.speculate_max_batch:
            return False
        if any(q.request.temperature > 0 for q in active):
            return False
        drafts = [propose(q.request.tokens + q.out, k, self.max_ngram) for q in active]
        if not any(drafts):
            return False
        n = len(active)
        start = time.perf_counter()
        padded = [d + [-1] * (k - len(d)) for d in drafts]
        rows = self.forward.verify(n, padded, max(q.pos for q in active) + k + 1)
        elapsed = time.perf_counter() - start
        self.steps += 1
        self.step_s += elapsed
        if self.on_step is not None:
            self.on_step(n, elapsed)
        self._charge(elapsed, [(seq, 1) for seq in active], n)
        for seq, draft, row in zip(active, drafts, rows, strict=True):
            taken = row[-1]
            self.drafted += len(draft)
            self.accepted += taken
            # The accepted drafts, then the model's own next token; the sequence may end
            # (stop token, stop string, budget) at any of them, and the rest are dropped.
            for token in row[: taken + 1]:
                seq.pos += 1
                self._accept(seq, token)
                if seq.done:
                    break
        self._sweep()
        return True

    def _accept(self, seq: _Seq, token: int) -> None:
        request = seq.request
        if token in self._stop_set:
            request.sink.end_of_turn()
            seq.done = True
            return
        seq.out.append(token)
        if request.sink.push(token) or len(seq.out) >= request.budget or request.future.cancelled():
            seq.done = True

    def _sweep(self) -> None:
        """Release finished sequences; the highest active ones move into the freed slots."""
        if not any(q.done for q in self._active):
            return
        now = time.perf_counter()
        keep: list[_Seq] = []
        for seq in self._active:
            if seq.done:
                self._resolve(seq, now)
            else:
                keep.append(seq)
        holes = iter(sorted({q.row for q in self._active if q.done and q.row < len(keep)}))
        moves = [(seq, next(holes)) for seq in keep if seq.row >= len(keep)]
        if moves:
            self.forward.move([seq.row for seq, _ in moves], [hole for _, hole in moves])
            for seq, hole in moves:
                seq.row = hole
        keep.sort(key=lambda q: q.row)
        self._active = keep
