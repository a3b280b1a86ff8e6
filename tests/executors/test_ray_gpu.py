"""`--executor ray-gpu`: one GPU sandbox actor per GPU of a Ray cluster. Here the cluster
declares two GPUs that this machine lacks: the placement (one actor per GPU, each seeing
only its own in CUDA_VISIBLE_DEVICES) is real, and the sandboxes refuse to start without a
device node, in one sentence. Programs on a real GPU: bench/ray_gpu.py, docs/cluster.md."""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from typing import Any

import pytest

from codeduel.errors import OptionError
from codeduel.executors import open_executor
from codeduel.sandbox import Limits


@pytest.fixture(scope="module")
def ray_two_gpus() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="ray is in the dev extras (codeduel[ray])")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_each_gpu_gets_its_own_actor_which_sees_only_that_gpu(ray_two_gpus: Any) -> None:
    from codeduel.executors._ray import RayGpuExecutor

    ray = ray_two_gpus
    nodes = [n for n in ray.nodes() if n["Alive"]]
    members = RayGpuExecutor._place(nodes, Limits())
    try:
        seen = ray.get([m.actor.isolation.remote() for m in members])
    finally:
        for member in members:
            ray.kill(member.actor)
    assert len(members) == 2 and all(m.gpus == 1 for m in members)
    # Two CPUs for two GPUs: one program at a time on each.
    assert [m.workers for m in members] == [1, 1]
    assert sorted(s["visible"] for s in seen) == ["0", "1"]
    assert [s["gpu_ids"] for s in seen] == [[s["visible"]] for s in seen]


@pytest.mark.skipif(bool(glob.glob("/dev/nvidia[0-9]*")), reason="this machine has a GPU")
def test_a_gpu_actor_on_a_node_without_the_gpu_refuses_in_one_sentence(
    ray_two_gpus: Any,
) -> None:
    with pytest.raises(OptionError) as refused:
        open_executor("ray-gpu", workers=2)
    message = str(refused.value)
    assert message.startswith("the GPU sandbox on Ray node ")
    assert message.endswith(
        "did not start: --executor gpu needs an NVIDIA GPU, and this machine shows none "
        "(/dev/nvidia*)"
    )
    assert "\n" not in message
    # The refused actors are killed: both GPUs come free again (Ray frees them shortly after).
    deadline = time.monotonic() + 20
    while ray_two_gpus.available_resources().get("GPU") != 2.0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_two_gpus.available_resources().get("GPU") == 2.0
