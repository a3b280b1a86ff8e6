"""Honest degradation: without the required isolation, run and evaluate refuse unless told.

The machine running these tests has every layer; `CODEDUEL_SANDBOX_DISABLE` (a switch for
tests, honoured by the sandbox's workers) makes them skip some, as on a machine without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeduel.store import Store
from tests.cli_run import exit_code


def call(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = exit_code(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def samples_file(tmp_path: Path) -> Path:
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return False\n"}))
    return path


def test_evaluate_refuses_without_a_network_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CODEDUEL_SANDBOX_DISABLE", "net_namespace")
    output = tmp_path / "out.json"
    argv = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples_file(tmp_path))]
    code, _, err = call([*argv, "--output", str(output)], capsys)
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith("codeduel: error: the sandbox on this machine lacks isolation")
    assert "net_namespace" in line and "--unsafe-sandbox" in line
    assert not output.exists()

    code, _, err = call([*argv, "--output", str(output), "--unsafe-sandbox"], capsys)
    assert code == 0, err
    summary = json.loads(output.read_text())["summary"]
    assert summary["unsafe_sandbox"] is True
    assert summary["sandbox_missing"] == ["net_namespace"]
    assert summary["sandbox_layers"]["net_namespace"] is False
    assert summary["sandbox_layers"]["pid_namespace"] is True


def test_evaluate_with_every_layer_records_a_safe_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out.json"
    argv = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples_file(tmp_path))]
    code, _, err = call([*argv, "--output", str(output)], capsys)
    assert code == 0, err
    summary = json.loads(output.read_text())["summary"]
    assert summary["unsafe_sandbox"] is False and summary["sandbox_missing"] == []
    assert all(summary["sandbox_layers"].values())


@pytest.mark.parametrize("layer", ["pid_namespace", "rlimits"])
def test_run_refuses_before_storing_anything(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stub_provider: str,
    layer: str,
) -> None:
    monkeypatch.setenv("CODEDUEL_SANDBOX_DISABLE", layer)
    db = tmp_path / "runs.db"
    argv = ["run", "humaneval", "--model", stub_provider, "--limit", "1", "--db", str(db)]
    code, _, err = call([*argv, "--run-name", "r", "--no-progress"], capsys)
    assert code == 2
    [line] = err.strip().splitlines()
    assert layer in line and "--unsafe-sandbox" in line
    with Store(db) as store:
        assert store.runs() == []


def test_unsafe_run_is_recorded_and_marked_in_reports(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stub_provider: str,
) -> None:
    db = tmp_path / "runs.db"
    argv = ["run", "humaneval", "--model", stub_provider, "--limit", "2", "--db", str(db)]
    argv += ["--run-name", "r", "--no-progress"]
    monkeypatch.setenv("CODEDUEL_SANDBOX_DISABLE", "net_namespace,ipc_namespace")
    code, out, err = call([*argv, "--unsafe-sandbox"], capsys)
    assert code == 0, err
    assert "made with --unsafe-sandbox; isolation layers missing: net_namespace" in out
    with Store(db) as store:
        run = store.get_run("r")
        assert run is not None and run.status == "complete"
        sandbox = run.provenance["sandbox"]
        assert sandbox["unsafe_sandbox"] is True
        assert sandbox["missing"] == ["net_namespace"]
        assert sandbox["layers"]["ipc_namespace"] is False
        assert sandbox["layers"]["pid_namespace"] is True
    code, out, _ = call(["report", "r", "--db", str(db), "--format", "json"], capsys)
    assert code == 0
    assert json.loads(out)["runs"][0]["unsafe_sandbox"] is True


def test_resumed_run_keeps_the_weakest_isolation_of_its_sessions(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stub_provider: str,
) -> None:
    db = tmp_path / "runs.db"
    argv = ["run", "humaneval", "--model", stub_provider, "--limit", "1", "--db", str(db)]
    argv += ["--run-name", "r", "--no-progress"]
    assert call(argv, capsys)[0] == 0
    with Store(db) as store:
        run = store.get_run("r")
        assert run is not None
        assert run.provenance["sandbox"]["unsafe_sandbox"] is False
        assert run.provenance["sandbox"]["launches"] == ["direct"]
        assert all(run.provenance["sandbox"]["layers"].values())
    monkeypatch.setenv("CODEDUEL_SANDBOX_DISABLE", "readonly_root")
    code, out, err = call([*argv, "--resume"], capsys)
    assert code == 0, err
    assert "--unsafe-sandbox" not in out  # readonly_root is not required
    with Store(db) as store:
        run = store.get_run("r")
        assert run is not None
        assert run.provenance["sandbox"]["layers"]["readonly_root"] is False
        assert run.provenance["sandbox"]["layers"]["pid_namespace"] is True


def test_doctor_lists_each_layer_and_why_one_is_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = call(["doctor"], capsys)
    assert code == 0
    assert "  pid_namespace        active (required)" in out
    assert "  allowlisted_root     active (required)" in out
    assert "OFF" not in out
    monkeypatch.setenv("CODEDUEL_SANDBOX_DISABLE", "net_namespace")
    code, out, _ = call(["doctor"], capsys)
    assert code == 0
    assert "net_namespace        OFF: RuntimeError: disabled by $CODEDUEL_SANDBOX_DISABLE" in out
    assert "refuse untrusted code here unless given --unsafe-sandbox" in out
    assert "smollm2-135m-instruct" in out and "Run store: " in out


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "CODEDUEL_SANDBOX_DISABLE",
            "allowlisted_root",
            "allowlisted_root: RuntimeError: disabled",
        ),
        ("CODEDUEL_SANDBOX", "docker", "$CODEDUEL_SANDBOX must be one of auto, direct, bubblewrap"),
    ],
)
def test_no_allowlisted_root_or_a_bad_launch_is_refused_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(variable, value)
    argv = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples_file(tmp_path))]
    code, _, err = call([*argv, "--output", str(tmp_path / "out.json")], capsys)
    assert code == 2
    [line] = err.strip().splitlines()
    assert says in line
    if variable == "CODEDUEL_SANDBOX_DISABLE":
        assert "--unsafe-sandbox" in line
        _, out, _ = call(["doctor"], capsys)
        assert "  allowlisted_root     OFF: RuntimeError: disabled by" in out
