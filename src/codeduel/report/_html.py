"""Render reports as one self-contained HTML page: the Markdown report's tables, each run's
provenance, and inline SVG plots. Nothing is fetched to view it: no scripts, fonts or styles
from the network. The page's markup and style are the package's templates/report.html.j2."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from codeduel.costs import LocalCost
from codeduel.report._accel import Accel, accel_intro, accel_tables
from codeduel.report._hybrid import Hybrid
from codeduel.report._hybrid_tables import hybrid_intro, hybrid_tables
from codeduel.report._paired import Paired
from codeduel.report._render import (
    RunReport,
    _system,
    cost_table,
    duel_table,
    run_heading,
    run_notes,
    unsafe_note,
    unsafe_sandbox,
)
from codeduel.report._rows import ReportRow
from codeduel.report._svg import (
    PALETTE,
    Bar,
    Box,
    Dots,
    Point,
    Series,
    bar_plot,
    box_plot,
    dot_plot,
    frontier_plot,
    line_plot,
)
from codeduel.report._table import Table
from codeduel.store import Run, Store

__all__ = [
    "TimeSpread",
    "html_duel_table",
    "html_figures",
    "html_run_view",
    "render_html",
    "time_spreads",
]


@dataclass(frozen=True)
class TimeSpread:
    """Request latency (generation plus execution, as in the duel table) of every scored
    sample of one system of a run, in increasing order."""

    model: str
    strategy: str
    seconds: tuple[float, ...]


def time_spreads(store: Store, run: Run) -> tuple[TimeSpread, ...]:
    """One column of the samples table per system: what a latency plot needs, no more."""
    db = store.db
    systems = db.execute(
        "SELECT model, strategy FROM samples WHERE run_id = ? AND model_error = 0 "
        "GROUP BY model, strategy ORDER BY MIN(id)",
        (run.id,),
    ).fetchall()
    return tuple(
        TimeSpread(
            model,
            strategy,
            tuple(
                r[0]
                for r in db.execute(
                    "SELECT generation_s + execution_s AS s FROM samples WHERE run_id = ? "
                    "AND model = ? AND strategy = ? AND model_error = 0 ORDER BY s",
                    (run.id, model, strategy),
                )
            ),
        )
        for model, strategy in systems
    )


@dataclass(frozen=True)
class _Figure:
    key: str
    title: str
    caption: str
    svg: str
    # Shown instead of the plot when there is nothing to draw, or under it.
    no_data: str = ""
    note: str = ""


class _Labels:
    """A system's name on the plots (with its run when the report has several) and its colour,
    the same on every plot."""

    def __init__(self, reports: Sequence[RunReport]) -> None:
        self.several = len(reports) > 1
        self.colors: dict[str, str] = {}

    def name(self, run: str, system: str) -> str:
        return f"{system} · {run}" if self.several else system

    def color(self, system: str) -> str:
        return self.colors.setdefault(system, PALETTE[len(self.colors) % len(PALETTE)])

    def row(self, r: ReportRow) -> tuple[str, str]:
        return self.name(r.run, _system(r)), self.color(_system(r))


def _usd_tick(value: float) -> str:
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}".removesuffix(".00")
    return "$" + f"{value:.10f}".rstrip("0").rstrip(".")


def _frontier(reports: Sequence[RunReport], labels: _Labels) -> _Figure:
    points = []
    unpriced = []
    for report in reports:
        # A cascade is priced call by call, each model at its own rate, as its whole chain's
        # prefix point is: its row has no price for a chain that mixes local and cloud models.
        chains = {c.system: c.prefixes[-1] for c in report.hybrid.cascades if c.prefixes}
        for r in report.rows:
            name, color = labels.row(r)
            usd = r.usd_per_problem
            if r.strategy == "cascade" and r.model in chains:
                usd = chains[r.model].usd_per_problem
            if r.pass_at_1 is None or usd is None:
                unpriced.append(name)
                continue
            est = r.pass_at_1
            points.append(Point(name, color, usd, est.value, est.low, est.high))
    title = "Pass@1 against $ per problem"
    caption = (
        "One point per system with its 95% interval; the dashed line joins the systems no other "
        "system beats on both accuracy and cost (the Pareto frontier). Local models cost their "
        "declared energy, cloud models their tokens at list price, a cascade the calls it made."
    )
    note = ("Not plotted, no pass@1 or no price: " + ", ".join(unpriced) + ".") if unpriced else ""
    if not points:
        return _Figure("frontier", title, caption, "", "No data: no system has a price.", note)
    svg = frontier_plot("frontier", title, points, "$ per problem", "pass@1 %", _usd_tick)
    return _Figure("frontier", title, caption, svg, note=note)


def _attempts(reports: Sequence[RunReport], labels: _Labels) -> _Figure:
    series = []
    for report in reports:
        for c in report.hybrid.curves:
            system = f"{c.system} ({c.strategy})"
            series.append(
                Series(
                    labels.name(report.run.name, system),
                    labels.color(system),
                    tuple(zip(c.tokens_after, c.pass_after, strict=True)),
                    dashed=c.strategy == "resample",
                    point_labels=tuple(str(k) for k in range(1, len(c.pass_after) + 1)),
                )
            )
    title = "Pass@1 after each attempt against completion tokens spent"
    caption = (
        "Each marker is the loop stopped after attempt k (the number by it): pass@1 on the "
        "hidden tests against the mean completion tokens spent per sample so far. "
        "Resample is dashed."
    )
    if not series:
        return _Figure("attempts", title, caption, "", "No data: no repair or resample run.")
    svg = line_plot("attempts", title, series, "mean completion tokens per sample", "pass@1 %")
    return _Figure("attempts", title, caption, svg)


def _budgets(reports: Sequence[RunReport], labels: _Labels) -> _Figure:
    series = []
    seen = set()
    for report in reports:
        for cmp in report.hybrid.comparisons:
            # Both runs of a pair find the same comparison.
            key = (cmp.system, cmp.repair_run, cmp.resample_run)
            if key in seen:
                continue
            seen.add(key)
            where = (
                cmp.repair_run
                if cmp.repair_run == cmp.resample_run
                else f"{cmp.repair_run} / {cmp.resample_run}"
            )
            capped = [(b, rep, res) for b, rep, res in cmp.points if b is not None]
            for side, dashed in (("repair", False), ("resample", True)):
                name = f"{cmp.system} ({side})"
                series.append(
                    Series(
                        f"{name} · {where}" if labels.several else name,
                        labels.color(name),
                        tuple(
                            (float(b), rep if side == "repair" else res) for b, rep, res in capped
                        ),
                        dashed=dashed,
                    )
                )
    title = "Repair against resample at equal token budgets"
    caption = (
        "Pass@1 of one model's repair and resample samples on the tasks both ran, if each "
        "sample had stopped within the budget of completion tokens."
    )
    if not series:
        return _Figure(
            "budget", title, caption, "", "No data: no model has both a repair and a resample run."
        )
    svg = line_plot("budget", title, series, "completion-token budget per sample", "pass@1 %")
    return _Figure("budget", title, caption, svg)


def _latency(
    reports: Sequence[RunReport], spreads: Mapping[str, Sequence[TimeSpread]], labels: _Labels
) -> _Figure:
    boxes = []
    for report in reports:
        run = report.run.name
        for spread in spreads.get(run, ()):
            if not spread.seconds:
                continue
            system = f"{spread.model} ({spread.strategy})"
            if spread.strategy == "single":
                system = spread.model
            boxes.append(Box(labels.name(run, system), labels.color(system), spread.seconds))
    title = "Request latency"
    caption = (
        "Generation plus execution time of every scored sample (dots), under the system's "
        "batching or concurrency: what one request waits, not what a problem costs in time "
        "(the table's wall s per problem); the box spans the middle half, the thick bar is the "
        "median, the diamond the 95th percentile, as in the table."
    )
    if not boxes:
        return _Figure("latency", title, caption, "", "No data: no scored samples.")
    return _Figure("latency", title, caption, box_plot("latency", title, boxes, "seconds"))


def _bar_figure(
    key: str, title: str, caption: str, bars: Sequence[Bar], x_label: str, no_data: str
) -> _Figure:
    """`bars` as a plot, or `no_data` where none of them was measured."""
    if all(b.value is None for b in bars):
        return _Figure(key, title, caption, "", no_data)
    return _Figure(key, title, caption, bar_plot(key, title, bars, x_label))


def _speed(r: ReportRow) -> tuple[float | None, str]:
    value = r.aggregate_tokens_per_s
    return value, "not measured" if value is None else f"{value:,.1f} tok/s"


def _peak_memory(r: ReportRow) -> tuple[float | None, str]:
    kind, peak = ("VRAM", r.peak_vram_bytes) if r.peak_vram_bytes else ("RSS", r.peak_rss_bytes)
    if peak is None:
        return None, "not measured"
    return peak / 2**20, f"{peak / 2**20:,.0f} MiB {kind}"


def _throughput(reports: Sequence[RunReport], labels: _Labels) -> _Figure:
    bars = [Bar(*labels.row(r), *_speed(r)) for report in reports for r in report.rows]
    caption = (
        "Output tokens per second each system delivered: all its output tokens over its wall "
        "time, batching and concurrency included (not one stream's share)."
    )
    return _bar_figure(
        "throughput",
        "Output speed",
        caption,
        bars,
        "tokens per second",
        "No data: no call reported its speed.",
    )


def _memory(reports: Sequence[RunReport], labels: _Labels) -> _Figure:
    bars = [Bar(*labels.row(r), *_peak_memory(r)) for report in reports for r in report.rows]
    caption = (
        "Peak GPU memory (VRAM) where the engine reports it, else the peak resident memory of "
        "the process holding the model."
    )
    return _bar_figure(
        "memory", "Peak memory", caption, bars, "MiB", "No data: no system measured its memory."
    )


def _fast_p(reports: Sequence[RunReport], labels: _Labels) -> _Figure:
    series = []
    for report in reports:
        if report.accel is None:
            continue
        for s in report.accel.systems:
            # p = 0 (correct@1, in the table) has no place on a log axis.
            points = tuple((p, share) for p, share in s.fast_curve if p > 0)
            if points:
                series.append(
                    Series(labels.name(report.run.name, s.system), labels.color(s.system), points)
                )
    title = "fast_p: correct and faster than NumPy by more than p"
    caption = (
        "KernelBench's fast_p: the share of scored answers that are correct and more than p "
        "times as fast as NumPy on the task's largest size, for each threshold p "
        "(fast_0, correct@1, is in the table)."
    )
    if not series:
        return _Figure(
            "fast-p", title, caption, "", "No data: no answer's speed was measured on a GPU."
        )
    svg = line_plot("fast-p", title, series, "p: speedup over NumPy, largest size", "fast_p %")
    return _Figure("fast-p", title, caption, svg)


def _task_speedups(reports: Sequence[RunReport], labels: _Labels) -> _Figure:
    tasks: list[str] = []
    found: dict[str, dict[str, float | None]] = {}
    colors: dict[str, str] = {}
    for report in reports:
        if report.accel is None:
            continue
        for row in report.accel.tasks:
            name = labels.name(report.run.name, row.system)
            colors[name] = labels.color(row.system)
            if row.task_id not in tasks:
                tasks.append(row.task_id)
            found.setdefault(name, {})[row.task_id] = row.speedup_numpy_largest
    series = [
        Dots(name, colors[name], tuple(values.get(t) for t in tasks))
        for name, values in found.items()
        if any(v is not None for v in values.values())
    ]
    title = "Speedup over NumPy per task, largest size"
    caption = (
        "Per task and system, the geometric mean over its correct answers of NumPy's time over "
        "the answer's GPU time on the task's largest size; right of the dashed line (1×) the "
        "answer beats NumPy. A task without a marker had no correct, timed answer."
    )
    if not series:
        return _Figure(
            "task-speedup", title, caption, "", "No data: no correct answer was timed on a GPU."
        )
    svg = dot_plot("task-speedup", title, tasks, series, "speedup over NumPy")
    return _Figure("task-speedup", title, caption, svg)


def _paired_table(pairs: Sequence[Paired]) -> Table:
    return Table(
        (
            "First",
            "Second",
            "Tasks",
            "Both solved",
            "Neither",
            "Only the first",
            "Only the second",
            "McNemar exact p",
        ),
        tuple(
            (
                p.a,
                p.b,
                str(p.tasks),
                str(p.both),
                str(p.neither),
                str(len(p.only_a)),
                str(len(p.only_b)),
                f"{p.p_value:.3g}",
            )
            for p in pairs
        ),
        caption="Paired comparison (same tasks, first sample each):",
    )


# A cell that is a figure, a range or a money amount, right-aligned in its column.
_NUMERIC = re.compile(r"[\d$–.,/() %e+×-]+( VRAM)?")


def _cells(table: Table) -> dict[str, Any]:
    return {
        "head": table.head,
        "body": [[(c, bool(_NUMERIC.fullmatch(c))) for c in row] for row in table.body],
        "caption": table.caption,
        "note": table.note,
    }


def _run_view(report: RunReport, local: LocalCost) -> dict[str, Any]:
    run, rows, pairs = report.run, report.rows, report.paired
    costs = cost_table(rows, local)
    provenance = {
        "run": run.name,
        "benchmark": run.benchmark,
        "dataset_sha256": run.dataset_sha256,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "config": run.config,
        "provenance": run.provenance,
    }
    return {
        "name": run.name,
        "heading": run_heading(run),
        "unsafe": unsafe_note(run) if unsafe_sandbox(run) else "",
        "tables": [_cells(duel_table(rows))] + ([_cells(costs)] if costs else []),
        "paired": _cells(_paired_table(pairs)) if pairs else None,
        "only": [
            (f"{p.a} vs {p.b}", label, ", ".join(ids))
            for p in pairs
            for label, ids in (("only the first", p.only_a), ("only the second", p.only_b))
            if ids
        ],
        "notes": run_notes(run, rows),
        "hybrid": _hybrid_view(report.hybrid),
        "accel": _accel_view(report.accel),
        "provenance": json.dumps(provenance, indent=2, sort_keys=True, default=str),
    }


def _hybrid_view(hybrid: Hybrid) -> dict[str, Any] | None:
    if not hybrid:
        return None
    return {"intro": hybrid_intro(hybrid), "tables": [_cells(t) for t in hybrid_tables(hybrid)]}


def _accel_view(accel: Accel | None) -> dict[str, Any] | None:
    if accel is None:
        return None
    return {"intro": accel_intro(accel), "tables": [_cells(t) for t in accel_tables(accel)]}


def html_figures(
    reports: Sequence[RunReport], spreads: Mapping[str, Sequence[TimeSpread]]
) -> list[_Figure]:
    """The page's plots for `reports` (also drawn by `codeduel view`): each with its key, title,
    caption, and its svg or the line that says why there is none."""
    labels = _Labels(reports)
    figures = [
        _frontier(reports, labels),
        _attempts(reports, labels),
        _budgets(reports, labels),
        _latency(reports, spreads, labels),
        _throughput(reports, labels),
        _memory(reports, labels),
    ]
    if any(r.accel is not None for r in reports):
        figures += [_fast_p(reports, labels), _task_speedups(reports, labels)]
    return figures


def html_run_view(report: RunReport, local: LocalCost | None = None) -> dict[str, Any]:
    """One run's section of the page, as the template reads it: heading, tables (cells with
    whether each is numeric), paired tests, notes, hybrid and GPU tables, provenance."""
    return _run_view(report, local or LocalCost())


def html_duel_table(reports: Sequence[RunReport]) -> dict[str, Any]:
    """One duel table over every system of `reports`, each named with its run (`codeduel
    view`'s comparison), as `html_run_view` gives its tables."""
    rows = [r for report in reports for r in report.rows]
    table = duel_table(rows)
    body = tuple(
        (f"{cells[0]} · {r.run}", *cells[1:]) for cells, r in zip(table.body, rows, strict=True)
    )
    return _cells(replace(table, body=body))


def render_html(
    reports: Sequence[RunReport],
    spreads: Mapping[str, Sequence[TimeSpread]],
    local: LocalCost | None = None,
) -> str:
    """The page for `reports`; `spreads` maps a run's name to its `time_spreads`."""
    # jinja2 only here: `import codeduel.report` stays light for the other formats.
    from jinja2 import Environment, PackageLoader
    from markupsafe import Markup

    local = local or LocalCost()
    figures = html_figures(reports, spreads)
    env = Environment(
        loader=PackageLoader("codeduel.report"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = env.get_template("report.html.j2").render(
        title=", ".join(r.run.name for r in reports),
        runs=[_run_view(r, local) for r in reports],
        # The plots are markup built by _svg, which escapes every string it is given.
        figures=[(f, Markup(f.svg)) for f in figures],
        unsafe=[unsafe_note(r.run) for r in reports if unsafe_sandbox(r.run)],
    )
    return page + "\n"
