"""Time one captured decode step of the GPU engine per way of compiling its layer, side by side.

    python bench/gpu_step_variants.py [--shape qwen2.5-coder-1.5b-instruct] [--n 1 8 64]

Same-shape random weights. Variants: `plain` (CUDA graphs, nothing compiled), `compiled` (the
engine's `compile`: each elementwise piece fused by torch.compile) and `whole-layer` (the whole
decoder layer through torch.compile, KV-cache writes included, as the engine first did). Each
variant's step is captured as a CUDA graph per (batch, context) and replayed: median of `--reps`
replays, timed with CUDA events. `--profile` also prints the kernels of one replay of each
variant at the first batch size, largest first, to show where a step's time goes.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from codeduel.models import _torch_forward as tf
from codeduel.models._torch_weights import SHAPES, dummy_weights


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
    parser.add_argument("--variants", nargs="+", default=["plain", "compiled", "whole-layer"])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda")
    weights = dummy_weights(SHAPES[args.shape], device, torch.bfloat16)
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.shape}")
    layer = tf._decode_layer
    for name in args.variants:
        tf._decode_layer = torch.compile(layer, dynamic=True) if name == "whole-layer" else layer
        forward = tf.Forward(weights, slots=max(args.n), max_len=2048, compile=name == "compiled")
        with torch.inference_mode():
            for n in args.n:
                graph = forward.capture(n, args.length, False)
                ms = time_replays(graph, args.reps)
                print(f"{name:12s} n={n:<4d} {ms:7.3f} ms per step  {n / ms * 1e3:9.0f} tok/s")
            if args.profile:
                graph = forward.graphs[(args.n[0], args.length, False)]
                print(kernel_table(graph, 25))
        del forward
        torch.cuda.empty_cache()
    tf._decode_layer = layer


if __name__ == "__main__":
    main()
