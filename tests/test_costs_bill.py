"""Calls priced as the bill has them: cache reads and writes, batch discounts, long context."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from codeduel.costs import Price, Usage, bill, call_cost, load_prices, token_cost
from codeduel.errors import CostLimitReached
from codeduel.models import Budget, GenerateConfig, Message, ModelOutput, output_usage

SONNET = load_prices().get("anthropic/claude-sonnet-4-5")


def test_list_prices_alone_are_token_cost_to_the_last_bit() -> None:
    price = Price(3.0, 15.0)
    for tokens in [(206, 310), (1, 0), (123457, 98765)]:
        assert call_cost(price, Usage(*tokens)) == token_cost(price, *tokens)


def test_cache_reads_and_writes_are_billed_at_their_rates() -> None:
    assert SONNET is not None
    usage = Usage(1_000_000, 0, cache_read_tokens=600_000, cache_write_tokens=100_000)
    # 300k plain at $3, 600k read at $0.30, 100k written at $3.75.
    assert call_cost(SONNET, usage) == pytest.approx(0.9 + 0.18 + 0.375)
    # Without a listed cache price, the input price.
    assert call_cost(Price(2.0, 8.0), usage) == pytest.approx(2.0)


def test_batch_rates_take_the_discount_off_every_token() -> None:
    assert SONNET is not None
    usage = Usage(1_000_000, 1_000_000, cache_read_tokens=500_000)
    assert call_cost(SONNET, Usage(**{**usage.__dict__, "batch": True})) == pytest.approx(
        call_cost(SONNET, usage) / 2
    )


def test_long_context_calls_take_the_tier_rates() -> None:
    assert SONNET is not None and SONNET.long_context is not None
    assert SONNET.is_long(200_001) and not SONNET.is_long(200_000)
    long = Usage(300_000, 1_000, long_context=True)
    assert call_cost(SONNET, long) == pytest.approx((300_000 * 6 + 1_000 * 22.5) / 1e6)
    billed = bill(SONNET, [Usage(1_000, 100, calls=3), long])
    assert billed.calls == 4 and billed.long_calls == 1 and billed.batch_calls == 0
    terms = billed.terms(SONNET)
    assert "long-context rates ($6/$22.5 per Mtok above 200,000 prompt tokens) on 1 calls" in terms
    assert bill(SONNET, [Usage(1_000, 100)]).terms(SONNET) == ""


def test_a_price_file_overrides_tiers_and_discounts(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    entry = {
        "input_per_mtok": 1.0,
        "output_per_mtok": 2.0,
        "batch_discount": 0.4,
        "long_context": {"above_tokens": 10, "input_per_mtok": 5.0, "output_per_mtok": 9.0},
    }
    path.write_text(json.dumps({"version": "mine", "models": {"x/y": entry}}))
    price = load_prices(path).get("x/y")
    assert price is not None and price.long_context is not None
    assert call_cost(price, Usage(1_000_000, 0, batch=True)) == pytest.approx(0.6)
    assert price.is_long(11) and price.long_context.output_per_mtok == 9.0


def test_a_call_output_is_read_as_billed() -> None:
    assert SONNET is not None
    out = ModelOutput("x", "stop", 100, 10, 0.1, extra={"cache_read_tokens": 40, "batch": True})
    assert output_usage(SONNET, out) == Usage(100, 10, 40, 0, batch=True)


def test_the_budget_refuses_a_call_that_could_pass_the_cap() -> None:
    assert SONNET is not None
    prompt = [Message("user", "x" * 100)]
    config = GenerateConfig(max_tokens=100)

    async def go() -> list[str]:
        budget = Budget(0.01, {"m": SONNET})
        worst = budget.worst_case("m", prompt, config, batch=False)
        assert worst == pytest.approx((100 * 3.75 + 100 * 15) / 1e6)
        events = []
        held = await budget.reserve("m", prompt, config, False)
        await budget.settle("m", held, 0.004)
        events.append(f"spent {budget.spent_usd:g}")
        # The next is held to cost the dearest so far: 0.004 fits once more, not twice.
        held = await budget.reserve("m", prompt, config, False)
        await budget.settle("m", held, 0.004)
        with pytest.raises(CostLimitReached):
            await budget.reserve("m", prompt, config, False)
        events.append("refused")
        assert budget.reached and budget.spent_usd <= 0.01
        return events

    assert asyncio.run(go()) == ["spent 0.004", "refused"]
