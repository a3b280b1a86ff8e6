"""Render reports as Markdown or JSON: the duel tables of the background articles, measured."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from codeduel.costs import LocalCost, break_even
from codeduel.metrics import Summary
from codeduel.report._accel import Accel, accel_markdown
from codeduel.report._hybrid import Hybrid
from codeduel.report._hybrid_tables import hybrid_markdown
from codeduel.report._paired import Paired
from codeduel.report._rows import ReportRow
from codeduel.report._table import Table, markdown_table
from codeduel.report._table import estimate as _est
from codeduel.report._table import pct as _pct
from codeduel.report._table import usd as _usd
from codeduel.store import Run

__all__ = [
    "RunReport",
    "cost_table",
    "duel_table",
    "render_json",
    "render_markdown",
    "run_heading",
    "run_notes",
    "run_wall_s",
    "unsafe_note",
    "unsafe_sandbox",
]


@dataclass(frozen=True)
class RunReport:
    """What a report shows of one run, built from the store by `build_report`."""

    run: Run
    rows: list[ReportRow]
    paired: list[Paired]
    hybrid: Hybrid
    # GPU tasks' figures (`build_accel`); None for other runs.
    accel: Accel | None = None


_DUEL_NOTE = (
    "Wall s per problem: the system's wall time (its first sample's start to its last one's "
    "end) over its scored problems, what a problem costs in time with the system's batching "
    "or concurrency; request latency: each sample's own time, generation plus execution. "
    "Output tokens/s: all of the system's output tokens over that wall time. "
    "Tokens per problem count every model call of a sample (all attempts of a repair, "
    "resample or cascade) over the scored problems. Output in extracted code: the characters "
    "of the extracted code (after sanitizing) found in the models' answers, as a share of all "
    "the characters the models generated (the prefill not counted), over all calls; an answer "
    "with no code counts 0."
)


def run_wall_s(run: Run) -> float | None:
    """Seconds from a run's start to its finish (a resumed run includes the pause)."""
    if run.finished_at is None:
        return None
    start = datetime.fromisoformat(run.started_at)
    return (datetime.fromisoformat(run.finished_at) - start).total_seconds()


def _s(summary: Summary | None, attr: str) -> str:
    return "–" if summary is None else f"{getattr(summary, attr):.2f}"


def _mib(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.0f}"


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "–" if value is None else format(value, fmt)


def _approx(row: ReportRow, cell: str) -> str:
    """A token figure, marked ≈ where some of its counts were estimated."""
    return f"≈{cell}" if row.estimated_token_calls and cell != "–" else cell


def _tokens(summary: Summary | None) -> str:
    return "–" if summary is None else f"{summary.mean:.0f} / {summary.p50:.0f}"


def _system(r: ReportRow) -> str:
    return r.model if r.strategy == "single" else f"{r.model} ({r.strategy})"


def duel_table(rows: list[ReportRow]) -> Table:
    """The duel table: accuracy, speed, memory and cost of each system."""
    head = (
        "System",
        "Pass@1 % (95% CI)",
        "Passed",
        "Wall s per problem",
        "Request latency p50 / p95 s",
        "TTFT p50 s",
        "Output tokens/s (system)",
        "Tokens in per problem",
        "Tokens out per problem mean / p50",
        "Output in extracted code % (chars)",
        "Peak memory MiB",
        "$ per problem",
        "$ per solved problem",
    )
    plus = any(r.pass_at_1_base is not None for r in rows)
    if plus:
        # EvalPlus: the base tests' figure beside the one with its plus tests, which is the score.
        head = (head[0], "Pass@1 % base / plus (95% CI)", "Passed base / plus", *head[3:])
    body = []
    for r in rows:
        memory = _mib(r.peak_vram_bytes) + " VRAM" if r.peak_vram_bytes else _mib(r.peak_rss_bytes)
        scored = f"{r.passed}/{r.samples - r.model_errors}"
        body.append(
            (
                _system(r),
                f"{_est(r.pass_at_1_base)} / {_est(r.pass_at_1)}" if plus else _est(r.pass_at_1),
                f"{'–' if r.passed_base is None else r.passed_base} / {scored}" if plus else scored,
                _num(r.wall_s_per_problem, ".2f"),
                f"{_s(r.latency_s, 'p50')} / {_s(r.latency_s, 'p95')}",
                _s(r.ttft_s, "p50"),
                _num(r.aggregate_tokens_per_s),
                _approx(r, f"{r.prompt_tokens_mean:.0f}"),
                _approx(r, _tokens(r.output_tokens_per_problem)),
                "–" if r.output_in_code is None else _pct(r.output_in_code),
                memory,
                _usd(r.usd_per_problem),
                _usd(r.usd_per_solved),
            )
        )
    return Table(head, tuple(body), note=_DUEL_NOTE)


def cost_table(rows: list[ReportRow], local: LocalCost) -> Table | None:
    """Up-front and running cost with the break-even volume; None unless local meets cloud."""
    if not (any(r.local for r in rows) and any(not r.local for r in rows)):
        return None
    clouds = [r for r in rows if not r.local and r.usd_per_problem is not None]
    head = (
        "System",
        "Up-front cost",
        "Running cost per problem",
        "Wall s per problem",
        "Break-even",
    )
    body = []
    for r in rows:
        upfront = _usd(local.hardware_usd) if r.local else "$0"
        if r.local and clouds and r.usd_per_problem is not None:
            parts = []
            for c in clouds:
                assert c.usd_per_problem is not None
                be = break_even(c.usd_per_problem, r.usd_per_problem, local)
                volume = (
                    "never (costs more per problem)"
                    if be.problems_per_month == float("inf")
                    else f"{be.problems_per_month:,.0f} problems/month"
                )
                parts.append(f"vs {c.model}: {volume}")
            verdict = "; ".join(parts)
        else:
            verdict = "–"
        body.append(
            (
                _system(r),
                upfront,
                _usd(r.usd_per_problem),
                _num(r.wall_s_per_problem, ".2f"),
                verdict,
            )
        )
    return Table(head, tuple(body))


def _paired_lines(pairs: list[Paired]) -> list[str]:
    lines = []
    for p in pairs:
        lines.append(
            f"- {p.a} vs {p.b} on {p.tasks} tasks: both solved {p.both}, neither {p.neither}, "
            f"only the first {len(p.only_a)}, only the second {len(p.only_b)}; "
            f"McNemar exact p = {p.p_value:.3g}"
        )
        for label, ids in (("only the first", p.only_a), ("only the second", p.only_b)):
            if ids:
                shown = ", ".join(ids[:12]) + (" …" if len(ids) > 12 else "")
                lines.append(f"  - {label}: {shown}")
    return lines


def cost_limit_note(limit: dict[str, Any]) -> str:
    """The run's last session under `--cost-limit`: whether it hit the cap."""
    spent = f"${limit.get('spent_usd', 0):.4f}"
    if limit.get("reached"):
        return (
            f"cost limit ${limit.get('usd', 0):g} reached: {spent} of cloud calls measured, "
            f"{limit.get('unsent', 0)} samples left unsent (not errors); send them with "
            "--resume --cost-limit HIGHER"
        )
    return f"cost limit ${limit.get('usd', 0):g} not reached: {spent} of cloud calls measured"


def unsafe_sandbox(run: Run) -> bool:
    """Whether any session of the run was started with --unsafe-sandbox."""
    sandbox = run.provenance.get("sandbox")
    return isinstance(sandbox, dict) and bool(sandbox.get("unsafe_sandbox"))


def run_heading(run: Run) -> str:
    wall = run_wall_s(run)
    return f"{run.name} — {run.benchmark}, {run.status}" + (
        f", {wall:.0f} s wall time" if wall is not None else ""
    )


def run_notes(run: Run, rows: list[ReportRow]) -> list[str]:
    """What the tables leave out: pass@k beyond 1, outcomes, cost bases, run state, sandbox."""
    notes = []
    dataset = run.provenance.get("dataset")
    if isinstance(dataset, dict) and dataset.get("window"):
        # A window of contest dates: the duel is on those problems only (README, LiveCodeBench).
        notes.append(f"problems: {dataset['window']}")
    for r in rows:
        extra = {k: v for k, v in r.pass_at_k.items() if k != 1}
        if extra:
            notes.append(
                f"{_system(r)}: " + ", ".join(f"pass@{k} {_est(e)}%" for k, e in extra.items())
            )
        statuses = ", ".join(f"{k} {v}" for k, v in r.statuses.items())
        notes.append(
            f"{_system(r)}: {statuses}; {r.hit_token_limit} hit the token limit"
            + (
                f"; {r.model_errors} model errors, not scored (--resume retries them)"
                if r.model_errors
                else ""
            )
            + (
                f"; {r.output_tokens_per_s:.1f} output tokens per second of engine time (all "
                "sequences together, prompts' time included: llama-batched-bench's B x TG / T)"
                if r.local and r.output_tokens_per_s
                else ""
            )
            + (
                f"; {r.decode_tokens_per_s:.1f} tokens/s per sequence while it decodes (a call "
                "alone: llama-bench's tg)"
                if r.local and r.decode_tokens_per_s
                else ""
            )
        )
        notes.append(f"{_system(r)} cost basis: {r.cost_basis}")
        if r.format_failures is not None and r.format_failures.answers:
            f = r.format_failures
            notes.append(
                f"{_system(r)} format failures: {_pct(f.failure_share or 0.0)}% of "
                f"{f.answers} answers ({f.no_code} with no code, {f.syntax_error} whose code "
                f"does not parse, {f.wrong_name} without the function asked for); "
                f"{f.well_formed} well-formed"
            )
        if r.thinking_tokens is not None:
            notes.append(
                f"{_system(r)} thinking: {r.thinking_tokens} tokens of reasoning before the "
                "answers, counted in the output tokens and priced as them"
            )
        calls = [
            f"{r.retries} retries" if r.retries else "",
            f"{r.cache_hits} answers replayed from the call cache" if r.cache_hits else "",
            (
                f"token counts of {r.estimated_token_calls} calls estimated from stream chunks "
                "(the server sent no usage; ≈ in the table)"
                if r.estimated_token_calls
                else ""
            ),
        ]
        if any(calls):
            notes.append(f"{_system(r)} calls: " + "; ".join(c for c in calls if c))
        if r.sampling:
            notes.append(f"{_system(r)} sampling: {r.sampling}")
    limit = run.provenance.get("cost_limit")
    if isinstance(limit, dict):
        notes.append(cost_limit_note(limit))
    if run.status != "complete":
        notes.append(f"run {run.name} is {run.status}: continue it with --resume")
    if unsafe_sandbox(run):
        notes.append(unsafe_note(run))
    return notes


def unsafe_note(run: Run) -> str:
    missing = run.provenance["sandbox"].get("missing") or ["none"]
    return f"run {run.name} was made with --unsafe-sandbox; isolation layers missing: " + ", ".join(
        missing
    )


def render_markdown(reports: list[RunReport], local: LocalCost | None = None) -> str:
    local = local or LocalCost()
    out: list[str] = []
    for report in reports:
        run, rows, pairs = report.run, report.rows, report.paired
        out.append(f"## {run_heading(run)}")
        out.append("")
        duel = duel_table(rows)
        out += markdown_table(duel)
        out += ["", duel.note, ""]
        costs = cost_table(rows, local)
        if costs is not None:
            out += markdown_table(costs)
            out.append("")
        if pairs:
            out.append("Paired comparison (same tasks, first sample each):")
            out += _paired_lines(pairs)
            out.append("")
        out += [f"- {note}" for note in run_notes(run, rows)]
        if report.hybrid:
            out.append("")
            out += hybrid_markdown(report.hybrid)
        if report.accel is not None:
            out.append("")
            out += accel_markdown(report.accel)
        out.append("")
    return "\n".join(out)


def render_json(reports: list[RunReport]) -> str:
    payload: list[dict[str, Any]] = []
    for report in reports:
        run = report.run
        payload.append(
            {
                "run": run.name,
                "benchmark": run.benchmark,
                "status": run.status,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "wall_s": run_wall_s(run),
                "unsafe_sandbox": unsafe_sandbox(run),
                "config": run.config,
                "provenance": run.provenance,
                "rows": [r.to_json() for r in report.rows],
                "paired": [asdict(p) for p in report.paired],
                "hybrid": asdict(report.hybrid),
            }
        )
        if report.accel is not None:
            payload[-1]["accel"] = asdict(report.accel)
    return json.dumps({"runs": payload}, indent=2, default=str) + "\n"
