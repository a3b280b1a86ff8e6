"""Hybrid workflows from the store: pass@1 after each attempt (repair, resample), repair against
resample at equal generated tokens, and each prefix of a cascade as a cost-accuracy point.

Every figure comes from the stored attempts, read by `_hybrid_queries`: a sample's answer under
a cut-off (first k attempts, t tokens, first p models of a chain) is the latest answered attempt
within it, as the strategies themselves choose. `_hybrid_tables` shows the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from codeduel.metrics import Estimate, paired_difference_ci
from codeduel.report._hybrid_queries import (
    EVERY,
    calls_by_model,
    completion_tokens,
    escalated,
    final_models,
    first_attempts,
    hybrid_systems,
    models_in,
    most_attempts,
    outcomes,
    partner_run,
    shared_samples,
    token_budget,
    visible_tasks,
)
from codeduel.report._rows import CostSettings, _cost, _is_local
from codeduel.store import Run, Store

__all__ = [
    "AttemptCurve",
    "CascadeSummary",
    "Hybrid",
    "PrefixPoint",
    "TokenComparison",
    "build_hybrid",
]

_MULTI_ATTEMPT = ("repair", "resample")
# Budgets of the equal-token comparison, in multiples of the run's max_tokens.
_BUDGET_FACTORS = (0.5, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class AttemptCurve:
    """pass@1 if the loop had stopped after k attempts, k = 1, 2, …"""

    system: str
    strategy: str
    samples: int
    pass_after: tuple[float, ...]
    # Mean completion tokens spent per sample within the first k attempts.
    tokens_after: tuple[float, ...]
    # pass@1 of the final answers minus that of the first attempts (single-shot), paired by
    # sample, with its 95% interval; None with one attempt.
    gain: Estimate | None = None


@dataclass(frozen=True)
class TokenComparison:
    """Repair against resample of one model on the tasks both ran, at equal generated tokens."""

    system: str
    repair_run: str
    resample_run: str
    tasks: int
    # (budget in completion tokens per sample, repair pass@1, resample pass@1); None: no cut-off.
    points: tuple[tuple[int | None, float, float], ...]
    tokens_mean: tuple[float, float]
    max_tokens: tuple[int | None, int | None]
    # Repair minus resample at each point, paired by task, with its 95% interval.
    gaps: tuple[Estimate, ...] = ()


@dataclass(frozen=True)
class PrefixPoint:
    """The first `models` of a chain alone, each gated by the visible tests."""

    models: tuple[str, ...]
    pass_at_1: float
    usd_per_problem: float | None
    tokens_per_problem: float
    # Engine seconds (each call's share of a batched engine), what energy is counted from.
    engine_s_per_problem: float


@dataclass(frozen=True)
class CascadeSummary:
    system: str
    samples: int
    escalated: int
    final_models: dict[str, int]
    prefixes: tuple[PrefixPoint, ...]


@dataclass(frozen=True)
class Hybrid:
    curves: tuple[AttemptCurve, ...] = ()
    comparisons: tuple[TokenComparison, ...] = ()
    cascades: tuple[CascadeSummary, ...] = ()
    # Tasks whose visible tests ran, of the tasks of hybrid samples.
    visible_tasks: tuple[int, int] = (0, 0)
    benchmark: str = ""

    def __bool__(self) -> bool:
        return bool(self.curves or self.comparisons or self.cascades)


def build_hybrid(store: Store, run: Run, costs: CostSettings | None = None) -> Hybrid:
    costs = costs or CostSettings()
    groups = hybrid_systems(store, run.id)
    if not groups:
        return Hybrid()
    curves = []
    comparisons = []
    cascades = []
    for system, strategy, samples in groups:
        if strategy in _MULTI_ATTEMPT:
            curves.append(_curve(store, run.id, system, strategy, samples))
            comparison = _compare(store, run, system, strategy)
            if comparison is not None:
                comparisons.append(comparison)
        else:
            cascades.append(_cascade(store, run, system, samples, costs))
    return Hybrid(
        tuple(curves),
        tuple(comparisons),
        tuple(cascades),
        visible_tasks(store, run.id),
        run.benchmark,
    )


def _passed(outcomes: dict[tuple[str, int], bool]) -> int:
    return sum(outcomes.values())


def _gain(a: dict[tuple[str, int], bool], b: dict[tuple[str, int], bool]) -> Estimate | None:
    """pass@1 of `a` minus `b` on the samples both have, with a paired interval."""
    common = sorted(a.keys() & b.keys())
    if not common:
        return None
    return paired_difference_ci([a[k] for k in common], [b[k] for k in common])


def _curve(store: Store, run_id: int, system: str, strategy: str, samples: int) -> AttemptCurve:
    key = (run_id, system, strategy)
    most = most_attempts(store, key)
    passed = []
    tokens = []
    for k in range(1, most + 1):
        first_k = first_attempts(k)
        passed.append(_passed(outcomes(store, key, first_k)) / samples)
        tokens.append(completion_tokens(store, key, first_k) / samples)
    gain = None
    if most > 1:
        gain = _gain(outcomes(store, key, EVERY), outcomes(store, key, first_attempts(1)))
    return AttemptCurve(system, strategy, samples, tuple(passed), tuple(tokens), gain)


def _max_tokens(run: Run) -> int | None:
    value = run.config.get("generation", {}).get("max_tokens")
    return value if isinstance(value, int) else None


def _compare(store: Store, run: Run, system: str, strategy: str) -> TokenComparison | None:
    """Repair or resample in `run` against the other of the same model: in this run (found
    from its repair side), else the latest run on the same dataset that has it."""
    other = partner_run(store, run, system, "resample" if strategy == "repair" else "repair")
    if other is None:
        return None
    repair_run, resample_run = (run, other) if strategy == "repair" else (other, run)
    repair = (repair_run.id, system, "repair")
    resample = (resample_run.id, system, "resample")
    sides = ((repair, resample), (resample, repair))
    counts = [shared_samples(store, key, partner) for key, partner in sides]
    if not all(counts):
        return None
    base = _max_tokens(repair_run) or 768
    budgets: list[int | None] = [round(f * base) for f in _BUDGET_FACTORS]
    points = []
    gaps = []
    for budget in [*budgets, None]:
        cutoff = token_budget(budget) if budget is not None else EVERY
        mine = outcomes(store, repair, cutoff, resample)
        theirs = outcomes(store, resample, cutoff, repair)
        points.append((budget, _passed(mine) / counts[0], _passed(theirs) / counts[1]))
        gap = _gain(mine, theirs)
        if gap is not None:
            gaps.append(gap)
    means = [
        completion_tokens(store, key, tasks=partner) / n
        for (key, partner), n in zip(sides, counts, strict=True)
    ]
    return TokenComparison(
        system,
        repair_run.name,
        resample_run.name,
        counts[0],
        tuple(points),
        (means[0], means[1]),
        (_max_tokens(repair_run), _max_tokens(resample_run)),
        tuple(gaps),
    )


def _cascade(
    store: Store, run: Run, system: str, samples: int, costs: CostSettings
) -> CascadeSummary:
    key = (run.id, system, "cascade")
    infos = store.models(run.id)
    chain = infos.get(system, {}).get("chain") or system.split(" -> ")
    prefixes = []
    for p in range(1, len(chain) + 1):
        models = tuple(chain[:p])
        within = models_in(models)
        passed = _passed(outcomes(store, key, within))
        usd: float | None = 0.0
        tokens = 0
        seconds = 0.0
        for model, pt, ct, busy in calls_by_model(store, key, within):
            local = _is_local(infos.get(model, {}), model)
            cost, _ = _cost(model, local, pt, ct, busy, costs)
            usd = None if usd is None or cost is None else usd + cost
            tokens += pt + ct
            seconds += busy
        prefixes.append(
            PrefixPoint(
                models,
                passed / samples,
                usd / samples if usd is not None else None,
                tokens / samples,
                seconds / samples,
            )
        )
    return CascadeSummary(
        system, samples, escalated(store, key), final_models(store, key), tuple(prefixes)
    )
