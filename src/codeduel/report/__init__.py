"""Reports built from the run store."""

from __future__ import annotations

from codeduel.report._accel import Accel, build_accel
from codeduel.report._html import (
    TimeSpread,
    html_duel_table,
    html_figures,
    html_run_view,
    render_html,
    time_spreads,
)
from codeduel.report._hybrid import Hybrid, build_hybrid
from codeduel.report._paired import Paired, paired_comparisons
from codeduel.report._render import RunReport, render_json, render_markdown, run_wall_s
from codeduel.report._rows import CostSettings, ReportRow, build_rows
from codeduel.store import Run, Store

__all__ = [
    "Accel",
    "CostSettings",
    "Hybrid",
    "Paired",
    "ReportRow",
    "RunReport",
    "TimeSpread",
    "build_accel",
    "build_hybrid",
    "build_report",
    "build_rows",
    "html_duel_table",
    "html_figures",
    "html_run_view",
    "paired_comparisons",
    "render_html",
    "render_json",
    "render_markdown",
    "run_wall_s",
    "time_spreads",
]


def build_report(store: Store, run: Run, costs: CostSettings | None = None) -> RunReport:
    return RunReport(
        run,
        build_rows(store, run, costs),
        paired_comparisons(store, run),
        build_hybrid(store, run, costs),
        build_accel(store, run),
    )
