"""Check the accel benchmarks' task data: the schema, and that the references agree.

    /tmp/tv/bin/python bench/accel_check_refs.py [--only TASK ...] [--sizes small medium]
    python3 bench/accel_check_refs.py --gpu        # on a machine with CUDA, PyTorch and CuPy

Every task is one TOML file in src/codeduel/benchmarks/data/accel/. For each task and each size,
inputs are made with two seeds; the NumPy reference's output is the answer, and the torch and CuPy
references must match it within the task's tolerances, the way the harness compares (integers and
booleans exactly). Without --gpu no GPU is needed: torch runs on the CPU, and the CuPy references
run with `cupy` shimmed to NumPy (`cupyx.scatter_add` is `numpy.add.at`); a CuPy reference that
uses a CuPy-only feature (kernels, fusion, other `cupyx` parts) is reported as not shim-checked.
With --gpu, torch runs on CUDA, CuPy is the real one, and for the tasks with a memory budget the
peak GPU memory each GPU reference allocates is measured against that budget. NumPy's BLAS and
torch's CPU kernels run on one thread (--threads N for more), as the timings are per core.

One line per task: the id, the category, ok/FAIL for torch and CuPy over the sizes, and the times
on `large` (the best of the seeds): the NumPy reference and torch (on the CPU; with --gpu on CUDA,
and CuPy too). The details of each failure follow. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import time
import tomllib
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "src" / "codeduel" / "benchmarks" / "data" / "accel"
CATEGORIES = (
    "elementwise",
    "reduction",
    "matmul",
    "stencil/convolution",
    "scan",
    "sort/topk",
    "histogram/scatter",
    "pairwise-distance",
    "softmax/layernorm",
    "gather/indexing",
    "small-linalg",
    "memory-budget",
)
SIZES = ("small", "medium", "large")
SEEDS = (1, 2)
FIELDS: dict[str, type] = {
    "task_id": str,
    "category": str,
    "entry_point": str,
    "rtol": float,
    "atol": float,
    "description": str,
    "reference": str,
    "inputs": str,
    "torch_reference": str,
    "cupy_reference": str,
}
OPTIONAL_FIELDS: dict[str, type] = {"memory_budget_mb": int}
CODE_FIELDS = ("reference", "inputs", "torch_reference", "cupy_reference")
MAX_LARGE_INPUT_BYTES = 512 * 2**20
# What the CuPy shim supplies besides numpy itself; anything else under cupyx is CuPy-only.
SHIMMED_CUPYX = {"scatter_add"}
CUPY_ONLY_ATTRS = {"ElementwiseKernel", "RawKernel", "RawModule", "ReductionKernel", "fuse"}
# Host round trips and hard-coded devices that a device-agnostic torch reference must not have.
TORCH_FORBIDDEN = re.compile(r"\.cpu\(|\.cuda\(|\.numpy\(|\.item\(|\.tolist\(|[\"']cuda")


@dataclass
class Result:
    task_id: str
    category: str
    budget: int | None = None
    status: dict[str, list[str]] = field(default_factory=dict)  # framework -> per-size marks
    errors: list[str] = field(default_factory=list)
    numpy_s: float | None = None
    torch_s: float | None = None
    cupy_s: float | None = None
    input_mb: float | None = None
    gen_s: float = 0.0  # the slowest make_inputs('large')
    peak_mb: dict[str, float] = field(default_factory=dict)
    worst: float = 0.0  # the largest |out - ref| / (atol + rtol |ref|) seen in a float output
    shim_checked: bool = True


def top_level_functions(source: str) -> set[str]:
    tree = ast.parse(source)
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def cupy_only_features(source: str) -> list[str]:
    """The CuPy-only features a CuPy reference uses, which the NumPy shim cannot stand in for."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for name in [*names, module or ""]:
                if name.startswith("cupyx."):
                    found.append(f"import {name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "cupyx" and node.attr not in SHIMMED_CUPYX:
                found.append(f"cupyx.{node.attr}")
            if node.value.id in ("cp", "cupy") and node.attr in CUPY_ONLY_ATTRS:
                found.append(f"cupy.{node.attr}")
    return sorted(set(found))


def validate(path: Path, task: dict[str, Any]) -> list[str]:
    """Schema errors for one task file; empty when it is well formed."""
    errors = []
    for key, kind in {**FIELDS, **OPTIONAL_FIELDS}.items():
        if key not in task:
            if key in FIELDS:
                errors.append(f"missing field {key!r}")
            continue
        value = task[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            errors.append(f"{key} should be {kind.__name__}, is {type(value).__name__}")
    if errors:
        return errors
    for key in task:
        if key not in FIELDS and key not in OPTIONAL_FIELDS:
            errors.append(f"unknown field {key!r}")
    if task["task_id"] != path.stem:
        errors.append(f"task_id {task['task_id']!r} is not the file name {path.stem!r}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", task["task_id"]):
        errors.append("task_id should be lowercase letters, digits and underscores")
    if task["category"] not in CATEGORIES:
        errors.append(f"category {task['category']!r} is not one of {CATEGORIES}")
    is_memory = task["category"] == "memory-budget"
    if is_memory != ("memory_budget_mb" in task):
        errors.append("memory_budget_mb is set exactly for the memory-budget tasks")
    if "memory_budget_mb" in task and task["memory_budget_mb"] <= 0:
        errors.append("memory_budget_mb should be positive")
    if not (0 <= task["rtol"] < 1 and task["atol"] >= 0):
        errors.append("rtol should be in [0, 1) and atol >= 0")
    if "\n" in task["description"].strip() or not task["description"].strip():
        errors.append("description should be one non-empty line")
    for key in CODE_FIELDS:
        try:
            functions = top_level_functions(task[key])
        except SyntaxError as exc:
            errors.append(f"{key} does not parse: {exc}")
            continue
        wanted = "make_inputs" if key == "inputs" else task["entry_point"]
        if wanted not in functions:
            errors.append(f"{key} defines no top-level function {wanted!r}")
    if not errors:
        tree = ast.parse(task["reference"])
        entry = next(
            n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == task["entry_point"]
        )
        if not ast.get_docstring(entry):
            errors.append("the reference's entry point has no docstring (the model's contract)")
        if TORCH_FORBIDDEN.search(task["torch_reference"]):
            errors.append("torch_reference hard-codes a device or makes a host round trip")
    return errors


def load_function(source: str, name: str, label: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"__name__": label}
    exec(compile(source, f"<{label}>", "exec"), namespace)
    return namespace[name]


def install_cupy_shim() -> None:
    """Make `import cupy` give NumPy, and `cupyx.scatter_add` NumPy's add.at."""
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = np.add.at  # type: ignore[attr-defined]
    sys.modules["cupy"] = np
    sys.modules["cupyx"] = cupyx


def as_tuple(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def same_kind(a: np.dtype[Any], b: np.dtype[Any]) -> bool:
    group = {"f": "f", "i": "i", "u": "i", "b": "b"}
    return group.get(a.kind, a.kind) == group.get(b.kind, b.kind)


def compare(outs: tuple[Any, ...], refs: tuple[np.ndarray, ...], rtol: float, atol: float):
    """(None or what differs, the worst float error relative to the tolerance)."""
    worst = 0.0
    if len(outs) != len(refs):
        return f"{len(outs)} outputs, the reference has {len(refs)}", worst
    for i, (out, ref) in enumerate(zip(outs, refs, strict=True)):
        if not isinstance(out, np.ndarray):
            return f"output {i} is {type(out).__name__}, not an array", worst
        if out.shape != ref.shape:
            return f"output {i} has shape {out.shape}, the reference {ref.shape}", worst
        if not same_kind(out.dtype, ref.dtype):
            return f"output {i} is {out.dtype}, the reference {ref.dtype}", worst
        if ref.dtype.kind in "iub":
            bad = int(np.count_nonzero(out != ref))
            if bad:
                return f"output {i}: {bad} of {ref.size} entries differ", worst
            continue
        o, r = out.astype(np.float64), ref.astype(np.float64)
        with np.errstate(invalid="ignore"):
            ratio = np.abs(o - r) / (atol + rtol * np.abs(r))
        if not np.isfinite(o).all():
            return f"output {i} has {int((~np.isfinite(o)).sum())} non-finite entries", worst
        worst = max(worst, float(ratio.max(initial=0.0)))
        if not np.allclose(out, ref, rtol=rtol, atol=atol):
            err = np.abs(o - r)
            j = int(err.argmax())
            return (
                f"output {i}: {int((ratio > 1).sum())} of {ref.size} entries off; worst at "
                f"flat index {j}: {o.flat[j]!r} vs {r.flat[j]!r} (max abs err {err.max():.3g})"
            ), worst
    return None, worst


class Torch:
    def __init__(self, gpu: bool) -> None:
        import torch

        self.torch = torch
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        self.device = torch.device("cuda" if gpu else "cpu")
        self.gpu = gpu

    def to_device(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        t = self.torch
        return tuple(
            t.from_numpy(np.array(a)).to(self.device) if isinstance(a, np.ndarray) else a
            for a in args
        )

    def to_host(self, outs: tuple[Any, ...]) -> tuple[Any, ...]:
        host = []
        for out in outs:
            if not isinstance(out, self.torch.Tensor):
                raise TypeError(f"torch reference returned {type(out).__name__}, not a tensor")
            if out.device.type != self.device.type:
                raise TypeError(f"torch reference returned a tensor on {out.device}")
            host.append(out.detach().cpu().numpy())
        return tuple(host)

    def sync(self) -> None:
        if self.gpu:
            self.torch.cuda.synchronize()

    def reset_peak(self) -> int:
        if not self.gpu:
            return 0
        self.torch.cuda.synchronize()
        self.torch.cuda.reset_peak_memory_stats()
        return self.torch.cuda.memory_allocated()

    def peak_since(self, base: int) -> float:
        return (self.torch.cuda.max_memory_allocated() - base) / 2**20 if self.gpu else 0.0


class CuPy:
    """The real CuPy (--gpu) or NumPy standing in for it."""

    def __init__(self, gpu: bool) -> None:
        self.gpu = gpu
        if not gpu:
            install_cupy_shim()
            self.cp = np
            return
        import cupy

        self.cp = cupy

        class PeakHook(cupy.cuda.MemoryHook):  # type: ignore[misc,name-defined]
            name = "accel_peak"

            def __init__(self) -> None:
                self.current = 0
                self.peak = 0

            def malloc_postprocess(self, **kw: Any) -> None:
                self.current += kw["mem_size"]
                self.peak = max(self.peak, self.current)

            def free_postprocess(self, **kw: Any) -> None:
                self.current -= kw["mem_size"]

        self.hook = PeakHook()

    def to_device(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(self.cp.asarray(np.array(a)) if isinstance(a, np.ndarray) else a for a in args)

    def to_host(self, outs: tuple[Any, ...]) -> tuple[Any, ...]:
        if not self.gpu:
            return outs
        host = []
        for out in outs:
            if not isinstance(out, self.cp.ndarray):
                raise TypeError(f"cupy reference returned {type(out).__name__}, not a cupy array")
            host.append(self.cp.asnumpy(out))
        return tuple(host)

    def sync(self) -> None:
        if self.gpu:
            self.cp.cuda.Stream.null.synchronize()


def input_bytes(args: tuple[Any, ...]) -> int:
    return sum(a.nbytes for a in args if isinstance(a, np.ndarray))


def check_args(args: Any) -> str | None:
    if not isinstance(args, tuple):
        return f"make_inputs returned {type(args).__name__}, not a tuple"
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            if a.dtype.kind not in "fiub":
                return f"argument {i} has dtype {a.dtype}"
        elif not isinstance(a, bool | int | float):
            return f"argument {i} is {type(a).__name__}: only arrays and int/float/bool"
    return None


def same_args(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            if not (
                isinstance(y, np.ndarray)
                and x.dtype == y.dtype
                and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
            ):
                return False
        elif x != y or type(x) is not type(y):
            return False
    return True


def timed(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[Any, float]:
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - start


def check_task(
    path: Path, sizes: tuple[str, ...], torch_fw: Torch, cupy_fw: CuPy, gpu: bool
) -> Result:
    task = tomllib.loads(path.read_text())
    result = Result(str(task.get("task_id", path.stem)), str(task.get("category", "?")))
    errors = validate(path, task)
    if errors:
        result.errors += [f"schema: {e}" for e in errors]
        return result
    result.budget = task.get("memory_budget_mb")
    tid, entry, rtol, atol = task["task_id"], task["entry_point"], task["rtol"], task["atol"]
    cupy_only = cupy_only_features(task["cupy_reference"])
    result.shim_checked = gpu or not cupy_only
    try:
        make_inputs = load_function(task["inputs"], "make_inputs", f"{tid}.inputs")
        reference = load_function(task["reference"], entry, f"{tid}.reference")
        torch_ref = load_function(task["torch_reference"], entry, f"{tid}.torch")
        cupy_ref = None
        if result.shim_checked:
            cupy_ref = load_function(task["cupy_reference"], entry, f"{tid}.cupy")
    except Exception:
        result.errors.append("loading the code:\n" + traceback.format_exc(limit=3))
        return result
    result.status = {"torch": [], "cupy": []}
    for size in sizes:
        marks = {"torch": "ok", "cupy": "ok" if cupy_ref else "skip"}
        for seed in SEEDS:
            where = f"{size} seed {seed}"
            try:
                start = time.perf_counter()
                args = make_inputs(size, seed)
                gen_s = time.perf_counter() - start
                problem = check_args(args)
                skip_repeat = size == "large" or seed != SEEDS[0] or problem is not None
                if not skip_repeat and not same_args(args, make_inputs(size, seed)):
                    problem = "make_inputs is not deterministic for a given seed"
                if problem is None and size == "large":
                    result.gen_s = max(result.gen_s, gen_s)
                    result.input_mb = input_bytes(args) / 2**20
                    if input_bytes(args) > MAX_LARGE_INPUT_BYTES:
                        problem = f"large inputs take {result.input_mb:.0f} MiB, over 512"
                    if gen_s > 2.0:
                        problem = f"make_inputs('large') took {gen_s:.2f} s"
                if problem:
                    raise ValueError(problem)
                saved = tuple(np.array(a) if isinstance(a, np.ndarray) else a for a in args)
                refs, np_s = timed(lambda a=args: as_tuple(reference(*a)), lambda: None)
                if size != "large" and not same_args(args, saved):
                    raise ValueError("the NumPy reference changed its inputs")
                for i, r in enumerate(refs):
                    if not isinstance(r, np.ndarray):
                        raise ValueError(f"reference output {i} is {type(r).__name__}")
                    if r.dtype.kind == "f" and not np.isfinite(r).all():
                        raise ValueError(f"reference output {i} has non-finite entries")
                if size == "large":
                    result.numpy_s = min(result.numpy_s or np_s, np_s)
            except Exception:
                result.errors.append(f"{where} numpy:\n" + traceback.format_exc(limit=4))
                marks = {k: "FAIL" for k in marks}
                break
            for name, fw, fn in (("torch", torch_fw, torch_ref), ("cupy", cupy_fw, cupy_ref)):
                if fn is None or marks[name] == "FAIL":
                    continue
                try:
                    dev_args = fw.to_device(saved)
                    if name == "torch":
                        base = torch_fw.reset_peak()
                    elif gpu:
                        cupy_fw.sync()
                        cupy_fw.hook.current = cupy_fw.hook.peak = 0
                        cupy_fw.hook.__enter__()
                    try:
                        outs, fw_s = timed(lambda f=fn, a=dev_args: as_tuple(f(*a)), fw.sync)
                    finally:
                        if name == "cupy" and gpu:
                            cupy_fw.hook.__exit__(None, None, None)
                    peak = (
                        torch_fw.peak_since(base)
                        if name == "torch"
                        else (cupy_fw.hook.peak / 2**20 if gpu else 0.0)
                    )
                    problem, worst = compare(fw.to_host(outs), refs, rtol, atol)
                    del outs, dev_args
                    if problem:
                        raise ValueError(problem)
                    result.worst = max(result.worst, worst)
                    if size == "large":
                        key = f"{name}_s"
                        old = getattr(result, key)
                        setattr(result, key, fw_s if old is None else min(old, fw_s))
                        if gpu and result.budget is not None:
                            result.peak_mb[name] = max(result.peak_mb.get(name, 0.0), peak)
                            if peak > result.budget:
                                raise ValueError(
                                    f"peak GPU memory {peak:.0f} MiB over the budget "
                                    f"{result.budget} MiB"
                                )
                except Exception:
                    result.errors.append(f"{where} {name}:\n" + traceback.format_exc(limit=4))
                    marks[name] = "FAIL"
        for name in result.status:
            result.status[name].append(marks[name])
    return result


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="TASK", help="check only these tasks")
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--gpu", action="store_true", help="torch on CUDA and the real CuPy")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for NumPy's BLAS and torch (1)"
    )
    args = parser.parse_args()
    # The BLAS libraries read their thread count once, when they load: set it and start again.
    wanted = {v: str(args.threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if any(os.environ.get(k) != v for k, v in wanted.items()):
        os.environ.update(wanted)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    paths = sorted(DATA.glob("*.toml"))
    if args.only:
        unknown = sorted(set(args.only) - {p.stem for p in paths})
        if unknown:
            sys.exit(f"no such tasks: {unknown}")
        paths = [p for p in paths if p.stem in args.only]
    if not paths:
        sys.exit(f"no task files in {DATA}")
    torch_fw, cupy_fw = Torch(args.gpu), CuPy(args.gpu)
    sizes = tuple(s for s in SIZES if s in args.sizes)
    where = "cuda" if args.gpu else "cpu"
    cupy_label = "cupy" if args.gpu else "cupy(shim)"
    print(
        f"{'task':26} {'category':20} {'torch':14} {cupy_label:14} {'numpy':>8} "
        f"{'torch-' + where:>10}" + (f" {'cupy':>8}" if args.gpu else "") + "  notes"
    )
    started = time.perf_counter()
    results = []
    for path in paths:
        r = check_task(path, sizes, torch_fw, cupy_fw, args.gpu)
        results.append(r)
        notes = [f"err/tol {r.worst:.2g}"]
        if r.input_mb is not None:
            notes.append(f"in {r.input_mb:.0f}MiB")
        if r.gen_s > 0.5:
            notes.append(f"inputs {r.gen_s:.1f}s")
        if r.budget is not None:
            peaks = " ".join(f"{k} {v:.0f}" for k, v in r.peak_mb.items())
            notes.append(f"budget {r.budget}MiB" + (f" (peak {peaks})" if peaks else ""))
        if not r.shim_checked:
            feats = cupy_only_features(tomllib.loads(path.read_text())["cupy_reference"])
            notes.append("cupy not shim-checked: " + ", ".join(feats))
        if r.errors and not r.status:
            notes.append("INVALID")
        line = (
            f"{r.task_id:26} {r.category:20} {'/'.join(r.status.get('torch', [])) or '-':14} "
            f"{'/'.join(r.status.get('cupy', [])) or '-':14} {ms(r.numpy_s):>8} "
            f"{ms(r.torch_s):>10}" + (f" {ms(r.cupy_s):>8}" if args.gpu else "")
        )
        print(line + "  " + "; ".join(notes), flush=True)
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"\n== {r.task_id}")
        for e in r.errors:
            print(e.rstrip())
    counts = {c: sum(r.category == c for r in results) for c in CATEGORIES}
    print(
        f"\n{len(results)} tasks, {len(failed)} failing, {time.perf_counter() - started:.0f} s; "
        + ", ".join(f"{c} {n}" for c, n in counts.items())
    )
    if not args.only:
        thin = [c for c, n in counts.items() if n < 2]
        if thin:
            print(f"categories with fewer than 2 tasks: {thin}")
            failed.append(Result("categories", ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
