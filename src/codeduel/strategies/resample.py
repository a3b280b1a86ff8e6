"""Strategy `resample`: repair's fair baseline (Olausson et al. 2023, "Is Self-Repair a Silver
Bullet?"). Fresh samples instead of follow-up turns, the first to pass the visible tests kept,
within a budget of generated tokens per task.

The budget counts completion tokens, the tokens sampled from the model (the paper's pass@t);
prompt tokens are stored but not budgeted. By default it is `RepairOptions().attempts` ×
`max_tokens`, what repair may generate at most. A new sample starts only while a full
`max_tokens` answer still fits, so the budget is never exceeded after the first sample.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from pydantic import Field

from codeduel.benchmarks import Task
from codeduel.benchmarks.accel import AccelTask
from codeduel.prompts import code_prompt
from codeduel.strategies._base import (
    Attempt,
    Context,
    Solution,
    Strategy,
    StrategyOptions,
    run_attempt,
    sample_config,
)
from codeduel.strategies._gpu import DEFAULT_SPEEDUP, choose_final, judge_gpu
from codeduel.strategies.repair import RepairOptions
from codeduel.types import GenerateConfig

__all__ = ["Resample", "ResampleOptions", "token_budget"]

# Seeds of later samples step by a prime, so they differ from other samples' seeds.
SEED_STRIDE = 7919
# Temperature of later samples when the run is greedy (temperature 0): Olausson et al.'s 0.8.
DEFAULT_TEMPERATURE = 0.8


class ResampleOptions(StrategyOptions):
    budget_tokens: int | None = Field(
        default=None, ge=1, description="Completion tokens per task; default attempts × max_tokens."
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        description="Of later samples; default the run's, or 0.8 when it is 0.",
    )
    max_samples: int = Field(default=10, ge=1, le=100, description="Cap on samples per task.")
    speedup: float = Field(
        default=DEFAULT_SPEEDUP,
        gt=0,
        description="GPU tasks: stop once correct and this many times NumPy's speed.",
    )
    stored_unless_default: ClassVar[frozenset[str]] = frozenset({"speedup"})


def token_budget(options: ResampleOptions, config: GenerateConfig) -> int:
    if options.budget_tokens is not None:
        return options.budget_tokens
    return RepairOptions().attempts * config.max_tokens


class Resample(Strategy):
    name = "resample"
    Options = ResampleOptions

    def __init__(self, options: ResampleOptions | None = None) -> None:
        super().__init__(options)
        self.settings = options or ResampleOptions()

    async def solve(self, task: Task, sample_index: int, ctx: Context) -> Solution:
        prompt = code_prompt(task)
        use_prefill = ctx.model.provider.capabilities.supports_prefill
        first = prompt.config(sample_config(ctx.config, sample_index), use_prefill=use_prefill)
        temperature = self.settings.temperature
        if temperature is None:
            temperature = first.temperature or DEFAULT_TEMPERATURE
        budget = token_budget(self.settings, first)
        spent = 0
        attempts: list[Attempt] = []
        for k in range(self.settings.max_samples):
            if k and spent + first.max_tokens > budget:
                break
            config = (
                first
                if k == 0
                else replace(first, temperature=temperature, seed=first.seed + SEED_STRIDE * k)
            )
            attempt = await run_attempt(task, prompt.messages, config, ctx.model, ctx, visible=True)
            attempts.append(attempt)
            spent += attempt.call.output.completion_tokens if attempt.call.output else 0
            if not attempt.answered or attempt.visible is None or self._good(task, attempt):
                break
        chosen = choose_final(task, attempts, self.settings.speedup)
        return Solution(ctx.model.key, self.name, task, sample_index, tuple(attempts), chosen)

    def _good(self, task: Task, attempt: Attempt) -> bool:
        if isinstance(task, AccelTask):
            return judge_gpu(task, attempt, self.settings.speedup).done
        return attempt.visible_passed
