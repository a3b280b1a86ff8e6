"""Money: cloud token prices as versioned data, local energy and hardware, and break-even.

All functions are pure; prices come from `data/prices.json`, overridable by a user file.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from codeduel.errors import OptionError

__all__ = [
    "Bill",
    "BreakEven",
    "LocalCost",
    "LongContext",
    "Price",
    "PriceTable",
    "Usage",
    "bill",
    "break_even",
    "call_cost",
    "load_prices",
    "token_cost",
]


@dataclass(frozen=True)
class LongContext:
    """The rates of a call whose prompt (cache reads and writes included) is longer than
    `above_tokens`: every token of it, in and out, at these."""

    above_tokens: int
    input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    batch_discount: float = 0.0
    cache_write_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None
    read_on: str = ""
    long_context: LongContext | None = None

    def is_long(self, prompt_tokens: int) -> bool:
        """Whether a call with this many prompt tokens is billed at the long-context tier."""
        tier = self.long_context
        return tier is not None and prompt_tokens > tier.above_tokens


@dataclass(frozen=True)
class Usage:
    """Tokens as the bill counts them. `prompt_tokens` holds every input token, the cache's
    reads and writes included (as the API counts them apart)."""

    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    # Of how many calls, and whether they went through the batch API / were long-context.
    calls: int = 1
    batch: bool = False
    long_context: bool = False


@dataclass(frozen=True)
class PriceTable:
    version: str
    source: str
    models: dict[str, Price]

    def get(self, model: str) -> Price | None:
        return self.models.get(model)


def _parse_table(data: Any, source: str) -> PriceTable:
    try:
        models = {}
        for name, entry in data["models"].items():
            fields = dict(entry)
            if fields.get("long_context") is not None:
                fields["long_context"] = LongContext(**fields["long_context"])
            models[name] = Price(**fields)
        return PriceTable(str(data.get("version", "")), source, models)
    except (KeyError, TypeError, AttributeError) as exc:
        raise OptionError(f"price table {source} is malformed ({exc})") from None


def load_prices(path: Path | None = None) -> PriceTable:
    """The bundled table, with entries from `path` (or $CODEDUEL_PRICES) replacing its own."""
    bundled = files("codeduel") / "data" / "prices.json"
    table = _parse_table(json.loads(bundled.read_text(encoding="utf-8")), "bundled")
    override = path or (
        Path(os.environ["CODEDUEL_PRICES"]) if "CODEDUEL_PRICES" in os.environ else None
    )
    if override is None:
        return table
    try:
        data = json.loads(override.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OptionError(f"cannot read price file {override}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise OptionError(f"price file {override} is not valid JSON ({exc.msg})") from None
    user = _parse_table(data, str(override))
    return PriceTable(
        user.version or table.version, f"bundled + {override}", {**table.models, **user.models}
    )


def token_cost(
    price: Price, prompt_tokens: int, completion_tokens: int, *, batch: bool = False
) -> float:
    """Dollars for one call's tokens."""
    cost = (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6
    return cost * (1 - price.batch_discount) if batch else cost


def call_cost(price: Price, usage: Usage) -> float:
    """Dollars for `usage` as billed: cache reads and writes at their rates (the input rate
    where the table has none), the long-context tier where it applies, the batch discount.
    Without cache tokens it is `token_cost`, to the last bit."""
    rates: Price | LongContext = price
    if usage.long_context and price.long_context is not None:
        rates = price.long_context
    plain = usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    read, write = rates.cache_read_per_mtok, rates.cache_write_per_mtok
    cost = plain * rates.input_per_mtok + usage.completion_tokens * rates.output_per_mtok
    if usage.cache_read_tokens:
        cost += usage.cache_read_tokens * (rates.input_per_mtok if read is None else read)
    if usage.cache_write_tokens:
        cost += usage.cache_write_tokens * (rates.input_per_mtok if write is None else write)
    cost /= 1e6
    return cost * (1 - price.batch_discount) if usage.batch else cost


@dataclass(frozen=True)
class Bill:
    """Calls priced as the vendor bills them, with what applied."""

    usd: float
    calls: int
    batch_calls: int
    long_calls: int
    cache_read_tokens: int
    cache_write_tokens: int

    def terms(self, price: Price) -> str:
        """Which of the bill's rates applied, in words; empty where only the list prices did."""
        parts = []
        if self.batch_calls:
            parts.append(
                f"batch rates ({100 * price.batch_discount:g}% off) on {self.batch_calls} of "
                f"{self.calls} calls"
            )
        if self.cache_read_tokens:
            rate = price.cache_read_per_mtok
            at = f"${rate:g}/Mtok" if rate is not None else "the input price (none listed)"
            parts.append(f"{self.cache_read_tokens:,} cache-read tokens at {at}")
        if self.cache_write_tokens:
            rate = price.cache_write_per_mtok
            at = f"${rate:g}/Mtok" if rate is not None else "the input price (none listed)"
            parts.append(f"{self.cache_write_tokens:,} cache-write tokens at {at}")
        if self.long_calls and price.long_context is not None:
            tier = price.long_context
            parts.append(
                f"long-context rates (${tier.input_per_mtok:g}/${tier.output_per_mtok:g} per Mtok "
                f"above {tier.above_tokens:,} prompt tokens) on {self.long_calls} calls"
            )
        return "; ".join(parts)


def bill(price: Price, groups: list[Usage]) -> Bill:
    """The bill for calls summed in `groups` (one per batch / long-context kind)."""
    return Bill(
        sum(call_cost(price, g) for g in groups),
        sum(g.calls for g in groups),
        sum(g.calls for g in groups if g.batch),
        sum(g.calls for g in groups if g.long_context),
        sum(g.cache_read_tokens for g in groups),
        sum(g.cache_write_tokens for g in groups),
    )


@dataclass(frozen=True)
class LocalCost:
    """What running a local model costs: energy, and optionally the hardware paid off."""

    watts: float = 65.0
    usd_per_kwh: float = 0.15
    hardware_usd: float = 500.0
    lifetime_months: float = 36.0

    def energy_usd(self, seconds: float) -> float:
        return self.watts * seconds / 3600 / 1000 * self.usd_per_kwh

    @property
    def hardware_usd_per_month(self) -> float:
        return self.hardware_usd / self.lifetime_months if self.lifetime_months > 0 else 0.0


@dataclass(frozen=True)
class BreakEven:
    cloud_usd_per_problem: float
    local_usd_per_problem: float
    hardware_usd: float
    # Problems a month above which the local machine (energy + amortised hardware) is cheaper.
    problems_per_month: float
    # At a given monthly volume, months until the saved cloud spend pays the hardware.
    months_to_pay_off: float | None


def break_even(
    cloud_usd_per_problem: float,
    local_usd_per_problem: float,
    local: LocalCost,
    monthly_problems: float | None = None,
) -> BreakEven:
    saving = cloud_usd_per_problem - local_usd_per_problem
    if saving <= 0:
        volume = math.inf
        months = None
    else:
        volume = local.hardware_usd_per_month / saving
        months = (
            local.hardware_usd / (saving * monthly_problems)
            if monthly_problems and local.hardware_usd > 0
            else None
        )
    return BreakEven(
        cloud_usd_per_problem, local_usd_per_problem, local.hardware_usd, volume, months
    )
