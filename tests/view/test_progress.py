"""The view's progress figures, from samples stored at known times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from codeduel.store import Store
from codeduel.view import run_progress, system_progress
from tests.report.samples import CLOUD, LOCAL, make_sample


def _store(tmp_path: Path, last: datetime, statuses: list[str]) -> Path:
    """A running run of 2 models × 10 tasks; LOCAL stored `statuses`, one every 6 s, the last
    at `last`."""
    db = tmp_path / "runs.db"
    with Store(db) as store:
        run = store.create_run("r", "humaneval", "abc", {"models": [LOCAL, CLOUD]}, {})
        store.add_tasks(run.id, [(f"T/{i}", "f", 3.0) for i in range(10)])
        for i, status in enumerate(statuses):
            at = last - timedelta(seconds=6 * (len(statuses) - 1 - i))
            stamp = at.isoformat(timespec="milliseconds")
            store.record_sample(run.id, make_sample(LOCAL, f"T/{i}", status), created_at=stamp)
    return db


def test_rate_and_eta_come_from_the_stored_times(tmp_path: Path) -> None:
    db = _store(tmp_path, datetime.now(UTC), ["passed", "failed", "passed", "passed"] * 2)
    with Store(db, read_only=True) as store:
        run = store.runs()[0]
        p = run_progress(store, run)
        # 8 samples 6 s apart: 7 gaps in 42 s, 10 a minute; 12 of 20 left.
        assert (p.done, p.total, p.passed, p.scored) == (8, 20, 6, 8)
        assert p.pass_rate == pytest.approx(0.75)
        assert p.samples_per_min == pytest.approx(10.0)
        assert p.eta_s == pytest.approx(72.0)
        assert not p.stalled
        ((model, strategy, local),) = system_progress(store, run)
        assert (model, strategy, local.done, local.total) == (LOCAL, "single", 8, 10)


def test_a_run_that_stopped_writing_has_no_eta(tmp_path: Path) -> None:
    """A killed run stays `running` in the store: its ETA would be a guess about nothing."""
    db = _store(tmp_path, datetime.now(UTC) - timedelta(hours=2), ["passed"] * 3)
    with Store(db, read_only=True) as store:
        p = run_progress(store, store.runs()[0])
    assert p.stalled
    assert p.eta_s is None
    assert p.idle_s == pytest.approx(7200, abs=60)
    assert p.as_json()["stalled"] is True


def test_a_complete_run_has_no_eta_and_is_not_stalled(tmp_path: Path) -> None:
    db = _store(tmp_path, datetime.now(UTC) - timedelta(days=3), ["passed"] * 3)
    with Store(db) as store:
        store.set_run_status(store.runs()[0].id, "complete")
    with Store(db, read_only=True) as store:
        p = run_progress(store, store.runs()[0])
    assert (p.eta_s, p.idle_s, p.stalled) == (None, None, False)
