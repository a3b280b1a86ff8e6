"""`codeduel run` in batch mode, with cache usage and under `--cost-limit`, against the loopback
stand-in of the Anthropic API (official SDK), from the command line."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import codeduel
from codeduel.costs import Usage, call_cost, load_prices
from codeduel.store import Store
from tests.cli_run import exit_code
from tests.models.fakeapi import FakeAPI

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(codeduel.__file__).resolve().parents[1]
CLOUD = "anthropic/claude-sonnet-4-5"
TASKS = "HumanEval/0,HumanEval/2,HumanEval/4"
ANSWER = "def f():\n    return 1\n```"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-ant-test-{secrets.token_hex(8)}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", value)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    return value


def _argv(api: FakeAPI, db: Path, *extra: str) -> list[str]:
    return [
        "run", "humaneval", "--model", CLOUD, "-M", f"{CLOUD}:base_url={api.url}",
        "--task-ids", TASKS, "--db", str(db), "--run-name", "cloud", "--no-progress",
        "--max-tokens", "64", *extra,
    ]  # fmt: skip


def _report(db: Path, run: str = "cloud") -> dict[str, object]:
    out = db.parent / f"{run}.json"
    argv = ["report", run, "--db", str(db), "--format", "json", "--output", str(out)]
    assert exit_code(argv) == 0
    (report,) = json.loads(out.read_text())["runs"]
    assert isinstance(report, dict)
    return report


def _notes(db: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert exit_code(["report", "cloud", "--db", str(db)]) == 0
    return capsys.readouterr().out


def _rows(report: dict[str, object]) -> list[dict[str, object]]:
    rows = report["rows"]
    assert isinstance(rows, list)
    return rows


def _list_price(db: Path, run: str = "cloud") -> float:
    """The run's cloud calls at list prices: what batch rates halve."""
    price = load_prices().get(CLOUD)
    assert price is not None
    with Store(db) as store:
        pt, ct = store.db.execute(
            "SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM model_calls WHERE model = ?",
            (CLOUD,),
        ).fetchone()
    return call_cost(price, Usage(pt, ct))


def _ledger_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM batch_requests").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_batch_run_killed_while_pending_resumes_and_scores_each_task_once(
    tmp_path: Path, key: str
) -> None:
    db = tmp_path / "runs.db"
    with FakeAPI(lambda request: ANSWER, api_key=key, hold_batches=True) as api:
        argv = _argv(api, db, "-M", "batch=true", "-M", "batch_poll_s=0.05")
        driver = subprocess.Popen(
            [sys.executable, "-c", "from codeduel.cli import main; main()", *argv],
            # This checkout's tests and the codeduel this test imported.
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(SOURCE)])},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 240
            # Killed once its batch is pending and recorded in the store.
            while _ledger_rows(db) < 3:
                assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
                assert time.monotonic() < deadline, "the batch never went out"
                time.sleep(0.1)
            assert len(api.batches) == 1
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait()
        api.hold_batches = False
        assert exit_code([*argv, "--resume"]) == 0
        # The pending batch was waited for, not sent again.
        assert len(api.batches) == 1 and api.batched_requests == 3
        assert not [r for r in api.posts if r.path == "/v1/messages"]
    with Store(db) as store:
        run = store.get_run("cloud")
        assert run is not None and run.status == "complete"
        tasks = [r["task_id"] for r in store.sample_rows(run.id)]
        assert sorted(tasks) == sorted(TASKS.split(","))
        assert store.model_error_count(run.id) == 0
    (row,) = _rows(_report(db))
    assert row["usd_total"] == pytest.approx(_list_price(db) / 2)
    assert "batch rates (50% off) on 3 of 3 calls" in str(row["cost_basis"])


def test_cache_and_batch_rates_show_in_codeduel_cost(
    tmp_path: Path, key: str, stub_provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    with FakeAPI(
        lambda request: ANSWER, api_key=key, cached_tokens=20, cache_write_tokens=10
    ) as api:
        argv = _argv(api, db, "--model", stub_provider, "-M", f"{CLOUD}:batch=true")
        argv += ["-M", f"{CLOUD}:batch_poll_s=0.05"]
        assert exit_code(argv) == 0
    capsys.readouterr()
    cost = ["cost", "cloud", "--db", str(db), "--cloud", CLOUD, "--local", stub_provider]
    assert exit_code(cost) == 0
    out = capsys.readouterr().out
    assert "batch rates (50% off) on 3 of 3 calls" in out
    assert "60 cache-read tokens at $0.3/Mtok" in out
    assert "30 cache-write tokens at $3.75/Mtok" in out
    price = load_prices().get(CLOUD)
    assert price is not None
    with Store(db) as store:
        pt, ct = store.db.execute(
            "SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM model_calls WHERE model = ?",
            (CLOUD,),
        ).fetchone()
    billed = call_cost(price, Usage(pt, ct, 60, 30, batch=True)) / 3
    assert f"${billed:.5f}" in out
    assert billed < call_cost(price, Usage(pt, ct)) / 3 / 2


def test_a_cost_limit_stops_at_the_cap_and_a_higher_one_completes_the_run(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    tasks = ",".join(f"HumanEval/{i}" for i in range(20))
    cap = 0.005
    with FakeAPI(lambda request: ANSWER, api_key=key) as api:
        base = _argv(api, db)
        base[base.index(TASKS)] = tasks
        assert exit_code([*base, "--cost-limit", f"{cap}"]) == 0
        sent = len(api.posts)
        assert 0 < sent < 20
        (row,) = _rows(_report(db))
        spent = float(str(row["usd_total"]))
        with Store(db) as store:
            run = store.get_run("cloud")
            assert run is not None and run.status == "incomplete"
            assert store.model_error_count(run.id) == 0  # unsent, not errors
            assert len(list(store.sample_rows(run.id))) == sent
        one_call = spent / sent
        # Stopped at the cap, within one call's cost of it (calls differ by a few tokens).
        assert cap - 1.5 * one_call < spent <= cap + 0.5 * one_call
        notes = _notes(db, capsys)
        assert f"cost limit ${cap:g} reached" in notes
        assert f"{20 - sent} samples left unsent (not errors)" in notes
        assert exit_code([*base, "--resume", "--cost-limit", "1"]) == 0
        # Only the unsent samples went out.
        assert len(api.posts) == 20
    with Store(db) as store:
        run = store.get_run("cloud")
        assert run is not None and run.status == "complete"
        assert sorted(r["task_id"] for r in store.sample_rows(run.id)) == sorted(tasks.split(","))
    assert "cost limit $1 not reached" in _notes(db, capsys)


def test_a_cost_limit_needs_a_price_for_each_cloud_model(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "run", "humaneval", "--model", "anthropic/claude-unpriced", "--task-ids", "HumanEval/0",
        "--db", str(tmp_path / "runs.db"), "--cost-limit", "1", "--no-progress",
    ]  # fmt: skip
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert "--cost-limit needs a price for anthropic/claude-unpriced" in err
    assert err.count("\n") == 1
    assert exit_code([*argv[:-3], "--cost-limit", "-1", "--no-progress"]) == 2


def test_cost_prices_a_cloud_model_not_in_the_run_at_batch_rates_when_asked(
    tmp_path: Path, stub_provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    run = ["run", "humaneval", "--model", stub_provider, "--task-ids", "HumanEval/0"]
    assert exit_code([*run, "--db", str(db), "--run-name", "local", "--no-progress"]) == 0
    cost = ["cost", "local", "--db", str(db), "--cloud", CLOUD]
    capsys.readouterr()
    assert exit_code(cost) == 0
    listed = capsys.readouterr().out
    assert exit_code([*cost, "--batch"]) == 0
    batched = capsys.readouterr().out
    assert "at batch rates (50% off)" in batched and "batch rates" not in listed

    def cloud_usd(text: str) -> float:
        line = next(line for line in text.splitlines() if "cloud, per problem" in line)
        return float(line.split("$")[1].split()[0])

    # Shown to five decimals.
    assert cloud_usd(batched) == pytest.approx(cloud_usd(listed) / 2, abs=1e-5)
    assert cloud_usd(batched) < cloud_usd(listed)
