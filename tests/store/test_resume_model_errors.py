"""Samples lost to an API outage are holes that `--resume` fills, each task scored once."""

from __future__ import annotations

import dataclasses
import secrets
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codeduel.cli import main
from codeduel.models import Model, RetryPolicy, load_model, parse_model_spec
from codeduel.runner import RunOptions, run_benchmark
from codeduel.store import Store
from tests.models.fakeapi import FakeAPI

SPEC = parse_model_spec("anthropic/claude-test")
ANSWERS = {
    "has_close_elements": (
        "def has_close_elements(numbers, threshold):\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
        " for b in numbers[i + 1:])"
    ),
    "truncate_number": "def truncate_number(number):\n    return number % 1.0",
}


def _script(request: dict[str, Any]) -> str:
    prompt = request["messages"][0]["content"]
    return "```python\n" + next(a for n, a in ANSWERS.items() if n in prompt) + "\n```"


def _model() -> Model:
    """The real provider and wrapper, with retries quick enough for a test."""
    provider = load_model(SPEC, {"prefill": "false"}).provider
    return Model(SPEC, provider, retry=RetryPolicy(max_attempts=2, base_s=0.01))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_resume_retries_samples_lost_to_an_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = f"sk-ant-test-{secrets.token_hex(8)}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    db = tmp_path / "runs.db"
    opts = RunOptions(
        "humaneval",
        (SPEC,),
        model_options={str(SPEC): {"prefill": "false"}},
        task_ids=("HumanEval/0", "HumanEval/2"),
        run_name="outage",
        workers=1,
    )
    with Store(db) as store:
        run = run_benchmark(store, opts, models=[_model()])
        assert run.status == "incomplete"
        assert store.model_error_count(run.id) == 2
    main(["report", "outage", "--db", str(db)])
    report = capsys.readouterr().out
    assert "2 model errors, not scored (--resume retries them)" in report
    assert "run outage is incomplete: continue it with --resume" in report

    with FakeAPI(_script, api_key=key) as api:  # the API is back
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        with Store(db) as store:
            run = run_benchmark(store, dataclasses.replace(opts, resume=True), models=[_model()])
        assert len(api.posts) == 2
    assert run.status == "complete"
    con = sqlite3.connect(db)
    rows = con.execute("SELECT task_id, status, model_error FROM samples ORDER BY task_id")
    assert rows.fetchall() == [("HumanEval/0", "passed", 0), ("HumanEval/2", "passed", 0)]
    # The failed attempts went with the rows they belonged to: nothing is left dangling.
    orphans = con.execute(
        "SELECT (SELECT COUNT(*) FROM attempts WHERE sample_id NOT IN (SELECT id FROM samples))"
        " + (SELECT COUNT(*) FROM model_calls WHERE attempt_id NOT IN (SELECT id FROM attempts))"
        " + (SELECT COUNT(*) FROM executions WHERE attempt_id NOT IN (SELECT id FROM attempts))"
    ).fetchone()[0]
    assert orphans == 0
    calls = con.execute("SELECT COUNT(*), SUM(error IS NOT NULL) FROM model_calls").fetchone()
    assert calls == (2, 0)
