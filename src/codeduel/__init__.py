"""codeduel: local coding models vs cloud models, measured on coding benchmarks.

The library's surface, re-exported here from the packages that own it (each of which
declares its own with `__all__`): run a benchmark, evaluate, re-grade or export samples, read the
store, report; load models and register providers; the strategy, scorer and executor
interfaces. Names load on first use, so `import codeduel` (and `codeduel --help`) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from codeduel.benchmarks import Benchmark, Task, load_benchmark
    from codeduel.errors import CodeduelError, ModelError, UserError
    from codeduel.evaluate import evaluate_file
    from codeduel.executors import Executor, open_executor
    from codeduel.export import export_run
    from codeduel.models import (
        Capabilities,
        Model,
        Provider,
        ProviderOptions,
        load_model,
        parse_model_spec,
        register_provider,
        unregister_provider,
    )
    from codeduel.report import build_report, render_html, render_json, render_markdown
    from codeduel.rescore import rescore_run
    from codeduel.runner import RunOptions, run_benchmark
    from codeduel.scoring import Attempt, Scorer, Solution
    from codeduel.store import Run, Store
    from codeduel.strategies import Context, Strategy, StrategyOptions, get_strategy
    from codeduel.types import GenerateConfig, Message, ModelOutput

_HOME = {
    "Benchmark": "codeduel.benchmarks",
    "Task": "codeduel.benchmarks",
    "load_benchmark": "codeduel.benchmarks",
    "CodeduelError": "codeduel.errors",
    "ModelError": "codeduel.errors",
    "UserError": "codeduel.errors",
    "evaluate_file": "codeduel.evaluate",
    "Executor": "codeduel.executors",
    "open_executor": "codeduel.executors",
    "export_run": "codeduel.export",
    "Capabilities": "codeduel.models",
    "Model": "codeduel.models",
    "Provider": "codeduel.models",
    "ProviderOptions": "codeduel.models",
    "load_model": "codeduel.models",
    "parse_model_spec": "codeduel.models",
    "register_provider": "codeduel.models",
    "unregister_provider": "codeduel.models",
    "build_report": "codeduel.report",
    "render_html": "codeduel.report",
    "render_json": "codeduel.report",
    "render_markdown": "codeduel.report",
    "rescore_run": "codeduel.rescore",
    "RunOptions": "codeduel.runner",
    "run_benchmark": "codeduel.runner",
    "Attempt": "codeduel.scoring",
    "Scorer": "codeduel.scoring",
    "Solution": "codeduel.scoring",
    "Run": "codeduel.store",
    "Store": "codeduel.store",
    "Context": "codeduel.strategies",
    "Strategy": "codeduel.strategies",
    "StrategyOptions": "codeduel.strategies",
    "get_strategy": "codeduel.strategies",
    "GenerateConfig": "codeduel.types",
    "Message": "codeduel.types",
    "ModelOutput": "codeduel.types",
}

__all__ = [
    "Attempt",
    "Benchmark",
    "Capabilities",
    "CodeduelError",
    "Context",
    "Executor",
    "GenerateConfig",
    "Message",
    "Model",
    "ModelError",
    "ModelOutput",
    "Provider",
    "ProviderOptions",
    "Run",
    "RunOptions",
    "Scorer",
    "Solution",
    "Store",
    "Strategy",
    "StrategyOptions",
    "Task",
    "UserError",
    "__version__",
    "build_report",
    "evaluate_file",
    "export_run",
    "get_strategy",
    "load_benchmark",
    "load_model",
    "open_executor",
    "parse_model_spec",
    "register_provider",
    "render_html",
    "render_json",
    "render_markdown",
    "rescore_run",
    "run_benchmark",
    "unregister_provider",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value
