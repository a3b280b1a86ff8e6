"""What the loops learn from a GPU task's visible run: the mismatch, the exception, or the
speed the GPU measured against NumPy's, and whether the answer is good enough to stop.

The visible run (`AccelTask.visible_program`) checks every size on the visible seeds and
times the largest, with NumPy timed on the same inputs; nothing of the hidden seeds is in it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from codeduel.benchmarks import Task
from codeduel.benchmarks.accel import AccelTask, parse_report
from codeduel.scoring import Attempt, final_index

__all__ = ["DEFAULT_SPEEDUP", "GpuVisible", "choose_final", "judge_gpu"]

DEFAULT_SPEEDUP = 1.0
"""A GPU answer is good enough once it is correct and this many times NumPy's speed."""

_FRAME = re.compile(r'^\s*File "<answer>", line (\d+)')
_MAX_LINES = 14


@dataclass(frozen=True)
class GpuVisible:
    """A GPU task's visible run, judged: `done` (the loop may stop), `correct`, the speedup
    over NumPy on the largest size (None: not measured, e.g. no GPU), and the feedback."""

    done: bool
    correct: bool
    speedup: float | None
    feedback: str


def judge_gpu(task: AccelTask, attempt: Attempt, target: float) -> GpuVisible:
    result = attempt.visible
    if result is None:
        return GpuVisible(True, False, None, "")
    report = parse_report(result.stdout) or {}
    if result.status == "passed":
        largest = task.spec.sizes[-1]
        row = report.get("sizes", {}).get(largest, {})
        gpu_ms, numpy_ms = row.get("gpu_ms"), row.get("numpy_ms")
        if not gpu_ms or numpy_ms is None:
            return GpuVisible(True, True, None, "")  # correct; no speed to learn from here
        speedup = numpy_ms / gpu_ms
        if speedup >= target:
            return GpuVisible(True, True, speedup, "")
        feedback = (
            f"Your function is correct on the visible inputs, but slow: on the {largest} input "
            f"it took {gpu_ms:.3g} ms on the GPU ({report.get('device', 'GPU')}) against "
            f"NumPy's {numpy_ms:.3g} ms on the CPU, {speedup:.2g}× NumPy's speed; the target "
            f"is {target:g}×. Make it faster and keep it correct: keep every step on the "
            "device, vectorise instead of looping in Python, and avoid host synchronisation."
        )
        return GpuVisible(False, True, speedup, feedback)
    if report.get("verdict") == "failed":
        feedback = f"On the visible inputs your function is wrong: {report.get('detail', '')}."
    elif result.status == "timeout":
        feedback = (
            f"Your function did not finish on the visible inputs within the time limit "
            f"({result.detail})."
        )
    else:
        feedback = (
            "Running your function on the visible inputs raised an error:\n```\n"
            f"{_answer_traceback(attempt.code, result.stderr) or result.detail}\n```"
        )
    return GpuVisible(False, False, None, feedback)


def _answer_traceback(code: str, stderr: str) -> str:
    """The answer's own frames (with their source lines) and the exception: the harness's
    frames are left out."""
    source = code.splitlines()
    lines = stderr.splitlines()
    out = []
    for line in lines:
        frame = _FRAME.match(line)
        if frame is not None:
            out.append(line.strip())
            number = int(frame[1])
            if 0 < number <= len(source):
                out.append("  " + source[number - 1].strip())
    errors = [ln for ln in lines if ln and not ln[0].isspace() and not ln.startswith("Traceback")]
    if errors:
        out.append(errors[-1])
    return "\n".join(out[-_MAX_LINES:])


def choose_final(task: Task, attempts: Sequence[Attempt], target: float) -> int | None:
    """A GPU loop's answer, from the visible runs alone: the first good enough, else the
    fastest correct one, else the latest answered (None for other tasks: `final_index`)."""
    if not isinstance(task, AccelTask):
        return None
    judged = [(i, judge_gpu(task, a, target)) for i, a in enumerate(attempts) if a.answered]
    for i, verdict in judged:
        if verdict.done and verdict.correct:
            return i
    correct = [(v.speedup or 0.0, i) for i, v in judged if v.correct]
    if correct:
        return max(correct)[1]
    return final_index(attempts)
