"""Generation speed on llama.cpp: a bare llama-cpp-python loop, codeduel one call at a time, and
codeduel's continuous batching, side by side on the same HumanEval prompts.

    .venv/bin/python bench/generation_speed.py [--model qwen2.5-coder-0.5b-instruct]
        [--tasks 16] [--parallel 8 16] [--rounds 3] [--max-tokens 768]

Each round runs, in alternating order, on the first `tasks` HumanEval prompts with greedy
decoding, Qwen's EvalPlus prompt and the same llama.cpp settings:
- bare: `Llama.create_completion` on the rendered prompt, one prompt after another, with the
  same stop strings (what a plain script does);
- codeduel, parallel=1: `Model.generate` through the provider, one call at a time;
- codeduel, parallel=P: every prompt submitted at once to the batch engine with P slots.
Tokens/s is completion tokens over wall time of the whole pass. Also checks that every batched
answer is identical to the one-at-a-time answer (greedy must not change with batching).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import llama_cpp

from codeduel.benchmarks import load_benchmark
from codeduel.models import GenerateConfig, Model, load_model, parse_model_spec
from codeduel.models.bundled import resolve_model_file
from codeduel.prompts import code_prompt


def codeduel_pass(
    model: Model, prompts: list[tuple[tuple, GenerateConfig]]
) -> tuple[int, list[str]]:
    # A wrapper per event loop (its semaphore belongs to one); the provider and engine stay.
    model = Model(model.spec, model.provider)

    async def go() -> list:
        return await asyncio.gather(*(model.generate(m, c) for m, c in prompts))

    outputs = asyncio.run(go())
    return sum(o.completion_tokens for o in outputs), [o.text for o in outputs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--parallel", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=768)
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args()

    tasks = load_benchmark("humaneval").select(limit=args.tasks)
    base = GenerateConfig(max_tokens=args.max_tokens)
    prompts = [(p.messages, p.config(base)) for p in map(code_prompt, tasks)]
    threads = os.cpu_count() or 1
    spec = parse_model_spec(f"llamacpp/{args.model}")
    common = {"n_ctx": str(args.n_ctx), "n_threads": str(threads)}
    single = load_model(spec, common)
    batched = {p: load_model(spec, {**common, "parallel": str(p)}) for p in args.parallel}

    provider = single.provider
    provider.load()  # type: ignore[attr-defined]
    rendered = [provider.render(m, c) for m, c in prompts]  # type: ignore[attr-defined]
    stops = list(prompts[0][1].stop) + list(provider.family.end_of_turn)  # type: ignore[attr-defined]
    bare = llama_cpp.Llama(
        model_path=str(resolve_model_file(args.model)),
        n_ctx=args.n_ctx,
        n_batch=512,
        n_threads=threads,
        verbose=False,
    )

    def bare_pass() -> tuple[int, list[str]]:
        tokens, texts = 0, []
        for prompt in rendered:
            out = bare.create_completion(
                prompt,
                max_tokens=args.max_tokens,
                temperature=0.0,
                top_k=1,
                top_p=1.0,
                min_p=0.0,
                repeat_penalty=1.0,
                stop=stops,
            )
            tokens += out["usage"]["completion_tokens"]
            texts.append(out["choices"][0]["text"])
        return tokens, texts

    def one_at_a_time() -> tuple[int, list[str]]:
        tokens, texts = 0, []
        for m, c in prompts:
            out = asyncio.run(single.generate(m, c))
            tokens += out.completion_tokens
            texts.append(out.text)
        return tokens, texts

    passes: dict[str, Callable[[], tuple[int, list[str]]]] = {
        "bare llama-cpp-python loop": bare_pass,
        "codeduel parallel=1": one_at_a_time,
    }
    for p, model in batched.items():
        passes[f"codeduel parallel={p}"] = lambda model=model: codeduel_pass(model, prompts)

    print(
        f"{args.model}, {len(prompts)} HumanEval prompts, greedy, max_tokens {args.max_tokens}, "
        f"{threads} threads, llama-cpp-python {llama_cpp.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    rates: dict[str, list[float]] = {name: [] for name in passes}
    reference: list[str] | None = None
    mismatches: dict[str, int] = {}
    names = list(passes)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        line = []
        for name in order:
            start = time.perf_counter()
            tokens, texts = passes[name]()
            wall = time.perf_counter() - start
            rates[name].append(tokens / wall)
            line.append(f"{name} {tokens / wall:.1f} tok/s ({tokens} in {wall:.1f} s)")
            if name == "codeduel parallel=1":
                reference = reference or texts
            results = mismatches.setdefault(name, 0)
            mismatches[name] = results
            if name.startswith("codeduel parallel=") and reference is not None:
                mismatches[name] += sum(a != b for a, b in zip(texts, reference, strict=True))
        print(f"round {r + 1}: " + "; ".join(line), flush=True)
    base_rate = statistics.median(rates["codeduel parallel=1"])
    bare_rate = statistics.median(rates["bare llama-cpp-python loop"])
    for name, values in rates.items():
        med = statistics.median(values)
        print(
            f"{name}: median {med:.1f} tok/s (min {min(values):.1f}, max {max(values):.1f}); "
            f"{med / bare_rate:.2f}x bare, {med / base_rate:.2f}x one-at-a-time"
        )
    for name, count in mismatches.items():
        if name.startswith("codeduel parallel=") and name != "codeduel parallel=1":
            print(f"{name}: {count} answers differ from one-at-a-time (greedy)")
    for model in (single, *batched.values()):
        model.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
