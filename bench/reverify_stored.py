"""Run every stored execution of committed runs again in today's sandbox; compare the verdicts.

    .venv/bin/python bench/reverify_stored.py docs/results/*/runs.db [--workers 2]

Each execution row (an attempt's code, which tests, the time limit it had) is rebuilt into the
same program (`Task.program` or `Task.visible_program`) and run again with the same limit. A
change to the sandbox that changes what a real answer can do shows up as a changed verdict.
Prints, per run, how many verdicts are the same, and each one that is not.
"""

from __future__ import annotations

import argparse
import collections
import sqlite3
from pathlib import Path

from codeduel.benchmarks import load_benchmark
from codeduel.sandbox import Sandbox

QUERY = """
SELECT r.name, r.benchmark, s.task_id, a.code, e.tests, e.status, e.timeout_s
FROM executions e JOIN attempts a ON a.id = e.attempt_id JOIN samples s ON s.id = a.sample_id
JOIN runs r ON r.id = s.run_id ORDER BY e.id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dbs", nargs="+", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for db in args.dbs:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            rows += [(db, *row) for row in con.execute(QUERY)]
    benchmarks = {name: load_benchmark(name) for name in {row[2] for row in rows}}
    tasks = {(b, t.task_id): t for b, bench in benchmarks.items() for t in bench.tasks}
    jobs = []
    for _, _, benchmark, task_id, code, tests, _, timeout_s in rows:
        task = tasks[(benchmark, task_id)]
        program = task.program(code) if tests == "hidden" else task.visible_program(code)
        jobs.append((program, timeout_s))
    same: collections.Counter[tuple[str, str]] = collections.Counter()
    changed = []
    with Sandbox(workers=args.workers) as box:
        print(f"sandbox launch: {box.launch.name}; layers off: "
              f"{[k for k, on in box.layers.items() if not on] or 'none'}")  # fmt: skip
        for row, result in zip(rows, box.map(jobs), strict=True):
            db, run, _, task_id, _, tests, before, _ = row
            key = (f"{db.parent.name}/{run}", tests)
            if result.status == before:
                same[key] += 1
            else:
                changed.append((key, task_id, before, result.status, result.detail))
    totals = collections.Counter(same)
    for key, *_ in changed:
        totals[key] += 1
    for key in sorted(totals):
        print(f"{key[0]:<32} {key[1]:<8} same {same[key]:>4}/{totals[key]}")
    print(f"all: same {sum(same.values())}/{len(rows)}")
    for key, task_id, before, now, detail in changed:
        print(f"CHANGED {key[0]} {key[1]} {task_id}: {before} -> {now} ({detail[:120]})")


if __name__ == "__main__":
    main()
