"""Format failures: answers with no code, code that does not parse, or the wrong function."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeduel.report._wellformed import answer_form
from codeduel.store import Store
from tests.cli_run import exit_code


def test_each_kind_of_answer_is_told_apart() -> None:
    assert answer_form("```python\ndef add(a, b):\n    return a + b\n```", "add") == "ok"
    assert answer_form("I cannot help with that.", "add") == "no_code"
    assert answer_form("```python\ndef add(a, b)\n    return a +\n```", "add") == "syntax_error"
    assert answer_form("```python\ndef plus(a, b):\n    return a + b\n```", "add") == "wrong_name"
    # A prefilled fence and the closing fence a stop consumed count as written.
    assert answer_form("def add(a, b):\n    return a + b\n", "add", "```python\n", True) == "ok"
    assert answer_form("add = lambda a, b: a + b", "add") == "ok"


def _run(db: Path, name: str, answer: str, stub: str) -> None:
    argv = [
        "run", "humaneval", "--model", stub, "-M", f"answer={answer}", "-M", "prefill=false",
        "--task-ids",
        "HumanEval/0,HumanEval/2", "--db", str(db), "--run-name", name, "--no-progress",
    ]  # fmt: skip
    assert exit_code(argv) == 0


def test_the_report_gives_the_share_per_system_for_runs_that_record_it(
    tmp_path: Path, stub_provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    _run(db, "wrong", "def f():\n    return 1", stub_provider)
    _run(db, "broken", "def truncate_number(x)\n    return", stub_provider)
    capsys.readouterr()
    assert exit_code(["report", "wrong", "broken", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert (
        "stub/x format failures: 100.0% of 2 answers (0 with no code, 0 whose code does not "
        "parse, 2 without the function asked for); 0 well-formed"
    ) in out
    assert "2 whose code does not parse, 0 without the function asked for" in out
    report = tmp_path / "r.json"
    argv = ["report", "wrong", "--db", str(db), "--format", "json", "--output", str(report)]
    assert exit_code(argv) == 0
    (row,) = json.loads(report.read_text())["runs"][0]["rows"]
    assert row["format_failures"] == {
        "answers": 2, "no_code": 0, "syntax_error": 0, "wrong_name": 2,
    }  # fmt: skip
    # A run from before the figure (no record of it) reports as it did.
    with Store(db) as store:
        run = store.get_run("wrong")
        assert run is not None
        store.set_provenance(run.id, {k: v for k, v in run.provenance.items() if k != "figures"})
    capsys.readouterr()
    assert exit_code(["report", "wrong", "--db", str(db)]) == 0
    assert "format failures" not in capsys.readouterr().out
    assert exit_code(argv) == 0
    assert "format_failures" not in json.loads(report.read_text())["runs"][0]["rows"][0]
