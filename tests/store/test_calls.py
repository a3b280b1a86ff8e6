"""Greedy answers come from the store when the same request was answered before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from codeduel.cli import main
from codeduel.store import Store, StoredCalls
from tests.models.fakeapi import FakeAPI
from tests.store.test_store import _sample


def test_a_stored_call_is_found_by_its_request_hash(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        run = store.create_run("r", "humaneval", "sha", {}, {})
        store.record_sample(run.id, _sample("HumanEval/0"))
        calls = StoredCalls(store)
        assert "h" * 64 in calls and "x" * 64 not in calls
        out = calls["h" * 64]
        assert (out.text, out.finish_reason, out.prompt_tokens, out.completion_tokens) == (
            "return 1\n",
            "stop",
            30,
            5,
        )
        assert (out.latency_s, out.ttft_s, out.prompt_text) == (0.5, 0.1, "PROMPT")
        with pytest.raises(KeyError):
            calls["x" * 64]


def _answer(request: dict[str, object]) -> str:
    return "```python\ndef truncate_number(number):\n    return number % 1.0\n```"


def _run(api: FakeAPI, db: Path, name: str, *extra: str) -> None:
    main(
        [
            "run",
            "humaneval",
            "--model",
            "openai-compat/m",
            "-M",
            f"base_url={api.openai_url}",
            "--task-ids",
            "HumanEval/2",
            "--workers",
            "1",
            "--db",
            str(db),
            "--run-name",
            name,
            "--no-progress",
            *extra,
        ]
    )


def test_a_repeated_greedy_request_is_answered_from_the_store(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with FakeAPI(_answer) as api:
        _run(api, db, "first")
        assert len(api.posts) == 1
        _run(api, db, "again")
        assert len(api.posts) == 1  # nothing sent: the same greedy request was answered
        _run(api, db, "fresh", "--no-reuse")
        assert len(api.posts) == 2
        _run(api, db, "hot", "--temperature", "0.5")
        _run(api, db, "hot-again", "--temperature", "0.5")
        assert len(api.posts) == 4  # sampled calls are new draws, never replayed
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT r.name, s.status, c.response, c.completion_tokens FROM runs r "
        "JOIN samples s ON s.run_id = r.id JOIN attempts a ON a.sample_id = s.id "
        "JOIN model_calls c ON c.attempt_id = a.id ORDER BY r.id"
    ).fetchall()
    assert [r[0] for r in rows] == ["first", "again", "fresh", "hot", "hot-again"]
    # Each run stores its own sample and call, replayed or not.
    assert {r[1:] for r in rows[:3]} == {rows[0][1:]}
    assert rows[0][1] == "passed"
