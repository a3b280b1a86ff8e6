"""The run store (SQLite): every run, sample, attempt, model call and execution."""

from codeduel.store._batches import StoredBatches
from codeduel.store._calls import StoredCalls, stored_output
from codeduel.store._migrations import MIGRATIONS
from codeduel.store._store import Run, Store, default_db_path
from codeduel.store._usage import call_usage

__all__ = [
    "MIGRATIONS",
    "Run",
    "Store",
    "StoredBatches",
    "StoredCalls",
    "call_usage",
    "default_db_path",
    "stored_output",
]
