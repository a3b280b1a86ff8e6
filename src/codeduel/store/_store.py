"""The run store: SQLite in WAL mode, one transaction per finished sample."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codeduel.errors import StoreError
from codeduel.records import SampleRecord
from codeduel.store._migrations import MIGRATIONS

__all__ = ["Run", "Store", "default_db_path"]


def default_db_path() -> Path:
    override = os.environ.get("CODEDUEL_DB")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("codeduel")) / "codeduel.db"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Run:
    id: int
    name: str
    benchmark: str
    dataset_sha256: str
    config: dict[str, Any]
    provenance: dict[str, Any]
    status: str
    started_at: str
    finished_at: str | None


class Store:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open the store at `path`, created and migrated as needed; `read_only`: an existing
        store opened for reading (`codeduel view`), never created, migrated or written."""
        self.path = path
        if read_only:
            self._open_read_only()
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            self.db = sqlite3.connect(
                path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use run store {path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot create run store {path}: {exc.strerror}") from None

    def _open_read_only(self) -> None:
        if not self.path.is_file():
            raise StoreError(f"no run store at {self.path}")
        try:
            # SQLite's read-only mode: a write would fail. WAL readers still see each commit.
            self.db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=30.0,
                check_same_thread=False,
            )
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA query_only=ON")
            tables = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
            if self.db.execute(tables).fetchone() is None:
                raise StoreError(f"{self.path} is not a codeduel run store")
            applied = {r[0] for r in self.db.execute("SELECT name FROM migrations")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read run store {self.path}: {exc}") from None
        known = {name for name, _ in MIGRATIONS}
        if applied - known:
            raise StoreError(
                f"run store {self.path} was written by a newer codeduel "
                f"(migrations {', '.join(sorted(applied - known))}); upgrade codeduel"
            )
        if known - applied:
            raise StoreError(
                f"run store {self.path} predates this codeduel; "
                "upgrade it with any other codeduel command, e.g. codeduel report"
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> list[str]:
        """Apply the migrations this database lacks, each in its own transaction."""
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied = {r[0] for r in self.db.execute("SELECT name FROM migrations")}
        known = {name for name, _ in MIGRATIONS}
        unknown = applied - known
        if unknown:
            raise StoreError(
                f"run store {self.path} was written by a newer codeduel "
                f"(migrations {', '.join(sorted(unknown))}); upgrade codeduel"
            )
        done = []
        for name, sql in MIGRATIONS:
            if name in applied:
                continue
            with self.transaction():
                for statement in sql.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT INTO migrations VALUES (?, ?)", (name, _now()))
            done.append(name)
        return done

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # -- runs -----------------------------------------------------------------------------

    def create_run(
        self,
        name: str,
        benchmark: str,
        dataset_sha256: str,
        config: dict[str, Any],
        provenance: dict[str, Any],
    ) -> Run:
        with self.transaction():
            try:
                self.db.execute(
                    "INSERT INTO runs (name, benchmark, dataset_sha256, config, provenance, "
                    "started_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        benchmark,
                        dataset_sha256,
                        json.dumps(config, sort_keys=True),
                        json.dumps(provenance, sort_keys=True),
                        _now(),
                    ),
                )
            except sqlite3.IntegrityError:
                raise StoreError(
                    f"a run named {name!r} already exists; pass --resume to "
                    "continue it or choose another --run-name"
                ) from None
        run = self.get_run(name)
        assert run is not None
        return run

    def get_run(self, name: str) -> Run | None:
        row = self.db.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        return _run(row) if row else None

    def runs(self) -> list[Run]:
        return [_run(r) for r in self.db.execute("SELECT * FROM runs ORDER BY id")]

    def latest_unfinished(self, benchmark: str) -> Run | None:
        row = self.db.execute(
            "SELECT * FROM runs WHERE benchmark = ? AND status != 'complete' ORDER BY id DESC",
            (benchmark,),
        ).fetchone()
        return _run(row) if row else None

    def set_provenance(self, run_id: int, provenance: dict[str, Any]) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET provenance = ? WHERE id = ?",
                (json.dumps(provenance, sort_keys=True), run_id),
            )

    def set_run_status(self, run_id: int, status: str, *, keep_finished: bool = False) -> None:
        with self.transaction():
            if keep_finished:
                self.db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))
                return
            self.db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                (status, _now() if status == "complete" else None, run_id),
            )

    def set_run_times(self, run_id: int, started_at: str, finished_at: str | None) -> None:
        """For a run made from another (`codeduel rescore`): the times its answers came at."""
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?",
                (started_at, finished_at, run_id),
            )

    def add_model(self, run_id: int, model: str, info: dict[str, Any]) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO run_models VALUES (?, ?, ?)",
                (run_id, model, json.dumps(info, sort_keys=True, default=str)),
            )

    def add_tasks(
        self,
        run_id: int,
        rows: list[tuple[str, str, float]],
        baselines: dict[str, Any] | None = None,
    ) -> None:
        """(task_id, entry_point, timeout_s) in benchmark order, with GPU tasks' `baselines`
        by task_id (`task_baselines`); existing rows are kept."""
        baselines = baselines or {}
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO tasks (run_id, task_id, position, entry_point, timeout_s,"
                " baseline) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (run_id, t, i, e, s, _json_or_null(baselines.get(t)))
                    for i, (t, e, s) in enumerate(rows)
                ],
            )

    def task_baselines(self, run_id: int) -> dict[str, dict[str, Any]]:
        """GPU tasks' baselines by task_id: the harness's report on the GPU reference, with
        NumPy's time per size (`scoring.Scorer.baselines`)."""
        rows = self.db.execute(
            "SELECT task_id, baseline FROM tasks WHERE run_id = ? AND baseline IS NOT NULL",
            (run_id,),
        )
        return {r["task_id"]: json.loads(r["baseline"]) for r in rows}

    def models(self, run_id: int) -> dict[str, dict[str, Any]]:
        rows = self.db.execute(
            "SELECT model, info FROM run_models WHERE run_id = ? ORDER BY rowid", (run_id,)
        )
        return {r["model"]: json.loads(r["info"]) for r in rows}

    # -- samples --------------------------------------------------------------------------

    def done_keys(self, run_id: int) -> set[tuple[str, str, str, int]]:
        """The samples that are done: stored, and not lost to failed model calls (a sample
        whose calls all failed is a hole that `--resume` fills)."""
        rows = self.db.execute(
            "SELECT model, strategy, task_id, sample_index FROM samples "
            "WHERE run_id = ? AND model_error = 0",
            (run_id,),
        )
        return {(r[0], r[1], r[2], r[3]) for r in rows}

    def model_error_count(self, run_id: int) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM samples WHERE run_id = ? AND model_error = 1", (run_id,)
        ).fetchone()
        return int(row[0])

    def _delete_model_error(self, run_id: int, sample: SampleRecord) -> None:
        """Remove the stored model-error row `sample` replaces, with everything under it."""
        row = self.db.execute(
            "SELECT id FROM samples WHERE run_id = ? AND model = ? AND strategy = ? "
            "AND task_id = ? AND sample_index = ? AND model_error = 1",
            (run_id, sample.model, sample.strategy, sample.task_id, sample.sample_index),
        ).fetchone()
        if row is None:
            return
        attempts = "SELECT id FROM attempts WHERE sample_id = ?"
        for table in ("model_calls", "executions"):
            self.db.execute(f"DELETE FROM {table} WHERE attempt_id IN ({attempts})", (row[0],))
        self.db.execute("DELETE FROM attempts WHERE sample_id = ?", (row[0],))
        self.db.execute("DELETE FROM samples WHERE id = ?", (row[0],))

    def record_sample(
        self, run_id: int, sample: SampleRecord, *, created_at: str | None = None
    ) -> int:
        """Store a finished sample with its attempts, calls and executions, atomically; it
        replaces a stored model error of the same key (a retry by `--resume`). `created_at`:
        when it finished, if not now (a sample copied from another run)."""
        now = created_at or _now()
        with self.transaction():
            # A retried model error replaces its row in the same transaction: a kill between
            # the two loses nothing.
            self._delete_model_error(run_id, sample)
            cur = self.db.execute(
                "INSERT INTO samples (run_id, model, strategy, task_id, sample_index, status, "
                "code, extract_method, hit_token_limit, prompt_tokens, completion_tokens, "
                "generation_s, execution_s, ttft_s, peak_rss_bytes, peak_vram_bytes, created_at, "
                "model_error, final_attempt) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    sample.model,
                    sample.strategy,
                    sample.task_id,
                    sample.sample_index,
                    sample.status,
                    sample.code,
                    sample.extract_method,
                    int(sample.hit_token_limit),
                    sample.prompt_tokens,
                    sample.completion_tokens,
                    sample.generation_s,
                    sample.execution_s,
                    sample.ttft_s,
                    sample.peak("peak_rss_bytes"),
                    sample.peak("peak_vram_bytes"),
                    now,
                    int(sample.model_error),
                    sample.final_attempt,
                ),
            )
            sample_id = int(cur.lastrowid or 0)
            for index, attempt in enumerate(sample.attempts):
                cur = self.db.execute(
                    "INSERT INTO attempts (sample_id, attempt_index, code, extract_method, status)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (sample_id, index, attempt.code, attempt.extract_method, attempt.status),
                )
                attempt_id = cur.lastrowid
                for call in attempt.calls:
                    out = call.output
                    self.db.execute(
                        "INSERT INTO model_calls (attempt_id, model, request_hash, messages, "
                        "prompt_text, config, response, finish_reason, prompt_tokens, "
                        "completion_tokens, ttft_s, latency_s, decode_tokens_per_s, "
                        "peak_rss_bytes, peak_vram_bytes, error, created_at, busy_s, extra) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            attempt_id,
                            call.model,
                            call.request_hash,
                            json.dumps([asdict(m) for m in call.messages]),
                            out.prompt_text if out else None,
                            json.dumps(asdict(call.config)),
                            out.text if out else "",
                            out.finish_reason if out else None,
                            out.prompt_tokens if out else None,
                            out.completion_tokens if out else None,
                            out.ttft_s if out else None,
                            out.latency_s if out else None,
                            out.decode_tokens_per_s if out else None,
                            out.peak_rss_bytes if out else None,
                            out.peak_vram_bytes if out else None,
                            call.error,
                            now,
                            out.busy_s if out else None,
                            json.dumps(out.extra, sort_keys=True, default=str) if out else None,
                        ),
                    )
                for ex in attempt.executions:
                    self.db.execute(
                        "INSERT INTO executions (attempt_id, tests, status, detail, duration_s, "
                        "timeout_s, created_at, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            attempt_id,
                            ex.tests,
                            ex.status,
                            ex.detail,
                            ex.duration_s,
                            ex.timeout_s,
                            now,
                            _json_or_null(ex.extra),
                        ),
                    )
        return sample_id

    def sample_rows(self, run_id: int) -> Iterator[sqlite3.Row]:
        return self.db.execute("SELECT * FROM samples WHERE run_id = ? ORDER BY id", (run_id,))

    def integrity_check(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        name=row["name"],
        benchmark=row["benchmark"],
        dataset_sha256=row["dataset_sha256"],
        config=json.loads(row["config"]),
        provenance=json.loads(row["provenance"]),
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _json_or_null(value: Any) -> str | None:
    return json.dumps(value, sort_keys=True) if value is not None else None
