"""Hybrid workflows from the store: pass@1 after each attempt (repair, resample), repair against
resample at equal generated tokens, and each prefix of a cascade as a cost-accuracy point.

Every figure comes from the stored attempts: each has one model call and the hidden-test result
of its code. A sample's answer under a cut-off (first k attempts, t tokens, first p models of a
chain) is the latest answered attempt within it, as the strategies themselves choose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codeduel.metrics import Estimate, paired_difference_ci
from codeduel.report._rows import CostSettings, _cost, _is_local
from codeduel.report._table import Table, markdown_table
from codeduel.report._table import usd as format_usd
from codeduel.store import Run, Store

__all__ = [
    "AttemptCurve",
    "CascadeSummary",
    "Hybrid",
    "PrefixPoint",
    "TokenComparison",
    "build_hybrid",
    "hybrid_intro",
    "hybrid_markdown",
    "hybrid_tables",
]

_MULTI_ATTEMPT = ("repair", "resample")
# Budgets of the equal-token comparison, in multiples of the run's max_tokens.
_BUDGET_FACTORS = (0.5, 1.0, 2.0, 3.0)

# One row per attempt of the run's scored samples, with its call and hidden result; `cum` is the
# completion tokens spent up to and including the attempt.
_ATTEMPTS = """
WITH at AS (
    SELECT s.id AS sid, s.run_id AS run_id, s.model AS system, s.strategy AS strategy,
        s.task_id AS task_id, a.attempt_index AS i, c.model AS call_model,
        c.error IS NULL AS answered, COALESCE(c.prompt_tokens, 0) AS pt,
        COALESCE(c.completion_tokens, 0) AS ct, COALESCE(c.latency_s, 0) AS lat,
        COALESCE(c.busy_s, c.latency_s, 0) AS busy,
        EXISTS (SELECT 1 FROM executions e WHERE e.attempt_id = a.id AND e.tests = 'hidden'
            AND e.status = 'passed') AS hidden_passed,
        SUM(COALESCE(c.completion_tokens, 0)) OVER (PARTITION BY s.id ORDER BY a.attempt_index)
            AS cum
    FROM samples s JOIN attempts a ON a.sample_id = s.id JOIN model_calls c ON c.attempt_id = a.id
    WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND s.model_error = 0
)
"""


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
    db = store.db
    groups = db.execute(
        "SELECT model, strategy, COUNT(*) FROM samples WHERE run_id = ? AND model_error = 0 "
        "AND strategy IN ('repair', 'resample', 'cascade') GROUP BY model, strategy "
        "ORDER BY MIN(id)",
        (run.id,),
    ).fetchall()
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
    visible = db.execute(
        "SELECT COUNT(DISTINCT s.task_id), (SELECT COUNT(DISTINCT task_id) FROM samples "
        "WHERE run_id = ? AND strategy IN ('repair', 'resample', 'cascade')) "
        "FROM samples s JOIN attempts a ON a.sample_id = s.id "
        "JOIN executions e ON e.attempt_id = a.id WHERE s.run_id = ? AND e.tests = 'visible'",
        (run.id, run.id),
    ).fetchone()
    return Hybrid(
        tuple(curves),
        tuple(comparisons),
        tuple(cascades),
        (visible[0], visible[1]),
        run.benchmark,
    )


def _outcomes(
    store: Store,
    key: tuple[int, str, str],
    cutoff: str,
    params: tuple[Any, ...] = (),
    tasks: tuple[int, str, str] | None = None,
) -> dict[tuple[str, int], bool]:
    """Per sample (task, index): did its answer within `cutoff` (SQL over the attempt rows)
    pass the hidden tests? A sample with no answer within the cut-off did not."""
    only = ""
    extra: tuple[Any, ...] = ()
    if tasks is not None:
        only = (
            " AND task_id IN (SELECT task_id FROM samples WHERE run_id = ? AND model = ? "
            "AND strategy = ? AND model_error = 0)"
        )
        extra = tasks
    sql = (
        _ATTEMPTS
        + ", scored AS (SELECT DISTINCT sid, task_id FROM at WHERE 1"
        + only
        + f"), answer AS (SELECT sid, MAX(i) AS i FROM at WHERE answered AND {cutoff} "
        "GROUP BY sid) SELECT scored.task_id, s.sample_index, COALESCE(at.hidden_passed, 0) "
        "FROM scored JOIN samples s ON s.id = scored.sid LEFT JOIN answer USING (sid) "
        "LEFT JOIN at ON at.sid = answer.sid AND at.i = answer.i"
    )
    rows = store.db.execute(sql, (*key, *extra, *params)).fetchall()
    return {(task, index): bool(passed) for task, index, passed in rows}


def _passed(
    store: Store,
    key: tuple[int, str, str],
    cutoff: str,
    params: tuple[Any, ...] = (),
    tasks: tuple[int, str, str] | None = None,
) -> int:
    """Samples whose answer within `cutoff` passed the hidden tests."""
    return sum(_outcomes(store, key, cutoff, params, tasks).values())


def _gain(a: dict[tuple[str, int], bool], b: dict[tuple[str, int], bool]) -> Estimate | None:
    """pass@1 of `a` minus `b` on the samples both have, with a paired interval."""
    common = sorted(a.keys() & b.keys())
    if not common:
        return None
    return paired_difference_ci([a[k] for k in common], [b[k] for k in common])


def _curve(store: Store, run_id: int, system: str, strategy: str, samples: int) -> AttemptCurve:
    key = (run_id, system, strategy)
    most = store.db.execute(_ATTEMPTS + "SELECT COALESCE(MAX(i), 0) + 1 FROM at", key).fetchone()[0]
    passed = []
    tokens = []
    for k in range(1, most + 1):
        passed.append(_passed(store, key, "i < ?", (k,)) / samples)
        spent = store.db.execute(
            _ATTEMPTS + "SELECT COALESCE(SUM(ct), 0) FROM at WHERE i < ?", (*key, k)
        ).fetchone()[0]
        tokens.append(spent / samples)
    gain = None
    if most > 1:
        gain = _gain(_outcomes(store, key, "1"), _outcomes(store, key, "i < 1"))
    return AttemptCurve(system, strategy, samples, tuple(passed), tuple(tokens), gain)


def _max_tokens(run: Run) -> int | None:
    value = run.config.get("generation", {}).get("max_tokens")
    return value if isinstance(value, int) else None


def _compare(store: Store, run: Run, system: str, strategy: str) -> TokenComparison | None:
    """Repair or resample in `run` against the other of the same model: in this run (found
    from its repair side), else the latest run on the same dataset that has it."""
    wanted = "resample" if strategy == "repair" else "repair"
    found = store.db.execute(
        "SELECT r.name FROM runs r WHERE r.benchmark = ? AND r.dataset_sha256 = ? "
        "AND (r.id != ? OR ? = 'resample') "
        "AND EXISTS (SELECT 1 FROM samples s WHERE s.run_id = r.id AND s.model = ? "
        "AND s.strategy = ? AND s.model_error = 0) ORDER BY r.id = ? DESC, r.id DESC",
        (run.benchmark, run.dataset_sha256, run.id, wanted, system, wanted, run.id),
    ).fetchone()
    if found is None:
        return None
    other = store.get_run(found[0])
    assert other is not None
    repair_run, resample_run = (run, other) if strategy == "repair" else (other, run)
    repair = (repair_run.id, system, "repair")
    resample = (resample_run.id, system, "resample")
    counts = []
    for key, partner in ((repair, resample), (resample, repair)):
        counts.append(
            store.db.execute(
                "SELECT COUNT(*) FROM samples WHERE run_id = ? AND model = ? AND strategy = ? "
                "AND model_error = 0 AND task_id IN (SELECT task_id FROM samples "
                "WHERE run_id = ? AND model = ? AND strategy = ? AND model_error = 0)",
                (*key, *partner),
            ).fetchone()[0]
        )
    if not all(counts):
        return None
    base = _max_tokens(repair_run) or 768
    budgets: list[int | None] = [round(f * base) for f in _BUDGET_FACTORS]
    points = []
    gaps = []
    for budget in [*budgets, None]:
        cutoff, params = ("cum <= ?", (budget,)) if budget is not None else ("1", ())
        mine = _outcomes(store, repair, cutoff, params, resample)
        theirs = _outcomes(store, resample, cutoff, params, repair)
        points.append((budget, sum(mine.values()) / counts[0], sum(theirs.values()) / counts[1]))
        gap = _gain(mine, theirs)
        if gap is not None:
            gaps.append(gap)
    means = []
    for (key, partner), n in zip(((repair, resample), (resample, repair)), counts, strict=True):
        spent = store.db.execute(
            _ATTEMPTS + "SELECT COALESCE(SUM(ct), 0) FROM at WHERE task_id IN (SELECT task_id "
            "FROM samples WHERE run_id = ? AND model = ? AND strategy = ? AND model_error = 0)",
            (*key, *partner),
        ).fetchone()[0]
        means.append(spent / n)
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
    db = store.db
    key = (run.id, system, "cascade")
    infos = store.models(run.id)
    chain = infos.get(system, {}).get("chain") or system.split(" -> ")
    escalated = db.execute(
        _ATTEMPTS + "SELECT COUNT(*) FROM (SELECT sid FROM at GROUP BY sid "
        "HAVING COUNT(DISTINCT call_model) > 1)",
        key,
    ).fetchone()[0]
    final_models = {
        r[0]: r[1]
        for r in db.execute(
            "SELECT c.model, COUNT(*) FROM samples s JOIN attempts a ON a.sample_id = s.id "
            "JOIN model_calls c ON c.attempt_id = a.id "
            "WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND s.model_error = 0 "
            "AND a.attempt_index = COALESCE(s.final_attempt, "
            "(SELECT MAX(attempt_index) FROM attempts WHERE sample_id = s.id)) "
            "GROUP BY c.model ORDER BY COUNT(*) DESC",
            key,
        )
    }
    prefixes = []
    for p in range(1, len(chain) + 1):
        models = tuple(chain[:p])
        marks = ", ".join("?" for _ in models)
        passed = _passed(store, key, f"call_model IN ({marks})", models)
        usd: float | None = 0.0
        tokens = 0
        seconds = 0.0
        for model, pt, ct, busy in db.execute(
            _ATTEMPTS + f"SELECT call_model, SUM(pt), SUM(ct), SUM(busy) FROM at "
            f"WHERE call_model IN ({marks}) GROUP BY call_model",
            (*key, *models),
        ):
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
    return CascadeSummary(system, samples, escalated, final_models, tuple(prefixes))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def hybrid_intro(hybrid: Hybrid) -> str:
    """What the hybrid figures rest on: how many tasks had visible tests to steer by."""
    ran, total = hybrid.visible_tasks
    note = (
        f"Visible tests ran on {ran} of {total} tasks; without them repair and resample stop "
        "after one attempt, and a cascade escalates only when no code came back."
    )
    if hybrid.benchmark == "mbpp":
        note += " MBPP's visible test (the assert in the prompt) is also one of the hidden tests."
    else:
        note += " Scores always come from the hidden tests."
    return note


def _points(est: Estimate | None) -> str:
    """A difference of pass rates in percentage points, with its interval."""
    if est is None:
        return "–"
    return f"{100 * est.value:+.1f} ({100 * est.low:+.1f} to {100 * est.high:+.1f})"


def hybrid_tables(hybrid: Hybrid) -> list[Table]:
    tables = []
    if hybrid.curves:
        longest = max(len(c.pass_after) for c in hybrid.curves)
        body = []
        for c in hybrid.curves:
            cells = [
                f"{_pct(p)} ({t:.0f})" for p, t in zip(c.pass_after, c.tokens_after, strict=True)
            ]
            cells += ["–"] * (longest - len(cells))
            body.append((f"{c.system} ({c.strategy})", *cells, _points(c.gain)))
        tables.append(
            Table(
                (
                    "System",
                    *(f"after {k}" for k in range(1, longest + 1)),
                    "Gain over the first attempt, points (95% CI)",
                ),
                tuple(body),
                caption="Pass@1 % after each attempt (mean completion tokens so far):",
            )
        )
    for cmp in hybrid.comparisons:
        where = (
            "this run"
            if cmp.repair_run == cmp.resample_run
            else f"runs {cmp.repair_run} and {cmp.resample_run}"
        )
        body = []
        gaps: tuple[Estimate | None, ...] = cmp.gaps or (None,) * len(cmp.points)
        for (budget, repair, resample), gap in zip(cmp.points, gaps, strict=True):
            label = "all spent" if budget is None else f"≤ {budget}"
            body.append((label, _pct(repair), _pct(resample), _points(gap)))
        tables.append(
            Table(
                ("Token budget", "Repair", "Resample", "Repair − resample, points (95% CI)"),
                tuple(body),
                caption=f"Repair vs resample ({where}) for {cmp.system} on {cmp.tasks} tasks, "
                "pass@1 % at equal completion tokens per task:",
                note=f"Mean completion tokens per task: repair {cmp.tokens_mean[0]:.0f}, "
                f"resample {cmp.tokens_mean[1]:.0f}."
                + (
                    f" The runs differ in max_tokens ({cmp.max_tokens[0]} vs {cmp.max_tokens[1]})."
                    if cmp.max_tokens[0] != cmp.max_tokens[1]
                    else ""
                ),
            )
        )
    for cas in hybrid.cascades:
        finals = ", ".join(f"{m} {n}" for m, n in cas.final_models.items())
        share = cas.escalated / cas.samples if cas.samples else 0.0
        body = []
        for point in cas.prefixes:
            usd = format_usd(point.usd_per_problem)
            body.append(
                (
                    " -> ".join(point.models),
                    _pct(point.pass_at_1),
                    usd,
                    f"{point.tokens_per_problem:.0f}",
                    f"{point.engine_s_per_problem:.1f}",
                )
            )
        tables.append(
            Table(
                (
                    "Prefix of the chain",
                    "Pass@1 %",
                    "$ per problem",
                    "Tokens per problem",
                    "Engine s per problem",
                ),
                tuple(body),
                caption=f"Cascade {cas.system}: escalated {cas.escalated}/{cas.samples} "
                f"({_pct(share)}%); final answer by {finals}.",
            )
        )
    return tables


def hybrid_markdown(hybrid: Hybrid) -> list[str]:
    if not hybrid:
        return []
    out = [hybrid_intro(hybrid), ""]
    for table in hybrid_tables(hybrid):
        out += [table.caption, "", *markdown_table(table)]
        if table.note:
            out.append(table.note)
        out.append("")
    return out
