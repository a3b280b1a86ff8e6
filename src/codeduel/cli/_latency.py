"""`codeduel latency`: time to first token and to the whole answer, alone and under load."""

from __future__ import annotations

from pathlib import Path

import click

from codeduel.cli._options import DEFAULT_MODEL, db_option, parse_model_options

__all__ = ["latency"]


def _users(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of whole numbers"
        ) from None
    if not levels or any(n < 1 or n > 256 for n in levels):
        raise click.BadParameter(f"{value!r}: each level is 1 to 256 users")
    return levels


@click.command()
@click.argument("benchmark")
@click.option(
    "--model", "models", multiple=True, metavar="SPEC",
    help=f"PROVIDER/MODEL, repeatable. Default: {DEFAULT_MODEL}.",
)  # fmt: skip
@click.option("-M", "model_options", multiple=True, metavar="KEY=VALUE", help="Provider option.")
@click.option(
    "--users", default="1,4,16", show_default=True, callback=_users,
    help="Concurrent users per level, comma-separated (1: each request alone).",
)  # fmt: skip
@click.option(
    "--think-time", type=click.FloatRange(min=0.0, max=3600.0), default=1.0, show_default=True,
    help="Seconds a user waits after an answer before sending the next request.",
)  # fmt: skip
@click.option(
    "--requests", type=click.IntRange(min=1), default=16, show_default=True,
    help="Requests per level and model.",
)  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), help="Prompts from the first N tasks only.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--location", metavar="TEXT",
    help="Where the run is made from, e.g. 'eu-west, office LAN' (default: the host's name).",
)  # fmt: skip
@click.option(
    "--accuracy", "accuracy_run", metavar="RUN",
    help="A stored run whose pass@1 per model goes beside the latency table.",
)  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path))
@db_option
def latency(
    benchmark: str,
    models: tuple[str, ...],
    model_options: tuple[str, ...],
    users: tuple[int, ...],
    think_time: float,
    requests: int,
    limit: int | None,
    max_tokens: int,
    location: str | None,
    accuracy_run: str | None,
    fmt: str,
    output: Path | None,
    db: Path | None,
) -> None:
    """Time BENCHMARK's prompts on each model as a person feels it: time to first token and
    to the end of the answer (p50/p95/p99), with 1, 4 and 16 users in a closed loop."""
    import asyncio
    import json

    from codeduel.benchmarks import load_benchmark
    from codeduel.errors import OptionError
    from codeduel.latency import (
        LatencyReport,
        RequestTiming,
        measure_level,
        prompt_requests,
        render_latency_json,
        render_latency_markdown,
        summarize,
        where_run,
    )
    from codeduel.models import load_model, parse_model_spec
    from codeduel.types import GenerateConfig

    specs = [parse_model_spec(m) for m in (models or (DEFAULT_MODEL,))]
    options = parse_model_options(model_options, [str(s) for s in specs])
    bench = load_benchmark(benchmark)
    tasks = bench.select(limit=limit)
    report = LatencyReport(bench.name, where_run(location), think_time, requests, max_tokens)
    if accuracy_run is not None:
        report.accuracy = _accuracy(db, accuracy_run)
        if not report.accuracy:
            raise OptionError(f"run {accuracy_run!r} has no scored sample")
    timed: list[RequestTiming] = []
    base = GenerateConfig(max_tokens=max_tokens)

    async def measure_all() -> None:
        for spec in specs:
            model = load_model(spec, options[str(spec)])
            try:
                reqs = prompt_requests(tasks, model, base)
                # One request first, not counted: a local engine loads its weights on it.
                await measure_level(model, reqs, 1, 1, 0.0)
                for level in users:
                    got, wall = await measure_level(model, reqs, level, requests, think_time)
                    timed.extend(got)
                    report.levels.append(summarize(got, model.provider.capabilities.local, wall))
                    click.echo(f"{spec}: {level} users done in {wall:.1f} s", err=True)
            finally:
                model.close()

    asyncio.run(measure_all())
    if fmt == "json":
        text = json.dumps(render_latency_json(report, timed), indent=2) + "\n"
    else:
        text = render_latency_markdown(report)
    if output is None:
        click.echo(text, nl=False)
    else:
        from codeduel.util import write_atomic

        write_atomic(output, text)


def _accuracy(db: Path | None, run_name: str) -> dict[str, tuple[float, int, str]]:
    from codeduel.errors import OptionError
    from codeduel.report import build_rows
    from codeduel.store import Store, default_db_path

    with Store(db or default_db_path(), read_only=True) as store:
        run = store.get_run(run_name)
        if run is None:
            raise OptionError(f"no run named {run_name!r} in the store")
        rows = build_rows(store, run)
    return {
        f"{row.model} ({row.strategy})": (row.pass_at_1.value * 100, row.tasks, run_name)
        for row in rows
        if row.pass_at_1 is not None
    }
