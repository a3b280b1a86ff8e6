"""Strategies: how a sample is produced: single shot, repair, resample, cascade."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from codeduel.errors import OptionError
from codeduel.strategies._base import (
    Attempt,
    Context,
    Solution,
    Strategy,
    StrategyOptions,
    chain_key,
    run_attempt,
)
from codeduel.strategies.cascade import Cascade
from codeduel.strategies.repair import Repair
from codeduel.strategies.resample import Resample
from codeduel.strategies.single import Single

__all__ = [
    "STRATEGIES",
    "Attempt",
    "Cascade",
    "Context",
    "Repair",
    "Resample",
    "Single",
    "Solution",
    "Strategy",
    "StrategyOptions",
    "chain_key",
    "get_strategy",
    "run_attempt",
]

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (Single, Repair, Resample, Cascade)}


def get_strategy(name: str, options: Mapping[str, str] | None = None) -> Strategy:
    """The strategy `name`, its `-S key=value` options checked against its schema."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise OptionError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    try:
        parsed = cls.Options.model_validate(dict(options or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in exc.errors()
        )
        raise OptionError(f"bad -S option for strategy {name}: {problems}") from None
    return cls(parsed)
