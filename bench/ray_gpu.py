"""`--executor ray-gpu` on a real GPU: the same programs through the GPU executor and through
Ray GPU actors (a local Ray started here, one actor per GPU it finds), side by side.

    python3 bench/ray_gpu.py [--frameworks torch cupy] [--rounds 2]

The programs are every GPU task's own hand-written GPU reference, checked and timed as an
answer is (`AccelTask.program`). Prints, per framework and round, each executor's wall time and
how many passed; then whether the verdicts are the same, the median ratio of their GPU times on
the large size (ray-gpu over gpu, per task), and the Ray executor's provenance (its actors and
the GPU each holds). Exits 1 where a verdict differs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from codeduel.benchmarks import load_benchmark  # noqa: E402
from codeduel.benchmarks.accel import AccelTask, parse_report  # noqa: E402
from codeduel.executors import open_executor  # noqa: E402


def _jobs(framework: str) -> tuple[list[str], list[tuple[str, float]]]:
    tasks = [t for t in load_benchmark(f"accel-{framework}").tasks if isinstance(t, AccelTask)]
    ids = [t.task_id for t in tasks]
    return ids, [(t.program(t.spec.gpu_reference or ""), 300.0) for t in tasks]


def _large_ms(stdout: str) -> float | None:
    report = parse_report(stdout) or {}
    return (report.get("sizes", {}).get("large") or {}).get("gpu_ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "cupy"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    executors = {name: open_executor(name, workers=8) for name in ("gpu", "ray-gpu")}
    failed = False
    try:
        print(json.dumps(executors["ray-gpu"].provenance["cluster"]), flush=True)
        for framework in args.frameworks:
            ids, jobs = _jobs(framework)
            walls: dict[str, list[float]] = {name: [] for name in executors}
            results = {}
            for round_ in range(args.rounds):
                for name, executor in executors.items():
                    start = time.perf_counter()
                    results[name] = asyncio.run(executor.run_many(jobs))
                    walls[name].append(time.perf_counter() - start)
                    passed = sum(r.status == "passed" for r in results[name])
                    print(
                        f"{framework} round {round_ + 1} {name}: {walls[name][-1]:.1f} s, "
                        f"{passed}/{len(jobs)} passed",
                        flush=True,
                    )
            same = [a.status for a in results["gpu"]] == [b.status for b in results["ray-gpu"]]
            ratios = []
            for a, b in zip(results["gpu"], results["ray-gpu"], strict=True):
                ta, tb = _large_ms(a.stdout), _large_ms(b.stdout)
                if ta and tb:
                    ratios.append(tb / ta)
            for task_id, a, b in zip(ids, results["gpu"], results["ray-gpu"], strict=True):
                if a.status != b.status:
                    print(f"  {task_id}: gpu {a.status}, ray-gpu {b.status}: {b.detail[:200]}")
            wall = statistics.median(walls["ray-gpu"]) / statistics.median(walls["gpu"])
            print(
                f"{framework}: verdicts the same: {same}; large-size GPU time ray-gpu/gpu, "
                f"median over {len(ratios)} tasks: {statistics.median(ratios):.3f} "
                f"(min {min(ratios):.3f}, max {max(ratios):.3f}); wall ratio (medians) {wall:.3f}",
                flush=True,
            )
            failed |= not same
    finally:
        for executor in executors.values():
            executor.close()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
