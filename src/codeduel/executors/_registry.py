"""Executors by name, as `--executor` chooses them."""

from __future__ import annotations

from codeduel.errors import OptionError
from codeduel.executors._base import Executor
from codeduel.executors._gpu import GpuExecutor
from codeduel.executors._local import LocalExecutor
from codeduel.executors._ray import RayExecutor, RayGpuExecutor
from codeduel.sandbox import Limits

__all__ = ["EXECUTORS", "open_executor"]

EXECUTORS: dict[str, type[Executor]] = {
    LocalExecutor.name: LocalExecutor,
    GpuExecutor.name: GpuExecutor,
    RayExecutor.name: RayExecutor,
    RayGpuExecutor.name: RayGpuExecutor,
}
"""The executors `open_executor` knows, by name."""


def open_executor(
    name: str = "local",
    *,
    workers: int,
    limits: Limits | None = None,
    allow_unsafe: bool = False,
) -> Executor:
    """The executor `name`, started; raises `UnsafeSandboxError` where it cannot isolate
    programs (unless `allow_unsafe`)."""
    cls = EXECUTORS.get(name)
    if cls is None:
        raise OptionError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
    return cls.open(workers, limits or Limits(), allow_unsafe=allow_unsafe)
