"""Time one captured decode step of the GPU engine per way of writing its layer, side by side.

    python bench/gpu_step_variants.py [--shape qwen2.5-coder-1.5b-instruct] [--n 1 8 64]

Same-shape random weights; each variant's layer function is put into the same engine, its step
captured as a CUDA graph per (batch, context) and replayed (median of `--reps` replays, timed
with CUDA events). `--profile` also prints the kernels of one replay of each variant at the
first batch size, largest first, to show where a step's time goes.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F

from codeduel.models import _torch_engine as te


def _norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


def _rope(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int, kv: int, hd: int):
    n = qkv.shape[0]
    return te._rotate(qkv[:, : (heads + kv) * hd].view(n, heads + kv, hd), cos, sin)


def _silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def lean_layer(
    norm: Callable, rope: Callable, act: Callable, sdpa: bool = False
) -> Callable[..., torch.Tensor]:
    """The layer in fewer kernels: residual adds inside the matmuls (addmm), softmax straight
    to bf16, and the elementwise pieces as `norm`, `rope`, `act` (compiled or not)."""

    def layer(h, norm1, qkv_w, qkv_b, o_w, norm2, gate_up, down, k_cache, v_cache, rows, pos,
              cos, sin, mask, heads, kv, hd, eps):  # fmt: skip
        n, length = h.shape[0], mask.shape[-1]
        qkv = F.linear(norm(h, norm1, eps), qkv_w, qkv_b)
        qk = rope(qkv, cos, sin, heads, kv, hd)
        k_cache[rows, :, pos] = qk[:, heads:]
        v_cache[rows, :, pos] = qkv[:, (heads + kv) * hd :].view(n, kv, hd)
        q = qk[:, :heads].reshape(n * kv, heads // kv, hd)
        keys = k_cache[:n, :, :length].reshape(n * kv, length, hd)
        values = v_cache[:n, :, :length].reshape(n * kv, length, hd)
        if sdpa:
            # Each kv head's group of query heads as the query positions of plain attention.
            att = F.scaled_dot_product_attention(
                q.view(n, kv, heads // kv, hd),
                k_cache[:n, :, :length],
                v_cache[:n, :, :length],
                attn_mask=mask.view(n, kv, 1, length),
            ).reshape(n, heads * hd)
        else:
            scores = torch.baddbmm(mask, q, keys.transpose(1, 2), alpha=1.0 / math.sqrt(hd))
            att = torch.bmm(torch.softmax(scores, dim=-1), values).view(n, heads * hd)
        h = torch.addmm(h, att, o_w.t())
        return torch.addmm(h, act(F.linear(norm(h, norm2, eps), gate_up)), down.t())

    return layer


def time_replays(graph: torch.cuda.CUDAGraph, reps: int) -> float:
    for _ in range(10):
        graph.replay()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def kernel_table(graph: torch.cuda.CUDAGraph, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        graph.replay()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument(
        "--variants", nargs="+", default=["eager", "compiled", "lean", "lean-compiled"]
    )
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda")
    shape = te.SHAPES[args.shape]
    weights = te.dummy_weights(shape, device, torch.bfloat16)
    slots = max(args.n)
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.shape}")
    variants: dict[str, Callable[[], te.TorchEngine]] = {
        "eager": lambda: te.TorchEngine(weights, slots=slots, max_len=2048, stop_ids=[]),
        "compiled": lambda: te.TorchEngine(
            weights, slots=slots, max_len=2048, stop_ids=[], compile=True
        ),
    }
    compiled = {f: torch.compile(f, dynamic=True) for f in (_norm, _rope, _silu_mul)}
    layers = {
        "lean": lean_layer(_norm, _rope, _silu_mul),
        "lean-compiled": lean_layer(compiled[_norm], compiled[_rope], compiled[_silu_mul]),
        "lean-compiled-sdpa": lean_layer(
            compiled[_norm], compiled[_rope], compiled[_silu_mul], sdpa=True
        ),
    }
    for name in args.variants:
        engine = variants.get(name, variants["eager"])()
        if name in layers:
            engine._layer_fn = layers[name]
        with torch.inference_mode():
            for n in args.n:
                graph = engine._capture(n, args.length, False)
                ms = time_replays(graph, args.reps)
                print(f"{name:10s} n={n:<4d} {ms:7.3f} ms per step  {n / ms * 1e3:9.0f} tok/s")
            if args.profile:
                graph = engine._graphs[(args.n[0], args.length, False)]
                print(kernel_table(graph, 25))
        engine.close()
        del engine
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
