"""What the view's pages show, read from a store opened read-only: SQL aggregates for progress
and the task grid, one sample's rows for its page."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from codeduel.costs import LocalCost, PriceTable, token_cost
from codeduel.store import Run, Store

__all__ = [
    "GridRow",
    "Progress",
    "TaskGrid",
    "run_by_id",
    "run_progress",
    "sample_record",
    "system_progress",
    "task_grid",
]

# The recent samples the rate is measured over: a resumed run's pause does not count.
_RATE_WINDOW = 50
# A run that has stored nothing for this long (or 20 of its usual gaps) has stopped.
_STALLED_AFTER_S = 300.0


@dataclass(frozen=True)
class Progress:
    """How far one run (or one system of it) has come."""

    done: int
    total: int | None
    scored: int
    passed: int
    model_errors: int
    samples_per_min: float | None
    eta_s: float | None
    # Seconds since the last sample was stored, while the run is not complete: a run that
    # was killed stays `running` in the store, and its ETA would mean nothing.
    idle_s: float | None = None

    @property
    def stalled(self) -> bool:
        if self.idle_s is None:
            return False
        expected = 60 / self.samples_per_min if self.samples_per_min else 0.0
        return self.idle_s > max(_STALLED_AFTER_S, 20 * expected)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.scored if self.scored else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "pass_rate": self.pass_rate, "stalled": self.stalled}


def _time(stamp: str) -> datetime:
    found = datetime.fromisoformat(stamp)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _systems_expected(run: Run) -> int:
    models = run.config.get("models") or []
    if run.config.get("strategy") == "cascade":
        return 1
    return max(len(models), 1)


def _expected(db: sqlite3.Connection, run: Run) -> int | None:
    """Samples the run will store: tasks × systems × samples, once its tasks are stored."""
    tasks = db.execute("SELECT COUNT(*) FROM tasks WHERE run_id = ?", (run.id,)).fetchone()[0]
    if not tasks:
        return None
    return int(tasks) * _systems_expected(run) * int(run.config.get("samples") or 1)


def _rate(
    db: sqlite3.Connection, where: str, args: tuple[Any, ...]
) -> tuple[float | None, datetime | None]:
    """Samples a minute over the last `_RATE_WINDOW` stored ones, and when the last was."""
    stamps = [
        _time(r[0])
        for r in db.execute(
            f"SELECT created_at FROM samples WHERE {where} ORDER BY id DESC LIMIT ?",
            (*args, _RATE_WINDOW),
        )
    ]
    if len(stamps) < 2:
        return None, stamps[0] if stamps else None
    span = (stamps[0] - stamps[-1]).total_seconds()
    return ((len(stamps) - 1) / span * 60 if span > 0 else None), stamps[0]


def _progress(
    db: sqlite3.Connection, where: str, args: tuple[Any, ...], total: int | None, running: bool
) -> Progress:
    row = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(model_error = 0), 0), "
        "COALESCE(SUM(model_error = 0 AND status = 'passed'), 0), "
        f"COALESCE(SUM(model_error), 0) FROM samples WHERE {where}",
        args,
    ).fetchone()
    done, scored, passed, errors = (int(v) for v in row)
    rate, last = _rate(db, where, args)
    eta = None
    if running and rate and total is not None:
        eta = max(total - done, 0) / rate * 60
    idle = (datetime.now(UTC) - last).total_seconds() if running and last else None
    progress = Progress(done, total, scored, passed, errors, rate, eta, idle)
    return replace(progress, eta_s=None) if progress.stalled else progress


def run_progress(store: Store, run: Run) -> Progress:
    return _progress(
        store.db,
        "run_id = ?",
        (run.id,),
        _expected(store.db, run),
        run.status != "complete",
    )


def system_progress(store: Store, run: Run) -> list[tuple[str, str, Progress]]:
    """(model, strategy, progress) of each system that has stored a sample, in run order."""
    db = store.db
    systems = db.execute(
        "SELECT model, strategy FROM samples WHERE run_id = ? GROUP BY model, strategy "
        "ORDER BY MIN(id)",
        (run.id,),
    ).fetchall()
    total = _expected(db, run)
    each = total // _systems_expected(run) if total is not None else None
    return [
        (
            model,
            strategy,
            _progress(
                db,
                "run_id = ? AND model = ? AND strategy = ?",
                (run.id, model, strategy),
                each,
                run.status != "complete",
            ),
        )
        for model, strategy in systems
    ]


def run_by_id(store: Store, run_id: int) -> Run | None:
    row = store.db.execute("SELECT name FROM runs WHERE id = ?", (run_id,)).fetchone()
    return store.get_run(row[0]) if row else None


# What a grid cell's colour and the status filter go by.
_OUTCOME = {"passed": "passed", "failed": "failed", "timeout": "failed"}


def _outcome(status: str, model_error: int) -> str:
    if model_error:
        return "error"
    return _OUTCOME.get(status, "error" if status == "error" else "failed")


@dataclass(frozen=True)
class GridRow:
    task_id: str
    # One list per column, in `TaskGrid.columns` order: (sample id, sample index, status,
    # outcome) of each stored sample; empty where the system has none yet.
    cells: tuple[tuple[tuple[int, int, str, str], ...], ...]

    @property
    def outcomes(self) -> set[str]:
        return {s[3] for cell in self.cells for s in cell}


@dataclass(frozen=True)
class TaskGrid:
    # (run name, model, strategy) of each column: the systems of each run, in run order.
    columns: tuple[tuple[str, str, str], ...]
    rows: tuple[GridRow, ...]


def task_grid(store: Store, runs: list[Run]) -> TaskGrid:
    """Task × system over `runs`: every stored sample's status, tasks in benchmark order (the
    first run's, then tasks only later runs have)."""
    db = store.db
    columns: list[tuple[str, str, str]] = []
    column: dict[tuple[int, str, str], int] = {}
    for run in runs:
        for model, strategy in db.execute(
            "SELECT model, strategy FROM samples WHERE run_id = ? GROUP BY model, strategy "
            "ORDER BY MIN(id)",
            (run.id,),
        ):
            column[(run.id, model, strategy)] = len(columns)
            columns.append((run.name, model, strategy))
    cells: dict[str, list[list[tuple[int, int, str, str]]]] = {}
    for run in runs:
        # Tasks the run stored but no system has answered yet are rows too.
        for (task_id,) in db.execute(
            "SELECT task_id FROM tasks WHERE run_id = ? ORDER BY position", (run.id,)
        ):
            cells.setdefault(task_id, [[] for _ in columns])
    for run in runs:
        for r in db.execute(
            "SELECT id, model, strategy, task_id, sample_index, status, model_error "
            "FROM samples WHERE run_id = ? ORDER BY sample_index, id",
            (run.id,),
        ):
            row = cells.setdefault(r["task_id"], [[] for _ in columns])
            row[column[(run.id, r["model"], r["strategy"])]].append(
                (r["id"], r["sample_index"], r["status"], _outcome(r["status"], r["model_error"]))
            )
    return TaskGrid(
        tuple(columns),
        tuple(GridRow(t, tuple(tuple(c) for c in row)) for t, row in cells.items()),
    )


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _call_cost(
    call: sqlite3.Row, local: bool, prices: PriceTable, local_cost: LocalCost
) -> tuple[float | None, str]:
    """What one call cost and how that was counted."""
    price = prices.get(call["model"])
    if price is not None and call["prompt_tokens"] is not None:
        usd = token_cost(price, call["prompt_tokens"], call["completion_tokens"] or 0)
        return usd, "tokens at list price"
    seconds = call["busy_s"] if call["busy_s"] is not None else call["latency_s"]
    if local and seconds is not None:
        return local_cost.energy_usd(seconds), f"energy at {local_cost.watts:g} W"
    return None, "no price"


def sample_record(
    store: Store, sample_id: int, prices: PriceTable, local_cost: LocalCost
) -> dict[str, Any] | None:
    """One sample with its task, every attempt, each attempt's model calls and executions."""
    db = store.db
    sample = db.execute("SELECT * FROM samples WHERE id = ?", (sample_id,)).fetchone()
    if sample is None:
        return None
    task = db.execute(
        "SELECT * FROM tasks WHERE run_id = ? AND task_id = ?",
        (sample["run_id"], sample["task_id"]),
    ).fetchone()
    models = store.models(sample["run_id"])
    attempts = []
    total_usd: float | None = None
    for a in db.execute(
        "SELECT * FROM attempts WHERE sample_id = ? ORDER BY attempt_index", (sample_id,)
    ).fetchall():
        calls = []
        for c in db.execute(
            "SELECT * FROM model_calls WHERE attempt_id = ? ORDER BY id", (a["id"],)
        ).fetchall():
            local = bool(models.get(c["model"], {}).get("local"))
            usd, basis = _call_cost(c, local, prices, local_cost)
            if usd is not None:
                total_usd = (total_usd or 0.0) + usd
            calls.append(
                {
                    **dict(c),
                    "messages": _loads(c["messages"]) or [],
                    "config": _loads(c["config"]),
                    "extra": _loads(c["extra"]),
                    "usd": usd,
                    "cost_basis": basis,
                }
            )
        executions = [
            {**dict(e), "extra": _loads(e["extra"])}
            for e in db.execute(
                "SELECT * FROM executions WHERE attempt_id = ? ORDER BY id", (a["id"],)
            )
        ]
        attempts.append({**dict(a), "calls": calls, "executions": executions})
    final = sample["final_attempt"]
    # The system's samples in benchmark order: the way to its previous and next task.
    order = [
        r[0]
        for r in db.execute(
            "SELECT s.id FROM samples s LEFT JOIN tasks t ON t.run_id = s.run_id "
            "AND t.task_id = s.task_id WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? "
            "ORDER BY t.position, s.task_id, s.sample_index",
            (sample["run_id"], sample["model"], sample["strategy"]),
        )
    ]
    at = order.index(sample_id)
    return {
        "previous": order[at - 1] if at > 0 else None,
        "next": order[at + 1] if at + 1 < len(order) else None,
        **dict(sample),
        "task": dict(task) if task else None,
        "attempts": attempts,
        "final_attempt": len(attempts) - 1 if final is None else final,
        "usd": total_usd,
    }
