"""A provider unusable as configured stops the run at once with one line, not 164 errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeduel.store import Store
from tests.cli import stub_provider as stub_module
from tests.cli_run import exit_code


def test_a_rejected_key_stops_the_run_with_one_line(
    stub_provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    before = stub_module.calls
    argv = ["run", "humaneval", "--model", stub_provider, "-M", "unusable=true", "--limit", "20"]
    code = exit_code([*argv, "--db", str(db), "--run-name", "r", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    # After the progress line, one line: the error, no traceback and no per-sample errors.
    assert err.strip().splitlines()[1:] == [
        "codeduel: error: stub/x: the API key was rejected (401)"
    ]
    # At most one call per concurrent slot was made before the run stopped, not one per task.
    assert stub_module.calls - before <= 4
    with Store(db) as store:
        run = store.get_run("r")
        assert run is not None and run.status == "interrupted"
        assert store.model_error_count(run.id) == 0
        assert store.done_keys(run.id) == set()
