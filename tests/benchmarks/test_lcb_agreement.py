"""codeduel's LiveCodeBench grading against LiveCodeBench's own grader, on the same answers.

The problems are the fixtures in tests/data/livecodebench (made here, in the dataset's exact
schema); the answers below are ours too: right, wrong, slow and crashing ones, and the corner
cases of the grader's rules (== on floats, Decimal-equal float lines, stripped lines, a
`__main__` guard, `exit()`, stdin read every way it is patched). Each is graded by
`livecodebench.evaluation.compute_code_generation_metrics.check_correctness` (the
`nvidia-livecodebench` distribution of lcb_runner's grader, in the dev extra), which runs
trusted code in a subprocess, and by codeduel in its sandbox; the verdicts must be the same.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeduel.benchmarks.livecodebench import LiveCodeBenchTask, load_livecodebench
from codeduel.executors import LocalExecutor
from codeduel.sandbox import Sandbox
from codeduel.scoring import execution_record

FIXTURES = Path(__file__).parents[1] / "data" / "livecodebench"
# Short per-test limit for both graders, so the slow answers cost little.
TIMEOUT_S = 1

PAIR = "class Solution:\n    def maxPairSum(self, nums, k):\n"
PAIR_RIGHT = (
    PAIR + "        best = -1\n"
    "        for i in range(len(nums)):\n"
    "            for j in range(i + 1, len(nums)):\n"
    "                if nums[i] + nums[j] <= k:\n"
    "                    best = max(best, nums[i] + nums[j])\n"
    "        return best\n"
)
MEAN = "class Solution:\n    def meanOfExtremes(self, nums: List[float]) -> float:\n"
ROWS_RIGHT = "n = int(input())\nfor _ in range(n):\n    print(sum(map(int, input().split())))\n"
AVERAGE = "n = int(input())\nvalues = list(map(int, input().split()))\n"
PAIRS = (
    "n = int(input())\na = list(map(int, input().split()))\n"
    "count = sum((a[i] + a[j]) % 7 == 0 for i in range(n) for j in range(i + 1, n))\n"
)

# (problem, label, answer); the verdict each must get is whatever LiveCodeBench's grader says.
SAMPLES: list[tuple[str, str, str]] = [
    ("9001", "right", PAIR_RIGHT),
    (
        "9001",
        "right, a helper outside the class",
        (
            "def pairs(nums):\n"
            "    return [(a, b) for i, a in enumerate(nums) for b in nums[i + 1:]]\n"
            + PAIR
            + "        sums = [a + b for a, b in pairs(nums) if a + b <= k]\n"
            "        return max(sums) if sums else -1\n"
        ),
    ),
    ("9001", "wrong: 0 for none", PAIR_RIGHT.replace("best = -1", "best = 0")),
    ("9001", "wrong method name", PAIR_RIGHT.replace("maxPairSum", "max_pair_sum")),
    ("9001", "crash: index error", PAIR + "        return nums[5]\n"),
    ("9001", "crash: an assert of its own", PAIR + "        assert k < 0\n        return -1\n"),
    ("9001", "slow", PAIR + "        while True:\n            pass\n"),
    ("9001", "raises at import", "raise ValueError('no')\n" + PAIR_RIGHT),
    ("9001", "syntax error", PAIR + "        return (\n"),
    ("9002", "right", MEAN + "        return (min(nums) + max(nums)) / 2\n"),
    ("9002", "wrong: integer division", MEAN + "        return (min(nums) + max(nums)) // 2\n"),
    (
        "9002",
        "wrong: a float off by rounding",
        (MEAN + "        return (min(nums) + max(nums)) / 2 + 1e-12\n"),
    ),
    ("abc900_a", "right", ROWS_RIGHT),
    (
        "abc900_a",
        "right, sys.stdin.read",
        (
            "import sys\ndata = sys.stdin.read().split('\\n')\nn = int(data[0])\n"
            "for line in data[1:n + 1]:\n    print(sum(map(int, line.split())))\n"
        ),
    ),
    (
        "abc900_a",
        "right, readline and a main guard",
        (
            "import sys\n\ndef main():\n    n = int(sys.stdin.readline())\n"
            "    for _ in range(n):\n        print(sum(map(int, sys.stdin.readline().split())))\n\n"
            "if __name__ == '__main__':\n    main()\n"
        ),
    ),
    (
        "abc900_a",
        "right, open(0) and padding",
        (
            "lines = open(0).read().split('\\n')\n"
            "for line in lines[1:int(lines[0]) + 1]:\n"
            "    print('  ', sum(map(int, line.split())), ' ')\n"
            "print()\nprint()\n"
        ),
    ),
    ("abc900_a", "right, then exit()", ROWS_RIGHT + "exit()\nprint('never')\n"),
    (
        "abc900_a",
        "wrong: one line short",
        "n = int(input())\nprint(sum(map(int, input().split())))\n",
    ),
    ("abc900_a", "wrong: an extra line", ROWS_RIGHT + "print('done')\n"),
    ("abc900_a", "crash: reads past the input", ROWS_RIGHT + "input()\n"),
    ("abc900_a", "crash: sys.stdin.buffer", ("import sys\nprint(sys.stdin.buffer.read())\n")),
    ("1999_A", "right, Decimal-equal floats", AVERAGE + "print(sum(values) / n)\n"),
    ("1999_A", "right, rounded as the tests are", AVERAGE + "print(f'{sum(values) / n:.10f}')\n"),
    ("1999_A", "wrong: rounded too far", AVERAGE + "print(f'{sum(values) / n:.2f}')\n"),
    ("1999_A", "wrong: words", AVERAGE + "print('average', sum(values) / n)\n"),
    ("abc901_b", "right", PAIRS + "print(count)\n"),
    ("abc901_b", "slow", PAIRS + "import time\nwhile True:\n    time.sleep(0.05)\n"),
    ("abc901_b", "slow on a later test", PAIRS + ("while n == 6:\n    pass\nprint(count)\n")),
    ("abc901_b", "crash: division by zero", PAIRS + "print(count // 0)\n"),
    ("abc901_b", "crash: recursion", "def f(x):\n    return f(x + 1)\nprint(f(0))\n"),
]


def _lcb_verdict(results: list[object]) -> set[str]:
    """LiveCodeBench's per-test results as the verdicts they can mean: True passes, False (a
    functional answer's) and -2 are a wrong answer, -3 over the time, -4 an error, -1 (the
    whole run killed) a time-out or a crash of the process."""
    for value in results:
        if value is True:
            continue
        if value is False:
            return {"failed"}
        return {-2: {"failed"}, -3: {"timeout"}, -4: {"error"}}.get(
            value,
            {"timeout", "error"},  # type: ignore[call-overload]
        )
    return {"passed"}


@pytest.fixture(scope="module")
def tasks() -> dict[str, LiveCodeBenchTask]:
    old = os.environ.get("CODEDUEL_LCB_DIR")
    os.environ["CODEDUEL_LCB_DIR"] = str(FIXTURES)
    try:
        bench = load_livecodebench(f"livecodebench@release_v2,timeout={TIMEOUT_S}")
    finally:
        if old is None:
            del os.environ["CODEDUEL_LCB_DIR"]
        else:
            os.environ["CODEDUEL_LCB_DIR"] = old
    found = {t.task_id.split("/", 1)[1]: t for t in bench.tasks}
    assert all(isinstance(t, LiveCodeBenchTask) for t in found.values())
    return found  # type: ignore[return-value]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(workers=4) as box:
        yield box


def _theirs(task: LiveCodeBenchTask, code: str) -> list[object]:
    grader = pytest.importorskip(
        "livecodebench.evaluation.compute_code_generation_metrics",
        reason="LiveCodeBench's grader (nvidia-livecodebench) is in the dev extra",
    )
    from livecodebench.benchmarks.code_generation import CodeGenerationProblem

    rows = [
        line
        for name in ("test.jsonl", "test2.jsonl")
        for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    ]
    import json

    row = next(json.loads(r) for r in rows if f'"question_id": "{task.task_id.split("/")[1]}"' in r)
    sample = CodeGenerationProblem(**row).get_evaluation_sample()
    results, _ = grader.check_correctness(sample, code, timeout=TIMEOUT_S, debug=False)
    return list(results)


@pytest.mark.timeout(300)
def test_codeduel_and_livecodebench_give_every_sample_the_same_verdict(
    tasks: dict[str, LiveCodeBenchTask], sandbox: Sandbox
) -> None:
    samples = SAMPLES
    executor = LocalExecutor(sandbox)
    jobs = [(tasks[qid].program(code), tasks[qid].time_limit_floor_s()) for qid, _, code in samples]
    results = asyncio.run(executor.run_many(jobs))
    ours = [
        execution_record(tasks[qid], "hidden", result, limit).status
        for (qid, _, _), result, (_, limit) in zip(samples, results, jobs, strict=True)
    ]
    theirs = [_lcb_verdict(_theirs(tasks[qid], code)) for qid, _, code in samples]
    disagree = [
        f"{qid} {label}: codeduel {mine}, LiveCodeBench {sorted(lcb)}"
        for (qid, label, _), mine, lcb in zip(samples, ours, theirs, strict=True)
        if mine not in lcb
    ]
    assert not disagree, "\n".join(disagree)
    # The fixtures exercise every verdict, so agreement is not agreement on one kind.
    assert {"passed", "failed", "timeout", "error"} <= set(ours)


# Answers faking a pass, which codeduel refuses: (problem, answer, codeduel's status, a phrase
# of its detail). LiveCodeBench's grader passes the first (a result equal to everything); the
# others go for this harness's own comparison (its functions, the builtins it grades with).
FAKES: list[tuple[str, str, str, str]] = [
    (
        "9001",
        "class Equal:\n    def __eq__(self, other):\n        return True\n\n\n"
        + PAIR
        + "        return Equal()\n",
        "failed",
        "the result is a Equal, which compares by its own __eq__",
    ),
    (
        "9001",
        PAIR + "        return [Equal()]\n\n\n"
        "class Equal:\n    def __eq__(self, other):\n        return True\n",
        "failed",
        "compares by its own __eq__",
    ),
    (
        "abc900_a",
        "import sys\nsys.modules['__main__']._same_output = lambda got, want: None\nprint('0')\n",
        "error",
        "the answer replaced _same_output, which grading uses",
    ),
    (
        "9001",
        "import builtins\nbuiltins.bool = lambda value: True\n\n\n" + PAIR + "        return -5\n",
        "error",
        "the answer replaced builtins.bool, which grading uses",
    ),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("qid", "code", "status", "phrase"), FAKES)
def test_answers_faking_a_pass_are_refused(
    tasks: dict[str, LiveCodeBenchTask],
    sandbox: Sandbox,
    qid: str,
    code: str,
    status: str,
    phrase: str,
) -> None:
    task = tasks[qid]
    limit = task.time_limit_floor_s()
    result = asyncio.run(LocalExecutor(sandbox).run(task.program(code), limit))
    record = execution_record(task, "hidden", result, limit)
    assert record.status == status and phrase in record.detail, record.detail
