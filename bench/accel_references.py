"""Check and time every built-in GPU task's hand-written references with the accel harness.

For each task of accel-torch and accel-cupy: the GPU reference is checked at every size on the
hidden seeds against the NumPy reference, then timed at every size (median of the harness's
repeats), with NumPy's time on this host's CPU beside it. One JSON line per task goes to
--out; a table and the share of tasks faster than NumPy on the large size go to stdout.

    python bench/accel_references.py --framework torch cupy --out refs.jsonl
    python bench/accel_references.py --sandbox ...    # through --executor gpu, one per task

By default the harness runs in this process (the references are trusted code; CUDA starts
once), which is what the timing-noise runs use: the same command in separate processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from codeduel.benchmarks import _accel_harness, load_benchmark
from codeduel.benchmarks.accel import HIDDEN_SEEDS, AccelTask, parse_report


def _spec(task: AccelTask, quick: bool = False) -> dict[str, Any]:
    assert task.spec.gpu_reference is not None
    sizes = task.spec.sizes
    # Quick (the timing-noise runs): check and time the large size (timing runs on the
    # checked inputs), GPU only.
    return task.harness_spec(
        task.spec.gpu_reference,
        sizes=sizes[-1:] if quick else sizes,
        seeds=HIDDEN_SEEDS,
        time=sizes[-1:] if quick else sizes,
        time_numpy=not quick,
    )


def in_process(tasks: list[AccelTask], quick: bool = False) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        start = time.perf_counter()
        try:
            report = _accel_harness._run(_spec(task, quick))
        except Exception as exc:
            report = {"verdict": "failed", "detail": f"{type(exc).__name__}: {exc}"}
        report["wall_s"] = time.perf_counter() - start
        rows.append({"task_id": task.task_id, "category": task.spec.category, **report})
        print(f"  {task.spec.framework} {task.task_id}: {report['verdict']}", file=sys.stderr)
    return rows


def sandboxed(tasks: list[AccelTask], quick: bool = False) -> list[dict[str, Any]]:
    from codeduel.executors import open_executor

    with open_executor("gpu", workers=1) as executor:
        programs = [(task.reference_program() or "", 600.0) for task in tasks]
        results = asyncio.run(executor.run_many(programs))
    rows = []
    for task, result in zip(tasks, results, strict=True):
        report = parse_report(result.stdout) or {"verdict": result.status}
        if result.status != "passed":
            report["detail"] = result.detail
        rows.append({"task_id": task.task_id, "category": task.spec.category, **report})
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| framework | task | category | correct (s/m/l) | GPU ms (large) | NumPy ms (large) "
        "| speedup (large) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sizes = r.get("sizes", {})
        correct = "/".join("✓" if sizes.get(s, {}).get("correct") else "✗" for s in sizes) or "✗"
        large = sizes.get("large", {})
        gpu, cpu = large.get("gpu_ms"), large.get("numpy_ms")
        gpu_text = f"{gpu:.3f}" if gpu else "—"
        cpu_text = f"{cpu:.1f}" if cpu else "—"
        speed = f"{cpu / gpu:.1f}×" if gpu and cpu else "—"
        lines.append(
            f"| {r.get('framework', '')} | {r['task_id']} | {r.get('category', '')} "
            f"| {correct} | {gpu_text} | {cpu_text} | {speed} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    out = []
    for framework in sorted({r.get("framework", "") for r in rows}):
        mine = [r for r in rows if r.get("framework") == framework]
        passed = [r for r in mine if r.get("verdict") == "passed"]
        large = [r["sizes"]["large"] for r in passed if "large" in r.get("sizes", {})]
        timed = [x for x in large if x.get("gpu_ms") and x.get("numpy_ms")]
        faster = [x for x in timed if x["numpy_ms"] > x["gpu_ms"]]
        speedups = [x["numpy_ms"] / x["gpu_ms"] for x in timed]
        geo = math.exp(sum(map(math.log, speedups)) / len(speedups)) if speedups else float("nan")
        out.append(
            f"{framework}: {len(passed)}/{len(mine)} references pass every size; "
            f"faster than NumPy on large: {len(faster)}/{len(mine)} "
            f"({100 * len(faster) / max(1, len(mine)):.0f}%); geometric-mean speedup on large "
            f"{geo:.1f}×"
        )
    return "\n".join(out)


def _runs(paths: list[Path]) -> list[list[dict[str, Any]]]:
    """Each path's rows as one run: JSON lines from this script, or a run store, whose every
    run's task baselines (its calibration: the references timed in the sandbox) count as one."""
    runs = []
    for path in paths:
        if path.suffix != ".db":
            runs.append([json.loads(line) for line in path.read_text("utf-8").splitlines()])
            continue
        from codeduel.store import Store

        with Store(path) as store:
            for run in store.runs():
                framework = run.benchmark.removeprefix("accel-")
                baselines = store.task_baselines(run.id)
                if baselines:
                    runs.append(
                        [{**b, "framework": framework, "task_id": t} for t, b in baselines.items()]
                    )
    return runs


def spread(paths: list[Path]) -> str:
    """Per task, the large size's GPU time across separate runs: median, min, max, max/min."""
    runs = _runs(paths)
    times: dict[tuple[str, str], list[float]] = {}
    for rows in runs:
        for r in rows:
            ms = r.get("sizes", {}).get("large", {}).get("gpu_ms")
            if ms:
                times.setdefault((r["framework"], r["task_id"]), []).append(ms)
    lines = [
        f"{len(runs)} runs; the large size's GPU time per task (ms)",
        "| framework | task | runs | median | min | max | max/min |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for (framework, task), values in sorted(times.items()):
        values.sort()
        ratio = values[-1] / values[0]
        ratios.append(ratio)
        median = values[len(values) // 2]
        lines.append(
            f"| {framework} | {task} | {len(values)} | {median:.3f} | {values[0]:.3f} "
            f"| {values[-1]:.3f} | {ratio:.2f} |"
        )
    ratios.sort()
    if ratios:
        lines.append(
            f"max/min across runs: median {ratios[len(ratios) // 2]:.2f}, worst {ratios[-1]:.2f}"
        )
    for framework in sorted({f for f, _ in times}):
        mine = {t: v for (f, t), v in times.items() if f == framework}
        counts = sorted(len(v) for v in mine.values())
        spans = sorted(max(v) / min(v) for v in mine.values())
        lines.append(
            f"{framework}: {len(mine)} tasks, {counts[0]}-{counts[-1]} runs each; max/min "
            f"median {spans[len(spans) // 2]:.2f}, worst {spans[-1]:.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", nargs="+", default=["torch", "cupy"])
    parser.add_argument("--task", nargs="*", default=[], help="Only these task ids.")
    parser.add_argument("--sandbox", action="store_true", help="Through --executor gpu.")
    parser.add_argument("--out", type=Path, help="JSON lines, one per task.")
    parser.add_argument(
        "--quick", action="store_true", help="Check and time large only, no NumPy (noise runs)."
    )
    parser.add_argument(
        "--spread", nargs="+", type=Path, help="Summarise runs: JSON lines, or run stores (.db)."
    )
    args = parser.parse_args()
    if args.spread:
        print(spread(args.spread))
        return
    rows: list[dict[str, Any]] = []
    for framework in args.framework:
        tasks = [t for t in load_benchmark(f"accel-{framework}").tasks if isinstance(t, AccelTask)]
        if args.task:
            tasks = [t for t in tasks if t.task_id in args.task]
        run = sandboxed if args.sandbox else in_process
        rows += [{**r, "framework": framework} for r in run(tasks, args.quick)]
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"host: {os.cpu_count()} CPUs; NumPy threads: {os.environ.get('OMP_NUM_THREADS', 'all')}")
    print(_table(rows))
    print(summary(rows))


if __name__ == "__main__":
    main()
