from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.benchmarks.mbpp import MBPP_SANITIZED_SHA256
from codeduel.errors import BenchmarkError


def test_humaneval_has_164_tasks_and_its_pinned_hash() -> None:
    bench = load_benchmark("humaneval")
    assert len(bench.tasks) == 164
    assert bench.sha256 == "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"
    first = bench.tasks[0]
    assert first.task_id == "HumanEval/0"
    assert first.entry_point == "has_close_elements"
    program = first.program(first.reference_solution() or "")
    assert program.rstrip().endswith("check(has_close_elements)")


def test_mbpp_from_a_local_folder(monkeypatch: pytest.MonkeyPatch, mbpp_dir: Path) -> None:
    monkeypatch.setenv("CODEDUEL_MBPP_DIR", str(mbpp_dir))
    bench = load_benchmark("mbpp")
    assert len(bench.tasks) == 427
    assert bench.sha256 == MBPP_SANITIZED_SHA256
    task = bench.tasks[0]
    assert task.task_id == "Mbpp/2"
    assert task.entry_point == "similar_elements"
    # The prompt shows exactly the first assert; the hidden tests hold all of them.
    assert task.prompt.count("assert") == 1
    assert task.test.count("assert") == 3


def test_mbpp_folder_without_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CODEDUEL_MBPP_DIR", str(tmp_path))
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_benchmark("mbpp")


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_custom_jsonl_task_file(tmp_path: Path) -> None:
    task = {
        "task_id": "t/1",
        "prompt": "def add(a, b):\n",
        "entry_point": "add",
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
        "canonical_solution": "    return a + b\n",
    }
    bench = load_benchmark(str(_write(tmp_path / "mine.jsonl", [task])))
    assert bench.name == "mine"
    assert [t.task_id for t in bench.tasks] == ["t/1"]
    assert len(bench.sha256) == 64


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", "not valid JSON"),
        ('["a list"]\n', "expected a JSON object"),
        ('{"task_id": "x", "prompt": ""}\n', "missing field"),
        ('{"task_id": "x", "prompt": 3, "entry_point": "f", "test": ""}\n', "must be strings"),
        (
            '{"task_id": "x", "prompt": "", "entry_point": "no way", "test": ""}\n',
            "not a Python identifier",
        ),
        ("\n\n", "no tasks"),
    ],
)
def test_bad_task_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark(str(path))


def test_duplicate_task_ids_are_refused(tmp_path: Path) -> None:
    row = {"task_id": "a", "prompt": "", "entry_point": "f", "test": ""}
    with pytest.raises(BenchmarkError, match="duplicate task_id"):
        load_benchmark(str(_write(tmp_path / "dup.jsonl", [row, row])))


def test_unknown_benchmark_and_unknown_task_ids() -> None:
    with pytest.raises(BenchmarkError, match="unknown benchmark"):
        load_benchmark("nosuchbench")
    with pytest.raises(BenchmarkError, match="HumanEval/999"):
        load_benchmark("humaneval").select(["HumanEval/1", "HumanEval/999"])


def test_a_task_id_given_twice_is_selected_once() -> None:
    # Found by the CLI fuzz test: the store holds one sample per task and sample index.
    tasks = load_benchmark("humaneval").select(["HumanEval/2", "HumanEval/0", "HumanEval/2"])
    assert [t.task_id for t in tasks] == ["HumanEval/2", "HumanEval/0"]
