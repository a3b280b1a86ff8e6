"""`codeduel rescore`: re-grade a stored run's answers with today's extraction, tests and limits.

No model is called: every attempt's answer is the raw text stored with its model call. Each is
extracted again (`Task.extract`: `extract.answer_code`, or a FIM task's middle), and its
visible and hidden tests (whichever it ran) run again in the sandbox, with time limits
calibrated here as `run` does. The result is a new run beside the original, which stays as it
was; it keeps the original's calls, tokens and times, so its reports compare speed and cost as
before and accuracy as graded now.

A sample's answer stays the attempt its strategy chose when it ran: the attempts are the ones
the strategy made from the feedback it had then, so which of them is the answer is part of the
stored run, and only the verdicts are graded again. (Were an earlier attempt to pass its
visible tests now, a new run might stop there; that takes the model, not a rescore.)
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from codeduel import __version__
from codeduel.benchmarks import Task, load_benchmark
from codeduel.errors import StoreError
from codeduel.executors import open_executor
from codeduel.extract import NO_CODE
from codeduel.records import AttemptRecord, CallRecord, ExecutionRecord, SampleRecord
from codeduel.scoring import TIMEOUT_FACTOR, TIMEOUT_FLOOR_S, Scorer
from codeduel.store import Run, Store, stored_output
from codeduel.types import GenerateConfig, Message

__all__ = ["rescore_run"]


@dataclass
class _Attempt:
    code: str
    method: str
    calls: list[CallRecord]
    tests: list[str]
    """Which tests the attempt ran ("visible", "hidden"), in order."""


def _call(row: sqlite3.Row) -> CallRecord:
    config = json.loads(row["config"])
    config["stop"] = tuple(config.get("stop", ()))
    if config.get("infill") is not None:
        config["infill"] = tuple(config["infill"])
    output = stored_output(row) if row["error"] is None else None
    return CallRecord(
        model=row["model"],
        request_hash=row["request_hash"],
        messages=tuple(Message(**m) for m in json.loads(row["messages"])),
        config=GenerateConfig(**config),
        output=output,
        error=row["error"],
    )


def _attempts(db: sqlite3.Connection, sample_id: int, task: Task) -> list[_Attempt]:
    attempts = []
    for a in db.execute(
        "SELECT id, code, extract_method FROM attempts WHERE sample_id = ? ORDER BY attempt_index",
        (sample_id,),
    ).fetchall():
        calls = [
            _call(c)
            for c in db.execute(
                "SELECT * FROM model_calls WHERE attempt_id = ? ORDER BY id", (a[0],)
            )
        ]
        tests = [
            t
            for (t,) in db.execute(
                "SELECT tests FROM executions WHERE attempt_id = ? ORDER BY id", (a[0],)
            )
        ] or ["hidden"]
        last = calls[-1].output if calls else None
        if last is None:
            code, method = a["code"], a["extract_method"]
        else:
            stopped = last.finish_reason == "stop"
            config = calls[-1].config
            found = task.extract(
                last.text, config.prefill, stopped, fim_call=config.infill is not None
            )
            code, method = found.code, found.method
        attempts.append(_Attempt(code, method, calls, tests))
    return attempts


def rescore_run(
    store: Store,
    name: str,
    new_name: str | None = None,
    *,
    workers: int | None = None,
    allow_unsafe: bool = False,
    executor: str = "local",
) -> Run:
    """Re-grade run `name` into a new run (`NAME-rescored` by default); returns it."""
    run = store.get_run(name)
    if run is None:
        raise StoreError(f"no run named {name!r} in {store.path}")
    new_name = new_name or f"{name}-rescored"
    if store.get_run(new_name) is not None:
        raise StoreError(f"a run named {new_name!r} already exists; choose another --run-name")
    bench = load_benchmark(run.benchmark)
    tasks = {t.task_id: t for t in bench.tasks}
    db = store.db
    samples = db.execute("SELECT * FROM samples WHERE run_id = ? ORDER BY id", (run.id,)).fetchall()
    missing = sorted({s["task_id"] for s in samples} - set(tasks))
    if missing:
        raise StoreError(f"run {name!r} has tasks that {bench.name} no longer has: {missing[:5]}")
    stored = [(s, _attempts(db, s["id"], tasks[s["task_id"]])) for s in samples]
    floor = float(run.config.get("timeout_floor_s", TIMEOUT_FLOOR_S))
    factor = float(run.config.get("timeout_factor", TIMEOUT_FACTOR))
    used = [tasks[t] for t in dict.fromkeys(s["task_id"] for s, _ in stored)]
    jobs = [
        (tasks[sample["task_id"]], tests, attempt.code)
        for sample, attempts in stored
        if not sample["model_error"]
        for attempt in attempts
        if attempt.method != "none"
        for tests in attempt.tests
    ]
    workers = workers or os.cpu_count() or 1
    with open_executor(executor, workers=workers, allow_unsafe=allow_unsafe) as programs:
        scorer = Scorer(programs)

        async def graded() -> tuple[list[ExecutionRecord], dict[str, float]]:
            await scorer.calibrate(used, floor, factor)
            limits = {t.task_id: await scorer.timeout_s(t) for t in used}
            return await scorer.run_tests(jobs), limits

        results, limits = asyncio.run(graded())
        layers = programs.provenance["layers"]
    done = iter(results)
    records = [
        _rescored(sample, attempts, done, limits[sample["task_id"]]) for sample, attempts in stored
    ]
    provenance = {
        **run.provenance,
        "rescored_from": {
            "run": run.name,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "codeduel": __version__,
            "dataset_sha256": bench.sha256,
            "sandbox_layers": layers,
        },
    }
    config = {**run.config, "rescored_from": run.name}
    new = store.create_run(new_name, run.benchmark, bench.sha256, config, provenance)
    for model, info in store.models(run.id).items():
        store.add_model(new.id, model, info)
    store.add_tasks(
        new.id, [(t.task_id, t.entry_point, limits[t.task_id]) for t in used], scorer.baselines
    )
    for (sample, _), record in zip(stored, records, strict=True):
        store.record_sample(new.id, record, created_at=sample["created_at"])
    # The times are the original run's: the answers were generated then.
    store.set_run_times(new.id, run.started_at, run.finished_at)
    store.set_run_status(new.id, run.status, keep_finished=True)
    final = store.get_run(new_name)
    assert final is not None
    return final


def _rescored(
    sample: sqlite3.Row, attempts: list[_Attempt], results: Iterator[ExecutionRecord], limit: float
) -> SampleRecord:
    done: list[AttemptRecord] = []
    for attempt in attempts:
        executions = []
        for tests in attempt.tests:
            if sample["model_error"]:
                break
            if attempt.method == "none":
                executions.append(ExecutionRecord(tests, "error", NO_CODE, 0.0, limit))
                continue
            executions.append(next(results))
        hidden = next((e.status for e in executions if e.tests == "hidden"), "error")
        done.append(
            AttemptRecord(
                attempt.code, attempt.method, hidden, tuple(attempt.calls), tuple(executions)
            )
        )
    final = sample["final_attempt"]
    chosen = done[final if final is not None else -1] if done else None
    return SampleRecord(
        model=sample["model"],
        strategy=sample["strategy"],
        task_id=sample["task_id"],
        sample_index=sample["sample_index"],
        status=sample["status"] if sample["model_error"] or chosen is None else chosen.status,
        code=chosen.code if chosen is not None else sample["code"],
        extract_method=chosen.extract_method if chosen is not None else sample["extract_method"],
        hit_token_limit=bool(sample["hit_token_limit"]),
        generation_s=sample["generation_s"],
        execution_s=sum(e.duration_s for a in done for e in a.executions),
        attempts=tuple(done),
        model_error=bool(sample["model_error"]),
        final_attempt=final,
    )
