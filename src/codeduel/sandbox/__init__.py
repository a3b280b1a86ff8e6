"""Execution sandbox for untrusted, model-written Python programs.

`Sandbox` keeps pre-warmed fork servers; every program runs in a fresh forked process tree with
its own pid and mount namespaces, inside its worker's user namespace (as an unprivileged uid
without capabilities), IPC namespace (where no IPC object can be made) and network namespace
(which has no network), with a read-only root built from an allowlist (the system, the
interpreter, a minimal /etc and /dev: nothing else of the host), resource limits, a private
tmpfs scratch directory and a scrubbed environment. The
verdict travels over a private nonce-tagged pipe, so neither the exit code nor the output can
fake a pass. `docs/security.md` has the threat model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codeduel.sandbox._protocol import NOT_ROOT
    from codeduel.sandbox._sandbox import (
        LAUNCH_ENV,
        REQUIRED_LAYERS,
        Isolation,
        Sandbox,
        probe_isolation,
        probe_layers,
    )
    from codeduel.sandbox._types import ExecResult, Limits, Status
    from codeduel.sandbox._view import gpu_devices

__all__ = [
    "LAUNCH_ENV",
    "NOT_ROOT",
    "REQUIRED_LAYERS",
    "ExecResult",
    "Isolation",
    "Limits",
    "Sandbox",
    "Status",
    "gpu_devices",
    "probe_isolation",
    "probe_layers",
]

# Imported on first use: the worker process imports this package too, and must not load
# threading, logging or subprocess, whose fork handlers would run in every sample it forks.
_HOME = (
    {name: "codeduel.sandbox._sandbox" for name in __all__}
    | {name: "codeduel.sandbox._types" for name in ("ExecResult", "Limits", "Status")}
    | {"NOT_ROOT": "codeduel.sandbox._protocol", "gpu_devices": "codeduel.sandbox._view"}
)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
