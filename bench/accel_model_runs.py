"""The GPU half, measured: a local model writes CuPy and PyTorch code, the GPU checks and times it.

    python3 bench/accel_model_runs.py --model /tmp/models/qwen2.5-coder-1.5b-instruct.gguf \
        --db /tmp/accel/runs.db [--runs single repair resample duel] [--limit N]

Loads the model once through the `transformers` provider (on the GPU) and runs, into one store,
`codeduel run accel-torch` and `accel-cupy` with `--executor gpu`: single-shot, `repair` (the
GPU's feedback: mismatch, exception, or speed against NumPy's; 3 attempts) and `resample` at
the same token budget (repair's fair baseline). `duel` runs accel-torch again with the cloud
side answered by the loopback Anthropic stand-in of tests/models/fakeapi.py (the real SDK over
a socket; it answers each task with the task's own GPU reference, so its figures say nothing
about Claude: the run shows that a user with a key gets the table in one command). The local
model's calls are replayed from the store there (same requests, greedy).

Each run's GPU-task summary is printed (`codeduel report`'s section); the store is the result.
Runs already complete in the store are skipped, so a later call (a copy of the committed
store as --db) does only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeduel.benchmarks import load_benchmark  # noqa: E402
from codeduel.benchmarks.accel import AccelTask  # noqa: E402
from codeduel.models import Model, parse_model_spec  # noqa: E402
from codeduel.runner import RunOptions, run_benchmark  # noqa: E402
from codeduel.store import Store  # noqa: E402
from codeduel.types import GenerateConfig  # noqa: E402

KEY = "sk-ant-codeduel-accel-duel-5c1e"
CLOUD = "anthropic/claude-sonnet-4-5"


def _stand_in(framework: str) -> Any:
    """The loopback Anthropic API, answering each GPU task with its own GPU reference."""
    from tests.models.fakeapi import FakeAPI

    tasks = [t for t in load_benchmark(f"accel-{framework}").tasks if isinstance(t, AccelTask)]

    def answer(request: dict[str, Any]) -> str:
        prompt = json.dumps(request["messages"])
        # After a prefilled fence (the provider's `prefill`), the answer continues it.
        prefilled = request["messages"][-1]["role"] == "assistant"
        for task in tasks:
            if json.dumps(task.spec.reference.strip())[1:-1] in prompt:
                code = f"{task.spec.gpu_reference}\n```"
                return code if prefilled else f"```python\n{code}"
        return "I cannot help with that."

    return FakeAPI(answer, api_key=KEY)


def _summary(store: Store, name: str) -> None:
    from codeduel.report import build_report, render_markdown

    run = store.get_run(name)
    assert run is not None
    print(render_markdown([build_report(store, run)]), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a GGUF file")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", default=["single", "repair", "resample", "duel"])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "cupy"])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="cuda", help="torch device of the model")
    parser.add_argument("--executor", default="gpu", help="where answers run (local: CPU)")
    parser.add_argument("--wait", type=Path, help="start the runs once this file exists")
    args = parser.parse_args()

    from codeduel.models.transformers import TransformersOptions, TransformersProvider

    gpu = args.device != "cpu"
    options = {
        "device": args.device,
        "parallel": "64" if gpu else "4",
        "max_len": "4096",
        "compile": str(gpu).lower(),
        "cuda_graphs": str(gpu).lower(),
    }
    spec = parse_model_spec(f"transformers/{args.model}")
    provider = TransformersProvider(args.model, TransformersOptions.model_validate(options))
    start = time.perf_counter()
    provider.load()
    print(f"model loaded in {time.perf_counter() - start:.1f} s: {provider.timings}", flush=True)
    local = Model(spec, provider)
    if args.wait is not None:  # the reference timings running beside the load finish first
        waited = time.perf_counter()
        while not args.wait.exists() and time.perf_counter() - waited < 600:
            time.sleep(2)
        print(f"waited {time.perf_counter() - waited:.0f} s for {args.wait}", flush=True)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.db)
    config = GenerateConfig(max_tokens=args.max_tokens)
    wall: dict[str, float] = {}
    for kind in args.runs:
        for framework in args.frameworks if kind != "duel" else ["torch"]:
            name = f"accel-{framework}-{kind}"
            done = store.get_run(name)
            if done is not None and done.status == "complete":
                print(f"{name}: complete in the store, skipped", flush=True)
                continue
            strategy = {"duel": "single"}.get(kind, kind)
            models: list[Model] = [local]
            model_specs = [spec]
            api = None
            if kind == "duel":
                from codeduel.models import load_model

                api = _stand_in(framework).start()
                os.environ["ANTHROPIC_BASE_URL"] = api.url
                os.environ["ANTHROPIC_API_KEY"] = KEY
                cloud_spec = parse_model_spec(CLOUD)
                models.append(load_model(cloud_spec, {}))
                model_specs.append(cloud_spec)
            opts = RunOptions(
                benchmark=f"accel-{framework}",
                models=tuple(model_specs),
                model_options={str(spec): options},
                strategy=strategy,
                limit=args.limit,
                config=config,
                run_name=name,
                resume=store.get_run(name) is not None,
                workers=args.workers,
                executor=args.executor,
            )
            began = time.perf_counter()
            try:
                run_benchmark(store, opts, models=models)
            except Exception as exc:
                print(f"{name}: failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            finally:
                if api is not None:
                    api.stop()
                    models[-1].close()
            wall[name] = time.perf_counter() - began
            print(f"{name}: {wall[name]:.1f} s", flush=True)
            _summary(store, name)
    print(json.dumps({"wall_s": wall}), flush=True)
    store.close()
    provider.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
