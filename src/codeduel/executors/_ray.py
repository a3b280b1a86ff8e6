"""The Ray executor: programs run in sandbox actors on the nodes of a Ray cluster.

One actor per node holds that node's sandbox pool (`codeduel.sandbox.Sandbox`, the same fork
servers and isolation layers as a local run), with as many workers as the node has CPUs; it
runs that many programs at once. The driver keeps at most two programs per worker in flight
(back-pressure: a run of any size holds a bounded number), sends each to the actor with the
fewest outstanding, and runs again elsewhere a program whose actor or node died: the verdict
the driver records is the one it got back, so nothing is lost and nothing is scored twice.

`--executor ray-gpu` (`RayGpuExecutor`) places one actor per GPU of the cluster instead, each
holding its GPU (`num_gpus=1`: Ray names it in the actor's CUDA_VISIBLE_DEVICES, which its
samples inherit) and running the GPU executor's sandbox there: up to `PROGRAMS_PER_GPU`
programs at once, timing one at a time on its GPU.

The cluster is `$RAY_ADDRESS` (`--ray-address`) or, when none is given, a local Ray started
for the run. A node whose sandbox lacks a required layer is refused as a local one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from typing import Any

from codeduel.errors import ClusterError, OptionError, UnsafeSandboxError
from codeduel.executors._base import Executor
from codeduel.sandbox import ExecResult, Limits

__all__ = ["RayExecutor", "RayGpuExecutor", "ray_missing"]

_log = logging.getLogger(__name__)

IN_FLIGHT_PER_WORKER = 2
"""Programs the driver keeps in flight per sandbox worker of the cluster."""


def ray_missing(what: str = "--executor ray") -> str | None:
    """Why Ray cannot be used here for `what` (one sentence), or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return f"{what} needs Ray, which is not installed: pip install 'codeduel[ray]'"
    return None


class _SandboxActor:
    """A node's sandbox pool, as a Ray actor (threaded: `workers` programs at once)."""

    def __init__(self, workers: int, limits: dict[str, Any]) -> None:
        from codeduel.sandbox import Sandbox

        # Refusal is the driver's decision, made from every node's isolation at once.
        self.sandbox = Sandbox(workers=workers, limits=Limits(**limits), allow_unsafe=True)

    def isolation(self) -> dict[str, Any]:
        import platform

        isolation = self.sandbox.isolation
        return {
            "layers": dict(isolation.layers),
            "missing": list(isolation.missing),
            "reasons": dict(isolation.reasons),
            "launch": isolation.launch,
            "workers": self.sandbox.workers,
            "host": platform.node(),
        }

    def run(self, program: str, timeout_s: float) -> ExecResult:
        return self.sandbox.run(program, timeout_s)

    def close(self) -> None:
        self.sandbox.close()


class _GpuSandboxActor(_SandboxActor):
    """The GPU executor's sandbox on the one GPU Ray gave this actor. A sandbox that cannot
    start there (no GPU seen) is reported by `isolation`, for the driver to refuse in one
    sentence."""

    def __init__(self, workers: int, limits: dict[str, Any]) -> None:
        from codeduel.executors._gpu import GpuExecutor

        self.problem: str | None = None
        self.executor: GpuExecutor | None = None
        try:
            self.executor = GpuExecutor.open(workers, Limits(**limits), allow_unsafe=True)
        except OptionError as exc:
            self.problem = str(exc)
            return
        self.sandbox = self.executor.sandbox

    def isolation(self) -> dict[str, Any]:
        import platform

        import ray

        seen: dict[str, Any] = {"host": platform.node(), "problem": self.problem}
        seen["gpu_ids"] = [str(i) for i in ray.get_gpu_ids()]
        seen["visible"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        return {**super().isolation(), **seen} if self.executor is not None else seen

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()


@dataclasses.dataclass
class _Member:
    actor: Any
    node: str
    workers: int
    gpus: int = 0
    outstanding: int = 0


class RayExecutor(Executor):
    """Programs run on a Ray cluster's nodes, each node's sandbox pool one actor."""

    name = "ray"

    def __init__(self, members: list[_Member], isolation: list[dict[str, Any]]) -> None:
        self.members = members
        self.isolation = isolation
        self._in_flight = IN_FLIGHT_PER_WORKER * sum(m.workers for m in members)
        # One per event loop: a semaphore belongs to the loop that first waits on it.
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _loop_slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self._in_flight))
        return self._slots[1]

    @classmethod
    def open(cls, workers: int, limits: Limits, *, allow_unsafe: bool = False) -> RayExecutor:
        problem = ray_missing(f"--executor {cls.name}")
        if problem is not None:
            raise OptionError(problem)
        import ray

        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS") or None
            try:
                ray.init(address=address, log_to_driver=False, include_dashboard=False)
            except ConnectionError as exc:
                raise OptionError(f"cannot reach the Ray cluster at {address}: {exc}") from None
        nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        members = cls._place(nodes, limits)
        isolation = ray.get([m.actor.isolation.remote() for m in members])
        refusal = cls._refusal(isolation, allow_unsafe)
        if refusal is not None:
            for member in members:
                ray.kill(member.actor)
            raise refusal
        for member, seen in zip(members, isolation, strict=True):
            seen["gpus"] = member.gpus
        return cls(members, isolation)

    @classmethod
    def _place(cls, nodes: list[dict[str, Any]], limits: Limits) -> list[_Member]:
        """One sandbox actor per node with a CPU, with as many workers as it has CPUs."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(_SandboxActor)
        members = []
        for node in nodes:
            resources = node.get("Resources", {})
            cpus = int(resources.get("CPU", 0))
            if cpus < 1:
                continue
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            actor = remote.options(
                num_cpus=0, max_concurrency=cpus + 2, scheduling_strategy=strategy
            ).remote(cpus, dataclasses.asdict(limits))
            members.append(_Member(actor, node["NodeID"], cpus, int(resources.get("GPU", 0))))
        if not members:
            raise OptionError("the Ray cluster has no live node with a CPU")
        return members

    @staticmethod
    def _refusal(isolation: list[dict[str, Any]], allow_unsafe: bool) -> Exception | None:
        """Why these actors cannot run untrusted programs (the first node's reason), or None."""
        unsafe = [i for i in isolation if i["missing"]]
        if not unsafe or allow_unsafe:
            return None
        node = unsafe[0]
        why = "; ".join(f"{n}: {node['reasons'].get(n)}" for n in node["missing"])
        return UnsafeSandboxError(
            f"the sandbox on Ray node {node['host']} lacks isolation that untrusted code "
            f"needs ({why}); see `codeduel doctor` there, or pass --unsafe-sandbox"
        )

    async def run(self, program: str, timeout_s: float) -> ExecResult:
        import ray

        dead = ClusterError(
            "every node of the Ray cluster that ran programs died; --resume continues"
        )
        if not self.members:
            raise dead
        async with self._loop_slots():
            while True:
                if not self.members:
                    raise dead
                member = min(self.members, key=lambda m: m.outstanding / m.workers)
                member.outstanding += 1
                try:
                    result: ExecResult = await member.actor.run.remote(program, timeout_s)
                    return result
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                    # The actor or its node died with the program in it: run it elsewhere.
                    if member in self.members:
                        self.members.remove(member)
                    _log.warning(
                        "a Ray node's sandbox died with a program in it; running it on another node"
                    )
                finally:
                    member.outstanding -= 1

    @property
    def provenance(self) -> dict[str, Any]:
        import ray

        first = self.isolation[0]
        return {
            "layers": first["layers"],
            "missing": sorted({n for i in self.isolation for n in i["missing"]}),
            "launch": first["launch"],
            "cluster": {
                "ray": ray.__version__,
                "nodes": [
                    {k: i[k] for k in ("host", "workers", "gpus", "launch", "gpu_ids") if k in i}
                    for i in self.isolation
                ],
            },
        }

    def close(self) -> None:
        import ray

        for member in self.members:
            with contextlib.suppress(Exception):  # a dead node's actor: nothing to close
                ray.get(member.actor.close.remote(), timeout=30)
            ray.kill(member.actor)
        self.members = []


class RayGpuExecutor(RayExecutor):
    """Programs run on a Ray cluster's GPUs: one actor per GPU, holding it (`num_gpus=1`),
    with the GPU executor's sandbox (up to `PROGRAMS_PER_GPU` programs at once, or the node's
    CPUs per GPU where fewer, timing one at a time)."""

    name = "ray-gpu"

    @classmethod
    def _place(cls, nodes: list[dict[str, Any]], limits: Limits) -> list[_Member]:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from codeduel.executors._gpu import PROGRAMS_PER_GPU

        remote = ray.remote(_GpuSandboxActor)
        members = []
        for node in nodes:
            resources = node.get("Resources", {})
            gpus = int(resources.get("GPU", 0))
            programs = max(1, min(PROGRAMS_PER_GPU, int(resources.get("CPU", 0)) // max(gpus, 1)))
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            for _ in range(gpus):
                actor = remote.options(
                    num_cpus=0,
                    num_gpus=1,
                    max_concurrency=programs + 2,
                    scheduling_strategy=strategy,
                ).remote(programs, dataclasses.asdict(limits))
                members.append(_Member(actor, node["NodeID"], programs, 1))
        if not members:
            raise OptionError(
                "--executor ray-gpu needs a Ray cluster with GPUs, and this one has none "
                "(`ray status` lists them; `ray start --num-gpus N` declares them)"
            )
        return members

    @staticmethod
    def _refusal(isolation: list[dict[str, Any]], allow_unsafe: bool) -> Exception | None:
        for seen in isolation:
            if seen["problem"] is not None:
                gpu = ",".join(seen["gpu_ids"]) or "?"
                return OptionError(
                    f"the GPU sandbox on Ray node {seen['host']} (GPU {gpu}) did not start: "
                    f"{seen['problem']}"
                )
        return RayExecutor._refusal(isolation, allow_unsafe)
