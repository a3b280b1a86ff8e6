"""Migration 0009: a committed run store, rebuilt to take status `thinking_truncated`, keeps
every sample as it was, and every attempt's reference to its sample."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from codeduel.store import Store

COMMITTED = Path(__file__).parents[2] / "docs" / "results" / "cpu-avx512" / "runs.db"


def test_the_rebuilt_samples_table_keeps_every_row_and_takes_the_new_status(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "runs.db"
    shutil.copy(COMMITTED, copy)
    with sqlite3.connect(COMMITTED) as before:
        rows = before.execute("SELECT * FROM samples ORDER BY id").fetchall()
    with Store(copy) as store:
        after = [tuple(r) for r in store.db.execute("SELECT * FROM samples ORDER BY id")]
        assert after == rows and rows
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
        indexes = [r[1] for r in store.db.execute("PRAGMA index_list(samples)")]
        assert "samples_by_run" in indexes
        store.db.execute(
            "UPDATE samples SET status = 'thinking_truncated' WHERE id = ?", (rows[0][0],)
        )
