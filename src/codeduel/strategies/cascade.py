"""Strategy `cascade` (local first): the run's models in order, as one system `A -> B`.

Each model in turn works on the task, alone or with repair; the next one is asked only while
the visible tests still fail (or, for a task without visible tests, while no code came back).
Every attempt keeps its own model call, so reports can price each model's calls and score each
prefix of the chain from the store.
"""

from __future__ import annotations

from pydantic import Field

from codeduel.benchmarks import Task
from codeduel.strategies._base import (
    Attempt,
    Context,
    Solution,
    Strategy,
    StrategyOptions,
    chain_key,
    sample_config,
)
from codeduel.strategies.repair import repair_loop

__all__ = ["Cascade", "CascadeOptions", "accepted"]


class CascadeOptions(StrategyOptions):
    repair: bool = Field(default=False, description="Each model repairs from the visible tests.")
    attempts: int = Field(default=3, ge=1, le=20, description="Calls per model when repair is on.")


def accepted(attempt: Attempt, task: Task) -> bool:
    """Whether the cascade stops at this answer: judged by the visible tests alone."""
    if task.visible_test:
        return attempt.visible_passed
    return attempt.answered and attempt.extract_method != "none"


class Cascade(Strategy):
    name = "cascade"
    Options = CascadeOptions
    uses_chain = True

    def __init__(self, options: CascadeOptions | None = None) -> None:
        super().__init__(options)
        self.settings = options or CascadeOptions()

    async def solve(self, task: Task, sample_index: int, ctx: Context) -> Solution:
        chain = ctx.chain or (ctx.model,)
        config = sample_config(ctx.config, sample_index)
        calls = self.settings.attempts if self.settings.repair else 1
        attempts: list[Attempt] = []
        for model in chain:
            tried = await repair_loop(task, model, config, ctx, calls)
            attempts += tried
            if accepted(tried[-1], task):
                break
        return Solution(chain_key(chain), self.name, task, sample_index, tuple(attempts))
