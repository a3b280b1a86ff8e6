"""codeduel's extraction against EvalPlus's `sanitize`, on 656 real answers, graded by the tests.

The corpus (tests/data/humaneval_answers.jsonl, written by bench/answer_corpus.py) holds the
raw text the bundled 0.5B model produced for the final attempt of every sample of the four
committed full-HumanEval runs. Each answer is extracted both ways, and both programs run in the
sandbox with the task's calibrated time limit. EvalPlus's published figures are graded after its
sanitizer: codeduel's extraction must pass every answer that EvalPlus's passes, and every answer
where only codeduel's passes is listed below with the reason.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.executors import LocalExecutor
from codeduel.extract import answer_code
from codeduel.sandbox import Sandbox
from codeduel.scoring import TIMEOUT_FACTOR, TIMEOUT_FLOOR_S, calibrate_timeouts

CORPUS = Path(__file__).parent / "data" / "humaneval_answers.jsonl"

# (run, task) where codeduel's extraction passes and EvalPlus's does not, and why ours is right.
OURS_ONLY: dict[tuple[str, str], str] = {}


def _evalplus_sanitize():  # type: ignore[no-untyped-def]
    module = pytest.importorskip("evalplus.sanitize", reason="evalplus is installed by .ci/run")
    return module.sanitize


@pytest.mark.timeout(900)
def test_extraction_passes_every_answer_evalplus_passes() -> None:
    theirs_of = _evalplus_sanitize()
    answers = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    assert len(answers) == 656
    tasks = {t.task_id: t for t in load_benchmark("humaneval").tasks}
    # The corpus holds each answer whole (prefill and consumed fence put back).
    ours = [answer_code(a["text"], a["entry_point"]).code for a in answers]
    theirs = [theirs_of(a["text"], a["entry_point"]) for a in answers]
    with Sandbox() as box:
        used = [tasks[t] for t in dict.fromkeys(a["task_id"] for a in answers)]
        limits = asyncio.run(
            calibrate_timeouts(used, LocalExecutor(box), TIMEOUT_FLOOR_S, TIMEOUT_FACTOR)
        ).limits
        jobs = [
            (tasks[a["task_id"]].program(code), limits[a["task_id"]])
            for code_of in (ours, theirs)
            for a, code in zip(answers, code_of, strict=True)
        ]
        results = list(box.map(jobs))
    n = len(answers)
    passed_ours = [r.status == "passed" for r in results[:n]]
    passed_theirs = [r.status == "passed" for r in results[n:]]
    lost = [
        (a["run"], a["task_id"], results[i].detail)
        for i, a in enumerate(answers)
        if passed_theirs[i] and not passed_ours[i]
    ]
    assert lost == []  # no answer EvalPlus's sanitizer passes and codeduel's extraction fails
    gained = {
        (a["run"], a["task_id"]): results[n + i].detail
        for i, a in enumerate(answers)
        if passed_ours[i] and not passed_theirs[i]
    }
    assert set(gained) == set(OURS_ONLY), gained
    print(f"codeduel {sum(passed_ours)}/{n}, EvalPlus sanitize {sum(passed_theirs)}/{n}")
