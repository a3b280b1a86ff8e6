"""Visible tests: the examples a task shows, as assert lines; the hidden tests stay apart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeduel.benchmarks import Benchmark, load_benchmark
from codeduel.benchmarks._visible import docstring_checks
from codeduel.errors import BenchmarkError
from codeduel.sandbox import Sandbox


@pytest.fixture(scope="module")
def humaneval() -> Benchmark:
    return load_benchmark("humaneval")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(workers=2) as box:
        yield box


def _visible(bench: Benchmark, task_id: str) -> list[str]:
    (task,) = bench.select([task_id])
    return task.visible_test.splitlines()


def test_humaneval_doctest_examples_become_asserts(humaneval: Benchmark) -> None:
    assert _visible(humaneval, "HumanEval/0") == [
        "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
        "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True",
    ]
    # A float result is compared within the hidden tests' tolerance, not with ==.
    assert _visible(humaneval, "HumanEval/2") == ["assert abs(truncate_number(3.5) - 0.5) < 1e-6"]
    # Doctest prints nothing for None: `>>> longest([])` with no output line returns None.
    assert _visible(humaneval, "HumanEval/12") == [
        "assert longest([]) is None",
        "assert longest(['a', 'b', 'c']) == 'a'",
        "assert longest(['a', 'bb', 'ccc']) == 'ccc'",
    ]
    assert _visible(humaneval, "HumanEval/28") == [
        "assert concatenate([]) == ''",
        "assert concatenate(['a', 'b', 'c']) == 'abc'",
    ]
    assert _visible(humaneval, "HumanEval/53") == [
        "assert add(2, 3) == 5",
        "assert add(5, 7) == 12",
    ]


def test_humaneval_one_line_examples_and_written_checks(humaneval: Benchmark) -> None:
    # `solution([5, 8, 7, 1]) ==> 12`, with or without a space after the arrow.
    assert _visible(humaneval, "HumanEval/121") == [
        "assert solution([5, 8, 7, 1]) == 12",
        "assert solution([3, 3, 3, 3, 3]) == 9",
        "assert solution([30, 13, 24, 321]) == 0",
    ]
    # `>>> count_nums([]) == 0` with no output line: the example is the check.
    assert _visible(humaneval, "HumanEval/108")[0] == "assert count_nums([]) == 0"
    # A comment after the expression is dropped; the expression may wrap a call.
    assert _visible(humaneval, "HumanEval/32") == [
        "assert abs(round(find_zero([1, 2]), 2) - -0.5) < 1e-6",
        "assert abs(round(find_zero([-6, 11, -6, 1]), 2) - 1.0) < 1e-6",
    ]
    # `is_happy(a) => False`: `a` is not a value, so no check.
    assert _visible(humaneval, "HumanEval/80") == []
    # `tri(1) = 3` defines the sequence (and is dropped); `tri(3) = [1, 3, 2, 8]` is an example.
    assert _visible(humaneval, "HumanEval/130") == ["assert tri(3) == [1, 3, 2, 8]"]


def test_humaneval_visible_coverage(humaneval: Benchmark) -> None:
    with_checks = [t for t in humaneval.tasks if t.visible_test]
    assert len(with_checks) == 136
    assert sum(len(t.visible_test.splitlines()) for t in humaneval.tasks) == 382


def test_every_visible_check_passes_the_reference(humaneval: Benchmark, sandbox: Sandbox) -> None:
    """A visible check the reference fails would teach the model the wrong thing."""
    tasks = [t for t in humaneval.tasks if t.visible_test]
    programs = [t.visible_program(t.reference_solution() or "") for t in tasks]
    results = sandbox.map((p, 10.0) for p in programs)
    failed = [t.task_id for t, r in zip(tasks, results, strict=True) if r.status != "passed"]
    assert failed == []
    # And they can fail: each visible program fails on a stub that returns None... unless the
    # example expects None (HumanEval/12's first check), which passes and proves the point.
    stubs = [t.visible_program(f"def {t.entry_point}(*a, **k):\n    return 0\n") for t in tasks]
    passed_by_stub = [
        t.task_id
        for t, r in zip(tasks, sandbox.map((p, 10.0) for p in stubs), strict=True)
        if r.status == "passed"
    ]
    assert len(passed_by_stub) < 5


def test_docstring_forms() -> None:
    prompt = '''def f(x):
    """Twice x.
    >>> f(
    ...     2)
    4
    >>> print(f(1))
    2
    >>> f(0.5)
    1.0
    >>> f(object())
    <object>
    >>> g(1)
    2
    f([1]) ➞ [1, 1]
    f("a") should return "aa".
    f(y) ==> 0
    """
'''
    assert docstring_checks(prompt, "f") == [
        "assert f(2) == 4",
        "assert abs(f(0.5) - 1.0) < 1e-6",
        "assert f([1]) == [1, 1]",
        "assert f('a') == 'aa'",
    ]
    assert docstring_checks("def f(x): pass\n", "f") == []
    assert docstring_checks("not python (", "f") == []


def test_mbpp_visible_is_the_prompt_assert(monkeypatch: pytest.MonkeyPatch, mbpp_dir: Path) -> None:
    monkeypatch.setenv("CODEDUEL_MBPP_DIR", str(mbpp_dir))
    bench = load_benchmark("mbpp")
    task = bench.tasks[0]
    hidden = task.test.splitlines()
    assert task.visible_test == hidden[0]
    assert task.visible_test in task.prompt
    assert all(line not in task.prompt for line in hidden[1:])
    assert all(t.visible_test and t.visible_test in t.test for t in bench.tasks)
    program = task.visible_program("def similar_elements(a, b): return set(a) & set(b)")
    assert program.count("assert") == 1


def _write(path: Path, rows: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_jsonl_visible_test_field(tmp_path: Path) -> None:
    base = {
        "prompt": 'def add(a, b):\n    """>>> add(1, 2)\n    3\n    """\n',
        "entry_point": "add",
        "test": "def check(candidate):\n    assert candidate(2, 2) == 4\n",
    }
    rows = [
        {**base, "task_id": "given", "visible_test": "assert add(0, 0) == 0"},
        {**base, "task_id": "derived"},
        {**base, "task_id": "none", "visible_test": ""},
    ]
    bench = load_benchmark(_write(tmp_path / "t.jsonl", rows))
    assert [t.visible_test for t in bench.tasks] == [
        "assert add(0, 0) == 0",
        "assert add(1, 2) == 3",
        "",
    ]
    bad = [{**base, "task_id": "bad", "visible_test": ["assert True"]}]
    with pytest.raises(BenchmarkError, match="visible_test must be strings"):
        load_benchmark(_write(tmp_path / "bad.jsonl", bad))
