"""What a strategy gets to work with, and the steps strategies share."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from codeduel.benchmarks import Task
from codeduel.errors import ModelError, ModelUnusableError
from codeduel.extract import (
    NO_CODE,
    THINKING_TRUNCATED,
    thinking_truncated,
    whole_answer,
)
from codeduel.models import Model
from codeduel.records import CallRecord, ExecutionRecord
from codeduel.sandbox import ExecResult
from codeduel.scoring import Attempt, Scorer, Solution, execution_record
from codeduel.types import GenerateConfig, Message

__all__ = [
    "Attempt",
    "Context",
    "Solution",
    "Strategy",
    "StrategyOptions",
    "chain_key",
    "run_attempt",
    "sample_config",
]


def chain_key(models: Sequence[Model]) -> str:
    """The name of models used together as one system, e.g. `A -> B`."""
    return " -> ".join(m.key for m in models)


@dataclass(frozen=True)
class Context:
    """What a strategy works with: the model, the generation settings, and the scorer, which
    runs visible tests for the strategy and starts hidden ones it never sees the verdict of."""

    model: Model
    config: GenerateConfig
    scorer: Scorer
    # Every model of the run in order, for strategies that use them as one system (cascade).
    chain: tuple[Model, ...] = ()
    # Told about each attempt as it finishes (`codeduel solve` prints them).
    on_attempt: Callable[[Attempt], None] | None = None


class StrategyOptions(BaseModel):
    """Base of each strategy's `-S key=value` options; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Options added after runs were stored: kept out of the stored config at their default,
    # so those runs still resume.
    stored_unless_default: ClassVar[frozenset[str]] = frozenset()

    def stored(self) -> dict[str, Any]:
        """The options as a run stores them (`stored_unless_default` left out at default)."""
        settings = self.model_dump(mode="json")
        defaults = type(self)().model_dump(mode="json")
        for name in self.stored_unless_default:
            if settings.get(name) == defaults.get(name):
                settings.pop(name, None)
        return settings


class Strategy(abc.ABC):
    name: ClassVar[str]
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    # True: one sample uses every --model of the run together, as one system named by
    # `chain_key`; False: each model is its own system.
    uses_chain: ClassVar[bool] = False

    def __init__(self, options: StrategyOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @abc.abstractmethod
    async def solve(self, task: Task, sample_index: int, ctx: Context) -> Solution:
        """The sample's attempts; the scorer grades them once this returns."""


async def run_attempt(
    task: Task,
    messages: tuple[Message, ...],
    config: GenerateConfig,
    model: Model,
    ctx: Context,
    *,
    visible: bool,
) -> Attempt:
    """One model call and code extraction; the visible tests, if asked, and the hidden ones
    started on the scorer. Only the visible run comes back, for feedback.

    A fill-in-the-middle task goes to a provider that takes FIM natively as its prefix and
    suffix alone (no messages: the chat prompt is not sent); any other gets the chat prompt.
    Either way the answer's middle is what is run."""
    fim = task.fim()
    native_fim = fim is not None and model.provider.capabilities.infill
    if native_fim:
        messages = ()
        config = replace(config, infill=fim, prefill="", stop=task.fim_stops())
    request_hash = model.request_hash(messages, config)
    start = time.perf_counter()
    try:
        output = await model.generate(messages, config)
    except ModelUnusableError:
        raise
    except ModelError as exc:
        call = CallRecord(model.key, request_hash, messages, config, None, str(exc))
        attempt = Attempt("", "none", call, None, None, False, time.perf_counter() - start, None)
        return _notify(ctx, attempt)
    call = CallRecord(model.key, request_hash, messages, config, output)
    # The raw answer stays in the model call; the attempt keeps the code that is run.
    extraction = task.extract(
        output.text, config.prefill, output.finish_reason == "stop", fim_call=native_fim
    )
    code = extraction.code
    hit_limit = output.finish_reason == "length"
    # Reasoning cut off by the token limit holds no answer: a status of its own, not wrong code.
    truncated = thinking_truncated(
        whole_answer(output.text, config.prefill),
        hit_limit,
        bool(output.extra.get("thinking_truncated")),
    )
    scorer = ctx.scorer
    hidden = None if extraction.method == "none" or truncated else scorer.start(task, code)
    shown: ExecResult | None = None
    shown_record: ExecutionRecord | None = None
    if visible and task.visible_test:
        limit = await scorer.timeout_s(task)
        if hidden is None:
            why = THINKING_TRUNCATED if truncated else NO_CODE
            shown = ExecResult("error", why, 0.0)
            shown_record = ExecutionRecord("visible", "error", why, 0.0, limit)
        else:
            shown = task.read_result(await scorer.executor.run(task.visible_program(code), limit))
            shown_record = execution_record(task, "visible", shown, limit)
    # The call's own time, not the time spent queueing for the model.
    attempt = Attempt(
        code,
        extraction.method,
        call,
        shown,
        shown_record,
        hit_limit,
        output.latency_s,
        hidden,
        thinking_truncated=truncated,
    )
    return _notify(ctx, attempt)


def _notify(ctx: Context, attempt: Attempt) -> Attempt:
    if ctx.on_attempt is not None:
        ctx.on_attempt(attempt)
    return attempt


def sample_config(base: GenerateConfig, sample_index: int) -> GenerateConfig:
    """Each sample of a task gets its own seed, so samples differ when temperature > 0."""
    return replace(base, seed=base.seed + sample_index)
