from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeduel.metrics import (
    Estimate,
    Summary,
    geomean_ci,
    mcnemar,
    paired_difference_ci,
    pass_at_k,
    pass_at_k_ci,
    percentile,
    summarize,
)

Z95 = 1.959963984540054


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in subset) for subset in subsets) / len(subsets)


def textbook_wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson (1927) in counts: (x + z^2/2 +- z sqrt(x(n-x)/n + z^2/4)) / (n + z^2)."""
    spread = z * math.sqrt(x * (n - x) / n + z * z / 4)
    return (x + z * z / 2 - spread) / (n + z * z), (x + z * z / 2 + spread) / (n + z * z)


def binary(passed: int, failed: int) -> list[tuple[int, int]]:
    return [(1, 1)] * passed + [(1, 0)] * failed


# --- pass@k ----------------------------------------------------------------------------------


def test_pass_at_k_matches_brute_force_for_small_n() -> None:
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = brute_force_pass_at_k(n, c, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)


@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))), st.data())
def test_pass_at_k_matches_exact_binomials(nc: tuple[int, int], data: st.DataObject) -> None:
    n, c = nc
    k = data.draw(st.integers(1, n))
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-9)


@pytest.mark.parametrize(("n", "c", "k", "expected"), [(10, 0, 1, 0.0), (10, 0, 10, 0.0)])
def test_pass_at_k_without_correct_samples_is_zero(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == expected


def test_pass_at_k_edges() -> None:
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 1, 10) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(1, 0, 1) == 0.0


@pytest.mark.parametrize(("n", "c", "k"), [(5, 2, 6), (0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0)])
def test_pass_at_k_rejects_impossible_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# --- pass@k with a confidence interval -------------------------------------------------------


def test_binary_outcomes_get_wilson_interval() -> None:
    estimate = pass_at_k_ci(binary(98, 66), k=1)
    low, high = textbook_wilson(98, 164, Z95)
    assert estimate.value == pytest.approx(98 / 164)
    assert (estimate.low, estimate.high) == pytest.approx((low, high))
    assert estimate.n_tasks == 164


@pytest.mark.parametrize(
    ("passed", "failed", "low", "high"),
    [(0, 10, 0.0, 0.2775), (10, 0, 0.7225, 1.0), (5, 5, 0.2366, 0.7634)],
)
def test_wilson_known_values(passed: int, failed: int, low: float, high: float) -> None:
    estimate = pass_at_k_ci(binary(passed, failed), k=1)
    assert estimate.low == pytest.approx(low, abs=1e-4)
    assert estimate.high == pytest.approx(high, abs=1e-4)


def test_wilson_widens_with_confidence() -> None:
    at_90 = pass_at_k_ci(binary(30, 20), k=1, confidence=0.90)
    at_99 = pass_at_k_ci(binary(30, 20), k=1, confidence=0.99)
    low, high = textbook_wilson(30, 50, 2.5758293035489004)
    assert (at_99.low, at_99.high) == pytest.approx((low, high))
    assert at_99.low < at_90.low < at_90.value < at_90.high < at_99.high


def test_several_samples_get_normal_interval() -> None:
    # Per-task pass@1: 0.3, 0.7, 0.5, 1.0; mean 0.625; sample sd sqrt(0.2675 / 3).
    estimate = pass_at_k_ci([(10, 3), (10, 7), (10, 5), (10, 10)], k=1)
    half = Z95 * math.sqrt(0.2675 / 3) / 2
    assert estimate.value == pytest.approx(0.625)
    assert estimate.n_tasks == 4
    assert (estimate.low, estimate.high) == pytest.approx((0.625 - half, 0.625 + half))
    assert (estimate.low, estimate.high) == pytest.approx((0.3324, 0.9176), abs=1e-4)


def test_mixed_sample_counts_use_the_normal_interval() -> None:
    # Per-task pass@1: 1, 0.5, 0.5, 0.5; mean 0.625; sample sd 0.25.
    estimate = pass_at_k_ci([(1, 1), (2, 1), (4, 2), (4, 2)], k=1)
    half = Z95 * 0.25 / 2
    assert (estimate.low, estimate.high) == pytest.approx((0.625 - half, 0.625 + half))


def test_normal_interval_is_clipped_to_unit_range() -> None:
    estimate = pass_at_k_ci([(10, 10), (10, 10), (10, 6)], k=1)
    assert estimate.high == 1.0
    assert 0.0 < estimate.low < estimate.value < 1.0


def test_pass_at_k_ci_for_k_above_one() -> None:
    estimate = pass_at_k_ci([(10, 1), (10, 0), (10, 5)], k=5)
    assert estimate.value == pytest.approx((0.5 + 0.0 + 251 / 252) / 3)


def test_tasks_with_too_few_samples_are_skipped() -> None:
    estimate = pass_at_k_ci([(1, 1), (10, 2), (3, 0), (10, 8)], k=5)
    assert estimate.n_tasks == 2
    assert estimate.value == pytest.approx((pass_at_k(10, 2, 5) + pass_at_k(10, 8, 5)) / 2)


def test_one_task_has_no_spread_to_measure() -> None:
    assert pass_at_k_ci([(10, 4)], k=1) == Estimate(0.4, 0.0, 1.0, 1)


@pytest.mark.parametrize(
    ("per_task", "k", "confidence"),
    [([], 1, 0.95), ([(1, 1), (2, 1)], 3, 0.95), ([(1, 1)], 1, 1.0), ([(1, 1)], 1, 0.0)],
)
def test_pass_at_k_ci_rejects(per_task: list[tuple[int, int]], k: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        pass_at_k_ci(per_task, k, confidence)


@given(
    st.lists(
        st.integers(1, 20).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))), min_size=1
    )
)
def test_interval_holds_the_estimate(per_task: list[tuple[int, int]]) -> None:
    estimate = pass_at_k_ci(per_task, k=1)
    assert 0.0 <= estimate.low <= estimate.value + 1e-12
    assert estimate.value - 1e-12 <= estimate.high <= 1.0


# --- percentile and summary ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 95, 3.85),
        ([4, 1, 3, 2], 95, 3.85),
        ([1, 2, 3, 4], 0, 1.0),
        ([1, 2, 3, 4], 100, 4.0),
        ([1, 2, 3, 4], 25, 1.75),
        ([10, 20, 30, 40, 50], 90, 46.0),
        ([7.5], 37, 7.5),
        ([0.1, 0.2], 50, 0.15000000000000002),
    ],
)
def test_percentile_matches_numpy_linear(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected, rel=1e-15)


_FINITE = st.floats(-1e9, 1e9, allow_nan=False)


@given(st.lists(_FINITE, min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_agrees_with_numpy(values: list[float], q: float) -> None:
    numpy = pytest.importorskip("numpy")
    assert percentile(values, q) == float(numpy.percentile(values, q))


@pytest.mark.parametrize(
    ("values", "q"), [([], 50), ([1.0], -1), ([1.0], 100.5), ([1.0], math.nan)]
)
def test_percentile_rejects(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_summarize() -> None:
    summary = Summary(count=21, mean=10.0, p50=10.0, p95=19.0, min=0, max=20)
    assert summarize([float(v) for v in reversed(range(21))]) == summary
    assert summarize([]) is None


# --- McNemar ---------------------------------------------------------------------------------


def exact_two_sided(b: int, c: int) -> Fraction:
    """Probability under Binomial(b + c, 1/2) of a split at least as uneven as (b, c)."""
    n = b + c
    uneven = abs(2 * b - n)
    return Fraction(sum(math.comb(n, i) for i in range(n + 1) if abs(2 * i - n) >= uneven), 2**n)


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [(10, 2, 0.03857421875), (0, 0, 1.0), (5, 5, 1.0), (1, 0, 1.0), (6, 0, 0.03125), (3, 1, 0.625)],
)
def test_mcnemar_known_values(b: int, c: int, expected: float) -> None:
    assert mcnemar(b, c) == pytest.approx(expected)


@given(st.integers(0, 400), st.integers(0, 400))
def test_mcnemar_is_the_exact_binomial_test_and_symmetric(b: int, c: int) -> None:
    assert mcnemar(b, c) == mcnemar(c, b)
    assert mcnemar(b, c) == pytest.approx(float(exact_two_sided(b, c)), rel=1e-12)


def test_mcnemar_large_counts_stay_finite() -> None:
    assert 0.0 < mcnemar(2000, 1800) < 0.01
    assert mcnemar(3000, 3000) == 1.0


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar(-1, 3)


def _paired(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[bool], list[bool]]:
    a = [True] * (both + only_a) + [False] * (only_b + neither)
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), st.integers(0, 40))
def test_paired_difference_ci_holds_its_estimate_and_mirrors(
    both: int, only_a: int, only_b: int, neither: int
) -> None:
    if both + only_a + only_b + neither == 0:
        return
    a, b = _paired(both, only_a, only_b, neither)
    est = paired_difference_ci(a, b)
    assert est.n_tasks == len(a)
    assert est.value == pytest.approx((only_a - only_b) / len(a))
    assert -1.0 <= est.low <= est.value <= est.high <= 1.0
    mirrored = paired_difference_ci(b, a)
    assert mirrored.low == pytest.approx(-est.high)
    assert mirrored.high == pytest.approx(-est.low)


def test_paired_difference_ci_approaches_the_wald_interval_for_many_tasks() -> None:
    # 20,000 tasks: Newcombe's interval and the textbook Wald interval of a paired difference
    # (d ± z·sqrt(b + c − (b − c)²/n) / n) must agree to about the third decimal.
    both, only_a, only_b, neither = 9000, 2600, 1800, 6600
    n = both + only_a + only_b + neither
    est = paired_difference_ci(*_paired(both, only_a, only_b, neither))
    d = (only_a - only_b) / n
    half = 1.959964 * math.sqrt(only_a + only_b - (only_a - only_b) ** 2 / n) / n
    assert est.low == pytest.approx(d - half, abs=5e-4)
    assert est.high == pytest.approx(d + half, abs=5e-4)


def test_paired_difference_ci_is_wider_with_fewer_tasks_and_excludes_zero_when_clear() -> None:
    few = paired_difference_ci(*_paired(5, 3, 0, 2))
    many = paired_difference_ci(*_paired(50, 30, 0, 20))
    assert many.high - many.low < few.high - few.low
    assert many.low > 0 and few.low < 0.05
    # No task changed: the interval is around zero, not the single point.
    same = paired_difference_ci(*_paired(6, 0, 0, 4))
    assert same.value == 0 and same.low < 0 < same.high


def test_paired_difference_ci_rejects_unpaired_input() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference_ci([True], [True, False])
    with pytest.raises(ValueError, match="no tasks"):
        paired_difference_ci([], [])


def test_geomean_ci_pools_samples_and_resamples_tasks() -> None:
    # numpy 10 ms over GPU 2 ms and 5 ms: speedups 5 and 2.
    est = geomean_ci([[5.0], [2.0]])
    assert est.value == pytest.approx(math.sqrt(10))
    assert est.n_tasks == 2
    # Two tasks drawn with replacement: every resample is 5, 2 or their geometric mean.
    assert (est.low, est.high) == (pytest.approx(2.0), pytest.approx(5.0))
    # The same values and seed give the same interval; pooled, not a mean of task means.
    assert geomean_ci([[5.0], [2.0]]) == est
    pooled = geomean_ci([[4.0, 4.0, 4.0], [1.0], []])
    assert pooled.value == pytest.approx(4 ** (3 / 4)) and pooled.n_tasks == 2
    assert 1.0 <= pooled.low <= pooled.value <= pooled.high <= 4.0


def test_geomean_ci_of_one_task_has_no_spread_and_rejects_bad_input() -> None:
    assert geomean_ci([[2.0, 8.0]]) == Estimate(4.0, 4.0, 4.0, 1)
    with pytest.raises(ValueError, match="positive"):
        geomean_ci([[0.0]])
    with pytest.raises(ValueError, match="no values"):
        geomean_ci([[], []])
    with pytest.raises(ValueError, match="confidence"):
        geomean_ci([[1.0]], confidence=1.0)


def test_geomean_ci_narrows_with_more_tasks() -> None:
    few = geomean_ci([[1.0], [4.0]] * 2)
    many = geomean_ci([[1.0], [4.0]] * 50)
    assert few.value == pytest.approx(2.0) and many.value == pytest.approx(2.0)
    assert many.high - many.low < few.high - few.low
