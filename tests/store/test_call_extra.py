"""What a call's wrapper learned (retries, replay, estimated usage) is stored and reported."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

from codeduel.costs import LocalCost
from codeduel.models import Model, RetryPolicy, load_model, parse_model_spec
from codeduel.report import build_report, render_markdown
from codeduel.runner import RunOptions, run_benchmark
from codeduel.store import Store
from tests.models import fakeapi
from tests.models.fakeapi import FakeAPI

SPEC = parse_model_spec("openai-compat/m")


def _answer(request: dict[str, Any]) -> str:
    return "```python\ndef truncate_number(number):\n    return number % 1.0\n```"


def _model(api: FakeAPI) -> Model:
    provider = load_model(SPEC, {"base_url": api.openai_url}).provider
    return Model(SPEC, provider, retry=RetryPolicy(max_attempts=3, base_s=0.01))


def test_retries_replays_and_estimated_usage_are_stored_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    # A server that sends no usage chunk (token counts are estimated) and fails once.
    with FakeAPI(_answer, stream_usage=False) as api:
        api.fail(1, fakeapi.server_error())
        opts = RunOptions(
            "humaneval",
            (SPEC,),
            model_options={str(SPEC): {"base_url": api.openai_url}},
            task_ids=("HumanEval/2",),
            run_name="first",
            workers=1,
        )
        with Store(db) as store:
            run_benchmark(store, opts, models=[_model(api)])
            run_benchmark(store, dataclasses.replace(opts, run_name="again"), models=[_model(api)])
        assert len(api.posts) == 2  # the failed try and its retry; the second run replays
    con = sqlite3.connect(db)
    extras = [json.loads(e) for (e,) in con.execute("SELECT extra FROM model_calls ORDER BY id")]
    assert extras[0]["attempts"] == 2 and extras[0]["usage"] == "estimated from stream chunks"
    assert extras[1]["cached"] is True and "attempts" not in extras[1]
    assert extras[1]["usage"] == "estimated from stream chunks"  # a fact about the answer
    with Store(db) as store:
        first, again = store.get_run("first"), store.get_run("again")
        assert first is not None and again is not None
        report = build_report(store, first)
        (row,) = report.rows
        (again_row,) = build_report(store, again).rows
        text = render_markdown([report], LocalCost())
    assert (row.retries, row.cache_hits, row.estimated_token_calls) == (1, 0, 1)
    assert (again_row.retries, again_row.cache_hits) == (0, 1)
    assert "openai-compat/m calls: 1 retries; token counts of 1 calls estimated" in text
    assert "| ≈" in text
