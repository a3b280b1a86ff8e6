"""The GPU executor: the sandbox with this machine's NVIDIA GPUs visible, one program at a
time on each, so that a program's timings never share its GPU with another."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from codeduel.errors import OptionError
from codeduel.executors._local import LocalExecutor
from codeduel.sandbox import Limits, Sandbox, gpu_devices

__all__ = ["GpuExecutor", "gpu_count"]

_GPU_NODE = re.compile(r"/dev/nvidia(\d+)$")


def gpu_count() -> int:
    """NVIDIA GPUs this process may open (CUDA_VISIBLE_DEVICES is left to CUDA)."""
    return sum(1 for node in gpu_devices() if _GPU_NODE.match(node))


class GpuExecutor(LocalExecutor):
    """Programs run in the sandbox with the GPUs' device nodes and driver libraries, without
    the address-space limit (CUDA reserves far more than it uses), with room for the threads
    and files the CUDA runtime opens; one program per GPU at a time."""

    name = "gpu"

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
        box = Sandbox(workers=gpus, limits=gpu_limits, allow_unsafe=allow_unsafe, gpu=True)
        return cls(box)

    @property
    def provenance(self) -> dict[str, Any]:
        return {**super().provenance, "gpus": self.sandbox.workers}
