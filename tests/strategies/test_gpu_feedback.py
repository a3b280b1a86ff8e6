"""The loops on GPU tasks: what the visible run measured goes back to the model (the mismatch,
the exception, or the speed against NumPy's), and the loop stops at a correct answer that is
fast enough. End to end over a loopback Anthropic stand-in, on the CPU build of torch; the
speed case from a visible run as the GPU reports it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.benchmarks.accel import REPORT_MARK, AccelTask
from codeduel.records import CallRecord
from codeduel.sandbox import ExecResult
from codeduel.scoring import Attempt
from codeduel.strategies._gpu import choose_final, judge_gpu
from codeduel.types import GenerateConfig, ModelOutput
from tests.benchmarks.test_accel import SCALE, _task_file
from tests.cli_run import exit_code
from tests.models.fakeapi import FakeAPI

RIGHT = "import torch\n\n\ndef scale(x, a):\n    return x * a + 1.0\n"
WRONG = "import torch\n\n\ndef scale(x, a):\n    y = x * a + 1.0\n    y[3] = 0\n    return y\n"
RAISES = "import torch\n\n\ndef scale(x, a):\n    return x.no_such_method()\n"


def _visible(status: str, report: dict[str, Any] | None, stderr: str = "") -> ExecResult:
    out = f"\n{REPORT_MARK} {json.dumps(report)}\n" if report is not None else ""
    return ExecResult(status, "" if status == "passed" else "failed", 0.1, out, stderr)  # type: ignore[arg-type]


def _attempt(code: str, visible: ExecResult) -> Attempt:
    output = ModelOutput(f"```python\n{code}```", "stop", 10, 5, latency_s=0.01)
    call = CallRecord("m", "h", (), GenerateConfig(), output)
    return Attempt(code, "fenced", call, visible, None, False, 0.0, None)


@pytest.fixture
def task(tmp_path: Path) -> AccelTask:
    (task,) = load_benchmark(str(_task_file(tmp_path, SCALE))).tasks
    assert isinstance(task, AccelTask)
    return task


def _measured(gpu_ms: float, numpy_ms: float) -> dict[str, Any]:
    large = {"correct": True, "gpu_ms": gpu_ms, "numpy_ms": numpy_ms}
    return {"verdict": "passed", "device": "NVIDIA H200", "sizes": {"large": large}}


def test_a_correct_but_slow_answer_hears_its_speed_and_the_loop_goes_on(task: AccelTask) -> None:
    slow = judge_gpu(task, _attempt(RIGHT, _visible("passed", _measured(5.0, 2.0))), 1.0)
    assert not slow.done and slow.correct and slow.speedup == pytest.approx(0.4)
    assert "took 5 ms on the GPU (NVIDIA H200) against NumPy's 2 ms" in slow.feedback
    assert "0.4× NumPy's speed; the target is 1×" in slow.feedback
    fast = judge_gpu(task, _attempt(RIGHT, _visible("passed", _measured(0.5, 2.0))), 1.0)
    assert fast.done and fast.speedup == pytest.approx(4.0)
    # A higher target keeps a 4× answer going.
    assert not judge_gpu(task, _attempt(RIGHT, _visible("passed", _measured(0.5, 2.0))), 8.0).done


def test_the_answer_is_the_first_fast_enough_else_the_fastest_correct(task: AccelTask) -> None:
    wrong = _attempt(WRONG, _visible("failed", {"verdict": "failed", "detail": "bad"}))
    slower = _attempt(RIGHT, _visible("passed", _measured(5.0, 2.0)))
    slow = _attempt(RIGHT, _visible("passed", _measured(3.0, 2.0)))
    fast = _attempt(RIGHT, _visible("passed", _measured(1.0, 2.0)))
    assert choose_final(task, [wrong, slow, fast], 1.0) == 2
    assert choose_final(task, [slower, slow, wrong], 1.0) == 1
    assert choose_final(task, [wrong, wrong], 1.0) == 1


def test_an_exception_is_fed_back_with_the_answers_own_lines(task: AccelTask) -> None:
    stderr = (
        "Traceback (most recent call last):\n"
        '  File "<sample>", line 400, in <module>\n'
        '  File "<answer>", line 5, in scale\n'
        "AttributeError: 'Tensor' object has no attribute 'no_such_method'\n"
    )
    judged = judge_gpu(task, _attempt(RAISES, _visible("failed", None, stderr)), 1.0)
    assert not judged.done and not judged.correct
    assert '"<sample>"' not in judged.feedback
    assert 'File "<answer>", line 5, in scale\n  return x.no_such_method()' in judged.feedback
    assert judged.feedback.rstrip("`\n").endswith("no attribute 'no_such_method'")


def _script(request: dict[str, Any]) -> str:
    """Wrong first (one value off), right once told what the GPU check found."""
    turns = [m for m in request["messages"] if m["role"] == "user"]
    return f"```python\n{WRONG if len(turns) == 1 else RIGHT}\n```"


def _loop(tmp_path: Path, script: Any, strategy: str) -> tuple[list[dict[str, Any]], Path]:
    """`codeduel run` of the GPU task file with `strategy`, answered by `script` over the
    loopback API; the request bodies and the store."""
    pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    db = tmp_path / "r.db"
    with FakeAPI(script) as api:
        argv = ["run", str(_task_file(tmp_path, SCALE)), "--model", "openai-compat/m"]
        argv += ["-M", f"base_url={api.openai_url}", "--strategy", strategy]
        argv += ["--db", str(db), "--no-progress"]
        assert exit_code(argv) == 0
        return [r.body for r in api.posts if r.body], db


def test_repair_feeds_back_the_mismatch_and_the_fixed_answer_scores(tmp_path: Path) -> None:
    bodies, db = _loop(tmp_path, _script, "repair")
    assert len(bodies) == 2
    told = bodies[1]["messages"][-1]["content"]
    assert "On the visible inputs your function is wrong: small input (seed 0)" in told
    assert "first at index (3,)" in told and "max abs error" in told
    con = sqlite3.connect(db)
    assert con.execute("SELECT status, final_attempt FROM samples").fetchall() == [("passed", 1)]
    statuses = con.execute("SELECT status FROM attempts ORDER BY attempt_index").fetchall()
    assert statuses == [("failed",), ("passed",)]


def _fresh(request: dict[str, Any]) -> str:
    """Resample's stand-in: wrong at temperature 0 (the first sample), right when it samples."""
    return f"```python\n{RIGHT if request.get('temperature') else WRONG}\n```"


def test_resample_stops_at_the_first_visibly_correct_gpu_answer(tmp_path: Path) -> None:
    bodies, db = _loop(tmp_path, _fresh, "resample")
    assert len(bodies) == 2
    con = sqlite3.connect(db)
    assert con.execute("SELECT status, final_attempt FROM samples").fetchall() == [("passed", 1)]
