"""The GPU executor: the sandbox with this machine's NVIDIA GPUs visible. Several programs run
at once (their correctness checks are mostly NumPy on the CPU), but only one times on a GPU at
a time: the harness holds that GPU's lock file while it times."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import replace
from typing import Any

from codeduel.errors import OptionError
from codeduel.executors._local import LocalExecutor
from codeduel.sandbox import Limits, Sandbox, gpu_devices

__all__ = ["PROGRAMS_PER_GPU", "GpuExecutor", "gpu_count"]

_GPU_NODE = re.compile(r"/dev/nvidia(\d+)$")
PROGRAMS_PER_GPU = 8
"""Programs at once per GPU, at most (and no more than the workers asked for)."""


def gpu_count() -> int:
    """NVIDIA GPUs this process may use: those with a device node here, or as many as
    CUDA_VISIBLE_DEVICES names where it is set (as a Ray actor's is), counted up to its first
    entry CUDA would not take (`-1` hides every GPU)."""
    nodes = sum(1 for node in gpu_devices() if _GPU_NODE.match(node))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return nodes
    named = 0
    for entry in visible.split(","):
        entry = entry.strip()
        if not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        named += 1
    return min(nodes, named)


class GpuExecutor(LocalExecutor):
    """Programs run in the sandbox with the GPUs' device nodes and driver libraries, without
    the address-space limit (CUDA reserves far more than it uses), with room for the threads
    and files the CUDA runtime opens; up to `PROGRAMS_PER_GPU` at once per GPU, timing one at
    a time on each (the lock files of `Sandbox(gpu_lock=…)`)."""

    name = "gpu"

    def __init__(self, sandbox: Sandbox, lock_dir: str) -> None:
        super().__init__(sandbox)
        self.lock_dir = lock_dir

    @classmethod
    def open(cls, workers: int, limits: Limits, *, allow_unsafe: bool = False) -> GpuExecutor:
        gpus = gpu_count()
        if gpus == 0:
            raise OptionError(
                "--executor gpu needs an NVIDIA GPU, and this machine shows none (/dev/nvidia*)"
            )
        gpu_limits = replace(
            limits,
            memory_mb=None,
            processes=max(limits.processes, 1024),
            open_files=max(limits.open_files, 1024),
            cpu_s=limits.cpu_s if limits.cpu_s is not None else 3600,
        )
        lock_dir = tempfile.mkdtemp(prefix="codeduel-gpu-")
        os.chmod(lock_dir, 0o755)
        for index in range(gpus):
            path = os.path.join(lock_dir, f"gpu{index}.lock")
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        programs = max(1, min(workers, PROGRAMS_PER_GPU * gpus))
        try:
            box = Sandbox(
                workers=programs,
                limits=gpu_limits,
                allow_unsafe=allow_unsafe,
                gpu=True,
                gpu_lock=lock_dir,
            )
        except BaseException:
            shutil.rmtree(lock_dir, ignore_errors=True)
            raise
        return cls(box, lock_dir)

    @property
    def provenance(self) -> dict[str, Any]:
        return {**super().provenance, "gpus": gpu_count(), "programs": self.sandbox.workers}

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.lock_dir, ignore_errors=True)
