"""A secret given as a provider option (`-M api_key=…`) is used, and never stored or shown."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from codeduel.models import REDACTED, load_provider_class
from codeduel.store import Store
from tests.cli_run import exit_code
from tests.models.fakeapi import FakeAPI


def _answer(request: dict[str, object]) -> str:
    return "```python\ndef truncate_number(number):\n    return number % 1.0\n```"


def test_an_api_key_option_is_in_no_byte_of_the_store_reports_or_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = f"sk-test-{secrets.token_hex(16)}"
    db = tmp_path / "runs.db"
    with FakeAPI(_answer, api_key=key) as api:
        argv = [
            "run", "humaneval", "--model", "openai-compat/m", "-M", f"base_url={api.openai_url}",
            "-M", f"openai-compat:api_key={key}", "--task-ids", "HumanEval/2", "--db", str(db),
            "--run-name", "keyed", "--no-progress",
        ]  # fmt: skip
        assert exit_code(argv) == 0
        assert api.posts  # the key was used: the server refuses requests without it
        assert exit_code([*argv, "--resume"]) == 0  # the stored, redacted config still matches
    with Store(db) as store:
        run = store.get_run("keyed")
        assert run is not None
        assert run.config["model_options"]["openai-compat/m"]["api_key"] == REDACTED
    outputs = []
    for fmt in ("json", "md", "html"):
        out = tmp_path / f"report.{fmt}"
        report = ["report", "keyed", "--db", str(db), "--format", fmt, "--output", str(out)]
        assert exit_code(report) == 0
        outputs.append(out)
    stored = sorted(tmp_path.glob("runs.db*"))
    assert stored
    for path in [*stored, *outputs]:
        assert path.read_bytes().count(key.encode()) == 0, path
    captured = capsys.readouterr()
    assert key not in captured.out + captured.err + caplog.text


def test_an_option_error_does_not_echo_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    key = f"sk-test-{secrets.token_hex(16)}"
    argv = ["run", "humaneval", "--model", "openai-compat/m", "-M", f"nosuch:api_key={key}"]
    assert exit_code(argv) == 2
    captured = capsys.readouterr()
    assert "names no --model" in captured.err
    assert key not in captured.out + captured.err


def test_secret_options_are_declared_by_type() -> None:
    assert load_provider_class("openai-compat").Options.secret_names() == {"api_key"}
    assert load_provider_class("llamacpp").Options.secret_names() == frozenset()
    redacted = load_provider_class("openai-compat").Options.redact({"api_key": "k", "x": "1"})
    assert redacted == {"api_key": REDACTED, "x": "1"}
