"""pass@k and the summary statistics reports are built from."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Estimate",
    "Summary",
    "geomean_ci",
    "mcnemar",
    "paired_difference_ci",
    "pass_at_k",
    "pass_at_k_ci",
    "percentile",
    "summarize",
]


@dataclass(frozen=True)
class Estimate:
    """A mean over tasks with its confidence interval."""

    value: float
    low: float
    high: float
    n_tasks: int


@dataclass(frozen=True)
class Summary:
    count: int
    mean: float
    p50: float
    p95: float
    min: float
    max: float


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn from n (c of them correct) is correct.

    The unbiased estimator of Chen et al. 2021, 1 - C(n-c, k) / C(n, k), in its product form,
    which stays exact where the binomials would overflow a float.
    """
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k_ci(per_task: Sequence[tuple[int, int]], k: int, confidence: float = 0.95) -> Estimate:
    """Mean pass@k over tasks, given (samples, correct) per task, with a confidence interval.

    Tasks with fewer than k samples have no pass@k and are skipped; `n_tasks` counts the rest.
    With one sample per task and k == 1 the outcomes are binary and the interval is Wilson's.
    Otherwise it is mean +- z * standard error of the per-task values, clipped to [0, 1]; one
    task gives no spread to measure, so its interval is [0, 1].
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if not per_task:
        raise ValueError("pass@k of no tasks")
    kept = [(n, c) for n, c in per_task if n >= k]
    if not kept:
        raise ValueError(f"no task has the {k} samples that pass@{k} needs")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    values = [pass_at_k(n, c, k) for n, c in kept]
    mean = statistics.fmean(values)
    if k == 1 and all(n == 1 for n, _ in kept):
        low, high = _wilson(sum(c for _, c in kept), len(kept), z)
    elif len(values) == 1:
        low, high = 0.0, 1.0
    else:
        half = z * statistics.stdev(values) / math.sqrt(len(values))
        low, high = mean - half, mean + half
    return Estimate(mean, max(0.0, low), min(1.0, high), len(kept))


def geomean_ci(
    per_task: Sequence[Sequence[float]],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Geometric mean of positive values (speedups) pooled over tasks, with a percentile
    bootstrap interval that resamples tasks, so a task's samples move together.

    Tasks without values are skipped; `n_tasks` counts the rest. The seed fixes the interval:
    the same values give the same report. One task gives no spread between tasks to measure,
    so its interval is its value (shown as one task, not as a range).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if any(v <= 0 for values in per_task for v in values):
        raise ValueError("a geometric mean needs positive values")
    # Each task as (sum of logs, count): a resample is then a sum over the tasks drawn.
    kept = [(math.fsum(map(math.log, values)), len(values)) for values in per_task if values]
    if not kept:
        raise ValueError("a geometric mean of no values")
    value = math.exp(sum(s for s, _ in kept) / sum(n for _, n in kept))
    if len(kept) == 1:
        return Estimate(value, value, value, 1)
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        drawn = rng.choices(kept, k=len(kept))
        means.append(sum(s for s, _ in drawn) / sum(n for _, n in drawn))
    tail = 100 * (1 - confidence) / 2
    low, high = (math.exp(percentile(means, q)) for q in (tail, 100 - tail))
    return Estimate(value, min(low, value), max(high, value), len(kept))


def _wilson(successes: int, trials: int, z: float) -> tuple[float, float]:
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return centre - half, centre + half


def paired_difference_ci(
    a: Sequence[bool], b: Sequence[bool], confidence: float = 0.95
) -> Estimate:
    """pass rate of A minus that of B on the same tasks, with Newcombe's interval for paired
    proportions (1998, method 10: both Wilson intervals, joined through their correlation).

    It stays inside [-1, 1] and does not collapse to a point when few tasks differ, as the
    Wald interval of a paired difference does.
    """
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("a paired difference of no tasks")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    n = len(a)
    both = sum(x and y for x, y in zip(a, b, strict=True))
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    neither = n - both - only_a - only_b
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = _wilson(both + only_a, n, z)
    l2, u2 = _wilson(both + only_b, n, z)
    cross = both * neither - only_a * only_b
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    # Newcombe's continuity-corrected correlation; 0 where a margin is empty.
    phi = (max(cross - n / 2, 0) if cross > 0 else cross) / math.sqrt(margins) if margins else 0.0
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    d = p1 - p2
    return Estimate(d, max(-1.0, d - below), min(1.0, d + above), n)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated linearly as numpy's default method does."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = q / 100 * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    a, b, t = ordered[below], ordered[above], position - below
    # numpy's lerp: interpolating from the nearer end keeps the result exact at both ends.
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)


def summarize(values: Sequence[float]) -> Summary | None:
    """Count, mean, median, 95th percentile and range; None when there are no values."""
    if not values:
        return None
    return Summary(
        count=len(values),
        mean=statistics.fmean(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        min=min(values),
        max=max(values),
    )


def mcnemar(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value for paired pass/fail outcomes of systems A and B.

    `only_a` and `only_b` count the tasks that just one of the two solved; under the null
    hypothesis each such task is a fair coin flip, so the test is a binomial test at 1/2.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got {only_a} and {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    # Integer arithmetic until the one division keeps large counts exact.
    return min(1.0, 2 * tail / (1 << n))
