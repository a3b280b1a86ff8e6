"""The duel on GPU tasks, end to end: a local model against a cloud one behind the loopback
Anthropic stand-in (the real SDK over a socket), on a GPU task file, then the report with the
articles' table. On the CPU build of torch: correctness only, and the report says so."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.test_accel import SCALE, _task_file
from tests.cli_run import exit_code
from tests.models.fakeapi import FakeAPI

KEY = "sk-ant-codeduel-accel-duel-test-9d2f"
RIGHT = "import torch\n\n\ndef scale(x, a):\n    return x * a + 1.0\n"
WRONG = "import torch\n\n\ndef scale(x, a):\n    return x * a\n"
CLOUD = "anthropic/claude-sonnet-4-5"


def _cloud(request: dict[str, Any]) -> str:
    # After the provider's prefilled fence, the answer continues it.
    return (
        f"{RIGHT}```"
        if request["messages"][-1]["role"] == "assistant"
        else f"```python\n{RIGHT}```"
    )


def test_a_duel_on_gpu_tasks_ends_in_the_articles_table(
    tmp_path: Path,
    stub_provider: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    db = tmp_path / "duel.db"
    tasks = _task_file(tmp_path, SCALE, {**SCALE, "task_id": "scale2"})
    with FakeAPI(_cloud, api_key=KEY) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        argv = ["run", str(tasks), "--model", stub_provider, "--model", CLOUD]
        argv += ["-M", f"stub:answer={WRONG}", "-M", "stub:prefill=false"]
        argv += ["--db", str(db), "--run-name", "duel", "--no-progress"]
        assert exit_code(argv) == 0
        assert len(api.posts) == 2
    con = sqlite3.connect(db)
    statuses = con.execute("SELECT model, task_id, status FROM samples ORDER BY model, task_id")
    assert statuses.fetchall() == [
        (CLOUD, "scale", "passed"),
        (CLOUD, "scale2", "passed"),
        ("stub/x", "scale", "failed"),
        ("stub/x", "scale2", "failed"),
    ]
    capsys.readouterr()
    assert exit_code(["report", "duel", "--db", str(db), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "accel" in json.dumps(report)
    assert exit_code(["report", "duel", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    table = text[text.index("| System | Pass@1 | Execution time | Memory |") :].splitlines()
    rows = {row.split(" | ")[0]: row for row in table[2:4]}
    assert rows["| stub/x"].startswith("| stub/x | 0.0 (")
    assert rows[f"| {CLOUD}"].startswith(f"| {CLOUD} | 100.0 (")
    assert "No speed was measured" in text
    # The key went to the stand-in and nowhere else.
    assert KEY not in text and KEY.encode() not in db.read_bytes()
