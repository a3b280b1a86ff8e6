"""The hybrid figures as tables: pass@1 after each attempt, repair against resample at equal
tokens, and each prefix of a cascade; shown the same in Markdown and HTML."""

from __future__ import annotations

from codeduel.metrics import Estimate
from codeduel.report._hybrid import Hybrid
from codeduel.report._table import Table, markdown_table
from codeduel.report._table import pct as _pct
from codeduel.report._table import usd as format_usd

__all__ = ["hybrid_intro", "hybrid_markdown", "hybrid_tables"]


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
