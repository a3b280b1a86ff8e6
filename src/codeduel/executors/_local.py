"""The local executor: this machine's sandbox pool (`codeduel.sandbox.Sandbox`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from codeduel.executors._base import Executor
from codeduel.sandbox import ExecResult, Limits, Sandbox

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Programs run in the sandbox's pre-warmed workers, `workers` at a time."""

    name = "local"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @classmethod
    def open(cls, workers: int, limits: Limits, *, allow_unsafe: bool = False) -> LocalExecutor:
        return cls(Sandbox(workers=workers, limits=limits, allow_unsafe=allow_unsafe))

    async def run(self, program: str, timeout_s: float) -> ExecResult:
        # On a worker thread, so generation goes on while the program runs.
        return await asyncio.to_thread(self.sandbox.run, program, timeout_s)

    async def run_many(self, jobs: Sequence[tuple[str, float]]) -> list[ExecResult]:
        # `Sandbox.map` keeps every worker one program ahead: faster than one `run` per job.
        return await asyncio.to_thread(lambda: list(self.sandbox.map(jobs)))

    @property
    def provenance(self) -> dict[str, Any]:
        isolation = self.sandbox.isolation
        return {
            "layers": dict(isolation.layers),
            "missing": list(isolation.missing),
            "launch": isolation.launch,
        }

    def close(self) -> None:
        self.sandbox.close()
