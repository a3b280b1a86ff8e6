"""Strategy `single`: one generation per sample, scored by the hidden tests."""

from __future__ import annotations

from codeduel.benchmarks import Task
from codeduel.prompts import code_prompt
from codeduel.strategies._base import Context, Solution, Strategy, run_attempt, sample_config

__all__ = ["Single"]


class Single(Strategy):
    name = "single"

    async def solve(self, task: Task, sample_index: int, ctx: Context) -> Solution:
        prompt = code_prompt(task)
        use_prefill = ctx.model.provider.capabilities.supports_prefill
        config = prompt.config(sample_config(ctx.config, sample_index), use_prefill=use_prefill)
        attempt = await run_attempt(task, prompt.messages, config, ctx.model, ctx, visible=False)
        return Solution(ctx.model.key, self.name, task, sample_index, (attempt,))
