"""Bad input: one clear line on stderr, exit code 2, no traceback, nothing stored lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeduel.store import Store


def codeduel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codeduel", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("codeduel: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "nosuchbench"], ["unknown benchmark"]),
        (["run", "humaneval", "--model", "qwen"], ["PROVIDER/MODEL"]),
        (["run", "humaneval", "--model", "nosuch/x"], ["unknown provider"]),
        (["run", "humaneval", "-M", "n_thread=2"], ["n_thread"]),
        (["run", "humaneval", "-M", "novalue"], ["KEY=VALUE"]),
        (["run", "humaneval", "--limit", "0"], ["--limit"]),
        (["run", "humaneval", "--task-ids", "HumanEval/0,HumanEval/999"], ["HumanEval/999"]),
        (["run", "humaneval", "--model", "llamacpp//nonexistent/model.gguf"], ["does not exist"]),
        (["run", "humaneval", "--temperature", "-1"], ["--temperature"]),
        # Found by the fuzz test: NaN passed the range check and broke the report's JSON.
        (["run", "humaneval", "--temperature", "nan"], ["--temperature", "finite"]),
        # Found by the fuzz test too: a NaN time limit reached the sandbox.
        (["run", "humaneval", "--timeout", "nan"], ["--timeout", "finite"]),
        (["solve", "--prompt", "def f():", "--timeout", "inf"], ["--timeout", "finite"]),
        (["run", "humaneval", "--strategy", "magic"], ["unknown strategy"]),
        (["report", "no-such-run"], ["no run named"]),
        (["frobnicate"], ["No such command"]),
    ],
)
def test_bad_cli_input(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(codeduel(*args), *fragments)


def test_report_on_an_empty_store() -> None:
    assert_one_line_error(codeduel("report"), "no runs")


def test_a_store_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"precious, not sqlite" * 64)
    assert_one_line_error(codeduel("report", "--db", str(junk)), "cannot use run store")
    assert junk.read_bytes() == b"precious, not sqlite" * 64


@pytest.mark.parametrize(
    ("lines", "fragments"),
    [
        (
            [
                '{"task_id": "HumanEval/0", "completion": "  return 1"',
            ],
            ["not valid JSON"],
        ),
        (['{"task_id": "HumanEval/999", "completion": "x"}'], ["unknown task id"]),
        (['{"task_id": "HumanEval/0"}'], ["completion or solution"]),
        (['{"completion": "x"}'], ["task_id"]),
        ([], ["no samples"]),
    ],
)
def test_bad_sample_files(tmp_path: Path, lines: list[str], fragments: list[str]) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text("\n".join(lines) + "\n")
    output = tmp_path / "out.json"
    proc = codeduel(
        "evaluate", "--benchmark", "humaneval", "--samples", str(samples), "--output", str(output)
    )
    assert_one_line_error(proc, *fragments)
    assert not output.exists()


def test_missing_sample_file(tmp_path: Path) -> None:
    proc = codeduel(
        "evaluate",
        "--benchmark",
        "humaneval",
        "--samples",
        str(tmp_path / "nope.jsonl"),
        "--output",
        str(tmp_path / "o.json"),
    )
    assert_one_line_error(proc, "cannot read samples file")


def test_reusing_a_run_name_keeps_the_stored_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with Store(db) as store:
        store.create_run("mine", "humaneval", "x", {"keep": True}, {})
    proc = codeduel(
        "run",
        "humaneval",
        "--model",
        "llamacpp/smollm2-135m-instruct",
        "--limit",
        "1",
        "--run-name",
        "mine",
        "--db",
        str(db),
        "--no-progress",
    )
    assert_one_line_error(proc, "already exists")
    with Store(db) as store:
        run = store.get_run("mine")
        assert run is not None and run.config == {"keep": True}
        assert store.integrity_check() == "ok"


def test_bad_task_file_for_run(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"task_id": "a", "prompt": "x"}) + "\n")
    assert_one_line_error(codeduel("run", str(tasks)), "missing field")
