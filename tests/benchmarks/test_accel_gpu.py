"""GPU tasks on a real GPU, through the GPU executor: CUDA starts in the sandbox, references
are timed, and each way of faking speed that needs a device is caught. Skipped without one
(CI has none); run on the GPU machine (see docs/results/accel/)."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest

from codeduel.benchmarks.accel import AccelSpec, AccelTask, parse_accel_rows, parse_report
from codeduel.executors import Executor, gpu_count, open_executor
from codeduel.sandbox import ExecResult
from tests.benchmarks.test_accel import SCALE

pytestmark = pytest.mark.skipif(gpu_count() == 0, reason="needs an NVIDIA GPU")

CUPY_SCALE = {
    **SCALE,
    "framework": "cupy",
    "gpu_reference": "import cupy as cp\n\n\ndef scale(x, a):\n    return x * a + 1.0\n",
}


@pytest.fixture(scope="module")
def gpu() -> Iterator[Executor]:
    # A GPU machine whose runtime lacks a required layer runs these with it named in the output.
    unsafe = os.environ.get("CODEDUEL_TEST_UNSAFE_SANDBOX") == "1"
    with open_executor("gpu", workers=1, allow_unsafe=unsafe) as executor:
        print("sandbox:", executor.provenance)
        yield executor


def _run(executor: Executor, programs: list[str]) -> list[ExecResult]:
    return asyncio.run(executor.run_many([(p, 300.0) for p in programs]))


def _task(row: dict[str, object]) -> AccelTask:
    (task,) = parse_accel_rows([("test", row)])
    return task


@pytest.mark.parametrize("framework", ["torch", "cupy"])
def test_cuda_starts_in_the_sandbox(gpu: Executor, framework: str) -> None:
    program = {
        "torch": "import torch\nassert torch.cuda.is_available()\n"
        "assert torch.ones(4, device='cuda').sum().item() == 4\n",
        "cupy": "import cupy\nassert int(cupy.ones(4).sum()) == 4\n",
    }[framework]
    (result,) = _run(gpu, [program])
    assert result.status == "passed", result.stderr[-2000:]


@pytest.mark.parametrize("row", [SCALE, CUPY_SCALE], ids=["torch", "cupy"])
def test_the_reference_is_checked_and_timed_at_every_size(
    gpu: Executor, row: dict[str, object]
) -> None:
    task = _task(row)
    program = task.reference_program()
    assert program is not None
    (result,) = _run(gpu, [program])
    assert result.status == "passed", result.stderr[-2000:]
    report = parse_report(result.stdout)
    assert report is not None and report["gpu"] is True
    for row_ in report["sizes"].values():
        assert row_["correct"] and row_["gpu_ms"] > 0 and row_["numpy_ms"] > 0
        assert row_["peak_bytes"] >= 0


TORCH_HOSTILE = {
    # Caches its result by the input's address: the timed calls get new values in place.
    "cached across calls": (
        "_c = {}\n\n\ndef scale(x, a):\n    k = x.data_ptr()\n    if k not in _c:\n"
        "        _c[k] = x * a + 1.0\n    return _c[k].clone()\n",
        "timed call|differ from the reference",
    ),
    "replaced synchronize": (
        "import torch\ntorch.cuda.synchronize = lambda *a, **k: None\n\n\n"
        "def scale(x, a):\n    return x * a + 1.0\n",
        "replaced",
    ),
    "host array": (
        "def scale(x, a):\n    return (x * a + 1.0).cpu()\n",
        "is on cpu, not on cuda",
    ),
    "aliased output": (
        "def scale(x, a):\n    return x.mul_(a).add_(1.0)\n",
        "shares memory with an input",
    ),
}
CUPY_HOSTILE = {
    "host array": (
        "import cupy as cp\n\n\ndef scale(x, a):\n    return cp.asnumpy(x * a + 1.0)\n",
        "is a NumPy array on the host",
    ),
    # (CuPy's Device is an immutable type: its synchronize cannot be replaced at all.)
    "replaced timer": (
        "import cupy as cp\ncp.cuda.get_elapsed_time = lambda start, end: 0.001\n\n\n"
        "def scale(x, a):\n    return x * a + 1.0\n",
        "replaced",
    ),
    "cached across calls": (
        "_c = {}\n\n\ndef scale(x, a):\n    k = x.data.ptr\n    if k not in _c:\n"
        "        _c[k] = x * a + 1.0\n    return _c[k].copy()\n",
        "timed call|differ from the reference",
    ),
}


@pytest.mark.parametrize(
    ("row", "hostile"), [(SCALE, TORCH_HOSTILE), (CUPY_SCALE, CUPY_HOSTILE)], ids=["torch", "cupy"]
)
def test_each_way_of_faking_speed_is_caught(
    gpu: Executor, row: dict[str, object], hostile: dict[str, tuple[str, str]]
) -> None:
    task = _task(row)
    results = _run(gpu, [task.program(answer) for answer, _ in hostile.values()])
    for (name, (_, reason)), result in zip(hostile.items(), results, strict=True):
        assert result.status == "failed", (name, result.status, result.stderr[-1500:])
        assert re.search(reason, result.detail), (name, result.detail)


def test_work_left_on_another_stream_is_timed(gpu: Executor) -> None:
    """An answer that returns while its kernel still runs on a side stream is timed to the
    kernel's end: the harness waits for the whole device before its closing event."""
    task = _task(SCALE)
    honest = "def scale(x, a):\n    return x * a + 1.0\n"
    sneaky = (
        "import torch\n_side = torch.cuda.Stream()\n\n\ndef scale(x, a):\n"
        "    y = torch.empty_like(x)\n    _side.wait_stream(torch.cuda.current_stream())\n"
        "    with torch.cuda.stream(_side):\n        torch.cuda._sleep(20_000_000)\n"
        "        y.copy_(x * a + 1.0)\n    return y\n"
    )
    fast, slow = _run(gpu, [task.program(honest), task.program(sneaky)])
    assert fast.status == slow.status == "passed", (fast.stderr[-800:], slow.stderr[-800:])
    fast_ms = parse_report(fast.stdout)["sizes"]["small"]["gpu_ms"]  # type: ignore[index]
    slow_ms = parse_report(slow.stdout)["sizes"]["small"]["gpu_ms"]  # type: ignore[index]
    # 20M cycles at under 2 GHz sleep over 10 ms; the honest call takes microseconds.
    assert slow_ms > 5.0 > fast_ms


@pytest.mark.parametrize("framework", ["torch", "cupy"])
def test_an_answer_over_the_memory_budget_fails(gpu: Executor, framework: str) -> None:
    row = SCALE if framework == "torch" else CUPY_SCALE
    task = _task(row)
    task = replace(task, accel=replace(task.spec, memory_budget_mb=1.0))
    assert isinstance(task.accel, AccelSpec)
    # Builds an (n, 64) intermediate where an (n,) result needs none: 25.6 MB on large.
    wasteful = {
        "torch": "import torch\n\n\ndef scale(x, a):\n"
        "    big = torch.zeros((x.shape[0], 64), dtype=x.dtype, device=x.device)\n"
        "    return (big + x[:, None] * a + 1.0)[:, 0].clone()\n",
        "cupy": "import cupy\n\n\ndef scale(x, a):\n"
        "    big = cupy.zeros((x.shape[0], 64), dtype=x.dtype)\n"
        "    return (big + x[:, None] * a + 1.0)[:, 0].copy()\n",
    }[framework]
    (result,) = _run(gpu, [task.program(wasteful)])
    assert result.status == "failed" and "over the task's budget" in result.detail, (
        result.detail,
        result.stderr[-800:],
    )


def test_programs_run_together_but_time_one_at_a_time() -> None:
    """Four reference runs at once on one GPU: their timing windows never overlap."""
    unsafe = os.environ.get("CODEDUEL_TEST_UNSAFE_SANDBOX") == "1"
    task = _task(SCALE)
    with open_executor("gpu", workers=4, allow_unsafe=unsafe) as executor:
        assert executor.provenance["programs"] == 4
        results = _run(executor, [task.reference_program() or ""] * 4)
    windows = []
    for result in results:
        assert result.status == "passed", result.stderr[-2000:]
        report = parse_report(result.stdout)
        assert report is not None
        windows.append(tuple(report["timed_at"]))
    windows.sort()
    assert all(end <= nxt for (_, end), (nxt, _) in itertools.pairwise(windows))
