"""`--cost-limit`: a run's cloud calls stop before its measured spend could pass the cap.

Each cloud call reserves what it may cost before it is sent, and settles at its measured cost
when it returns. What it may cost is the dearest call of its model measured so far; before the
model's first measured call, its worst case (every prompt byte a token, the whole `max_tokens`
written, at the dearest rate that could apply). A call that does not fit waits for the calls in
flight to settle; if it still does not fit, the budget closes: no further cloud call is sent.
So the spend stops within one call's cost of the cap, and passes it only by what a call cost
beyond the dearest one before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from codeduel.costs import Price, Usage, call_cost
from codeduel.errors import CostLimitReached
from codeduel.types import GenerateConfig, Message, ModelOutput

__all__ = ["Budget", "output_usage"]


def output_usage(price: Price, output: ModelOutput, *, batch: bool = False) -> Usage:
    """A call's tokens as billed, from what the API reported (its cache reads and writes)."""
    extra = output.extra
    read = extra.get("cache_read_tokens")
    write = extra.get("cache_write_tokens")
    return Usage(
        output.prompt_tokens,
        output.completion_tokens,
        read if isinstance(read, int) else 0,
        write if isinstance(write, int) else 0,
        batch=batch or extra.get("batch") is True,
        long_context=price.is_long(output.prompt_tokens),
    )


class Budget:
    """The cap over every cloud model of a run, with what earlier sessions spent."""

    def __init__(self, limit_usd: float, prices: Mapping[str, Price], spent_usd: float = 0.0):
        self.limit_usd = limit_usd
        self.prices = dict(prices)
        self.spent_usd = spent_usd
        self.reserved_usd = 0.0
        self.in_flight = 0
        # Set once a call did not fit: no cloud call is sent after it.
        self.reached = spent_usd >= limit_usd
        # The dearest measured call of each model: what its next call is expected to cost.
        self.dearest: dict[str, float] = {}
        self._settled: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._settled is None or self._loop is not loop:
            self._settled, self._loop = asyncio.Condition(), loop
        return self._settled

    def estimate(
        self, model: str, messages: Sequence[Message], config: GenerateConfig, batch: bool
    ) -> float:
        """What the call is held to cost until it is measured."""
        if model in self.dearest:
            return self.dearest[model]
        return self.worst_case(model, messages, config, batch)

    def worst_case(
        self, model: str, messages: Sequence[Message], config: GenerateConfig, batch: bool
    ) -> float:
        price = self.prices[model]
        prompt = sum(len(m.content.encode()) for m in messages) + len(config.prefill.encode())
        rates = [price.input_per_mtok, price.cache_write_per_mtok or 0.0]
        output_rate = price.output_per_mtok
        tier = price.long_context
        if tier is not None and price.is_long(prompt):
            rates += [tier.input_per_mtok, tier.cache_write_per_mtok or 0.0]
            output_rate = max(output_rate, tier.output_per_mtok)
        cost = (prompt * max(rates) + config.max_tokens * output_rate) / 1e6
        return cost * (1 - price.batch_discount) if batch else cost

    async def reserve(
        self, model: str, messages: Sequence[Message], config: GenerateConfig, batch: bool
    ) -> float:
        """Hold what the call may cost (`estimate`, taken again after every settled call) for a
        call about to be sent, and return it; or raise `CostLimitReached`."""
        settled = self._condition()
        async with settled:
            while not self.reached:
                held = self.estimate(model, messages, config, batch)
                if self.spent_usd + self.reserved_usd + held <= self.limit_usd:
                    self.reserved_usd += held
                    self.in_flight += 1
                    return held
                if self.in_flight == 0:
                    self.reached = True
                    break
                await settled.wait()
        raise CostLimitReached(
            f"the run's cloud spend (${self.spent_usd:.4f}) is within one call of its "
            f"--cost-limit (${self.limit_usd:g})"
        )

    async def settle(self, model: str, held: float, cost: float | None) -> None:
        """The call held `held` and cost `cost` (None when it failed: a failed call is free)."""
        settled = self._condition()
        async with settled:
            self.reserved_usd -= held
            self.in_flight -= 1
            if cost is not None:
                self.spent_usd += cost
                self.dearest[model] = max(cost, self.dearest.get(model, 0.0))
            settled.notify_all()

    def cost(self, model: str, output: ModelOutput, batch: bool) -> float:
        price = self.prices[model]
        return call_cost(price, output_usage(price, output, batch=batch))
