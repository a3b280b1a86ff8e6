"""`codeduel rescore`: a stored run re-graded with today's extraction, into a new run."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from codeduel.report import build_report
from codeduel.store import Store
from tests.cli_run import exit_code

COUNT_PASSED = (
    "SELECT COUNT(*), SUM(s.status = 'passed') FROM samples s JOIN runs r ON r.id = s.run_id "
    "WHERE r.name = 'he-single'"
)
COMMITTED = Path(__file__).resolve().parents[1] / "docs/results/hybrid-humaneval/runs.db"


def test_rescore_regrades_the_stored_answers_and_leaves_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    shutil.copy(COMMITTED, db)
    before = sqlite3.connect(db).execute(COUNT_PASSED).fetchone()
    # The committed store holds `he-single-rescored` already: a name of the test's own.
    assert exit_code(["rescore", "he-single", "--run-name", "again", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    # Two answers that a cut-off tail or a stray indented line broke now pass (issue 15).
    model = "llamacpp/qwen2.5-coder-0.5b-instruct (single)"
    assert f"before: he-single {model}: pass@1 56.1% (92/164)" in out
    assert f"after: again {model}: pass@1 57.3% (94/164)" in out
    con = sqlite3.connect(db)
    again = con.execute(COUNT_PASSED).fetchone()
    assert again == before == (164, 92)  # the original is untouched
    changed = con.execute(
        "SELECT a.task_id FROM samples a JOIN samples b ON a.task_id = b.task_id "
        "JOIN runs ra ON ra.id = a.run_id JOIN runs rb ON rb.id = b.run_id "
        "WHERE ra.name = 'he-single' AND rb.name = 'again' "
        "AND a.status != b.status ORDER BY a.task_id"
    ).fetchall()
    assert changed == [("HumanEval/113",), ("HumanEval/24",)]
    with Store(db) as store:
        old, new = store.get_run("he-single"), store.get_run("again")
        assert old is not None and new is not None
        assert (new.started_at, new.finished_at) == (old.started_at, old.finished_at)
        assert new.provenance["rescored_from"]["run"] == "he-single"
        (row,) = build_report(store, new).rows
        (was,) = build_report(store, old).rows
    # The calls are the original's: tokens and times as they were generated.
    assert row.completion_tokens_mean == was.completion_tokens_mean
    assert row.wall_s_per_problem == pytest.approx(was.wall_s_per_problem, abs=0.01)
    assert exit_code(["rescore", "he-single", "--run-name", "again", "--db", str(db)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert exit_code(["rescore", "nosuch", "--db", str(db)]) == 2
