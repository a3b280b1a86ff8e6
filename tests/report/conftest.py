"""Fixtures for the report tests: real stores holding runs made without a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeduel.store import Run, Store
from tests.report.samples import ANSWER, CLOUD, CODE, LOCAL, PROSE, hybrid_sample, make_sample


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


@pytest.fixture
def economy(tmp_path: Path) -> tuple[Store, Run]:
    """Answers whose code share and output tokens can be counted by hand.

    Local: ANSWER (60 of 100 characters code, 100 tokens out), PROSE (no code, 100 tokens),
    the bare CODE (60 of 60, 400 tokens). Cloud: ANSWER (150 tokens) and a failed call. Repair:
    one attempt of 10 characters, 6 of them code, on T/0 and T/2, and on T/1 three attempts of
    30, 30 and 10 characters with 6 in code each; 50 tokens out per attempt.
    """
    store = Store(tmp_path / "economy.db")
    run = store.create_run("economy", "humaneval", "abc", {}, {})
    store.add_model(run.id, LOCAL, {"local": True})
    store.add_model(run.id, CLOUD, {"local": False})
    local = [(ANSWER, CODE, 100), (PROSE, "", 100), (CODE, CODE, 400)]
    for i, (answer, code, out) in enumerate(local):
        sample = make_sample(LOCAL, f"T/{i}", "passed", tokens=(200, out), answer=answer, code=code)
        store.record_sample(run.id, sample)
    cloud = make_sample(CLOUD, "T/0", "passed", tokens=(300, 150), answer=ANSWER, code=CODE)
    store.record_sample(run.id, cloud)
    store.record_sample(run.id, make_sample(CLOUD, "T/1", "error", failed_call=True))
    short = ["code 0...."]
    long = ["code 0" + "." * 24, "code 1" + "." * 24, "code 2...."]
    for task, hidden, answers in (
        ("T/0", ["passed"], short),
        ("T/1", ["failed", "failed", "passed"], long),
        ("T/2", ["passed"], short),
    ):
        store.record_sample(run.id, hybrid_sample(LOCAL, "repair", task, hidden, answers=answers))
    return store, run
