"""`codeduel export`: what each format holds, pass@k's samples, and bad input as one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeduel.benchmarks import Task, load_benchmark
from codeduel.benchmarks.humaneval import HUMANEVAL_SHA256
from codeduel.benchmarks.mbpp import MBPP_SANITIZED_SHA256
from codeduel.benchmarks.samples import human_eval_completion
from codeduel.records import SampleRecord
from codeduel.sandbox import Sandbox
from codeduel.store import Store
from tests.cli.test_bad_input import assert_one_line_error, codeduel
from tests.cli_run import exit_code

PROMPT = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n'
TASK = Task("t/0", PROMPT, "total", "def check(candidate):\n    assert candidate([1, 2]) == 3\n")


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(workers=1) as sandbox:
        yield sandbox


def _human_eval_runs(task: Task, completion: str) -> str:
    """How human-eval's execution.py ends on a completion: it execs the program text from a
    module without `from __future__` imports (this test's own code, trusted, so here)."""
    program = task.prompt + completion + "\n" + task.test + "\n" + f"check({task.entry_point})"
    try:
        exec(compile(program, "<human-eval>", "exec", dont_inherit=True), {})
    except Exception as exc:
        return type(exc).__name__
    return "passed"


def _codeduel_runs(box: Sandbox, task: Task, code: str) -> str:
    """How codeduel's sandbox ends on the stored program."""
    done = box.run(task.program(code), 10.0)
    return "passed" if done.status == "passed" else done.detail.split(":")[0]


@pytest.mark.parametrize(
    "code",
    [
        "from typing import List\n\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n",
        # Leaves out the prompt's import: fails here, so it must fail in human-eval too.
        "def total(xs: List[int]) -> int:\n    return sum(xs)\n",
        # Leans on a name only the prompt defines.
        "def helper(xs):\n    return total(xs)\n",
        "",
        PROMPT + "    return sum(xs)\n",
    ],
)
def test_a_human_eval_completion_runs_as_the_stored_program(box: Sandbox, code: str) -> None:
    completion = human_eval_completion(TASK, code)
    assert _human_eval_runs(TASK, completion) == _codeduel_runs(box, TASK, code)


def test_an_answer_lacking_the_prompts_import_fails_in_human_eval_as_here(box: Sandbox) -> None:
    """Its annotation names List, which only the prompt imports. (codeduel's sandbox compiled
    samples with its own module's postponed annotations until this test: they passed here.)"""
    code = "def total(xs: List[int]) -> int:\n    return sum(xs)\n"
    assert _codeduel_runs(box, TASK, code) == "NameError"
    assert _human_eval_runs(TASK, human_eval_completion(TASK, code)) == "NameError"


def test_a_completion_continues_a_prompt_it_starts_with() -> None:
    assert human_eval_completion(TASK, PROMPT + "    return 0\n") == "    return 0\n"


def test_a_bare_signature_prompt_gets_a_body_before_the_whole_program() -> None:
    task = Task(
        "t/1", "def one():\n", "one", "def check(candidate):\n    assert candidate() == 1\n"
    )
    code = "def one():\n    return 1\n"
    completion = human_eval_completion(task, code)
    assert _human_eval_runs(task, completion) == "passed"
    assert _human_eval_runs(task, human_eval_completion(task, "def one():\n    return 2\n")) == (
        "AssertionError"
    )


def _sample(
    model: str, task_id: str, index: int, code: str, *, error: bool = False
) -> SampleRecord:
    status = "error" if error else "passed"
    return SampleRecord(model, "single", task_id, index, status, code, "fenced", False, 1.0, 0.1,
                        model_error=error)  # fmt: skip


def _store(path: Path, benchmark: str, sha256: str, samples: list[SampleRecord]) -> Path:
    with Store(path) as store:
        run = store.create_run("r", benchmark, sha256, {}, {})
        for sample in samples:
            store.record_sample(run.id, sample)
    return path


def test_every_sample_of_a_task_is_a_line_in_task_then_sample_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = "stub/a", "stub/b"
    samples = [
        _sample(a, "HumanEval/10", 1, "def make_palindrome(s): return 'y'\n"),
        _sample(a, "HumanEval/2", 0, "def truncate_number(x): return 0\n"),
        _sample(a, "HumanEval/10", 0, "def make_palindrome(s): return 'x'\n"),
        _sample(a, "HumanEval/2", 1, "", error=True),
        _sample(b, "HumanEval/2", 0, "def truncate_number(x): return 1\n"),
    ]
    db = _store(tmp_path / "s.db", "humaneval", HUMANEVAL_SHA256, samples)
    out = tmp_path / "e.jsonl"
    argv = ["export", "r", "--format", "evalplus", "--model", a, "-o", str(out), "--db", str(db)]
    assert exit_code(argv) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["task_id"], x["solution"][-4:-1]) for x in lines] == [
        ("HumanEval/2", "n 0"),
        ("HumanEval/10", "'x'"),
        ("HumanEval/10", "'y'"),
    ]
    note = capsys.readouterr().err
    assert "3 samples of 2 tasks (stub/a), 1 without an answer left out" in note
    assert "--dataset humaneval --samples" in note and note.rstrip().endswith("--base_only")
    argv[3] = "human-eval"
    assert exit_code(argv) == 0
    tasks = {t.task_id: t for t in load_benchmark("humaneval").tasks}
    completions = [json.loads(line) for line in out.read_text().splitlines()]
    assert [tasks[x["task_id"]].prompt + x["completion"] for x in completions] == [
        tasks["HumanEval/2"].prompt + human_eval_completion(tasks["HumanEval/2"], samples[1].code),
        tasks["HumanEval/10"].prompt
        + human_eval_completion(tasks["HumanEval/10"], samples[2].code),
        tasks["HumanEval/10"].prompt
        + human_eval_completion(tasks["HumanEval/10"], samples[0].code),
    ]
    assert "--ignore_incomplete=True" in capsys.readouterr().err


def test_stdout_holds_only_the_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = "def truncate_number(x): return 0\n"
    db = _store(
        tmp_path / "s.db", "humaneval", HUMANEVAL_SHA256, [_sample("m", "HumanEval/2", 0, code)]
    )
    assert exit_code(["export", "r", "--format", "evalplus", "--db", str(db)]) == 0
    assert (
        capsys.readouterr().out == json.dumps({"task_id": "HumanEval/2", "solution": code}) + "\n"
    )


def test_bad_export_input_is_one_line(tmp_path: Path, mbpp_dir: Path) -> None:
    humaneval = _store(
        tmp_path / "he.db",
        "humaneval",
        HUMANEVAL_SHA256,
        [_sample("m1", "HumanEval/0", 0, "x = 1\n"), _sample("m2", "HumanEval/0", 0, "x = 2\n")],
    )
    tasks = tmp_path / "tasks.jsonl"
    task = {"task_id": "t/0", "prompt": "", "entry_point": "f", "test": TASK.test}
    tasks.write_text(json.dumps(task) + "\n")
    own = _store(tmp_path / "own.db", str(tasks), load_benchmark(str(tasks)).sha256,
                 [_sample("m", "t/0", 0, "def f(): return 1\n")])  # fmt: skip
    env = {"CODEDUEL_MBPP_DIR": str(mbpp_dir)}
    mbpp = _store(
        tmp_path / "mbpp.db", "mbpp", MBPP_SANITIZED_SHA256, [_sample("m", "Mbpp/2", 0, "")]
    )
    other = _store(tmp_path / "old.db", "humaneval", "0" * 64, [_sample("m", "HumanEval/0", 0, "")])
    cases = [
        (["export", "nope", "--format", "evalplus", "--db", str(humaneval)], ["no run named"]),
        (["export", "r", "--format", "jsonl", "--db", str(humaneval)], ["--format"]),
        (["export", "r", "--format", "evalplus", "--db", str(humaneval)], ["2 models", "--model"]),
        (["export", "r", "--format", "evalplus", "--model", "m3", "--db", str(humaneval)], ["m3"]),
        (["export", "r", "--format", "evalplus", "--db", str(own)], ["EvalPlus", "only"]),
        (["export", "r", "--format", "human-eval", "--db", str(mbpp)], ["check(candidate)"]),
        (["export", "r", "--format", "human-eval", "--db", str(other)], ["sha256", "prompts"]),
        (["export", "r", "--format", "human-eval", "--db", str(own)], []),
    ]
    for argv, fragments in cases[:-1]:
        assert_one_line_error(codeduel(*argv, env=env), *fragments)
    ok = codeduel(*cases[-1][0])
    assert ok.returncode == 0 and f"--problem_file={tasks}" in ok.stderr
