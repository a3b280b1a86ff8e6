"""`codeduel evaluate` reads other graders' sample files: human-eval's and EvalPlus's JSONL
(gzipped too), EvalPlus's folder of TASK/N.py files, and counts pass@k as they do."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.cli.test_bad_input import assert_one_line_error, codeduel
from tests.cli_run import exit_code

TASKS = [
    {
        "task_id": "t/0",
        "prompt": "def one():\n",
        "entry_point": "one",
        "canonical_solution": "    return 1\n",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
    },
    {
        "task_id": "t/1",
        "prompt": "def two():\n",
        "entry_point": "two",
        "canonical_solution": "    return 2\n",
        "test": "def check(candidate):\n    assert candidate() == 2\n",
    },
]


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return path


def _evaluate(tasks: Path, samples: Path, out: Path) -> dict:  # type: ignore[type-arg]
    argv = ["evaluate", "--benchmark", str(tasks), "--samples", str(samples), "--output", str(out)]
    assert exit_code(argv) == 0
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_an_evalplus_folder_is_read_in_task_then_file_number_order(
    tasks: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "samples"
    # Ten samples of each task, file names 0..9 (10 sorts after 9, not after 1): two pass.
    for task_id, name, right in (("t_0", "one", 1), ("t_1", "two", 2)):
        (folder / task_id).mkdir(parents=True)
        for n in range(10):
            value = right if n in (3, 9) else 0
            (folder / task_id / f"{n}.py").write_text(f"def {name}():\n    return {value}\n")
    (folder / "t_0" / "notes.txt").write_text("not a sample")
    result = _evaluate(tasks, folder, tmp_path / "out.json")
    summary = result["summary"]
    assert summary["formats"] == {"evalplus": 20} and summary["passed"] == 4
    assert summary["pass@1"] == pytest.approx(0.2)
    # pass@10 of 10 samples with 2 right is 1; no pass@100 without 100 samples a task.
    assert summary["pass@10"] == pytest.approx(1.0) and "pass@100" not in summary
    rows = [(r["task_id"], r["source"], r["status"]) for r in result["results"]]
    assert rows[:4] == [
        ("t/0", "t_0/0.py", "failed"),
        ("t/0", "t_0/1.py", "failed"),
        ("t/0", "t_0/2.py", "failed"),
        ("t/0", "t_0/3.py", "passed"),
    ]
    assert rows[9] == ("t/0", "t_0/9.py", "passed") and rows[10][:2] == ("t/1", "t_1/0.py")


def test_keys_say_the_format_of_each_line_of_a_gzipped_file(tasks: Path, tmp_path: Path) -> None:
    lines = [
        {"task_id": "t/0", "completion": "    return 1\n"},
        {"task_id": "t/1", "solution": "def two():\n    return 2\n"},
        # EvalPlus reads `solution` first where a line has both.
        {"task_id": "t/1", "solution": "def two():\n    return 2\n", "completion": "    return 0"},
    ]
    samples = tmp_path / "samples.jsonl.gz"
    samples.write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode()))
    result = _evaluate(tasks, samples, tmp_path / "out.json")
    assert result["summary"]["formats"] == {"human-eval": 1, "evalplus": 2}
    assert [r["status"] for r in result["results"]] == ["passed"] * 3
    assert result["results"][0]["source"].endswith("samples.jsonl.gz:1")


@pytest.mark.parametrize(
    ("layout", "fragments"),
    [({"t_9/0.py": "x = 1\n"}, ["unknown task id", "t/9"]), ({}, ["one folder per task"])],
)
def test_a_bad_folder_is_one_line(
    tasks: Path, tmp_path: Path, layout: dict[str, str], fragments: list[str]
) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    for name, text in layout.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    out = tmp_path / "out.json"
    args = ["--benchmark", str(tasks), "--samples", str(folder), "--output", str(out)]
    assert_one_line_error(codeduel("evaluate", *args), *fragments)
    assert not out.exists()
