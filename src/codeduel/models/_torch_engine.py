"""Continuous batching in PyTorch for Llama-family decoders (Llama, Qwen2): the GPU path.

One thread owns the weights and a static KV cache with one row per slot. Each step decodes one
token of every active sequence with a single forward; on CUDA that forward is a captured CUDA
graph, one per (batch bucket, context bucket), so a step costs one graph launch instead of
hundreds of kernel launches. Active sequences always sit in the lowest slots: when one ends,
the highest is moved into its place, so the batch shrinks to the next smaller bucket as the
answers finish and the long tail of a run decodes at the speed of a small batch instead of
waiting inside a static batch for its longest member. Waiting prompts are prefilled together,
right-padded under one causal mask, and join the batch at the next step.

The forward is written out here (fused QKV and gate/up projections, RMS norm, rotary embedding
in the rotate-half layout that Hugging Face checkpoints use) over the weights of a
`transformers` model, which loads them, GGUF files included. Imported only by the
`transformers` provider and the GPU benchmarks.
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from codeduel.errors import ModelError
from codeduel.models._futures import fail, resolve

__all__ = ["Finished", "Shape", "Sink", "TorchEngine", "Weights", "dummy_weights", "from_hf"]


@dataclass(frozen=True)
class Shape:
    """The numbers a Llama-family decoder is made of."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    rms_eps: float
    rope_theta: float
    qkv_bias: bool

    def params(self) -> int:
        attn = self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim
        attn += self.heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        return self.layers * (attn + mlp + 2 * self.hidden) + self.vocab * self.hidden


# Public configurations of the bundled models, for same-shape random weights.
SHAPES: dict[str, Shape] = {
    "qwen2.5-coder-0.5b-instruct": Shape(24, 896, 14, 2, 64, 4864, 151936, 1e-6, 1e6, True),
    "qwen2.5-coder-1.5b-instruct": Shape(28, 1536, 12, 2, 128, 8960, 151936, 1e-6, 1e6, True),
}


@dataclass
class _Layer:
    norm1: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    norm2: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


@dataclass
class Weights:
    shape: Shape
    embed: torch.Tensor
    layers: list[_Layer]
    norm: torch.Tensor
    lm_head: torch.Tensor

    def nbytes(self) -> int:
        tensors = [self.embed, self.norm]
        if self.lm_head.data_ptr() != self.embed.data_ptr():
            tensors.append(self.lm_head)
        for layer in self.layers:
            tensors += [layer.norm1, layer.qkv, layer.o, layer.norm2, layer.gate_up, layer.down]
            if layer.qkv_bias is not None:
                tensors.append(layer.qkv_bias)
        return sum(t.numel() * t.element_size() for t in tensors)


def from_hf(model: Any, device: torch.device, dtype: torch.dtype) -> Weights:
    """Take the weights of a loaded `transformers` Llama-family model, fused, onto `device`."""
    config = model.config
    kind = getattr(config, "model_type", "")
    if kind not in ("llama", "qwen2", "mistral"):
        raise ModelError(f"the transformers engine runs Llama-family models, not {kind!r}")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", None):
        raise ModelError(f"rope scaling {rope_type!r} is not supported by the transformers engine")
    theta = rope.get("rope_theta") or getattr(config, "rope_theta", 10000.0)
    window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", kind == "mistral" and window is not None):
        raise ModelError("sliding-window attention is not supported by the transformers engine")
    first = model.model.layers[0]
    biased = [first.self_attn.o_proj, first.mlp.gate_proj, first.mlp.up_proj, first.mlp.down_proj]
    if any(linear.bias is not None for linear in biased):
        raise ModelError("output or MLP biases are not supported by the transformers engine")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    shape = Shape(
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        heads=heads,
        kv_heads=config.num_key_value_heads,
        head_dim=head_dim,
        intermediate=config.intermediate_size,
        vocab=config.vocab_size,
        rms_eps=config.rms_norm_eps,
        rope_theta=float(theta or 10000.0),
        qkv_bias=model.model.layers[0].self_attn.q_proj.bias is not None,
    )

    def put(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device=device, dtype=dtype).contiguous()

    layers = []
    for block in model.model.layers:
        att, mlp = block.self_attn, block.mlp
        bias = None
        if att.q_proj.bias is not None:
            bias = put(torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias]))
        layers.append(
            _Layer(
                norm1=put(block.input_layernorm.weight),
                qkv=put(torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])),
                qkv_bias=bias,
                o=put(att.o_proj.weight),
                norm2=put(block.post_attention_layernorm.weight),
                gate_up=put(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])),
                down=put(mlp.down_proj.weight),
            )
        )
    embed = put(model.model.embed_tokens.weight)
    head = model.get_output_embeddings().weight
    tied = head.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return Weights(shape, embed, layers, put(model.model.norm.weight), embed if tied else put(head))


def dummy_weights(shape: Shape, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Weights:
    """Random weights of `shape` (like vLLM's `--load-format dummy`): speed, not answers."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def rand(*size: int) -> torch.Tensor:
        return (torch.randn(*size, generator=gen, device=device, dtype=torch.float32) * 0.02).to(
            dtype
        )

    def ones(n: int) -> torch.Tensor:
        return torch.ones(n, device=device, dtype=dtype)

    qkv_out = (shape.heads + 2 * shape.kv_heads) * shape.head_dim
    layers = [
        _Layer(
            norm1=ones(shape.hidden),
            qkv=rand(qkv_out, shape.hidden),
            qkv_bias=rand(qkv_out) if shape.qkv_bias else None,
            o=rand(shape.hidden, shape.heads * shape.head_dim),
            norm2=ones(shape.hidden),
            gate_up=rand(2 * shape.intermediate, shape.hidden),
            down=rand(shape.hidden, shape.intermediate),
        )
        for _ in range(shape.layers)
    ]
    embed = rand(shape.vocab, shape.hidden)
    return Weights(shape, embed, layers, ones(shape.hidden), embed)


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
    layer: _Layer,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    rows: torch.Tensor,
    pos: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: torch.Tensor,
    s: Shape,
) -> torch.Tensor:
    """One decoder layer for one new token of each of `n` sequences (slots 0..n-1), in few
    kernels: the residual adds ride in the output matmuls (addmm), softmax writes bf16."""
    n, length = h.shape[0], mask.shape[-1]
    heads, kv, hd = s.heads, s.kv_heads, s.head_dim
    qkv = F.linear(f.norm(h, layer.norm1, s.rms_eps), layer.qkv, layer.qkv_bias)
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


class Sink(Protocol):
    """What a sequence does with its tokens: `push` returns True once a stop string is out;
    `end_of_turn` is called instead when the model ends its turn (a stop token)."""

    def push(self, token: int) -> bool: ...

    def end_of_turn(self) -> None: ...


@dataclass(frozen=True)
class Finished:
    """When a request's first token came and when it ended (perf_counter seconds)."""

    started: float
    first_token: float | None
    ended: float
    busy_s: float
    tokens: list[int]


@dataclass
class _Request:
    tokens: list[int]
    budget: int
    temperature: float
    top_p: float
    sink: Sink
    future: concurrent.futures.Future[Finished]


@dataclass
class _Seq:
    request: _Request
    slot: int
    started: float
    pos: int = 0
    out: list[int] = field(default_factory=list)
    first_token: float | None = None
    busy_s: float = 0.0
    done: bool = False


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


class TorchEngine:
    """Decodes up to `slots` sequences at once; `submit` from any thread.

    `stop_ids` end a sequence by token (end-of-turn markers); text stops are the sink's.
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
        gather_s: float = 0.002,
        prefill_tokens: int = 32768,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        self.w = weights
        self.shape = s = weights.shape
        self.device = weights.embed.device
        self.dtype = weights.embed.dtype
        self.slots = slots
        self.max_len = max_len
        self.prefill_tokens = prefill_tokens
        self.lookahead = lookahead
        self.gather_s = gather_s
        self.on_step = on_step
        self.graphs_enabled = cuda_graphs and self.device.type == "cuda"
        # Compiling needs Triton, which comes with CUDA builds of torch.
        self.compiled = compile and self.device.type == "cuda"
        self._pointwise = _Pointwise.compiled() if self.compiled else _Pointwise()
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
        self.ring = torch.zeros(lookahead, slots, device=dev, dtype=torch.long)
        self._stop_set = set(stop_ids)
        self.batch_buckets = _buckets(slots, 1)
        self.len_buckets = _buckets(max_len, min(256, max_len))
        self._graphs: dict[tuple[int, int, bool], torch.cuda.CUDAGraph] = {}
        self._pool: Any = None
        self._seqs: list[_Seq] = []  # by slot: _seqs[i].slot == i
        self._queue: collections.deque[_Request] = collections.deque()
        self._cv = threading.Condition()
        self._closing = False
        self.steps = 0
        self.step_s = 0.0
        self._thread = threading.Thread(target=self._loop, name="torch-batch", daemon=True)
        self._thread.start()

    # -- the forward -------------------------------------------------------------------------

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
            )
        logits = F.linear(_rms_norm(h, self.w.norm, s.rms_eps), self.w.lm_head)
        self.out_buf[:n] = (
            self._pick(logits, self.temp_buf[:n], self.top_p_buf[:n])
            if sample
            else logits.argmax(dim=-1)
        )
        self.tokens_buf[:n] = self.out_buf[:n]
        self.pos_buf[:n] = torch.clamp(pos + 1, max=self.max_len - 1)

    @staticmethod
    def _pick(logits: torch.Tensor, temps: torch.Tensor, tops: torch.Tensor) -> torch.Tensor:
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

    def _prefill(self, seqs: list[_Seq]) -> None:
        """The prompts of `seqs` in one right-padded causal forward; their first tokens out."""
        with torch.inference_mode():
            self._prefill_forward(seqs)

    def _prefill_forward(self, seqs: list[_Seq]) -> None:
        s = self.shape
        n = len(seqs)
        longest = max(len(q.request.tokens) for q in seqs)
        ids = torch.zeros(n, longest, dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq.request.tokens)] = torch.tensor(seq.request.tokens)
        ids = ids.to(self.device, non_blocking=True)
        slots = torch.tensor([q.slot for q in seqs], device=self.device)
        last = torch.tensor([len(q.request.tokens) - 1 for q in seqs], device=self.device)
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
        logits = F.linear(_rms_norm(h, self.w.norm, eps), self.w.lm_head)
        temps = torch.tensor([q.request.temperature for q in seqs], device=self.device)
        tops = torch.tensor([q.request.top_p for q in seqs], device=self.device)
        self.temp_buf[slots], self.top_p_buf[slots] = temps, tops
        first = self._pick(logits, temps, tops) if self._sampling(seqs) else logits.argmax(-1)
        self.tokens_buf[slots] = first
        self.pos_buf[slots] = last + 1
        for seq in seqs:
            seq.pos = len(seq.request.tokens)
        firsts = first.tolist()
        now = time.perf_counter()
        for seq, token in zip(seqs, firsts, strict=True):
            seq.first_token = now
            self._accept(seq, token)

    @staticmethod
    def _sampling(seqs: Sequence[_Seq]) -> bool:
        return any(q.request.temperature > 0 for q in seqs)

    # -- graphs ------------------------------------------------------------------------------

    def _run_step(self, n: int, length: int, sample: bool) -> None:
        with torch.inference_mode():
            if not self.graphs_enabled:
                self._decode(n, length, sample)
                return
            graph = self._graphs.get((n, length, sample))
            if graph is None:
                graph = self._capture(n, length, sample)
            graph.replay()

    def _capture(self, n: int, length: int, sample: bool) -> torch.cuda.CUDAGraph:
        # The warm-up run before capture advances the step buffers: put them back after it.
        # Its KV writes are the ones the next real step makes anyway (same inputs).
        buffers = (self.tokens_buf, self.pos_buf, self.out_buf)
        saved = [b.clone() for b in buffers]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._decode(n, length, sample)
        torch.cuda.current_stream().wait_stream(stream)
        for buf, old in zip(buffers, saved, strict=True):
            buf.copy_(old)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._decode(n, length, sample)
        self._graphs[(n, length, sample)] = graph
        return graph

    def capture_all(self, sample: bool = False) -> float:
        """Capture every decode graph now, before any work is submitted; returns seconds."""
        start = time.perf_counter()
        if self.graphs_enabled:
            with torch.inference_mode():
                for n in self.batch_buckets:
                    for length in self.len_buckets:
                        if (n, length, sample) not in self._graphs:
                            self._capture(n, length, sample)
            torch.cuda.synchronize()
        return time.perf_counter() - start

    # -- scheduling --------------------------------------------------------------------------

    def submit(
        self,
        tokens: list[int],
        *,
        budget: int,
        sink: Sink,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> concurrent.futures.Future[Finished]:
        future: concurrent.futures.Future[Finished] = concurrent.futures.Future()
        if not tokens:
            raise ModelError("an empty prompt cannot be generated from")
        # Room is kept for the steps of a chunk that follow a sequence's end.
        budget = min(budget, self.max_len - len(tokens) - self.lookahead - 1)
        if budget <= 0:
            raise ModelError(
                f"a prompt of {len(tokens)} tokens leaves no room in a context of {self.max_len}"
            )
        with self._cv:
            if self._closing:
                raise ModelError("the transformers batch engine is closed")
            self._queue.append(_Request(tokens, budget, temperature, top_p, sink, future))
            self._cv.notify()
        return future

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join()
        for seq in self._seqs:
            fail(seq.request.future, ModelError("the transformers batch engine was closed"))
        for request in self._queue:
            fail(request.future, ModelError("the transformers batch engine was closed"))
        self._seqs.clear()
        self._queue.clear()
        self._graphs.clear()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._queue and not self._seqs:
                    self._cv.wait()
                if self._closing:
                    return
                idle = not self._seqs
            if idle and self.gather_s:
                # Work arriving at an idle engine comes in a burst: prefill it together.
                time.sleep(self.gather_s)
            with self._cv:
                admitted = self._admit()
            try:
                if admitted:
                    start = time.perf_counter()
                    self._prefill(admitted)
                    elapsed = time.perf_counter() - start
                    total = sum(len(q.request.tokens) for q in admitted)
                    for seq in admitted:
                        seq.busy_s += elapsed * len(seq.request.tokens) / total
                    self._sweep()
                if self._seqs:
                    self._step()
            except Exception as exc:  # a failed forward fails every sequence in it
                for seq in list(self._seqs):
                    fail(seq.request.future, exc)
                self._seqs.clear()

    def _admit(self) -> list[_Seq]:
        admitted: list[_Seq] = []
        longest = 0
        while self._queue and len(self._seqs) < self.slots:
            request = self._queue[0]
            # The prefill is right-padded: its size is rows × the longest prompt.
            padded = (len(admitted) + 1) * max(longest, len(request.tokens))
            if admitted and padded > self.prefill_tokens:
                break
            self._queue.popleft()
            if request.future.cancelled():
                continue
            seq = _Seq(request, len(self._seqs), time.perf_counter())  # slots stay dense
            self._seqs.append(seq)
            admitted.append(seq)
            longest = max(longest, len(request.tokens))
        return admitted

    def _step(self) -> None:
        """`lookahead` decode steps launched back to back, then one read of all their tokens.

        Greedy tokens feed the next step on the device, so the host need not look between
        steps: it syncs once per chunk, and a slow host (the GIL, a busy event loop) no longer
        starves the GPU. A sequence that ends inside a chunk decodes a few discarded tokens.
        """
        n = len(self._seqs)
        k = self.lookahead
        batch = _bucket(self.batch_buckets, n)
        length = _bucket(self.len_buckets, max(q.pos for q in self._seqs) + k)
        sample = self._sampling(self._seqs)
        start = time.perf_counter()
        for j in range(k):
            self._run_step(batch, length, sample)
            self.ring[j, :n] = self.out_buf[:n]
        rows = self.ring[:k, :n].tolist()
        elapsed = (time.perf_counter() - start) / k
        self.steps += k
        self.step_s += elapsed * k
        for row in rows:
            if self.on_step is not None:
                self.on_step(n, elapsed)
            for seq, token in zip(self._seqs, row, strict=True):
                if seq.done:
                    continue
                seq.pos += 1
                seq.busy_s += elapsed / n
                self._accept(seq, token)
        self._sweep()

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
        if not any(q.done for q in self._seqs):
            return
        now = time.perf_counter()
        keep: list[_Seq] = []
        for seq in self._seqs:
            if seq.done:
                finished = Finished(seq.started, seq.first_token, now, seq.busy_s, seq.out)
                resolve(seq.request.future, finished)
            else:
                keep.append(seq)
        holes = iter(sorted({q.slot for q in self._seqs if q.done and q.slot < len(keep)}))
        moves = [(seq, next(holes)) for seq in keep if seq.slot >= len(keep)]
        if moves:
            src = torch.tensor([seq.slot for seq, _ in moves], device=self.device)
            dst = torch.tensor([hole for _, hole in moves], device=self.device)
            with torch.inference_mode():
                self.k_cache[:, dst] = self.k_cache[:, src]
                self.v_cache[:, dst] = self.v_cache[:, src]
                for buf in (self.tokens_buf, self.pos_buf, self.temp_buf, self.top_p_buf):
                    buf[dst] = buf[src]
            for seq, hole in moves:
                seq.slot = hole
        keep.sort(key=lambda q: q.slot)
        self._seqs = keep
