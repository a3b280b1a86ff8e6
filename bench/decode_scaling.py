"""What batching can give on this machine: llama.cpp decode steps of 1 … N sequences at once.

    .venv/bin/python bench/decode_scaling.py [--model qwen2.5-coder-0.5b-instruct]
        [--batches 1 2 4 8 16 32] [--ctx-per-seq 512 2048 4096] [--repeats 8]

No codeduel code runs here: one llama.cpp context with a KV stream per sequence (as codeduel's
batch engine makes), every sequence prefilled with 200 tokens, then timed decode steps of B
tokens, one per sequence. The median step time gives the ceiling of aggregate decode tokens/s
at batch B, against which the engine's own figures (bench/generation_speed.py) are read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import llama_cpp

from codeduel.models.bundled import resolve_model_file

PROMPT = 200


def measure(
    model: llama_cpp.llama_model_p, seqs: int, ctx_per_seq: int, repeats: int, batches: list[int]
) -> dict[int, float]:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = seqs * ctx_per_seq
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = seqs
    params.kv_unified = False
    params.n_threads = params.n_threads_batch = os.cpu_count() or 1
    params.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model, params)
    batch = llama_cpp.llama_batch_init(512, 0, 1)

    def decode(items: list[tuple[int, int, int, bool]]) -> None:
        batch.n_tokens = len(items)
        for i, (token, pos, seq, logits) in enumerate(items):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")

    for first in range(0, seqs, 2):
        decode(
            [
                (100 + j, j, s, j == PROMPT - 1)
                for s in range(first, min(first + 2, seqs))
                for j in range(PROMPT)
            ]
        )
    pos = [PROMPT] * seqs
    rates = {}
    for b in batches:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            decode([(300 + s, pos[s], s, True) for s in range(b)])
            times.append(time.perf_counter() - start)
            for s in range(b):
                pos[s] += 1
        rates[b] = b / statistics.median(times)
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--ctx-per-seq", type=int, nargs="+", default=[512, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    path = str(resolve_model_file(args.model)).encode()
    model = llama_cpp.llama_model_load_from_file(path, params)
    print(
        f"{args.model}, {os.cpu_count()} threads, llama-cpp-python {llama_cpp.__version__}; "
        f"aggregate decode tokens/s (median of {args.repeats} steps), {PROMPT}-token prompts"
    )
    for ctx in args.ctx_per_seq:
        rates = measure(model, max(args.batches), ctx, args.repeats, args.batches)
        one = rates[min(rates)]
        cells = ", ".join(f"B={b}: {r:.1f} ({r / one:.2f}x)" for b, r in rates.items())
        print(f"context {ctx} per sequence: {cells}", flush=True)
    llama_cpp.llama_model_free(model)


if __name__ == "__main__":
    main()
