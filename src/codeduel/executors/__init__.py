"""Executors: where programs run. Submit a program with its time limit, await its result.

Everything above this layer (scoring, strategies, the runner) sees only `Executor`; the local
sandbox pool is one executor, and others (GPU-timed, a cluster) are its siblings, chosen by
name with `open_executor` (the CLI's `--executor`), with no change above them.
"""

from __future__ import annotations

from codeduel.executors._base import Executor
from codeduel.executors._gpu import GpuExecutor, gpu_count
from codeduel.executors._local import LocalExecutor
from codeduel.executors._registry import EXECUTORS, open_executor

__all__ = [
    "EXECUTORS",
    "Executor",
    "GpuExecutor",
    "LocalExecutor",
    "gpu_count",
    "open_executor",
]
