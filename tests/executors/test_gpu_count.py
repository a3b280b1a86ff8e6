"""How many GPUs the GPU executor counts: device nodes, narrowed by CUDA_VISIBLE_DEVICES
(as Ray sets it for an actor holding one GPU)."""

from __future__ import annotations

import pytest

from codeduel.executors import _gpu, gpu_count

NODES = ("/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2", "/dev/nvidiactl")


@pytest.mark.parametrize(
    ("visible", "count"),
    [
        (None, 3),
        ("1", 1),
        ("0,2", 2),
        ("GPU-5e1c0a2b-0000-0000-0000-000000000000", 1),
        ("", 0),
        ("-1", 0),
        ("0,-1,2", 1),  # CUDA stops at the first entry it cannot take
        ("0,1,2,3,4", 3),  # no more than the device nodes
    ],
)
def test_visible_devices_narrow_the_count(
    monkeypatch: pytest.MonkeyPatch, visible: str | None, count: int
) -> None:
    monkeypatch.setattr(_gpu, "gpu_devices", lambda: NODES)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert gpu_count() == count
