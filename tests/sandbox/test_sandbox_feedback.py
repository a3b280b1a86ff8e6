"""What the repair loop sends a cloud model is what the sample could see: the view is the boundary.

A sample that fails its visible test with a host file's content in the error would carry that
file to the model in the repair prompt, and into the run store. Against the loopback Anthropic
server: with the allowlisted root nothing of the file arrives; without it (the control) it does.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.models.fakeapi import FakeAPI

from codeduel.cli import main

RIGHT = (
    "def has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
    " for b in numbers[i + 1:])"
)


def _outside_home_and_tmp() -> Path:
    private = ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"))
    for candidate in (Path.cwd(), Path("/srv"), Path("/opt"), Path("/var/lib")):
        if not str(candidate.resolve()).startswith(private) and os.access(candidate, os.W_OK):
            return candidate
    pytest.skip("no writable directory outside the home and the private tmp mounts")


@pytest.fixture
def secret_file() -> Iterator[tuple[Path, str]]:
    directory = Path(tempfile.mkdtemp(prefix=".codeduel-test-", dir=_outside_home_and_tmp()))
    directory.chmod(0o755)
    secret = f"db-password-{secrets.token_hex(12)}"
    (directory / "secret.txt").write_text(secret)
    (directory / "secret.txt").chmod(0o644)
    yield directory / "secret.txt", secret
    shutil.rmtree(directory)


def _run(path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> list[Any]:
    key = f"sk-ant-test-{secrets.token_hex(8)}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    leak = (
        "def has_close_elements(numbers, threshold):\n"
        f"    raise ValueError(open({str(path)!r}).read())"
    )

    def script(request: dict[str, Any]) -> str:
        first = sum(m["role"] == "user" for m in request["messages"]) == 1
        return f"```python\n{leak if first else RIGHT}\n```"

    with FakeAPI(script, api_key=key) as api:
        main(
            [
                "run", "humaneval", "--strategy", "repair", "-S", "attempts=2",
                "--model", "anthropic/claude-test", "-M", f"base_url={api.url}",
                "-M", "prefill=false", "--task-ids", "HumanEval/0", "--workers", "1",
                "--db", str(db), "--run-name", "leak", "--no-progress", *extra,
            ]
        )  # fmt: skip
    assert len(api.posts) == 2  # the first answer failed its visible test: a repair turn
    return [r.body for r in api.posts]


def _stored(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_repair_feedback_carries_no_host_file_to_the_model_or_the_store(
    secret_file: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, secret = secret_file
    with monkeypatch.context() as control:
        control.setenv("CODEDUEL_SANDBOX_DISABLE", "allowlisted_root,dropped_privileges")
        leaked = _run(path, tmp_path / "control.db", control, "--unsafe-sandbox")
    # The control: a sandbox that shows the sample the host minus some holes leaks the file.
    assert secret in json.dumps(leaked[1])
    assert secret.encode() in _stored(tmp_path / "control.db")

    sent = _run(path, tmp_path / "runs.db", monkeypatch)
    repair_turn = json.dumps(sent[1])
    assert "FileNotFoundError" in repair_turn  # the feedback arrived, without the content
    assert secret not in json.dumps(sent)
    assert secret.encode() not in _stored(tmp_path / "runs.db")
