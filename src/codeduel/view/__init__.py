"""`codeduel view`: a local, read-only web page over the run store (Starlette, uvicorn)."""

from codeduel.view._app import bind, create_app, serve
from codeduel.view._data import (
    GridRow,
    Progress,
    TaskGrid,
    run_progress,
    sample_record,
    system_progress,
    task_grid,
)

__all__ = [
    "GridRow",
    "Progress",
    "TaskGrid",
    "bind",
    "create_app",
    "run_progress",
    "sample_record",
    "serve",
    "system_progress",
    "task_grid",
]
