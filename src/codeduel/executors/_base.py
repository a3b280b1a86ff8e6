"""The executor interface: programs with limits in, results out, asynchronously."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any, ClassVar

from codeduel.sandbox import ExecResult, Limits

__all__ = ["Executor"]


class Executor(abc.ABC):
    """Runs untrusted programs, each to a verdict (`ExecResult`) within its time limit.

    An executor isolates every program as the sandbox does (`docs/security.md`): where it
    cannot, opening it refuses (`UnsafeSandboxError`) unless the caller allowed unsafe runs.
    """

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def open(cls, workers: int, limits: Limits, *, allow_unsafe: bool = False) -> Executor:
        """Start an executor running up to `workers` programs at once under `limits`."""

    @abc.abstractmethod
    async def run(self, program: str, timeout_s: float) -> ExecResult:
        """Run one complete program; many calls may be in flight at once."""

    async def run_many(self, jobs: Sequence[tuple[str, float]]) -> list[ExecResult]:
        """Run (program, timeout_s) jobs; results in input order. Executors that batch
        (keeping each worker a program ahead) override this."""
        return list(await asyncio.gather(*(self.run(p, t) for p, t in jobs)))

    @property
    @abc.abstractmethod
    def provenance(self) -> dict[str, Any]:
        """How programs are isolated here, stored with each run: `layers` (name → active),
        `missing` (required layers that are off), `launch` (how workers start)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the programs still running and release the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
