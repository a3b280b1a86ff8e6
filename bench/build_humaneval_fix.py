"""Build the synthetic HumanEvalFix set: one single-AST-mutation bug per HumanEval task.

    .venv/bin/python bench/build_humaneval_fix.py [--workers 2] [--check]

Each task's canonical solution is mutated at one place by one of five operators: a comparison
flipped, an integer off by one, an arithmetic operator swapped, a call's first two arguments
swapped, a condition dropped. Candidates are tried in a fixed order (the operators rotated by
the task's number, then the sites in source order); the first mutant that fails both the hidden
tests and one visible test (a wrong answer or an error, not a time limit) in codeduel's sandbox
is kept, with that visible test and its error. Tasks with no visible test, or no such mutant,
are left out. Writes src/codeduel/benchmarks/data/humaneval_fix.jsonl (deterministic: the same
bytes on every build); `--check` builds to memory and exits 1 if the committed file differs.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from codeduel.benchmarks import Task, load_benchmark
from codeduel.benchmarks.humaneval import HUMANEVAL_SHA256
from codeduel.sandbox import Sandbox
from codeduel.strategies.repair import visible_feedback

OUT = Path(__file__).resolve().parents[1] / "src/codeduel/benchmarks/data/humaneval_fix.jsonl"
TIMEOUT_S = 5.0
_BATCH = 4
_FAILS = {"failed", "error"}
_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
_SWAP_OP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
}  # fmt: skip


def _flip(node: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _FLIP:
        new = copy.deepcopy(node)
        new.ops = [_FLIP[type(node.ops[0])]()]
        yield new, "comparison flipped"


def _off_by_one(node: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        for delta in (1, -1):
            if node.value + delta >= 0:
                yield ast.Constant(node.value + delta), "off by one"


def _operator(node: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    if isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _SWAP_OP:
        new = copy.deepcopy(node)
        new.op = _SWAP_OP[type(node.op)]()
        yield new, "wrong operator"


def _swap_args(node: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    if isinstance(node, ast.Call) and len(node.args) >= 2:
        first, second = node.args[0], node.args[1]
        if ast.dump(first) != ast.dump(second) and not any(
            isinstance(a, ast.Starred) for a in node.args[:2]
        ):
            new = copy.deepcopy(node)
            new.args[0], new.args[1] = new.args[1], new.args[0]
            yield new, "swapped arguments"


def _drop_condition(node: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    if isinstance(node, ast.BoolOp):
        for index in range(len(node.values)):
            rest = [v for i, v in enumerate(node.values) if i != index]
            new = copy.deepcopy(rest[0]) if len(rest) == 1 else ast.BoolOp(node.op, rest)
            yield new, "dropped condition"
    if isinstance(node, ast.comprehension) and node.ifs:
        new = copy.deepcopy(node)
        new.ifs = new.ifs[1:]
        yield new, "dropped condition"


OPERATORS: list[Callable[[ast.AST], Iterator[tuple[ast.AST, str]]]] = [
    _flip, _off_by_one, _operator, _swap_args, _drop_condition,
]  # fmt: skip


def _segment(source: str, node: ast.AST) -> tuple[int, int] | None:
    """The character span of a one-line node in `source`."""
    if not hasattr(node, "lineno") or node.lineno != node.end_lineno:
        return None
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    line_start = starts[node.lineno - 1]
    encoded = source[line_start:].encode()
    begin = len(encoded[: node.col_offset].decode())
    end = len(encoded[: node.end_col_offset].decode())
    return line_start + begin, line_start + end


def _replace(source: str, tree: ast.Module, node: ast.AST, new: ast.AST) -> str | None:
    """`source` with `node` written as `new`, the rest of the text untouched; None where the
    text would not parse to the mutated tree."""
    span = _segment(source, node)
    if span is None:
        return None
    expected = copy.deepcopy(tree)
    for parent in ast.walk(expected):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if _same_place(item, node):
                        value[i] = new
            elif _same_place(value, node):
                setattr(parent, field, new)
    text = ast.unparse(new)
    for candidate in (text, f"({text})"):
        mutated = source[: span[0]] + candidate + source[span[1] :]
        try:
            if ast.dump(ast.parse(mutated)) == ast.dump(expected):
                return mutated
        except SyntaxError:
            continue
    return None


def _same_place(item: object, node: ast.AST) -> bool:
    return (
        isinstance(item, ast.AST)
        and type(item) is type(node)
        and getattr(item, "lineno", None) == getattr(node, "lineno", -1)
        and getattr(item, "col_offset", None) == getattr(node, "col_offset", -1)
        and getattr(item, "end_col_offset", None) == getattr(node, "end_col_offset", -1)
    )


def mutants(task: Task) -> Iterator[tuple[str, str]]:
    """(bug kind, the mutated whole function) in the fixed order this build tries them."""
    assert task.canonical_solution is not None
    source = task.prompt + task.canonical_solution
    tree = ast.parse(source)
    body_from = task.prompt.count("\n") + 1
    nodes = sorted(
        (n for n in ast.walk(tree) if getattr(n, "lineno", 0) >= body_from),
        key=lambda n: (n.lineno, n.col_offset, -(n.end_col_offset or 0), type(n).__name__),
    )
    number = int(task.task_id.split("/")[1])
    order = OPERATORS[number % len(OPERATORS) :] + OPERATORS[: number % len(OPERATORS)]
    seen = {source}
    for operator in order:
        for node in nodes:
            for new, kind in operator(node):
                mutated = _replace(source, tree, node, new)
                if mutated is not None and mutated not in seen:
                    seen.add(mutated)
                    yield kind, mutated


def build(workers: int) -> list[dict[str, str]]:
    bench = load_benchmark("humaneval")
    rows = []
    with Sandbox(workers=workers) as box:
        for task in bench.tasks:
            if not task.visible_test.strip():
                continue
            candidates = list(mutants(task))
            found = None
            for start in range(0, len(candidates), _BATCH):
                batch = candidates[start : start + _BATCH]
                # Hidden and visible runs of a few candidates at a time, in order.
                jobs = [
                    (program, TIMEOUT_S)
                    for _, m in batch
                    for program in (task.program(m), task.visible_program(m))
                ]
                results = list(box.map(jobs))
                found = next(
                    (
                        (kind, mutated, results[2 * i + 1])
                        for i, (kind, mutated) in enumerate(batch)
                        if {results[2 * i].status, results[2 * i + 1].status} <= _FAILS
                    ),
                    None,
                )
                if found is not None:
                    break
            if found is not None:
                kind, mutated, visible = found
                failing, error = visible_feedback(task, mutated, visible)
                rows.append(
                    {
                        "task_id": task.task_id.replace("HumanEval/", "HumanEvalFix/"),
                        "source_task": task.task_id,
                        "bug_type": kind,
                        "buggy_solution": mutated,
                        "failing_test": failing,
                        "error": error,
                    }
                )
            kept = found[0] if found is not None else "none kept"
            print(f"{task.task_id}: {len(candidates)} candidates, {kept}", file=sys.stderr)
    return rows


def render(rows: list[dict[str, str]]) -> str:
    header = {"humaneval_sha256": HUMANEVAL_SHA256, "built_by": "bench/build_humaneval_fix.py"}
    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render(build(args.workers))
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print("same as the committed file" if same else "differs from the committed file")
        sys.exit(0 if same else 1)
    OUT.write_text(text, encoding="utf-8")
    kinds: dict[str, int] = {}
    for row in text.splitlines()[1:]:
        kind = json.loads(row)["bug_type"]
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"wrote {OUT}: {len(text.splitlines()) - 1} tasks; {kinds}")


if __name__ == "__main__":
    main()
