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
    "BreakEven",
    "LocalCost",
    "Price",
    "PriceTable",
    "break_even",
    "load_prices",
    "token_cost",
]


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    batch_discount: float = 0.0
    cache_write_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None
    read_on: str = ""


@dataclass(frozen=True)
class PriceTable:
    version: str
    source: str
    models: dict[str, Price]

    def get(self, model: str) -> Price | None:
        return self.models.get(model)


def _parse_table(data: Any, source: str) -> PriceTable:
    try:
        models = {
            name: Price(**{k: v for k, v in entry.items()})
            for name, entry in data["models"].items()
        }
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
