"""Task files in HumanEval's schema: one JSON object per line (or, for GPU tasks, the schema
of `codeduel.benchmarks.accel`, recognised by its `reference` and `inputs` fields).

An optional string field `visible_test` holds assert lines the model may get feedback from; when
it is absent they are read from the examples in the prompt's docstring.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from codeduel.benchmarks._types import Benchmark, Task
from codeduel.benchmarks._visible import docstring_checks
from codeduel.benchmarks.accel import is_accel_row, parse_accel_rows
from codeduel.errors import BenchmarkError

__all__ = ["load_jsonl_benchmark", "parse_humaneval_lines", "read_jsonl"]

_REQUIRED = ("task_id", "prompt", "entry_point", "test")


def read_jsonl(lines: Iterable[str], source: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number from 1, object) for each non-blank line; bad JSON is a BenchmarkError."""
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchmarkError(f"{source}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise BenchmarkError(
                f"{source}:{number}: expected a JSON object, got {type(obj).__name__}"
            )
        rows.append((number, obj))
    return rows


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_humaneval_lines(lines: Iterable[str], source: str) -> list[Task]:
    tasks: list[Task] = []
    seen: set[str] = set()
    for number, obj in read_jsonl(lines, source):
        missing = [k for k in _REQUIRED if k not in obj]
        if missing:
            raise BenchmarkError(f"{source}:{number}: missing field(s) {', '.join(missing)}")
        fields = [k for k in (*_REQUIRED, "canonical_solution", "visible_test") if k in obj]
        # Required fields must be strings; optional ones may also be null.
        bad = [
            k
            for k in fields
            if not isinstance(obj[k], str) and (k in _REQUIRED or obj[k] is not None)
        ]
        if bad:
            raise BenchmarkError(f"{source}:{number}: field(s) {', '.join(bad)} must be strings")
        broken = [k for k in fields if isinstance(obj[k], str) and not _is_unicode(obj[k])]
        if broken:
            raise BenchmarkError(
                f"{source}:{number}: field(s) {', '.join(broken)} hold unpaired surrogates "
                "(\\ud800-\\udfff escapes), which are not text"
            )
        task_id = obj["task_id"]
        if task_id in seen:
            raise BenchmarkError(f"{source}:{number}: duplicate task_id {task_id!r}")
        if not obj["entry_point"].isidentifier():
            raise BenchmarkError(
                f"{source}:{number}: entry_point {obj['entry_point']!r} is not a Python identifier"
            )
        seen.add(task_id)
        visible = obj.get("visible_test")
        if visible is None:
            visible = "\n".join(docstring_checks(obj["prompt"], obj["entry_point"]))
        tasks.append(
            Task(
                task_id=task_id,
                prompt=obj["prompt"],
                entry_point=obj["entry_point"],
                test=obj["test"],
                canonical_solution=obj.get("canonical_solution"),
                visible_test=visible,
            )
        )
    if not tasks:
        raise BenchmarkError(f"{source}: no tasks")
    return tasks


def load_jsonl_benchmark(path: Path) -> Benchmark:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BenchmarkError(f"cannot read task file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BenchmarkError(f"{path}: not UTF-8 text") from None
    rows = read_jsonl(text.splitlines(), str(path))
    accel = [is_accel_row(obj) for _, obj in rows]
    tasks: list[Task]
    if rows and all(accel):
        tasks = list(parse_accel_rows([(f"{path}:{n}", obj) for n, obj in rows]))
    elif any(accel):
        number = rows[accel.index(not accel[0])][0]
        raise BenchmarkError(
            f"{path}:{number}: mixes GPU tasks (reference, inputs) with tasks that have tests"
        )
    else:
        tasks = parse_humaneval_lines(text.splitlines(), str(path))
    return Benchmark(path.stem, tuple(tasks), hashlib.sha256(raw).hexdigest(), str(path))
