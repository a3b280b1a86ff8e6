"""GPU tasks (`accel-torch`, `accel-cupy`, and task files of their schema): a NumPy function to
rewrite for the GPU, checked at every size against the NumPy reference and timed on the device.

A task's programs are the harness (`_accel_harness.py`, its source embedded) with the task and
the answer as JSON: the hidden one checks every size on fresh seeds and times every size; the
visible one checks the small size on the seeds the loop may learn from. The built-in tasks are
the TOML files in `data/accel/`, each with a NumPy reference, an input generator, tolerances
and a hand-written reference solution per framework.

A task file line holds `task_id`, `prompt` (optional: the contract and the reference are shown
by default), `entry_point`, `reference` (NumPy source defining `entry_point`), `inputs` (source
defining `make_inputs(size: str, seed: int) -> tuple`), and optionally `sizes` (default small,
medium, large), `rtol`, `atol`, `framework` (`torch` or `cupy`), `gpu_reference` and
`memory_budget_mb`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from codeduel.benchmarks._types import Benchmark, Task
from codeduel.errors import BenchmarkError

__all__ = [
    "ACCEL_BENCHMARKS",
    "FRAMEWORKS",
    "FRAMEWORK_PROBE",
    "HIDDEN_SEEDS",
    "REPORT_MARK",
    "VISIBLE_SEEDS",
    "AccelSpec",
    "AccelTask",
    "framework_problem",
    "frameworks_seen",
    "is_accel_row",
    "load_accel",
    "parse_accel_rows",
    "parse_report",
]

Framework = Literal["torch", "cupy"]
FRAMEWORKS: tuple[Framework, ...] = ("torch", "cupy")
ACCEL_BENCHMARKS: dict[str, Framework] = {"accel-torch": "torch", "accel-cupy": "cupy"}
SIZES = ("small", "medium", "large")
VISIBLE_SEEDS = (0, 1)
"""Seeds of the visible check: what the repair loop may learn from."""
HIDDEN_SEEDS = (1009, 2027)
"""Seeds of the hidden check, unlike any the loop saw."""
REPORT_MARK = "CODEDUEL-ACCEL"

_REQUIRED = ("task_id", "entry_point", "reference", "inputs")
_FLOATS = ("rtol", "atol", "memory_budget_mb")
_TEXTS = ("prompt", "gpu_reference", "category", "description")


@dataclass(frozen=True)
class AccelSpec:
    """What the harness needs of a task, beyond the answer."""

    framework: Framework
    reference: str
    inputs: str
    sizes: tuple[str, ...] = SIZES
    rtol: float = 1e-4
    atol: float = 1e-5
    memory_budget_mb: float | None = None
    gpu_reference: str | None = None
    category: str = ""


_CONTRACT = {
    "torch": (
        "Rewrite this NumPy function with PyTorch so it runs fast on the GPU. Keep the name "
        "and the signature. Every NumPy array argument arrives as a torch tensor on the GPU "
        "device (use its `.device`, never a hard-coded one); other arguments are unchanged. "
        "Return torch tensors on that same device (a tuple where the reference returns one), "
        "new tensors rather than views of the inputs, equal to the reference's within "
        "rtol={rtol:g}, atol={atol:g}. No host round trips: no `.cpu()`, `.numpy()`, "
        "`.item()` or NumPy in the computation."
    ),
    "cupy": (
        "Rewrite this NumPy function with CuPy so it runs fast on the GPU. Keep the name and "
        "the signature. Every NumPy array argument arrives as a CuPy array on the current "
        "device; other arguments are unchanged. Return CuPy arrays (a tuple where the "
        "reference returns one), new arrays rather than views of the inputs, equal to the "
        "reference's within rtol={rtol:g}, atol={atol:g}. No host round trips: no "
        "`cupy.asnumpy`, `.get()`, `.item()` or NumPy in the computation."
    ),
}


def _prompt(spec: AccelSpec) -> str:
    contract = _CONTRACT[spec.framework].format(rtol=spec.rtol, atol=spec.atol)
    if spec.memory_budget_mb is not None:
        contract += (
            f" The GPU memory it allocates must stay under {spec.memory_budget_mb:g} MB at its "
            "peak on the largest inputs: work in chunks rather than build the whole "
            "intermediate."
        )
    return f"{contract}\n\n{spec.reference.strip()}\n"


@functools.cache
def _harness() -> str:
    return resources.files("codeduel.benchmarks").joinpath("_accel_harness.py").read_text("utf-8")


@dataclass(frozen=True)
class AccelTask(Task):
    """A GPU task: its programs run the harness over the answer."""

    accel: AccelSpec | None = None
    min_timeout_s: ClassVar[float] = 60.0

    @property
    def spec(self) -> AccelSpec:
        assert self.accel is not None
        return self.accel

    def harness_spec(
        self,
        solution: str,
        *,
        sizes: tuple[str, ...],
        seeds: tuple[int, ...],
        time: tuple[str, ...],
        time_numpy: bool = False,
        numpy_repeats: int = 3,
    ) -> dict[str, Any]:
        """What the harness's `main` takes: the task, the answer, what to check and time."""
        spec = self.spec
        return {
            "framework": spec.framework,
            "entry_point": self.entry_point,
            "reference": spec.reference,
            "inputs": spec.inputs,
            "candidate": solution,
            "sizes": list(sizes),
            "seeds": list(seeds),
            "time": list(time),
            "time_numpy": time_numpy,
            "numpy_repeats": numpy_repeats,
            "rtol": spec.rtol,
            "atol": spec.atol,
            "memory_budget_mb": spec.memory_budget_mb,
        }

    def harness_program(self, solution: str, **what: Any) -> str:
        """The harness's source with `harness_spec(solution, **what)` passed to its `main`."""
        payload = json.dumps(self.harness_spec(solution, **what))
        return f"{_harness()}\nmain(json.loads({json.dumps(payload)}))\n"

    def program(self, solution: str) -> str:
        """Every size checked on hidden seeds, every size timed (where there is a GPU)."""
        sizes = self.spec.sizes
        return self.harness_program(solution, sizes=sizes, seeds=HIDDEN_SEEDS, time=sizes)

    def visible_program(self, solution: str) -> str:
        """Every size on the seeds the loop may learn from; the largest timed, with NumPy's
        time beside it (one NumPy call: this is feedback, not the score)."""
        sizes = self.spec.sizes
        return self.harness_program(
            solution,
            sizes=sizes,
            seeds=VISIBLE_SEEDS,
            time=sizes[-1:],
            time_numpy=True,
            numpy_repeats=1,
        )

    def reference_program(self) -> str | None:
        """The GPU reference checked and timed with NumPy's time beside it."""
        if self.spec.gpu_reference is None:
            return None
        return self.calibration_program(self.spec.gpu_reference)

    def calibration_program(self, reference: str) -> str:
        """The reference checked and timed like an answer, with NumPy timed beside it: the
        task's baseline (what speedups are measured against) and its time limit."""
        sizes = self.spec.sizes
        return self.harness_program(
            reference, sizes=sizes, seeds=HIDDEN_SEEDS, time=sizes, time_numpy=True
        )

    def reference_solution(self) -> str | None:
        return self.spec.gpu_reference


FRAMEWORK_PROBE = """\
import json
seen = {}
try:
    import torch
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = [torch.cuda.get_device_name(i) for i in range(count)]
    seen["torch"] = {"version": torch.__version__, "devices": names}
except Exception as exc:
    seen["torch"] = {"error": f"{type(exc).__name__}: {exc}"}
try:
    import cupy
    count = cupy.cuda.runtime.getDeviceCount()
    props = [cupy.cuda.runtime.getDeviceProperties(i) for i in range(count)]
    seen["cupy"] = {"version": cupy.__version__, "devices": [p["name"].decode() for p in props]}
except Exception as exc:
    seen["cupy"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
print("CODEDUEL-FRAMEWORKS " + json.dumps(seen))
"""
"""A program that says which GPU frameworks, and which devices, a sample sees."""


def frameworks_seen(stdout: str) -> dict[str, Any]:
    """What `FRAMEWORK_PROBE` printed: per framework, its version and devices, or an error."""
    for line in stdout.splitlines():
        if line.startswith("CODEDUEL-FRAMEWORKS "):
            seen: dict[str, Any] = json.loads(line.split(" ", 1)[1])
            return seen
    return {}


def framework_problem(framework: Framework, stdout: str) -> str | None:
    """Why tasks of `framework` cannot be scored where `FRAMEWORK_PROBE` printed `stdout`
    (None: they can; torch without a GPU checks correctness and measures no speed)."""
    row = frameworks_seen(stdout).get(framework)
    if row is None:
        return f"the framework probe printed nothing for {framework}"
    if "error" in row:
        return f"`import {framework}` fails where samples run ({row['error']})"
    if framework == "cupy" and not row["devices"]:
        return "CuPy sees no CUDA device where samples run"
    return None


def parse_report(stdout: str) -> dict[str, Any] | None:
    """The harness's report: the last line it wrote, or None where it wrote none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(REPORT_MARK + " "):
            try:
                report = json.loads(line[len(REPORT_MARK) + 1 :])
            except json.JSONDecodeError:
                return None
            return report if isinstance(report, dict) else None
    return None


def is_accel_row(obj: dict[str, Any]) -> bool:
    """A task-file line of this schema (it has `reference` and `inputs`, not `test`)."""
    return "reference" in obj and "inputs" in obj and "test" not in obj


def _defines(source: str, name: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        for node in tree.body
    )


def _task(obj: dict[str, Any], where: str, framework: Framework | None) -> AccelTask:
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise BenchmarkError(f"{where}: missing field(s) {', '.join(missing)}")
    strings = [*_REQUIRED, *(k for k in _TEXTS if obj.get(k) is not None)]
    bad = [k for k in strings if not isinstance(obj[k], str)]
    bad += [
        k
        for k in _FLOATS
        if obj.get(k) is not None
        and (isinstance(obj[k], bool) or not isinstance(obj[k], int | float) or obj[k] < 0)
    ]
    if bad:
        raise BenchmarkError(f"{where}: field(s) {', '.join(bad)} have the wrong type")
    entry = obj["entry_point"]
    if not entry.isidentifier():
        raise BenchmarkError(f"{where}: entry_point {entry!r} is not a Python identifier")
    chosen = framework or obj.get("framework", "torch")
    if chosen not in FRAMEWORKS:
        raise BenchmarkError(f"{where}: framework must be torch or cupy, not {chosen!r}")
    sizes = obj.get("sizes", list(SIZES))
    if not (isinstance(sizes, list) and sizes and all(isinstance(s, str) for s in sizes)):
        raise BenchmarkError(f"{where}: sizes must be a non-empty list of strings")
    gpu_reference = obj.get(f"{chosen}_reference", obj.get("gpu_reference"))
    for field, source, name in (
        ("reference", obj["reference"], entry),
        ("inputs", obj["inputs"], "make_inputs"),
        ("gpu_reference", gpu_reference, entry),
    ):
        if source is not None and not _defines(source, name):
            raise BenchmarkError(f"{where}: {field} does not define a function {name}")
    spec = AccelSpec(
        framework=chosen,
        reference=obj["reference"],
        inputs=obj["inputs"],
        sizes=tuple(sizes),
        rtol=float(obj.get("rtol", 1e-4)),
        atol=float(obj.get("atol", 1e-5)),
        memory_budget_mb=(
            float(obj["memory_budget_mb"]) if obj.get("memory_budget_mb") is not None else None
        ),
        gpu_reference=gpu_reference,
        category=obj.get("category") or "",
    )
    return AccelTask(
        task_id=obj["task_id"],
        prompt=obj.get("prompt") or _prompt(spec),
        entry_point=entry,
        test="",
        # What the visible program checks (`visible_program`): strategies that learn from
        # visible tests run it.
        visible_test=f"{entry}(*make_inputs(size, seed)) for size in {tuple(sizes)!r} "
        f"for seed in {VISIBLE_SEEDS}",
        accel=spec,
    )


def parse_accel_rows(
    rows: list[tuple[str, dict[str, Any]]], framework: Framework | None = None
) -> list[AccelTask]:
    """Tasks from (where, object) rows; `framework` overrides each row's own."""
    tasks: list[AccelTask] = []
    seen: set[str] = set()
    for where, obj in rows:
        task = _task(obj, where, framework)
        if task.task_id in seen:
            raise BenchmarkError(f"{where}: duplicate task_id {task.task_id!r}")
        seen.add(task.task_id)
        tasks.append(task)
    if not tasks:
        raise BenchmarkError("no tasks")
    return tasks


def load_accel(name: str) -> Benchmark:
    """`accel-torch` or `accel-cupy`: the built-in tasks for that framework."""
    framework = ACCEL_BENCHMARKS[name]
    folder = resources.files("codeduel.benchmarks").joinpath("data", "accel")
    digest = hashlib.sha256()
    rows = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        raw = entry.read_bytes()
        digest.update(entry.name.encode() + b"\0" + raw)
        try:
            obj = tomllib.loads(raw.decode("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise BenchmarkError(f"{entry.name}: not valid TOML ({exc})") from None
        rows.append((entry.name, obj))
    tasks = parse_accel_rows(rows, framework)
    return Benchmark(name, tuple(tasks), digest.hexdigest(), str(Path(str(folder))))
