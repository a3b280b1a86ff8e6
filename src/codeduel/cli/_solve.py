"""`codeduel solve`: one task, for a person, through the loop a run uses, attempt by attempt."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from codeduel.cli._options import (
    DEFAULT_MODEL,
    generation_options,
    parse_model_options,
    parse_strategy_options,
    timeout_option,
    unsafe_sandbox_option,
)

if TYPE_CHECKING:
    from codeduel.benchmarks import Task
    from codeduel.scoring import Attempt

__all__ = ["solve"]

_DEF = re.compile(r"^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)", re.MULTILINE)


def _entry_point(prompt: str, tests: str) -> str:
    """The function the person asks for: the prompt's first `def`, else what the tests call."""
    found = _DEF.search(prompt)
    if found:
        return found[1]
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return "solution"
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Name) and not hasattr(builtins, func.id):
            return func.id
    return "solution"


def _read(path: Path, what: str) -> str:
    from codeduel.errors import OptionError

    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"cannot read {what} {path}: {exc}") from None


def _task(
    benchmark: str | None,
    task_id: str | None,
    prompt: str | None,
    prompt_file: Path | None,
    tests_file: Path | None,
) -> tuple[Task, bool]:
    """The task, and whether it has hidden tests (it comes from a benchmark)."""
    from dataclasses import replace

    from codeduel.benchmarks import Task, load_benchmark
    from codeduel.errors import OptionError

    tests = _read(tests_file, "tests file") if tests_file else None
    if task_id or benchmark:
        if not (task_id and benchmark) or prompt or prompt_file:
            raise OptionError("give --task-id with --benchmark, or --prompt/--prompt-file")
        (task,) = load_benchmark(benchmark).select([task_id])
        return (task if tests is None else replace(task, visible_test=tests.strip())), True
    if (prompt is None) == (prompt_file is None):
        raise OptionError("give one of --task-id/--benchmark, --prompt or --prompt-file")
    text = prompt if prompt is not None else _read(prompt_file or Path(), "prompt file")
    visible = (tests or "").strip()
    entry = _entry_point(text, visible)
    return Task("prompt", text, entry, test="", test_style="asserts", visible_test=visible), False


def _show_attempt(number: list[int], attempt: Attempt) -> None:
    number[0] += 1
    call = attempt.call
    out = call.output
    head = f"── attempt {number[0]} · {call.model}"
    if out is not None:
        head += f" · {out.prompt_tokens} + {out.completion_tokens} tokens · {out.latency_s:.1f} s"
    click.secho(head, bold=True)
    if call.error:
        click.secho(f"model error: {call.error}", fg="red")
        return
    click.echo(attempt.code.rstrip() or "(no code in the answer)")
    e = attempt.visible_record
    if e is None:
        click.secho("visible tests: none", fg="yellow")
    else:
        color = "green" if e.status == "passed" else "red"
        click.secho(f"visible tests: {e.status}" + (f" ({e.detail})" if e.detail else ""), fg=color)


@click.command()
@click.option("--benchmark", metavar="NAME_OR_PATH", help="Benchmark of --task-id.")
@click.option("--task-id", help="A task of --benchmark, e.g. HumanEval/0.")
@click.option("--prompt", help="The task, as text (a signature and docstring, or prose).")
@click.option(
    "--prompt-file", type=click.Path(dir_okay=False, path_type=Path), help="The task, from a file."
)
@click.option(
    "--tests",
    "tests_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Visible tests: assert lines the model gets feedback from.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="SPEC",
    help=f"PROVIDER/MODEL (repeat for cascade). Default: {DEFAULT_MODEL}.",
)
@click.option("-M", "model_options", multiple=True, metavar="KEY=VALUE", help="Provider option.")
@click.option(
    "--strategy",
    type=click.Choice(["repair", "single", "resample", "cascade"]),
    default="repair",
    show_default=True,
)
@click.option("-S", "strategy_options", multiple=True, metavar="KEY=VALUE", help="e.g. attempts=3")
@generation_options
@timeout_option("Time limit of a test run, seconds (scaled up for a benchmark's slow reference).")
@unsafe_sandbox_option
def solve(
    benchmark: str | None,
    task_id: str | None,
    prompt: str | None,
    prompt_file: Path | None,
    tests_file: Path | None,
    models: tuple[str, ...],
    model_options: tuple[str, ...],
    strategy: str,
    strategy_options: tuple[str, ...],
    max_tokens: int,
    temperature: float,
    seed: int,
    timeout: float,
    unsafe_sandbox: bool,
) -> None:
    """Solve one task with a model, showing each attempt and its visible-test result."""
    import asyncio

    from codeduel.errors import OptionError
    from codeduel.executors import open_executor
    from codeduel.models import load_model, parse_model_spec
    from codeduel.records import SampleRecord
    from codeduel.scoring import TIMEOUT_FACTOR, Scorer
    from codeduel.strategies import Context, get_strategy
    from codeduel.types import GenerateConfig

    task, from_benchmark = _task(benchmark, task_id, prompt, prompt_file, tests_file)
    chosen = get_strategy(strategy, parse_strategy_options(strategy_options))
    specs = [parse_model_spec(m) for m in (models or (DEFAULT_MODEL,))]
    if len(specs) > 1 and not chosen.uses_chain:
        raise OptionError(f"strategy {strategy} takes one --model; cascade takes several")
    options = parse_model_options(model_options, [str(s) for s in specs])
    if not task.visible_test:
        click.secho("no visible tests: the loop cannot check or repair the code", fg="yellow")
    loaded = []
    try:
        for spec in specs:
            loaded.append(load_model(spec, options[str(spec)]))
        with open_executor(workers=2, allow_unsafe=unsafe_sandbox) as executor:
            counter = [0]

            async def solve_and_score() -> SampleRecord:
                scorer = Scorer(executor)
                if from_benchmark:
                    await scorer.calibrate([task], timeout, TIMEOUT_FACTOR)
                else:
                    scorer.set_limits({task.task_id: timeout})
                ctx = Context(
                    loaded[0],
                    GenerateConfig(max_tokens=max_tokens, temperature=temperature, seed=seed),
                    scorer,
                    chain=tuple(loaded),
                    on_attempt=lambda attempt: _show_attempt(counter, attempt),
                )
                return await scorer.score(await chosen.solve(task, 0, ctx))

            sample = asyncio.run(solve_and_score())
    finally:
        for model in loaded:
            model.close()
    click.secho(f"── final answer ({sample.model}, {strategy})", bold=True)
    click.echo(sample.code.rstrip() or "(no code)")
    if from_benchmark:
        final = sample.attempts[-1 if sample.final_attempt is None else sample.final_attempt]
        detail = next((e.detail for e in final.executions if e.tests == "hidden"), "")
        color = "green" if sample.status == "passed" else "red"
        click.secho(f"hidden tests: {sample.status}" + (f" ({detail})" if detail else ""), fg=color)
