"""Benchmarks: HumanEval, MBPP (sanitized), EvalPlus's HumanEval+ and MBPP+, HumanEval's
fill-in-the-middle splits, and any task file in HumanEval's JSONL schema."""

from __future__ import annotations

from pathlib import Path

from codeduel.benchmarks._types import Benchmark, Task, TestStyle
from codeduel.errors import BenchmarkError

__all__ = ["BUILTIN_BENCHMARKS", "Benchmark", "Task", "TestStyle", "load_benchmark"]

BUILTIN_BENCHMARKS = (
    "humaneval",
    "humaneval-fix",
    "mbpp",
    "humaneval+",
    "mbpp+",
    "livecodebench",
    "accel-torch",
    "accel-cupy",
    "humaneval-fim-single",
    "humaneval-fim-multi",
    "humaneval-fim-span",
)


def load_benchmark(name_or_path: str) -> Benchmark:
    """A built-in benchmark by name, or a path to a JSONL task file."""
    if name_or_path == "humaneval":
        from codeduel.benchmarks.humaneval import load_humaneval

        return load_humaneval()
    if name_or_path == "humaneval-fix" or name_or_path.startswith("humaneval-fix@"):
        from codeduel.benchmarks.humanevalfix import load_humaneval_fix

        return load_humaneval_fix(name_or_path)
    if name_or_path == "mbpp":
        from codeduel.benchmarks.mbpp import load_mbpp

        return load_mbpp()
    if name_or_path == "livecodebench" or name_or_path.startswith(
        ("livecodebench@", "livecodebench,")
    ):
        from codeduel.benchmarks.livecodebench import load_livecodebench

        return load_livecodebench(name_or_path)
    if name_or_path in ("humaneval+", "mbpp+"):
        from codeduel.benchmarks.plus import load_plus

        return load_plus(name_or_path)
    if name_or_path in ("accel-torch", "accel-cupy"):
        from codeduel.benchmarks.accel import load_accel

        return load_accel(name_or_path)
    if name_or_path.startswith("humaneval-fim-"):
        from codeduel.benchmarks.fim import load_fim

        return load_fim(name_or_path)
    path = Path(name_or_path)
    if path.suffix in {".jsonl", ".json"} or path.exists():
        from codeduel.benchmarks.jsonl import load_jsonl_benchmark

        return load_jsonl_benchmark(path)
    raise BenchmarkError(
        f"unknown benchmark {name_or_path!r}: use one of "
        f"{', '.join(BUILTIN_BENCHMARKS)} or a path to a .jsonl task file"
    )
