"""Fixtures for the report tests: real stores holding runs made without a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeduel.store import Run, Store
from tests.report.samples import CLOUD, LOCAL, make_sample


@pytest.fixture
def duel(tmp_path: Path) -> tuple[Store, Run]:
    """Local against cloud on 7 tasks; the cloud's call for T/6 failed (a model error)."""
    store = Store(tmp_path / "s.db")
    run = store.create_run("duel", "humaneval", "abc", {}, {})
    store.add_model(run.id, LOCAL, {"local": True})
    store.add_model(run.id, CLOUD, {"local": False})
    local = ["passed", "passed", "failed", "failed", "passed", "failed"]
    cloud = ["passed", "passed", "passed", "passed", "passed", "failed"]
    for i, (a, b) in enumerate(zip(local, cloud, strict=True)):
        store.record_sample(run.id, make_sample(LOCAL, f"T/{i}", a))
        store.record_sample(run.id, make_sample(CLOUD, f"T/{i}", b, tokens=(300, 150), seconds=4.0))
    store.record_sample(run.id, make_sample(CLOUD, "T/6", "error", failed_call=True))
    store.record_sample(run.id, make_sample(LOCAL, "T/6", "passed"))
    return store, run
