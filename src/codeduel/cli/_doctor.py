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
