"""The GPU path on full HumanEval: the `transformers` provider (codeduel's batching engine, static
KV cache, CUDA graphs) end to end through `run_benchmark`, against the limits of the GPU.

    python bench/gpu_humaneval.py --model PATH.gguf [--rounds 3] [--out DIR]
    python bench/gpu_humaneval.py --dummy qwen2.5-coder-1.5b-instruct --replay lengths.json
    python bench/gpu_humaneval.py --model PATH.gguf --speculate 0 8 8:64   # one load, 3 engines

Real weights: after warm-up (weights loaded and moved, graphs captured, one warm-up run) each
round runs the whole of `codeduel run humaneval` in-process on the loaded model (sandbox start,
timeout calibration, generation, execution of every answer's hidden tests, SQLite store) and
is timed end to end; a generation-only pass over the same prompts times the engine alone, so
the ratio shows how much of execution hides behind generation. Then single-stream decode, one
task at a time.

`--dummy SHAPE`: same-shape random weights (nothing to download) replaying the prompt and
answer token lengths of a real run (`--replay`, from `bench/replay_lengths.py`): each request
gets a prompt of random tokens of the recorded length and decodes exactly the recorded number
of answer tokens. Speed only; there are no answers to score.

Limits: single-stream decode is bounded by memory bandwidth ÷ bytes read per step (all weights
and the sequence's KV cache); the batched run by peak FLOP/s (2 × parameters per token, plus
attention). Bandwidth and the bf16 matrix rate are measured at the start of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from codeduel.benchmarks import load_benchmark
from codeduel.models import GenerateConfig, Model, parse_model_spec
from codeduel.prompts import code_prompt


class Count:
    """A sink that never stops a sequence: it decodes exactly its budget."""

    def push(self, token: int) -> bool:
        return False

    def end_of_turn(self) -> None:
        pass


def measure_bandwidth(device: torch.device) -> float:
    """Bytes per second of a device-to-device copy, counting bytes read and written."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    del src, dst
    return 2 * (1 << 30) * 10 / elapsed


def measure_flops(device: torch.device) -> float:
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * 10 / (time.perf_counter() - start)


class step_profile:
    """Decode steps by batch size: how many and their mean time."""

    def __init__(self, engine: Any) -> None:
        self.by_n: dict[int, list[float]] = {}
        engine.on_step = self.record

    def record(self, n: int, elapsed: float) -> None:
        bucket = 1 << (n - 1).bit_length()
        self.by_n.setdefault(bucket, []).append(elapsed)

    def summary(self) -> dict[str, str]:
        return {
            f"<={k}": f"{len(v)} steps, {1e3 * statistics.median(v):.2f} ms"
            for k, v in sorted(self.by_n.items())
        }


def generate_all(provider: Any, prompts: list[tuple[Any, GenerateConfig]]) -> tuple[float, list]:
    model = Model(parse_model_spec(f"transformers/{provider.model}"), provider)

    async def go() -> list:
        return await asyncio.gather(*(model.generate(m, c) for m, c in prompts))

    start = time.perf_counter()
    outputs = asyncio.run(go())
    return time.perf_counter() - start, outputs


def real_weights(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    from codeduel.models.transformers import TransformersOptions, TransformersProvider

    options = {
        "device": args.device,
        "parallel": str(args.parallel),
        "max_len": str(args.max_len),
        "dtype": args.dtype,
        "compile": str(args.compile).lower(),
    }
    variants = [parse_variant(v) for v in args.speculate]
    first, first_batch, first_attention = variants[0]
    options["speculate"], options["speculate_max_batch"] = str(first), str(first_batch)
    options["attention"] = first_attention
    provider = TransformersProvider(args.model, TransformersOptions.model_validate(options))
    start = time.perf_counter()
    provider.load()
    load_s = time.perf_counter() - start
    tasks = load_benchmark("humaneval").select(limit=args.limit)
    base = GenerateConfig(max_tokens=args.max_tokens)
    prompts = []
    for task in tasks:
        prompt = code_prompt(task)
        prompts.append((prompt.messages, prompt.config(base)))
    report["warmup"] = {**provider.timings, "load_total_s": load_s}
    engine = provider._engine
    report["weights_bytes"] = engine.forward.w.nbytes()
    report["params"] = engine.forward.shape.params()
    report["shape"] = engine.forward.shape.__dict__
    report["variants"] = {}
    for k, max_batch, attention in variants:
        now = (engine.speculate, engine.speculate_max_batch, engine.attention)
        if (k, max_batch, attention) != now:
            engine = swap_engine(provider, k, max_batch, attention)
        name = f"speculate={k}" + (f" max_batch={max_batch}" if k else "") + f" {attention}"
        print(f"== {name}", flush=True)
        part: dict[str, Any] = {"capture_s": engine.forward.capture_all()}
        measure_variant(args, provider, options, prompts, base, part)
        report["variants"][name] = part
        # Greedy answers must not depend on speculation: the same text as the variant with
        # the same attention and no speculation (else the first).
        plain = f"speculate=0 {attention}"
        against = plain if plain in report["variants"] else next(iter(report["variants"]))
        reference = report["variants"][against]["answers"]
        same = sum(part["answers"][i] == text for i, text in reference.items())
        part["answers_same_as"] = {"variant": against, "same": same, "of": len(reference)}
        print(f"answers identical to {against}'s: {same}/{len(reference)}", flush=True)
    provider.close()


def parse_variant(text: str) -> tuple[int, int, str]:
    """`K[:MAXB[:ATTENTION]]`: draft tokens per step, the largest batch that speculates (4),
    and the decode attention (torch or triton)."""
    k, max_batch, attention = [*text.split(":"), "", ""][:3]
    return int(k), int(max_batch or 4), attention or "torch"


def swap_engine(provider: Any, k: int, max_batch: int, attention: str) -> Any:
    """A new engine over the same weights with other speculation settings (no reload)."""
    from codeduel.models._torch_engine import TorchEngine

    old = provider._engine
    weights, stops = old.forward.w, sorted(old._stop_set)
    old.close()
    torch.cuda.empty_cache()
    provider._engine = TorchEngine(
        weights,
        slots=provider.opts.parallel,
        max_len=provider.opts.max_len,
        stop_ids=stops,
        cuda_graphs=provider.opts.cuda_graphs,
        compile=provider.opts.compile,
        speculate=k,
        speculate_max_batch=max_batch,
        attention=attention,
    )
    return provider._engine


def measure_variant(
    args: argparse.Namespace,
    provider: Any,
    options: dict[str, str],
    prompts: list[tuple[Any, GenerateConfig]],
    base: GenerateConfig,
    report: dict,
) -> None:
    """Warm-up, generation-only rounds, end-to-end rounds and single stream on one engine."""
    from codeduel.runner import RunOptions, run_benchmark
    from codeduel.store import Store

    warm_s, _ = generate_all(provider, prompts[:32])
    report["first_32_tasks_s"] = warm_s
    engine = provider._engine
    engine.drafted = engine.accepted = 0
    profile = step_profile(engine)
    gen_rounds = []
    answers: list[dict[str, str]] = []
    for _ in range(args.rounds):
        steps0, step_s0 = engine.steps, engine.step_s
        gen_s, outputs = generate_all(provider, prompts)
        tokens = sum(o.completion_tokens for o in outputs)
        gen_rounds.append(
            {
                "wall_s": gen_s,
                "completion_tokens": tokens,
                "prompt_tokens": sum(o.prompt_tokens for o in outputs),
                "longest_answer": max(o.completion_tokens for o in outputs),
                "mean_answer": tokens / len(outputs),
                "steps": engine.steps - steps0,
                "step_s": engine.step_s - step_s0,
                "tokens_per_s": tokens / gen_s,
            }
        )
        answers.append({str(i): o.text for i, o in enumerate(outputs)})
        print(f"generation only: {json.dumps(gen_rounds[-1])}", flush=True)
    report["generation_only"] = gen_rounds
    report["answers"] = answers[-1]
    report["step_profile"] = profile.summary()
    print(f"steps by batch: {json.dumps(report['step_profile'])}", flush=True)

    spec = parse_model_spec(f"transformers/{args.model}")
    e2e = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "runs.db")
        for i in range(args.e2e_rounds):
            opts = RunOptions(
                benchmark="humaneval",
                models=(spec,),
                model_options={str(spec): options},
                limit=args.limit,
                config=base,
                run_name=f"gpu-{i}",
                reuse_calls=False,
            )
            start = time.perf_counter()
            try:
                run = run_benchmark(store, opts, models=[Model(spec, provider)])
            except Exception as exc:  # e.g. no sandbox there: keep the other figures
                print(f"end to end failed: {exc!r}", flush=True)
                break
            wall = time.perf_counter() - start
            rows = list(store.sample_rows(run.id))
            passed = sum(r["status"] == "passed" for r in rows)
            gen = max(r["generation_s"] for r in rows)
            e2e.append(
                {
                    "wall_s": wall,
                    "samples": len(rows),
                    "passed": passed,
                    "pass_at_1": passed / len(rows),
                    "execution_s_sum": sum(r["execution_s"] for r in rows),
                    "slowest_call_s": gen,
                }
            )
            print(f"end to end (codeduel run): {json.dumps(e2e[-1])}", flush=True)
            e2e[-1]["status"] = {r["task_id"]: r["status"] for r in rows}
            e2e[-1]["code"] = {r["task_id"]: r["code"] for r in rows}
            e2e[-1]["completion_tokens"] = {r["task_id"]: r["completion_tokens"] for r in rows}
        store.close()
    report["end_to_end"] = e2e

    single = []
    for messages, config in prompts[: args.single]:
        _, (out,) = generate_all(provider, [(messages, config)])
        if out.decode_tokens_per_s:
            single.append(
                {
                    "tokens": out.completion_tokens,
                    "latency_s": out.latency_s,
                    "ttft_s": out.ttft_s,
                    "decode_tokens_per_s": out.decode_tokens_per_s,
                }
            )
    report["single_stream"] = single
    rates = [s["decode_tokens_per_s"] for s in single]
    print(
        f"single stream: median {statistics.median(rates):.0f} tok/s over {len(rates)} tasks, "
        f"median latency {statistics.median(s['latency_s'] for s in single):.3f} s",
        flush=True,
    )
    speculation(engine, report)


def replay(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    from codeduel.models._torch_engine import TorchEngine
    from codeduel.models._torch_weights import SHAPES, dummy_weights

    shape = SHAPES[args.dummy]
    dtype = getattr(torch, args.dtype)
    lengths = json.loads(Path(args.replay).read_text())["lengths"][: args.limit]
    start = time.perf_counter()
    weights = dummy_weights(shape, device, dtype)
    engine = TorchEngine(
        weights,
        slots=args.parallel,
        max_len=args.max_len,
        stop_ids=[],
        compile=args.compile,
        speculate=parse_variant(args.speculate[0])[0],
        speculate_max_batch=parse_variant(args.speculate[0])[1],
        attention=parse_variant(args.speculate[0])[2],
    )
    capture_s = engine.forward.capture_all()
    report["warmup"] = {"load_s": time.perf_counter() - start - capture_s, "capture_s": capture_s}
    gen = torch.Generator().manual_seed(0)

    def one_pass(pairs: list[list[int]]) -> tuple[float, list]:
        prompts = [torch.randint(0, shape.vocab, (p,), generator=gen).tolist() for p, _ in pairs]
        t0 = time.perf_counter()
        futures = [
            engine.submit(tokens, budget=n, sink=Count())
            for tokens, (_, n) in zip(prompts, pairs, strict=True)
        ]
        done = [f.result() for f in futures]
        return time.perf_counter() - t0, done

    one_pass(lengths[:32])
    profile = step_profile(engine)
    rounds = []
    for _ in range(args.rounds):
        steps0, step_s0 = engine.steps, engine.step_s
        wall, done = one_pass(lengths)
        tokens = sum(len(d.tokens) for d in done)
        rounds.append(
            {
                "wall_s": wall,
                "completion_tokens": tokens,
                "longest_answer": max(len(d.tokens) for d in done),
                "steps": engine.steps - steps0,
                "step_s": engine.step_s - step_s0,
                "tokens_per_s": tokens / wall,
            }
        )
        print(f"replay generation: {json.dumps(rounds[-1])}", flush=True)
    report["generation_only"] = rounds
    report["step_profile"] = profile.summary()
    print(f"steps by batch: {json.dumps(report['step_profile'])}", flush=True)
    single = []
    for pair in lengths[: args.single]:
        wall, (d,) = one_pass([pair])
        decode = d.ended - d.first_token
        single.append(
            {
                "tokens": len(d.tokens),
                "latency_s": wall,
                "ttft_s": d.first_token - d.started,
                "decode_tokens_per_s": (len(d.tokens) - 1) / decode,
            }
        )
    report["single_stream"] = single
    rates = [s["decode_tokens_per_s"] for s in single]
    print(f"single stream: median {statistics.median(rates):.0f} tok/s", flush=True)
    speculation(engine, report)
    report["weights_bytes"] = weights.nbytes()
    report["params"] = shape.params()
    report["shape"] = shape.__dict__
    engine.close()


def scaling(args: argparse.Namespace, device: torch.device, report: dict) -> None:
    """Generation throughput at k samples per task (the first `--tasks` tasks' lengths × k),
    for each slot count in `--parallel-sweep`: where adding sequences stops paying."""
    from codeduel.models._torch_engine import TorchEngine
    from codeduel.models._torch_weights import SHAPES, dummy_weights

    shape = SHAPES[args.dummy]
    dtype = getattr(torch, args.dtype)
    lengths = json.loads(Path(args.replay).read_text())["lengths"][: args.tasks]
    weights = dummy_weights(shape, device, dtype)
    gen = torch.Generator().manual_seed(0)

    rows = []
    for slots in args.parallel_sweep:
        engine = TorchEngine(weights, slots=slots, max_len=args.max_len, stop_ids=[])
        capture_s = engine.forward.capture_all()
        for k in args.samples_per_task:
            pairs = [pair for pair in lengths for _ in range(k)]
            prompts = [
                torch.randint(0, shape.vocab, (p,), generator=gen).tolist() for p, _ in pairs
            ]
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            futures = [
                engine.submit(tokens, budget=n, sink=Count())
                for tokens, (_, n) in zip(prompts, pairs, strict=True)
            ]
            done = [f.result() for f in futures]
            wall = time.perf_counter() - t0
            tokens = sum(len(d.tokens) for d in done)
            rows.append(
                {
                    "slots": slots,
                    "samples_per_task": k,
                    "sequences": len(pairs),
                    "wall_s": wall,
                    "tokens": tokens,
                    "tokens_per_s": tokens / wall,
                    "capture_s": capture_s,
                }
            )
            print(f"scaling: {json.dumps(rows[-1])}", flush=True)
        engine.close()
        del engine
        torch.cuda.empty_cache()
    report["scaling"] = rows


def speculation(engine: Any, report: dict) -> None:
    """Prompt-lookup drafts over the variant's measured work (rounds and single stream)."""
    report["speculate"] = engine.speculate
    report["drafted"], report["accepted"] = engine.drafted, engine.accepted
    rate = engine.accepted / engine.drafted if engine.drafted else 0.0
    print(
        f"speculate {engine.speculate}: accepted {engine.accepted} of {engine.drafted} "
        f"draft tokens ({rate:.0%})",
        flush=True,
    )


def limits(report: dict, part: dict | None = None) -> None:
    """Each figure (of `part`, one variant's, else the report's own) as a fraction of the
    machine's limit."""
    bw, flops = report["bandwidth_Bps"], report["bf16_flops"]
    weights, params, s = report["weights_bytes"], report["params"], report["shape"]
    report = report if part is None else part
    kv_per_token = 2 * s["layers"] * s["kv_heads"] * s["head_dim"] * 2
    single = report["single_stream"]
    if single:
        tokens = statistics.median(x["tokens"] for x in single)
        # Per step: every weight once, plus the sequence's KV cache so far (mean length).
        step_bytes = weights + kv_per_token * (300 + tokens / 2)
        limit = bw / step_bytes
        rate = statistics.median(x["decode_tokens_per_s"] for x in single)
        report["single_stream_limit_tokens_per_s"] = limit
        report["single_stream_fraction_of_limit"] = rate / limit
    best = min(report["generation_only"], key=lambda r: r["wall_s"])
    flop_per_token = 2 * params
    report["batched_flops"] = best["tokens_per_s"] * flop_per_token
    report["batched_fraction_of_peak_flops"] = report["batched_flops"] / flops
    # The run's floor: its longest answer's steps at the single-stream limit.
    if single:
        floor = best["longest_answer"] / report["single_stream_limit_tokens_per_s"]
        report["longest_answer_floor_s"] = floor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--dummy", help="a shape name: random weights, replayed lengths")
    parser.add_argument("--replay", help="lengths JSON for --dummy")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--parallel", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=768)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=8)
    parser.add_argument("--out", default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile each layer")
    parser.add_argument(
        "--speculate",
        nargs="+",
        default=["0"],
        help="engine variants K[:MAX_BATCH[:ATTENTION]]: prompt-lookup draft tokens per step, "
        "the largest batch that speculates, torch or triton attention; several are measured "
        "one after another on the same loaded weights",
    )
    parser.add_argument("--e2e-rounds", type=int, default=3, help="end-to-end rounds")
    parser.add_argument("--scaling", action="store_true", help="samples-per-task sweep")
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--samples-per-task", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--parallel-sweep", type=int, nargs="+", default=[256, 1024])
    args = parser.parse_args()
    device = torch.device(args.device)
    report: dict[str, Any] = {
        "argv": sys.argv[1:],
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "bandwidth_Bps": measure_bandwidth(device),
        "bf16_flops": measure_flops(device),
    }
    print(
        f"{report['device']}: copy {report['bandwidth_Bps'] / 1e12:.2f} TB/s, "
        f"bf16 {report['bf16_flops'] / 1e12:.0f} TFLOP/s, {report['cpus']} CPUs",
        flush=True,
    )
    torch.cuda.reset_peak_memory_stats(device)
    if args.scaling:
        scaling(args, device, report)
        Path(args.out or ".").mkdir(parents=True, exist_ok=True)
        (Path(args.out or ".") / "gpu-scaling.json").write_text(json.dumps(report, indent=1))
        return
    if args.dummy:
        replay(args, device, report)
    else:
        real_weights(args, device, report)
    report["peak_vram_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
    report["peak_vram_reserved_bytes"] = torch.cuda.max_memory_reserved(device)
    for part in report.get("variants", {}).values():
        limits(report, part)
    if "variants" not in report:
        limits(report)
    summary = {k: v for k, v in report.items() if not isinstance(v, (list, dict))}
    for name, part in report.get("variants", {}).items():
        summary[name] = {k: v for k, v in part.items() if not isinstance(v, (list, dict))}
    print(json.dumps(summary, indent=1), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        suffix = ("-compiled" if args.compile else "") + (
            "-speculate" + "_".join(args.speculate).replace(":", "x")
            if args.speculate != ["0"]
            else ""
        )
        name = f"gpu-{args.dummy or Path(args.model).stem}{suffix}.json"
        (Path(args.out) / name).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
