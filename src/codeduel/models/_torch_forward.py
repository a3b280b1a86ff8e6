"""The forward pass of the torch engine: a Llama-family decoder over a static KV cache with one
row per slot.

Written out here (fused QKV and gate/up projections, RMS norm, rotary embedding in the
rotate-half layout that Hugging Face checkpoints use) over `Weights`. Prompts are prefilled
together, right-padded under one causal mask. A decode step reads and writes static buffers, so
on CUDA it is captured as a CUDA graph, one per (batch bucket, context bucket), and a step costs
one graph launch instead of hundreds of kernel launches; with `compile`, torch.compile fuses
each elementwise piece into one kernel. A verify step (prompt-lookup speculation) runs the
pending token and `draft` proposed tokens of each row in one forward, captured the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from codeduel.models._torch_weights import Layer, Shape, Weights

__all__ = ["Forward", "pick"]


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # Hugging Face's order: normalise in float32, cast back, then scale.
    h = F.rms_norm(x.float(), (x.shape[-1],), eps=eps)
    return weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def _silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def _mlp(x: torch.Tensor, gate_up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    return F.linear(_silu_mul(F.linear(x, gate_up)), down)


def _rope(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int, kv: int, hd: int
) -> torch.Tensor:
    """The rotated query and key heads of one token per row of a fused QKV projection."""
    return _rotate(qkv[:, : (heads + kv) * hd].view(qkv.shape[0], heads + kv, hd), cos, sin)


@dataclass(frozen=True)
class _Pointwise:
    """The elementwise pieces of a decode step: plain, or each fused by torch.compile into one
    kernel. Only these are compiled: compiling the whole layer fused the KV-cache writes too,
    and its one-sequence specialisation copied the whole cache every step (8 ms a step for the
    1.5B shape against 2.4 ms)."""

    norm: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] = _rms_norm
    rope: Callable[..., torch.Tensor] = _rope
    act: Callable[[torch.Tensor], torch.Tensor] = _silu_mul

    @classmethod
    def compiled(cls) -> _Pointwise:
        return cls(*(torch.compile(f, dynamic=True) for f in (_rms_norm, _rope, _silu_mul)))


def _decode_layer(
    f: _Pointwise,
    h: torch.Tensor,
    layer: Layer,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    rows: torch.Tensor,
    pos: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: torch.Tensor | None,
    s: Shape,
    fused: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """One decoder layer for one new token of each of `n` sequences (slots 0..n-1), in few
    kernels: the residual adds ride in the output matmuls (addmm), softmax writes bf16. With
    `fused` (`_torch_attention.step_attention`; `cos`/`sin` are then the whole tables),
    rotation, the cache writes and attention are one kernel (and `mask` is None)."""
    heads, kv, hd = s.heads, s.kv_heads, s.head_dim
    qkv = F.linear(f.norm(h, layer.norm1, s.rms_eps), layer.qkv, layer.qkv_bias)
    if fused is not None:
        att = fused(qkv, k_cache, v_cache, pos, cos, sin, heads, kv, hd)
    else:
        assert mask is not None
        n, length = h.shape[0], mask.shape[-1]
        qk = f.rope(qkv, cos, sin, heads, kv, hd)
        k_cache[rows, :, pos] = qk[:, heads:]
        v_cache[rows, :, pos] = qkv[:, (heads + kv) * hd :].view(n, kv, hd)
        q = qk[:, :heads].reshape(n * kv, heads // kv, hd)
        keys = k_cache[:n, :, :length].reshape(n * kv, length, hd)
        values = v_cache[:n, :, :length].reshape(n * kv, length, hd)
        scores = torch.baddbmm(mask, q, keys.transpose(1, 2), alpha=1.0 / math.sqrt(hd))
        att = torch.bmm(torch.softmax(scores, dim=-1), values).view(n, heads * hd)
    h = torch.addmm(h, att, layer.o.t())
    gate_up = F.linear(f.norm(h, layer.norm2, s.rms_eps), layer.gate_up)
    return torch.addmm(h, f.act(gate_up), layer.down.t())


def _verify_layer(
    f: _Pointwise,
    h: torch.Tensor,
    layer: Layer,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    rows: torch.Tensor,
    at: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: torch.Tensor | None,
    s: Shape,
    fused: Callable[..., torch.Tensor] | None = None,
    pos: torch.Tensor | None = None,
) -> torch.Tensor:
    """One decoder layer for `t` consecutive tokens of each of `n` sequences (`h` holds their
    n × t rows, each sequence's together), written as `_decode_layer`: every token's keys and
    values go into the cache first, then the mask lets each token see its row's cache up to
    its own position (`at`), so the `t` tokens attend causally among themselves. With `fused`
    the kernel does all of it from each row's first position `pos` and the whole tables
    (and `mask` is None)."""
    heads, kv, hd = s.heads, s.kv_heads, s.head_dim
    qkv = F.linear(f.norm(h, layer.norm1, s.rms_eps), layer.qkv, layer.qkv_bias)
    if fused is not None:
        att = fused(qkv, k_cache, v_cache, pos, cos, sin, heads, kv, hd)
        h = torch.addmm(h, att, layer.o.t())
        gate_up = F.linear(f.norm(h, layer.norm2, s.rms_eps), layer.gate_up)
        return torch.addmm(h, f.act(gate_up), layer.down.t())
    assert mask is not None
    m, length = h.shape[0], mask.shape[-1]
    n, group = mask.shape[0] // kv, heads // kv
    t = m // n
    qk = f.rope(qkv, cos, sin, heads, kv, hd)
    k_cache[rows, :, at] = qk[:, heads:]
    v_cache[rows, :, at] = qkv[:, (heads + kv) * hd :].view(m, kv, hd)
    # [n * kv, group * t, hd]: each kv head's query heads for all t tokens, one batched matmul.
    q = qk[:, :heads].view(n, t, kv, group, hd).permute(0, 2, 3, 1, 4)
    q = q.reshape(n * kv, group * t, hd)
    keys = k_cache[:n, :, :length].reshape(n * kv, length, hd)
    values = v_cache[:n, :, :length].reshape(n * kv, length, hd)
    scores = torch.baddbmm(mask, q, keys.transpose(1, 2), alpha=1.0 / math.sqrt(hd))
    att = torch.bmm(torch.softmax(scores, dim=-1), values)
    att = att.view(n, kv, group, t, hd).permute(0, 3, 1, 2, 4).reshape(m, heads * hd)
    h = torch.addmm(h, att, layer.o.t())
    gate_up = F.linear(f.norm(h, layer.norm2, s.rms_eps), layer.gate_up)
    return torch.addmm(h, f.act(gate_up), layer.down.t())


def pick(logits: torch.Tensor, temps: torch.Tensor, tops: torch.Tensor) -> torch.Tensor:
    """Per row: greedy where the temperature is 0, else top-p, temperature, Gumbel-max."""
    greedy = logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / torch.clamp(temps[:, None], min=1e-6), dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    beyond = (sorted_probs.cumsum(-1) - sorted_probs) > tops[:, None]
    sorted_probs = sorted_probs.masked_fill(beyond, 0.0)
    noise = -torch.log(-torch.log(torch.rand_like(sorted_probs).clamp_(1e-10, 1.0)))
    choice = (torch.log(sorted_probs) + noise).argmax(dim=-1, keepdim=True)
    drawn = order.gather(-1, choice)[:, 0]
    return torch.where(temps > 0, drawn, greedy)


def _bucket(sizes: list[int], need: int) -> int:
    """The smallest size that holds `need` (the largest if none does)."""
    return next((size for size in sizes if size >= need), sizes[-1])


def _buckets(limit: int, smallest: int) -> list[int]:
    sizes, n = [], smallest
    while n < limit:
        sizes.append(n)
        n *= 2
    sizes.append(limit)
    return sizes


class Forward:
    """The model on `weights` with a KV cache of `slots` rows of `max_len` tokens.

    Decode steps work on rows [0, n): the scheduler keeps its active sequences there. A step
    reads `tokens_buf`/`pos_buf` and writes `out_buf`, so that on CUDA it can be replayed as a
    graph; `decode` runs up to `steps_per_read` of them back to back before reading them.
    With `draft` > 0, `verify` checks that many proposed tokens per row in one step, for
    batches of up to `draft_rows` rows (its graphs are captured for those buckets only).
    """

    def __init__(
        self,
        weights: Weights,
        *,
        slots: int,
        max_len: int,
        steps_per_read: int = 8,
        cuda_graphs: bool = True,
        compile: bool = False,
        draft: int = 0,
        draft_rows: int = 0,
        attention: str = "torch",
    ) -> None:
        self.w = weights
        self.shape = s = weights.shape
        self.device = weights.embed.device
        self.dtype = weights.embed.dtype
        self.max_len = max_len
        self.graphs_enabled = cuda_graphs and self.device.type == "cuda"
        # Compiling needs Triton, which comes with CUDA builds of torch.
        self.compiled = compile and self.device.type == "cuda"
        self._pointwise = _Pointwise.compiled() if self.compiled else _Pointwise()
        # Decode attention as one Triton kernel (`_torch_attention`), or torch's five.
        self._fused: Callable[..., torch.Tensor] | None = None
        if attention == "triton":
            from codeduel.models._torch_attention import step_attention

            self._fused = step_attention
        dev = self.device
        cache_shape = (s.layers, slots, s.kv_heads, max_len, s.head_dim)
        self.k_cache = torch.zeros(cache_shape, device=dev, dtype=self.dtype)
        self.v_cache = torch.zeros(cache_shape, device=dev, dtype=self.dtype)
        inv_freq = 1.0 / (
            s.rope_theta
            ** (torch.arange(0, s.head_dim, 2, dtype=torch.int64).float().to(dev) / s.head_dim)
        )
        freqs = torch.arange(max_len, device=dev, dtype=torch.float32)[:, None] * inv_freq[None]
        emb = torch.cat([freqs, freqs], dim=-1)
        self.cos = emb.cos().to(self.dtype)
        self.sin = emb.sin().to(self.dtype)
        # Static step inputs and outputs: graphs read and write these in place.
        self.tokens_buf = torch.zeros(slots, device=dev, dtype=torch.long)
        self.pos_buf = torch.zeros(slots, device=dev, dtype=torch.long)
        self.temp_buf = torch.zeros(slots, device=dev, dtype=torch.float32)
        self.top_p_buf = torch.ones(slots, device=dev, dtype=torch.float32)
        self.out_buf = torch.zeros(slots, device=dev, dtype=torch.long)
        self.ring = torch.zeros(steps_per_read, slots, device=dev, dtype=torch.long)
        # Verify steps: the drafts in (-1 pads), per row the argmax after the pending token
        # and each draft, then the number of drafts accepted.
        self.draft = draft
        self.draft_buf = torch.full((slots, draft), -1, device=dev, dtype=torch.long)
        self.verify_buf = torch.zeros(slots, draft + 2, device=dev, dtype=torch.long)
        self.batch_buckets = _buckets(slots, 1)
        self.len_buckets = _buckets(max_len, min(256, max_len))
        top = _bucket(self.batch_buckets, draft_rows) if draft and draft_rows else 0
        self.draft_buckets = [b for b in self.batch_buckets if b <= top]
        self.graphs: dict[tuple[int, int, bool], torch.cuda.CUDAGraph] = {}
        self.verify_graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self._pool: Any = None

    # -- prefill -----------------------------------------------------------------------------

    def prefill(
        self,
        prompts: Sequence[list[int]],
        rows: list[int],
        temps: list[float],
        tops: list[float],
    ) -> list[int]:
        """The prompts in one forward into KV rows `rows`; their first tokens, which also sit in
        the step buffers for the next decode step."""
        with torch.inference_mode():
            slots = torch.tensor(rows, device=self.device)
            last = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
            logits = self._last_logits(prompts, slots, last)
            temps_t = torch.tensor(temps, device=self.device)
            tops_t = torch.tensor(tops, device=self.device)
            self.temp_buf[slots], self.top_p_buf[slots] = temps_t, tops_t
            sample = any(t > 0 for t in temps)
            first = pick(logits, temps_t, tops_t) if sample else logits.argmax(-1)
            self.tokens_buf[slots] = first
            self.pos_buf[slots] = last + 1
            tokens: list[int] = first.tolist()
            return tokens

    def _last_logits(
        self, prompts: Sequence[list[int]], slots: torch.Tensor, last: torch.Tensor
    ) -> torch.Tensor:
        """The prompts right-padded under one causal mask, their keys and values written to KV
        rows `slots`; the logits at each one's `last` position."""
        s = self.shape
        n = len(prompts)
        longest = max(len(p) for p in prompts)
        ids = torch.zeros(n, longest, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = torch.tensor(prompt)
        ids = ids.to(self.device, non_blocking=True)
        cos, sin = self.cos[None, :longest, None, :], self.sin[None, :longest, None, :]
        heads, kv, hd, eps = s.heads, s.kv_heads, s.head_dim, s.rms_eps
        h = self.w.embed[ids]
        for i, layer in enumerate(self.w.layers):
            qkv = F.linear(_rms_norm(h, layer.norm1, eps), layer.qkv, layer.qkv_bias)
            qk = _rotate(qkv[..., : (heads + kv) * hd].view(n, longest, heads + kv, hd), cos, sin)
            q = qk[:, :, :heads].transpose(1, 2)
            k = qk[:, :, heads:].transpose(1, 2)
            v = qkv[..., (heads + kv) * hd :].view(n, longest, kv, hd).transpose(1, 2)
            self.k_cache[i, slots, :, :longest] = k
            self.v_cache[i, slots, :, :longest] = v
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            att = att.transpose(1, 2).reshape(n, longest, heads * hd)
            h = h + F.linear(att, layer.o)
            h = h + _mlp(_rms_norm(h, layer.norm2, eps), layer.gate_up, layer.down)
        h = h[torch.arange(n, device=self.device), last]
        return F.linear(_rms_norm(h, self.w.norm, eps), self.w.lm_head)

    # -- decode ------------------------------------------------------------------------------

    def decode(self, n: int, steps: int, need: int, sample: bool) -> list[list[int]]:
        """`steps` tokens for rows [0, n), launched back to back, then one read of them all:
        row j of the result holds step j's tokens. `need` is the context the steps reach.

        Greedy tokens feed the next step on the device, so the host need not look between
        steps: it syncs once per read, and a slow host (the GIL, a busy event loop) no longer
        starves the GPU.
        """
        batch = _bucket(self.batch_buckets, n)
        length = _bucket(self.len_buckets, need)
        for j in range(steps):
            self._run_step(batch, length, sample)
            self.ring[j, :n] = self.out_buf[:n]
        rows: list[list[int]] = self.ring[:steps, :n].tolist()
        return rows

    def _decode(self, n: int, length: int, sample: bool) -> None:
        """One token for slots [0, n): reads tokens_buf/pos_buf, writes out_buf, advances.

        Kept to few kernels, since a step of a small batch is launch-bound: rotary tables and
        the mask are gathered once per step, q and k are rotated together, attention scores
        are one batched matmul with the mask added in; with `compile`, torch.compile fuses
        each elementwise piece (norm, rotary, activation) into one kernel.
        """
        s = self.shape
        tokens, pos = self.tokens_buf[:n], self.pos_buf[:n]
        rows = torch.arange(n, device=self.device)
        if self._fused is not None:
            # The kernel reads the tables at each row's position and stops at its length.
            cos, sin = self.cos, self.sin
            mask = None
        else:
            cos, sin = self.cos[pos][:, None, :], self.sin[pos][:, None, :]
            visible = torch.arange(length, device=self.device)[None, :] <= pos[:, None]
            # [n * kv, 1, length]: broadcast over each kv head's group of query heads.
            mask = torch.zeros(n, 1, 1, length, device=self.device, dtype=self.dtype)
            mask = mask.masked_fill(~visible[:, None, None, :], float("-inf"))
            mask = mask.expand(n, s.kv_heads, 1, length).reshape(n * s.kv_heads, 1, length)
        h = self.w.embed[tokens]
        for i, layer in enumerate(self.w.layers):
            h = _decode_layer(
                self._pointwise,
                h,
                layer,
                self.k_cache[i],
                self.v_cache[i],
                rows,
                pos,
                cos,
                sin,
                mask,
                s,
                self._fused,
            )
        logits = F.linear(_rms_norm(h, self.w.norm, s.rms_eps), self.w.lm_head)
        self.out_buf[:n] = (
            pick(logits, self.temp_buf[:n], self.top_p_buf[:n]) if sample else logits.argmax(dim=-1)
        )
        self.tokens_buf[:n] = self.out_buf[:n]
        self.pos_buf[:n] = torch.clamp(pos + 1, max=self.max_len - 1)

    def verify(self, n: int, drafts: list[list[int]], need: int) -> list[list[int]]:
        """One step of rows [0, n) over their pending token and `draft` proposed tokens each
        (`drafts`, padded with -1, which never matches). Per row: the model's argmax after the
        pending token and after each draft, then the count of drafts accepted (the longest
        prefix equal to the argmax before it). The step buffers already advance past them:
        tokens_buf holds the argmax after the last accepted one, the next pending token."""
        batch = _bucket(self.batch_buckets, n)
        length = _bucket(self.len_buckets, need)
        with torch.inference_mode():
            self.draft_buf[:n] = torch.tensor(drafts, dtype=torch.long).to(self.device)
            if not self.graphs_enabled:
                self._verify(batch, length)
            else:
                graph = self.verify_graphs.get((batch, length))
                if graph is None:
                    graph = self.capture_verify(batch, length)
                graph.replay()
            rows: list[list[int]] = self.verify_buf[:n].tolist()
        return rows

    def _verify(self, n: int, length: int) -> None:
        """The verify step of slots [0, n): reads tokens_buf/pos_buf/draft_buf, writes the KV
        entries of all k + 1 tokens at pos..pos+k and verify_buf, advances the step buffers by
        the accepted count + 1. Drafts past the accepted ones leave KV entries beyond the new
        position, which the mask hides until later steps overwrite them."""
        s, t = self.shape, self.draft + 1
        dev = self.device
        drafts, pos = self.draft_buf[:n], self.pos_buf[:n]
        tokens = torch.cat([self.tokens_buf[:n, None], drafts.clamp(min=0)], dim=1)
        # Clamped: rows past the active ones hold stale positions; theirs is wasted work.
        at = torch.clamp(pos[:, None] + torch.arange(t, device=dev), max=self.max_len - 1)
        rows = torch.arange(n, device=dev)[:, None].expand(n, t).reshape(n * t)
        flat = at.reshape(n * t)
        if self._fused is not None:
            cos, sin = self.cos, self.sin
            mask = None
        else:
            cos, sin = self.cos[flat][:, None, :], self.sin[flat][:, None, :]
            visible = torch.arange(length, device=dev)[None, None, :] <= at[:, :, None]
            # [n * kv, group * t, length], laid out as `_verify_layer` groups its queries.
            mask = torch.zeros(n, 1, 1, t, length, device=dev, dtype=self.dtype)
            mask = mask.masked_fill(~visible[:, None, None], float("-inf"))
            group = s.heads // s.kv_heads
            mask = mask.expand(n, s.kv_heads, group, t, length)
            mask = mask.reshape(n * s.kv_heads, -1, length)
        h = self.w.embed[tokens.reshape(n * t)]
        for i, layer in enumerate(self.w.layers):
            h = _verify_layer(
                self._pointwise,
                h,
                layer,
                self.k_cache[i],
                self.v_cache[i],
                rows,
                flat,
                cos,
                sin,
                mask,
                s,
                self._fused,
                pos,
            )
        logits = F.linear(_rms_norm(h, self.w.norm, s.rms_eps), self.w.lm_head)
        best = logits.argmax(dim=-1).view(n, t)
        accepted = (best[:, :-1] == drafts).long().cumprod(dim=1).sum(dim=1)
        self.verify_buf[:n, :t] = best
        self.verify_buf[:n, t] = accepted
        self.tokens_buf[:n] = best.gather(1, accepted[:, None])[:, 0]
        self.pos_buf[:n] = torch.clamp(pos + accepted + 1, max=self.max_len - 1)

    def move(self, src: list[int], dst: list[int]) -> None:
        """Move the KV rows and step state of slots `src` into slots `dst`."""
        src_t = torch.tensor(src, device=self.device)
        dst_t = torch.tensor(dst, device=self.device)
        with torch.inference_mode():
            self.k_cache[:, dst_t] = self.k_cache[:, src_t]
            self.v_cache[:, dst_t] = self.v_cache[:, src_t]
            for buf in (self.tokens_buf, self.pos_buf, self.temp_buf, self.top_p_buf):
                buf[dst_t] = buf[src_t]

    # -- graphs ------------------------------------------------------------------------------

    def _run_step(self, n: int, length: int, sample: bool) -> None:
        with torch.inference_mode():
            if not self.graphs_enabled:
                self._decode(n, length, sample)
                return
            graph = self.graphs.get((n, length, sample))
            if graph is None:
                graph = self.capture(n, length, sample)
            graph.replay()

    def capture(self, n: int, length: int, sample: bool) -> torch.cuda.CUDAGraph:
        """Capture the decode step of `n` rows over a context of `length` (in inference mode)."""
        graph = self._capture(lambda: self._decode(n, length, sample), self.out_buf)
        self.graphs[(n, length, sample)] = graph
        return graph

    def capture_verify(self, n: int, length: int) -> torch.cuda.CUDAGraph:
        """Capture the verify step of `n` rows over a context of `length` (in inference mode)."""
        graph = self._capture(lambda: self._verify(n, length), self.verify_buf)
        self.verify_graphs[(n, length)] = graph
        return graph

    def _capture(self, step: Callable[[], None], out: torch.Tensor) -> torch.cuda.CUDAGraph:
        # The warm-up run before capture advances the step buffers: put them back after it.
        # Its KV writes are the ones the next real step makes anyway (same inputs).
        buffers = (self.tokens_buf, self.pos_buf, out)
        saved = [b.clone() for b in buffers]
        # torch.cuda.Stream's constructor is unannotated (and torch may be absent when checked).
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call, unused-ignore]
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            step()
        torch.cuda.current_stream().wait_stream(stream)
        for buf, old in zip(buffers, saved, strict=True):
            buf.copy_(old)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            step()
        return graph

    def capture_all(self, sample: bool = False) -> float:
        """Capture every decode graph (and verify graph) now, before any work is submitted;
        returns seconds."""
        start = time.perf_counter()
        if self.graphs_enabled:
            with torch.inference_mode():
                for n in self.batch_buckets:
                    for length in self.len_buckets:
                        if (n, length, sample) not in self.graphs:
                            self.capture(n, length, sample)
                for n in self.draft_buckets:
                    for length in self.len_buckets:
                        if (n, length) not in self.verify_graphs:
                            self.capture_verify(n, length)
            torch.cuda.synchronize()
        return time.perf_counter() - start
