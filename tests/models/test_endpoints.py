"""`-M endpoints=URL1,URL2`: one model served by several replicas, each call to the one with
the fewest in flight; a replica that refuses connections is left out and its calls retried on
another. Over loopback servers speaking the OpenAI API."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

from tests.cli_run import exit_code
from tests.models.fakeapi import FakeAPI

TASKS = [f"HumanEval/{i}" for i in range(10)]


def _answer(request: dict[str, Any]) -> str:
    return "```python\ndef f():\n    return 1\n```"


def _run(tmp_path: Path, endpoints: str) -> list[tuple[str, int]]:
    db = tmp_path / "r.db"
    argv = ["run", "humaneval", "--model", "openai-compat/tiny", "-M", f"endpoints={endpoints}"]
    argv += ["-M", "max_concurrency=2", "--task-ids", ",".join(TASKS), "--max-tokens", "32"]
    argv += ["--db", str(db), "--no-progress"]
    assert exit_code(argv) == 0
    con = sqlite3.connect(db)
    counts = con.execute("SELECT task_id, COUNT(*) FROM samples GROUP BY task_id").fetchall()
    assert sorted(counts) == sorted((t, 1) for t in TASKS)
    extras = [json.loads(e) for (e,) in con.execute("SELECT extra FROM model_calls")]
    assert len(extras) == len(TASKS)
    per: dict[str, int] = {}
    for extra in extras:
        per[extra["endpoint"]] = per.get(extra["endpoint"], 0) + 1
    return sorted(per.items())


def test_calls_spread_over_two_replicas_and_every_task_is_scored_once(tmp_path: Path) -> None:
    with FakeAPI(_answer, chunk_delay_s=0.01) as one, FakeAPI(_answer, chunk_delay_s=0.01) as two:
        per = _run(tmp_path, f"{one.openai_url},{two.openai_url}")
        served = sorted([(one.openai_url, len(one.posts)), (two.openai_url, len(two.posts))])
    # The store's count per replica is what each server saw; both did a fair share.
    assert per == served
    assert min(n for _, n in per) >= 3


def test_a_replica_that_refuses_connections_is_left_out(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # closed again: nothing listens
    with FakeAPI(_answer) as live:
        per = _run(tmp_path, f"{dead},{live.openai_url}")
        served = len(live.posts)
    # Every call ended on the live replica, which the store names for each.
    assert served == len(TASKS)
    assert per == [(live.openai_url, len(TASKS))]
