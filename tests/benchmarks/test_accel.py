"""GPU tasks: the task-file schema, and the harness's checks, run on the CPU build of torch."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codeduel.benchmarks import _accel_harness, load_benchmark
from codeduel.benchmarks.accel import HIDDEN_SEEDS, VISIBLE_SEEDS, AccelTask, parse_report
from codeduel.errors import BenchmarkError
from codeduel.executors import LocalExecutor
from codeduel.sandbox import ExecResult, Sandbox
from tests.cli_run import exit_code

SCALE = {
    "task_id": "scale",
    "entry_point": "scale",
    "reference": (
        "import numpy as np\n\n\ndef scale(x, a):\n"
        '    """x * a + 1 for a 1-D float32 array x and a float a."""\n'
        "    return (x * a + 1.0).astype(np.float32)\n"
    ),
    "inputs": (
        "import numpy as np\n\n\ndef make_inputs(size, seed):\n"
        "    rng = np.random.default_rng(seed)\n"
        "    n = {'small': 10, 'medium': 1000, 'large': 100000}[size]\n"
        "    return (rng.standard_normal(n, dtype=np.float32), 2.0)\n"
    ),
    "gpu_reference": "import torch\n\n\ndef scale(x, a):\n    return x * a + 1.0\n",
}


def _task_file(tmp_path: Path, *rows: dict[str, object]) -> Path:
    path = tmp_path / "gpu.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_task_file_of_gpu_tasks_is_recognised(tmp_path: Path) -> None:
    bench = load_benchmark(str(_task_file(tmp_path, SCALE)))
    (task,) = bench.tasks
    assert isinstance(task, AccelTask)
    assert task.spec.framework == "torch" and task.spec.sizes == ("small", "medium", "large")
    # The prompt states the contract and shows the NumPy reference.
    assert "torch tensor on the GPU" in task.prompt and "def scale(x, a):" in task.prompt
    assert task.reference_solution() == SCALE["gpu_reference"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"entry_point": "not an id"}, "is not a Python identifier"),
        ({"framework": "jax"}, "framework must be torch or cupy"),
        ({"inputs": "def make(size, seed):\n    return ()\n"}, "does not define a function"),
        ({"rtol": "tight"}, "wrong type"),
        ({"sizes": []}, "sizes must be a non-empty list"),
    ],
)
def test_a_malformed_gpu_task_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, object], message: str
) -> None:
    path = _task_file(tmp_path, {**SCALE, **change})
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark(str(path))
    code = exit_code(["run", str(path), "--db", str(tmp_path / "r.db"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]


def test_gpu_tasks_and_tested_tasks_do_not_mix(tmp_path: Path) -> None:
    tested = {"task_id": "t", "prompt": "def f():\n", "entry_point": "f", "test": "assert f()"}
    with pytest.raises(BenchmarkError, match="mixes GPU tasks"):
        load_benchmark(str(_task_file(tmp_path, tested, SCALE)))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    with Sandbox(workers=2) as box:
        yield box


# What a hostile or careless answer may do, and the sentence the harness answers it with.
HOSTILE = {
    "wrong": ("def scale(x, a):\n    return x * a\n", "values differ from the reference"),
    "host array": (
        "def scale(x, a):\n    return x.numpy() * a + 1\n",
        "is a NumPy array on the host, not a torch tensor",
    ),
    "aliased output": (
        "def scale(x, a):\n    x.mul_(a).add_(1.0)\n    return x\n",
        "shares memory with an input",
    ),
    "patched timer": (
        "import time\ntime.perf_counter = lambda: 0.0\n\n\n"
        "def scale(x, a):\n    return x * a + 1\n",
        "replaced time.perf_counter",
    ),
    "wrong shape": ("def scale(x, a):\n    return (x * a + 1)[:5]\n", "shape (5,)"),
}


def _run(box: Sandbox, programs: list[str]) -> list[ExecResult]:
    return asyncio.run(LocalExecutor(box).run_many([(p, 120.0) for p in programs]))


def test_the_reference_passes_and_each_hostile_answer_fails_with_its_reason(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    (task,) = load_benchmark(str(_task_file(tmp_path, SCALE))).tasks
    assert isinstance(task, AccelTask)
    reference = task.reference_solution()
    assert reference is not None
    answers = [reference, *(answer for answer, _ in HOSTILE.values())]
    results = _run(sandbox, [task.program(a) for a in answers])
    first, *rest = results
    assert first.status == "passed", first.stderr
    report = parse_report(first.stdout)
    assert report is not None and report["verdict"] == "passed" and report["gpu"] is False
    # On the CPU every size is checked and nothing is timed: no speed is claimed.
    assert set(report["sizes"]) == {"small", "medium", "large"}
    assert all(row["correct"] and "gpu_ms" not in row for row in report["sizes"].values())
    for (name, (_, reason)), result in zip(HOSTILE.items(), rest, strict=True):
        assert result.status == "failed", name
        assert reason in result.detail, (name, result.detail)
        hostile_report = parse_report(result.stdout)
        assert hostile_report is not None and hostile_report["verdict"] == "failed"


def test_the_visible_program_checks_every_size_on_the_visible_seeds_only(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    (task,) = load_benchmark(str(_task_file(tmp_path, SCALE))).tasks
    assert isinstance(task, AccelTask)
    # Right on the visible seeds' inputs (recognised by their first value), wrong elsewhere:
    # the visible check passes at every size, the hidden one does not.
    firsts = [
        float(np.random.default_rng(seed).standard_normal(1, dtype=np.float32)[0])
        for seed in VISIBLE_SEEDS
    ]
    partial = (
        "def scale(x, a):\n    y = x * a + 1\n"
        f"    if float(x[0]) not in {firsts!r}:\n        y[0] += 1\n    return y\n"
    )
    visible, hidden = _run(sandbox, [task.visible_program(partial), task.program(partial)])
    assert visible.status == "passed", visible.detail
    report = parse_report(visible.stdout)
    assert report is not None and set(report["sizes"]) == {"small", "medium", "large"}
    assert hidden.status == "failed" and "small input (seed 1009)" in hidden.detail


def test_the_gpu_executor_is_refused_in_one_line_without_a_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codeduel.executors import gpu_count

    if gpu_count():
        pytest.skip("this machine has a GPU")
    argv = ["run", str(_task_file(tmp_path, SCALE)), "--executor", "gpu", "--no-progress"]
    code = exit_code([*argv, "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        "codeduel: error: --executor gpu needs an NVIDIA GPU, and this machine shows none "
        "(/dev/nvidia*)"
    ]


def test_cupy_tasks_are_refused_in_one_line_where_cupy_cannot_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy imports here")
    path = _task_file(tmp_path, {**SCALE, "framework": "cupy"})
    db = tmp_path / "r.db"
    code = exit_code(["run", str(path), "--db", str(db), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        "codeduel: error: accel-cupy cannot be scored here: `import cupy` fails where samples "
        "run (ModuleNotFoundError: No module named 'cupy')"
    ]
    # Refused before a run was stored.
    from codeduel.store import Store

    with Store(db) as store:
        assert store.latest_unfinished("gpu") is None


def test_doctor_says_which_gpu_frameworks_a_sample_sees(
    capsys: pytest.CaptureFixture[str],
) -> None:
    torch = pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    assert exit_code(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "GPU frameworks a sample sees" in out
    assert f"torch  {torch.__version__}" in out
    assert "cupy" in out


def test_a_gpu_sandbox_mounts_proc_writable_and_the_default_read_only() -> None:
    """CUDA's cuInit fails with 304 on a read-only /proc (found on the H200, docs/results/accel/
    unshare.txt): the GPU sandbox mounts it writable, every other sandbox read-only."""
    program = (
        # The last mount on /proc is the sample's own (stacked over the view's directory).
        "lines = [l for l in open('/proc/self/mountinfo') if l.split()[4] == '/proc']\n"
        "print(lines[-1].split()[5].split(',')[0])\n"
    )
    seen = []
    for gpu in (False, True):
        with Sandbox(workers=1, gpu=gpu) as box:
            result = box.run(program, 10.0)
        assert result.status == "passed", result.stderr
        seen.append(result.stdout.strip())
    assert seen == ["ro", "rw"]


def _timing(row: dict[str, Any], answer_source: str) -> dict[str, Any]:
    """The harness's timing loop at the medium size, run here on the CPU build of torch."""
    pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    fw = _accel_harness._Framework("torch")
    ns: dict[str, Any] = {}
    exec(row["reference"], ns)
    exec(row["inputs"], ns)
    answer_ns: dict[str, Any] = {}
    exec(answer_source, answer_ns)
    spec = {"rtol": 1e-4, "atol": 1e-5, "min_repeats": 6}
    entry = row["entry_point"]
    sets = []
    for seed in HIDDEN_SEEDS:
        args = ns["make_inputs"]("medium", seed)
        sets.append((args, [np.asarray(ns[entry](*args))]))
    prepared = _accel_harness._prepare(fw, spec, answer_ns[entry], sets)
    result: dict[str, Any] = _accel_harness._time(
        fw, spec, "medium", answer_ns[entry], ns[entry], prepared
    )
    return result


def test_every_size_is_prepared_and_compared_once_before_the_gpu_lock_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CuPy compiles a kernel on its first launch (~5 s for the device comparison's): the
    inputs of every timed size go to the device, and the answer's outputs through the device
    comparison, before the lock is taken, so the lock is held only for timing."""
    pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    fw = _accel_harness._Framework("torch")
    events: list[str] = []
    compare = fw.same_on_device

    def spy(got: Any, want: Any, rtol: float, atol: float) -> bool:
        events.append(f"compare {tuple(want.shape)}")
        return bool(compare(got, want, rtol, atol))

    class Lock:
        def __init__(self, fw: Any) -> None:
            pass

        def __enter__(self) -> None:
            events.append("lock")

        def __exit__(self, *exc: object) -> None:
            events.append("unlock")

    monkeypatch.setattr(fw, "same_on_device", spy)
    monkeypatch.setattr(_accel_harness, "_gpu_lock", Lock)
    ns: dict[str, Any] = {}
    exec(SCALE["reference"], ns)
    exec(SCALE["inputs"], ns)
    checked = {}
    for size in ("small", "large"):
        checked[size] = []
        for seed in HIDDEN_SEEDS:
            args = ns["make_inputs"](size, seed)
            checked[size].append((args, [np.asarray(ns["scale"](*args))]))
    spec = {
        "rtol": 1e-4,
        "atol": 1e-5,
        "min_repeats": 3,
        "max_repeats": 3,
        "time": ["small", "large"],
    }
    rows, window = _accel_harness._time_sizes(fw, spec, lambda x, a: x * a + 1.0, None, checked)
    assert set(rows) == {"small", "large"} and rows["large"]["repeats"] == 3
    assert window[0] <= window[1]
    shapes = [tuple(checked[size][0][1][0].shape) for size in ("small", "large")]
    assert events[:3] == [f"compare {shapes[0]}", f"compare {shapes[1]}", "lock"]
    assert events[-1] == "unlock" and events.count("lock") == 1


def test_a_slow_answer_is_timed_three_times_not_ten(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past 2 s of timed calls the loop stops at 3 repeats: a 7 s call held the GPU's lock
    for 94 s on the H200 (10 repeats at each of 3 sizes)."""
    pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    fw = _accel_harness._Framework("torch")
    monkeypatch.setattr(fw, "timed", lambda call: (call(), 1500.0))
    ns: dict[str, Any] = {}
    exec(SCALE["reference"], ns)
    exec(SCALE["inputs"], ns)
    sets = []
    for seed in HIDDEN_SEEDS:
        args = ns["make_inputs"]("small", seed)
        sets.append((args, [np.asarray(ns["scale"](*args))]))
    spec = {"rtol": 1e-4, "atol": 1e-5}

    def answer(x: Any, a: float) -> Any:
        return x * a + 1.0

    prepared = _accel_harness._prepare(fw, spec, answer, sets)
    assert _accel_harness._time(fw, spec, "small", answer, None, prepared)["repeats"] == 3
    monkeypatch.setattr(fw, "timed", lambda call: (call(), 1.0))
    assert _accel_harness._time(fw, spec, "small", answer, None, prepared)["repeats"] == 50


def test_the_timing_loop_catches_a_result_cached_across_calls() -> None:
    honest = _timing(SCALE, "def scale(x, a):\n    return x * a + 1.0\n")
    assert honest["repeats"] >= 6 and honest["in_place"] is True
    cached = (
        "_c = {}\n\n\ndef scale(x, a):\n    if id(x) not in _c:\n"
        "        _c[id(x)] = x * a + 1.0\n    return _c[id(x)].clone()\n"
    )
    # The second call gets the next set's values in the same array: the cache returns the first.
    with pytest.raises(_accel_harness._Wrong, match=r"timed call 2 \(new values written"):
        _timing(SCALE, cached)


def test_inputs_whose_shapes_depend_on_the_seed_are_timed_as_separate_arrays() -> None:
    row = {
        **SCALE,
        "inputs": (
            "import numpy as np\n\n\ndef make_inputs(size, seed):\n"
            "    rng = np.random.default_rng(seed)\n"
            "    return (rng.standard_normal(100 + seed % 7, dtype=np.float32), 2.0)\n"
        ),
    }
    timed = _timing(row, "def scale(x, a):\n    return x * a + 1.0\n")
    assert timed["in_place"] is False and timed["repeats"] >= 6


def test_a_run_stores_what_the_harness_measured_with_each_execution(
    tmp_path: Path, stub_provider: str
) -> None:
    pytest.importorskip("torch", reason="the CPU build of torch is installed by .ci/run")
    import sqlite3

    answer = "import torch\n\n\ndef scale(x, a):\n    return x * a + 1.0"
    db = tmp_path / "r.db"
    argv = ["run", str(_task_file(tmp_path, SCALE)), "--model", stub_provider, "-M"]
    argv += [f"answer={answer}", "-M", "prefill=false", "--strategy", "repair"]
    argv += ["--db", str(db), "--no-progress"]
    assert exit_code(argv) == 0
    rows = sqlite3.connect(db).execute("SELECT tests, status, extra FROM executions").fetchall()
    by_tests = {tests: (status, json.loads(extra)) for tests, status, extra in rows}
    assert set(by_tests) == {"visible", "hidden"}
    status, hidden = by_tests["hidden"]
    assert status == "passed" and hidden["verdict"] == "passed" and hidden["gpu"] is False
    assert set(hidden["sizes"]) == {"small", "medium", "large"}
    # The visible run checked every size (on other seeds); nothing was timed on the CPU.
    assert set(by_tests["visible"][1]["sizes"]) == {"small", "medium", "large"}
    # The task's baseline: its reference checked on the CPU, no speed measured.
    (baseline,) = sqlite3.connect(db).execute("SELECT baseline FROM tasks").fetchone()
    assert json.loads(baseline)["verdict"] == "passed" and json.loads(baseline)["gpu"] is False


def test_a_sample_sees_the_gpu_lock_read_only_and_can_hold_it(tmp_path: Path) -> None:
    """The timing lock (`Sandbox(gpu_lock=…)`): bound read-only at its own path and named in
    $CODEDUEL_GPU_LOCK; a sample locks it, and cannot write it or beside it."""
    folder = tmp_path / "locks"
    folder.mkdir()
    folder.chmod(0o755)
    (folder / "gpu0.lock").touch(0o644)
    program = (
        "import fcntl, os\n"
        "path = os.path.join(os.environ['CODEDUEL_GPU_LOCK'], 'gpu0.lock')\n"
        "fd = os.open(path, os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "for target in (path, path + '.x'):\n"
        "    try:\n"
        "        open(target, 'w')\n"
        "    except OSError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(f'wrote {target}')\n"
        "print('locked')\n"
    )
    with Sandbox(workers=1, gpu_lock=str(folder)) as box:
        result = box.run(program, 10.0)
    assert result.status == "passed", result.stderr
    assert result.stdout.strip() == "locked"
    assert sorted(p.name for p in folder.iterdir()) == ["gpu0.lock"]


def test_the_harness_waits_for_the_gpu_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process holds a GPU's lock, the harness's timing does not start."""
    import fcntl
    import threading

    (tmp_path / "gpu0.lock").touch()
    monkeypatch.setenv("CODEDUEL_GPU_LOCK", str(tmp_path))
    held = os.open(tmp_path / "gpu0.lock", os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)

    class Device:
        id = 0

    fw = type("FW", (), {"name": "cupy", "device": Device()})()
    entered = threading.Event()

    def time_it() -> None:
        with _accel_harness._gpu_lock(fw):
            entered.set()

    thread = threading.Thread(target=time_it)
    thread.start()
    assert not entered.wait(0.5)
    os.close(held)
    assert entered.wait(5.0)
    thread.join()
