"""What the commands share: option groups, the `-M`/`-S` parsers and the default model."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

__all__ = [
    "DEFAULT_MODEL",
    "benchmark_spec",
    "db_option",
    "executor_option",
    "generation_options",
    "parse_model_options",
    "parse_strategy_options",
    "timeout_option",
    "unsafe_sandbox_option",
    "window_options",
    "workers_option",
]

DEFAULT_MODEL = "llamacpp/qwen2.5-coder-0.5b-instruct"
"""The bundled model: what `run` and `solve` use without a --model."""

F = TypeVar("F", bound=Callable[..., Any])


def _group(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator, in the order they are listed in --help."""

    def apply(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run store (SQLite). Default: $CODEDUEL_DB or the user data dir.",
)
workers_option = click.option(
    "--workers", type=click.IntRange(1, 256), help="Sandbox processes (default: cores)."
)
unsafe_sandbox_option = click.option(
    "--unsafe-sandbox",
    is_flag=True,
    help="Run untrusted code even where the sandbox lacks required isolation (see doctor).",
)


# The names of `codeduel.executors.EXECUTORS`, listed here so --help imports nothing more.
def _ray_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # Ray's own convention: ray.init() connects to $RAY_ADDRESS.
    if value:
        os.environ["RAY_ADDRESS"] = value
    return value


def executor_option(f: F) -> F:
    """--executor and --ray-address."""
    f = click.option(
        "--ray-address",
        callback=_ray_address,
        expose_value=False,
        help="The Ray cluster of --executor ray (default: $RAY_ADDRESS, else a local Ray "
        "started for the run).",
    )(f)
    return click.option(
        "--executor",
        type=click.Choice(["local", "gpu", "ray", "ray-gpu"]),
        default="local",
        show_default=True,
        help="Where model-written programs run: local (this machine's sandbox), gpu (the "
        "sandbox with the NVIDIA GPUs visible, timing one program per GPU at a time), ray "
        "(the sandbox on each node of a Ray cluster), or ray-gpu (gpu's sandbox on each GPU "
        "of a Ray cluster, one actor per GPU).",
    )(f)


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    # FloatRange lets NaN through (every comparison with it is false).
    if not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, not {value}")
    return value


def timeout_option(help: str) -> Callable[[F], F]:
    """--timeout: the floor of the per-task time limit (the same default everywhere)."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=3.0,
        show_default=True,
        callback=_finite,
        help=help,
    )


generation_options = _group(
    click.option("--max-tokens", type=click.IntRange(min=1), default=768, show_default=True),
    click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True),
    click.option("--seed", type=int, default=0, show_default=True),
)


def parse_model_options(pairs: tuple[str, ...], specs: list[str]) -> dict[str, dict[str, str]]:
    """`-M key=value` for every model, or `-M TARGET:key=value` for one provider or model spec."""
    options: dict[str, dict[str, str]] = {spec: {} for spec in specs}
    for pair in pairs:
        left, sep, value = pair.partition("=")
        target, colon, key = left.rpartition(":")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE or TARGET:KEY=VALUE", param_hint="-M"
            )
        if colon:
            chosen = [s for s in specs if target in (s, s.partition("/")[0])]
            if not chosen:
                # Not the value: it may be a secret.
                raise click.BadParameter(
                    f"{target!r} in {target}:{key}=… names no --model of this run",
                    param_hint="-M",
                )
        else:
            chosen = specs
        for spec in chosen:
            options[spec][key] = value
    return options


def parse_strategy_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """`-S key=value`, checked against the strategy's schema later."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-S")
        options[key.strip()] = value
    return options


def window_options(func: F) -> F:
    """LiveCodeBench's release and date window (and where its files are), folded into the
    command's BENCHMARK as one spec, `livecodebench@RELEASE,since=…,until=…`, which the run
    stores: resume and rescore read the same problems."""

    @functools.wraps(func)
    def command(
        *args: Any,
        release: str | None,
        since: str | None,
        until: str | None,
        after_cutoff: str | None,
        cutoffs: Path | None,
        lcb_dir: Path | None,
        **kwargs: Any,
    ) -> Any:
        kwargs["benchmark"] = benchmark_spec(
            kwargs["benchmark"], release, since, until, after_cutoff, cutoffs
        )
        if lcb_dir is not None:
            # The loader reads the folder from the environment, as a user would set it.
            os.environ["CODEDUEL_LCB_DIR"] = str(lcb_dir)
        return func(*args, **kwargs)

    return _group(
        click.option("--release", help="livecodebench: release, e.g. release_v6 (default), v5."),
        click.option("--since", metavar="DATE", help="livecodebench: contests on or after DATE."),
        click.option("--until", metavar="DATE", help="livecodebench: contests up to DATE."),
        click.option(
            "--after-cutoff",
            metavar="MODEL",
            help="livecodebench: contests after MODEL's training cutoff (see --cutoffs).",
        ),
        click.option(
            "--cutoffs",
            type=click.Path(dir_okay=False, path_type=Path),
            help="JSON table of training cutoffs over the bundled one ($CODEDUEL_CUTOFFS).",
        ),
        click.option(
            "--lcb-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="livecodebench: an offline copy of the dataset's files ($CODEDUEL_LCB_DIR).",
        ),
    )(cast(F, command))


def benchmark_spec(
    benchmark: str,
    release: str | None,
    since: str | None,
    until: str | None,
    after_cutoff: str | None,
    cutoffs: Path | None,
) -> str:
    """BENCHMARK with the window options in it (unchanged when none is given)."""
    given = [
        name
        for name, value in (
            ("--release", release),
            ("--since", since),
            ("--until", until),
            ("--after-cutoff", after_cutoff),
        )
        if value is not None
    ]
    if not given:
        return benchmark
    from dataclasses import replace

    from codeduel.benchmarks.livecodebench import after_cutoff as first_day_after
    from codeduel.benchmarks.livecodebench import parse_spec
    from codeduel.errors import OptionError

    if not benchmark.startswith("livecodebench"):
        raise OptionError(f"{', '.join(given)} apply to livecodebench only, not {benchmark!r}")
    if since is not None and after_cutoff is not None:
        raise OptionError("give --since or --after-cutoff, not both")
    spec = parse_spec(benchmark)
    changes: dict[str, Any] = {}
    if release is not None:
        changes["release"] = parse_spec(f"livecodebench@{release}").release
    if since is not None:
        changes["since"] = parse_spec(f"livecodebench,since={since}").since
    if until is not None:
        changes["until"] = parse_spec(f"livecodebench,until={until}").until
    if after_cutoff is not None:
        changes["since"], basis = first_day_after(after_cutoff, cutoffs)
        click.echo(
            f"codeduel: --after-cutoff {after_cutoff}: contests from {changes['since']} on, "
            f"after {basis}",
            err=True,
        )
    # Parsed once more, so a window that ends before it starts is refused here too.
    return parse_spec(replace(spec, **changes).name).name
