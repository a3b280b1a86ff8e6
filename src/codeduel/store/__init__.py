"""The run store (SQLite): every run, sample, attempt, model call and execution."""

from codeduel.store._calls import StoredCalls, stored_output
from codeduel.store._migrations import MIGRATIONS
from codeduel.store._store import Run, Store, default_db_path

__all__ = ["MIGRATIONS", "Run", "Store", "StoredCalls", "default_db_path", "stored_output"]
