"""HumanEvalFix: debugging tasks. The model is shown a buggy function and fixes it; the hidden
tests score the fix.

Two sets, both on HumanEval's problems:

- `humaneval-fix@pack`: HumanEvalFix as HumanEvalPack publishes it (Muennighoff et al. 2023,
  the Hugging Face dataset `bigcode/humanevalpack`, `python` split: 164 hand-written bugs).
  Read from `$CODEDUEL_HUMANEVALPACK_DIR/humanevalpack.jsonl`, else the user cache, else
  downloaded once from the Hub (checked against the size and sha256 the Hub states).
- `humaneval-fix@synthetic`: codeduel's own set, one single-AST-mutation bug per task,
  packaged as data (`data/humaneval_fix.jsonl`, built by `bench/build_humaneval_fix.py`): only
  mutants of the canonical solution that fail the hidden tests and a visible test in the
  sandbox are kept, with that visible test and its error.

`humaneval-fix` is the pack where a copy is present (the folder or the cache), else the
synthetic set; the run stores which (`Benchmark.name`), and the report says it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from codeduel.benchmarks._types import Benchmark, Task
from codeduel.benchmarks.jsonl import read_jsonl
from codeduel.errors import BenchmarkError
from codeduel.types import Message

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DIR_ENV", "FIX_SETS", "FixTask", "load_humaneval_fix", "pack_url"]

NAME = "humaneval-fix"
FIX_SETS = ("pack", "synthetic")
DIR_ENV = "CODEDUEL_HUMANEVALPACK_DIR"
PACK_REPO = "bigcode/humanevalpack"
PACK_FILE = "humanevalpack.jsonl"
_PACK_PATH = "data/python/data/humanevalpack.jsonl"
_PREFILL = "Below is the corrected Python function:\n```python\n"


@dataclass(frozen=True)
class FixTask(Task):
    """A HumanEval problem with a bug to fix. `test` is the hidden tests as a whole program
    (they call `check` themselves), `visible_test` the docstring's examples."""

    buggy_solution: str = ""
    # The visible test the buggy function fails and its error; "" where not known (the pack's
    # bugs were not run here: the prompt then shows all the visible tests).
    failing_test: str = ""
    error: str = ""
    bug_type: str = ""

    def reference_solution(self) -> str | None:
        if self.canonical_solution is None:
            return None
        return self.prompt + self.canonical_solution

    def chat_prompt(self) -> tuple[tuple[Message, ...], str]:
        text = f"This Python function has a bug:\n```python\n{self.buggy_solution.rstrip()}\n```\n"
        if self.failing_test:
            text += (
                f"It fails this test:\n```python\n{self.failing_test.strip()}\n```\n"
                f"Error:\n```\n{self.error.strip()}\n```\n"
            )
        elif self.visible_test.strip():
            text += f"It fails one of these tests:\n```python\n{self.visible_test.strip()}\n```\n"
        text += "Fix the bug and provide the whole corrected function in a markdown code block."
        return (Message("user", text),), _PREFILL


def pack_url() -> str:
    """Where the Hub serves HumanEvalPack's Python file ($HF_ENDPOINT for a mirror)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/datasets/{PACK_REPO}/resolve/main/{_PACK_PATH}"


def _cache_file() -> Path:
    override = os.environ.get("CODEDUEL_CACHE_DIR")
    if override:
        return Path(override) / "datasets" / "humanevalpack" / PACK_FILE
    import platformdirs

    return Path(platformdirs.user_cache_dir("codeduel")) / "datasets" / "humanevalpack" / PACK_FILE


def _pack_copy() -> Path | None:
    """The pack's file where a copy is present; None where it would have to be downloaded."""
    folder = os.environ.get(DIR_ENV)
    if folder:
        path = Path(folder) / PACK_FILE
        if not path.is_file():
            raise BenchmarkError(f"{DIR_ENV} is set but {path} does not exist")
        return path
    cached = _cache_file()
    return cached if cached.is_file() else None


def _humaneval() -> dict[str, Task]:
    from codeduel.benchmarks.humaneval import load_humaneval

    return {t.task_id: t for t in load_humaneval().tasks}


def _str(row: Mapping[str, object], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise BenchmarkError(f"{where}: field {key} must be a string")
    return value


def _load_pack(path: Path) -> Benchmark:
    raw = path.read_bytes()
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise BenchmarkError(f"{path}: not UTF-8 text") from None
    base = _humaneval()
    tasks = []
    for number, row in read_jsonl(lines, str(path)):
        where = f"{path}:{number}"
        task_id = _str(row, "task_id", where)
        source = task_id.replace("Python/", "HumanEval/")
        if source not in base:
            raise BenchmarkError(f"{where}: task_id {task_id!r} is not a HumanEval problem")
        entry = _str(row, "entry_point", where)
        prompt = _str(row, "prompt", where)
        tasks.append(
            FixTask(
                task_id=task_id.replace("Python/", "HumanEvalFix/"),
                prompt=prompt,
                entry_point=entry,
                test=_str(row, "import", where) + _str(row, "test", where),
                test_style="asserts",
                canonical_solution=_str(row, "canonical_solution", where),
                test_setup=_str(row, "test_setup", where),
                visible_test=base[source].visible_test,
                buggy_solution=prompt + _str(row, "buggy_solution", where),
                bug_type=_str(row, "bug_type", where),
            )
        )
    if not tasks:
        raise BenchmarkError(f"{path} holds no task")
    digest = hashlib.sha256(raw).hexdigest()
    window = f"HumanEvalPack's HumanEvalFix (python split, {PACK_REPO}): {len(tasks)} bugs"
    return Benchmark(f"{NAME}@pack", tuple(tasks), digest, str(path), window)


def _load_synthetic() -> Benchmark:
    from codeduel.benchmarks.humaneval import HUMANEVAL_SHA256

    data = resources.files("codeduel.benchmarks").joinpath("data/humaneval_fix.jsonl")
    raw = data.read_bytes()
    rows = read_jsonl(raw.decode("utf-8").splitlines(), str(data))
    header = rows[0][1]
    if header.get("humaneval_sha256") != HUMANEVAL_SHA256:
        raise BenchmarkError(f"{data} was built from another HumanEval file")
    base = _humaneval()
    tasks = []
    for _, row in rows[1:]:
        task = base[row["source_task"]]
        tasks.append(
            FixTask(
                task_id=row["task_id"],
                prompt=task.prompt,
                entry_point=task.entry_point,
                test=f"{task.test}\n\ncheck({task.entry_point})",
                test_style="asserts",
                canonical_solution=task.canonical_solution,
                visible_test=task.visible_test,
                buggy_solution=row["buggy_solution"],
                failing_test=row["failing_test"],
                error=row["error"],
                bug_type=row["bug_type"],
            )
        )
    kinds: dict[str, int] = {}
    for t in tasks:
        kinds[t.bug_type] = kinds.get(t.bug_type, 0) + 1
    window = (
        f"synthetic HumanEvalFix (codeduel's single AST mutations of HumanEval's canonical "
        f"solutions): {len(tasks)} bugs, "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    )
    return Benchmark(
        f"{NAME}@synthetic", tuple(tasks), hashlib.sha256(raw).hexdigest(), str(data), window
    )


def load_humaneval_fix(spec: str = NAME) -> Benchmark:
    """`humaneval-fix` (the pack where present, else synthetic), `humaneval-fix@pack` or
    `humaneval-fix@synthetic`."""
    chosen = spec.partition("@")[2] if "@" in spec else ""
    if spec != NAME and (not spec.startswith(f"{NAME}@") or chosen not in FIX_SETS):
        raise BenchmarkError(
            f"unknown benchmark {spec!r}: use {NAME}, {NAME}@pack or {NAME}@synthetic"
        )
    if chosen == "synthetic":
        return _load_synthetic()
    path = _pack_copy()
    if path is None and chosen == "pack":
        from codeduel.benchmarks.livecodebench import download

        path = download(
            pack_url(),
            _cache_file(),
            title="HumanEvalPack's",
            hint=f"set {DIR_ENV} to a folder holding {PACK_FILE}",
        )
    return _load_synthetic() if path is None else _load_pack(path)
