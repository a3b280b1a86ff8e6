"""Where the `llamacpp` batch engine's time goes: its calls into llama.cpp timed one by one.

    python bench/llamacpp_profile.py --model PATH.gguf [--seqs 1 64 164] [--prompt 200]
        [--answer 64] [--backend-sampling true false] [--parallel auto]

For each variant, the same synthetic job as bench/llamacpp_side_by_side.py (N prompts of P
random tokens, exactly A answer tokens each), after a warm-up job: wall time, and within it the
time spent in `llama_decode` (queueing the work; on a GPU it returns before the work is done),
in `llama_sampler_sample` or, with backend sampling, `llama_get_sampled_token_ith` (the first
read of a step waits for the device) and in `llama_synchronize`; the rest is the engine's own
Python. Decode calls are split by size so
the prompt calls and the one-token-per-sequence calls show apart.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llamacpp_side_by_side import engine_job

from codeduel.models.llamacpp import LlamaCppOptions, LlamaCppProvider

TIMES: dict[str, list[float]] = defaultdict(list)


def timed(name: str, fn: Any) -> Any:
    def wrapper(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            TIMES[name].append(time.perf_counter() - start)

    return wrapper


def timed_decode(fn: Any) -> Any:
    def wrapper(ctx: Any, batch: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(ctx, batch)
        finally:
            TIMES[f"decode n={batch.n_tokens}" if batch.n_tokens <= 8 else "decode n>8"].append(
                time.perf_counter() - start
            )

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--seqs", type=int, nargs="+", default=[1, 64, 164])
    ap.add_argument("--prompt", type=int, default=200)
    ap.add_argument("--answer", type=int, default=64)
    ap.add_argument("--backend-sampling", nargs="+", default=["true", "false"])
    ap.add_argument("--parallel", default="auto")
    ap.add_argument("--kv-unified", nargs="+", default=["false"])
    ap.add_argument("--n-ctx", type=int, default=1024)
    args = ap.parse_args()
    llama_cpp.llama_decode = timed_decode(llama_cpp.llama_decode)
    llama_cpp.llama_sampler_sample = timed("sample", llama_cpp.llama_sampler_sample)
    llama_cpp.llama_synchronize = timed("synchronize", llama_cpp.llama_synchronize)
    # Backend sampling's token read: its first call of a step waits for the device.
    llama_cpp.llama_get_sampled_token_ith = timed(
        "sampled read", llama_cpp.llama_get_sampled_token_ith
    )
    rng = random.Random(0)
    variants = [(b, u) for b in args.backend_sampling for u in args.kv_unified]
    for backend, unified in variants:
        options = {
            "parallel": args.parallel,
            "n_ctx": args.n_ctx,
            "backend_sampling": backend,
            "kv_unified": unified,
        }
        p = LlamaCppProvider(args.model, LlamaCppOptions.model_validate(options))
        p.load()
        vocab = p._llm.n_vocab() if p._llm else 32000
        for n in args.seqs:
            walls = []
            for _ in range(2):
                TIMES.clear()
                prompts = [
                    [rng.randrange(1000, vocab - 1000) for _ in range(args.prompt)]
                    for _ in range(n)
                ]
                job = engine_job(p, prompts, args.answer)
                walls.append(job["wall_s"])
            wall = walls[-1]
            inside = {k: (len(v), sum(v)) for k, v in sorted(TIMES.items())}
            spent = sum(total for _, total in inside.values())
            parts = ", ".join(f"{k}: {c} calls {t:.3f} s" for k, (c, t) in inside.items())
            tokens = n * args.answer
            print(
                f"backend_sampling={backend} kv_unified={unified} parallel={p.parallel} "
                f"seqs={n}: wall {wall:.3f} s "
                f"(warm-up {walls[0]:.3f}), {tokens / wall:.0f} answer tok/s; {parts}; "
                f"engine's own Python {wall - spent:.3f} s; median decode call "
                f"{statistics.median(TIMES.get('decode n>8', [0.0]) or [0.0]) * 1e3:.2f} ms",
                flush=True,
            )
        p.close()


if __name__ == "__main__":
    main()
