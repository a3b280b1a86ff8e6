"""What a strategy gets to work with, and the steps strategies share."""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from codeduel.benchmarks import Task
from codeduel.errors import ModelError
from codeduel.extract import NO_CODE, answer_code
from codeduel.models import GenerateConfig, Message, Model
from codeduel.records import AttemptRecord, CallRecord, ExecutionRecord, SampleRecord
from codeduel.sandbox import ExecResult, Sandbox

__all__ = [
    "Attempt",
    "Context",
    "Strategy",
    "StrategyOptions",
    "chain_key",
    "generate_and_test",
    "run_attempt",
    "sample_config",
    "sample_record",
]


def chain_key(models: Sequence[Model]) -> str:
    """The name of models used together as one system, e.g. `A -> B`."""
    return " -> ".join(m.key for m in models)


@dataclass(frozen=True)
class Context:
    model: Model
    config: GenerateConfig
    sandbox: Sandbox
    # The task's time limit, or (while the runner still calibrates it) a future of it, so
    # generation need not wait for calibration: only running code does.
    limit: float | asyncio.Future[float]
    # Every model of the run in order, for strategies that use them as one system (cascade).
    chain: tuple[Model, ...] = ()
    # Told about each attempt as it finishes (`codeduel solve` prints them).
    on_attempt: Callable[[AttemptRecord], None] | None = None

    async def timeout_s(self) -> float:
        if isinstance(self.limit, asyncio.Future):
            return await asyncio.shield(self.limit)
        return self.limit

    async def run(self, program: str) -> ExecResult:
        """Run `program` in the sandbox on a worker thread, so generation goes on meanwhile."""
        return await asyncio.to_thread(self.sandbox.run, program, await self.timeout_s())

    async def execute(self, program: str, tests: str) -> ExecutionRecord:
        result = await self.run(program)
        return await self.record(tests, result)

    async def record(self, tests: str, result: ExecResult) -> ExecutionRecord:
        return ExecutionRecord(
            tests, result.status, result.detail, result.duration_s, await self.timeout_s()
        )


class StrategyOptions(BaseModel):
    """Base of each strategy's `-S key=value` options; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Strategy(abc.ABC):
    name: ClassVar[str]
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    # True: one sample uses every --model of the run together, as one system named by
    # `chain_key`; False: each model is its own system.
    uses_chain: ClassVar[bool] = False

    def __init__(self, options: StrategyOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @abc.abstractmethod
    async def solve(self, task: Task, sample_index: int, ctx: Context) -> SampleRecord: ...


@dataclass(frozen=True)
class Attempt:
    """One generation with its tests, plus what a follow-up turn may be built from."""

    record: AttemptRecord
    # The visible tests' run; None when the task has none or the answer held no code.
    visible: ExecResult | None
    hit_limit: bool
    generation_s: float

    @property
    def answered(self) -> bool:
        """The model call succeeded (the attempt may still hold no code)."""
        return any(c.output is not None for c in self.record.calls)

    @property
    def visible_passed(self) -> bool:
        return self.visible is not None and self.visible.status == "passed"

    @property
    def execution_s(self) -> float:
        """Time in the visible tests: what the loop itself waits for (hidden ones only score)."""
        return self.visible.duration_s if self.visible is not None else 0.0


async def run_attempt(
    task: Task,
    messages: tuple[Message, ...],
    config: GenerateConfig,
    model: Model,
    ctx: Context,
    *,
    visible: bool,
) -> Attempt:
    """One model call and code extraction, then the hidden tests and, if asked, the visible ones.

    Both test runs go into the attempt's record; only the visible run is returned for feedback.
    """
    request_hash = model.request_hash(messages, config)
    start = time.perf_counter()
    try:
        output = await model.generate(messages, config)
    except ModelError as exc:
        call = CallRecord(model.key, request_hash, messages, config, None, str(exc))
        record = AttemptRecord("", "none", "error", calls=(call,))
        return _notify(ctx, Attempt(record, None, False, time.perf_counter() - start))
    call = CallRecord(model.key, request_hash, messages, config, output)
    # The raw answer stays in the model call; the attempt keeps the code that is run.
    extraction = answer_code(
        output.text, task.entry_point, config.prefill, output.finish_reason == "stop"
    )
    code = extraction.code
    visible_result: ExecResult | None = None
    if extraction.method == "none":
        limit = await ctx.timeout_s()
        executions = [ExecutionRecord("hidden", "error", NO_CODE, 0.0, limit)]
        if visible and task.visible_test:
            executions.insert(0, ExecutionRecord("visible", "error", NO_CODE, 0.0, limit))
            visible_result = ExecResult("error", NO_CODE, 0.0)
    elif visible and task.visible_test:
        shown, hidden = await asyncio.gather(
            ctx.run(task.visible_program(code)),
            ctx.run(task.program(code)),
        )
        visible_result = shown
        executions = [await ctx.record("visible", shown), await ctx.record("hidden", hidden)]
    else:
        executions = [await ctx.execute(task.program(code), "hidden")]
    record = AttemptRecord(
        code,
        extraction.method,
        executions[-1].status,
        calls=(call,),
        executions=tuple(executions),
    )
    # The call's own time, not the time spent queueing for the model.
    attempt = Attempt(record, visible_result, output.finish_reason == "length", output.latency_s)
    return _notify(ctx, attempt)


def _notify(ctx: Context, attempt: Attempt) -> Attempt:
    if ctx.on_attempt is not None:
        ctx.on_attempt(attempt.record)
    return attempt


async def generate_and_test(
    task: Task, messages: tuple[Message, ...], config: GenerateConfig, ctx: Context
) -> tuple[AttemptRecord, bool, float, float]:
    """One model call, code extraction and a run of the hidden tests.

    Returns the attempt, whether the token limit was hit, and generation and execution time.
    """
    attempt = await run_attempt(task, messages, config, ctx.model, ctx, visible=False)
    execution_s = sum(e.duration_s for e in attempt.record.executions)
    return attempt.record, attempt.hit_limit, attempt.generation_s, execution_s


def final_index(attempts: Sequence[Attempt]) -> int:
    """The answer of a multi-attempt sample: the latest attempt whose model call succeeded.

    Loops stop at the first visible pass, so that is also the first attempt to pass them.
    """
    answered = [i for i, a in enumerate(attempts) if a.answered]
    return answered[-1] if answered else len(attempts) - 1


def sample_record(
    system: str, strategy: str, task: Task, sample_index: int, attempts: Sequence[Attempt]
) -> SampleRecord:
    """A multi-attempt sample, scored by the hidden tests of its final answer."""
    final = final_index(attempts)
    answer = attempts[final]
    hidden = [e for e in answer.record.executions if e.tests == "hidden"]
    return SampleRecord(
        model=system,
        strategy=strategy,
        task_id=task.task_id,
        sample_index=sample_index,
        status=answer.record.status,
        code=answer.record.code,
        extract_method=answer.record.extract_method,
        hit_token_limit=answer.hit_limit,
        generation_s=sum(a.generation_s for a in attempts),
        # What a user of the loop waits for: every visible run, then the final hidden one.
        execution_s=sum(a.execution_s for a in attempts) + sum(e.duration_s for e in hidden),
        attempts=tuple(a.record for a in attempts),
        model_error=not any(a.answered for a in attempts),
        final_attempt=final,
    )


def sample_config(base: GenerateConfig, sample_index: int) -> GenerateConfig:
    """Each sample of a task gets its own seed, so samples differ when temperature > 0."""
    return replace(base, seed=base.seed + sample_index)
