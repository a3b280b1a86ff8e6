"""The records that go into and come out of the sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every sample process (and its children)."""

    memory_mb: int | None = 4096
    """RLIMIT_AS: address space per process; None sets none (CUDA reserves far more address
    space than it uses, so a GPU sample runs without this limit)."""
    cpu_s: int | None = None
    """RLIMIT_CPU; None means ceil(timeout) + 1, so the wall-clock timeout normally fires first."""
    file_size_mb: int = 16
    """RLIMIT_FSIZE, and the size of each private tmpfs (scratch, /tmp, /dev/shm)."""
    open_files: int = 64
    """RLIMIT_NOFILE."""
    processes: int = 32
    """RLIMIT_NPROC, counted per sample when it runs in its own user namespace."""
    output_bytes: int = 16384
    """How much of stdout and of stderr is kept; the rest is read and discarded."""


@dataclass(frozen=True)
class ExecResult:
    """How one program ended."""

    status: Status
    detail: str
    """Why, in one capped line: the exception, the signal, the timeout; empty when passed."""
    duration_s: float
    stdout: str = ""
    """The first `Limits.output_bytes` of the program's stdout."""
    stderr: str = ""
    """The first `Limits.output_bytes` of the program's stderr (tracebacks land here)."""
