"""How much of execution hides behind generation: the same tasks generated alone, then run end
to end (`run_benchmark`: sandbox start, timeout calibration, generation, every answer's hidden
tests, the store), on one loaded model, side by side.

    .venv/bin/python bench/overlap.py [--model llamacpp/qwen2.5-coder-0.5b-instruct]
        [-M parallel=16 -M n_ctx=2048] [--limit 16] [--rounds 1]

Prints both wall times and their ratio (end to end ÷ generation only; 1.0 = execution fully
hidden). The end-to-end pass does not reuse stored answers, so both generate the same requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from codeduel.benchmarks import load_benchmark
from codeduel.models import GenerateConfig, Model, load_model, parse_model_spec
from codeduel.prompts import code_prompt
from codeduel.runner import RunOptions, run_benchmark
from codeduel.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llamacpp/qwen2.5-coder-0.5b-instruct")
    parser.add_argument("-M", dest="options", action="append", default=[])
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    spec = parse_model_spec(args.model)
    options = dict(o.split("=", 1) for o in args.options)
    loaded = load_model(spec, options)
    tasks = load_benchmark("humaneval").select(limit=args.limit)
    base = GenerateConfig()
    prompts = [(p.messages, p.config(base)) for p in map(code_prompt, tasks)]

    def generate_only() -> float:
        model = Model(spec, loaded.provider)  # a wrapper per event loop

        async def go() -> None:
            await asyncio.gather(*(model.generate(m, c) for m, c in prompts))

        start = time.perf_counter()
        asyncio.run(go())
        return time.perf_counter() - start

    generate_only()  # warm-up: load the weights, start the engine
    gen, e2e = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "runs.db")
        for i in range(args.rounds):
            gen.append(generate_only())
            opts = RunOptions(
                benchmark="humaneval",
                models=(spec,),
                model_options={str(spec): options},
                limit=args.limit,
                config=base,
                run_name=f"overlap-{i}",
                reuse_calls=False,
            )
            start = time.perf_counter()
            run_benchmark(store, opts, models=[Model(spec, loaded.provider)])
            e2e.append(time.perf_counter() - start)
            print(
                f"round {i + 1}: generation only {gen[-1]:.1f} s, end to end {e2e[-1]:.1f} s, "
                f"ratio {e2e[-1] / gen[-1]:.3f}",
                flush=True,
            )
        store.close()
    loaded.close()
    g, e = statistics.median(gen), statistics.median(e2e)
    print(
        f"{args.model} {options}, {args.limit} tasks: generation only {g:.1f} s, "
        f"end to end {e:.1f} s, ratio of medians {e / g:.3f}"
    )


if __name__ == "__main__":
    main()
