"""Reasoning models: thinking apart from the answer (Anthropic's thinking blocks, OpenAI-compatible
servers' `reasoning_content`) or inline in `<think>` tags, through the real SDKs against the
loopback API stand-in. The answer is graded on its final code only; thinking cut off by the
token limit is its own status; thinking tokens are counted and priced as output tokens."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeduel.extract import thinking_truncated
from codeduel.models import GenerateConfig, Message, load_model, parse_model_spec
from codeduel.store import Store
from tests.cli_run import exit_code
from tests.models.fakeapi import FakeAPI, _pieces

PROMPT = [Message("user", "Write add(a, b).")]
CODE = "```python\ndef add(a, b):\n    return a + b\n```"
REASONING = "The user wants a sum. " + "Let me think about it. " * 30
THOUGHT = f"<think>{REASONING}</think>\n"
# Tokens as the stand-in counts them: its pieces.
THINK_TOKENS, CODE_TOKENS = len(_pieces(REASONING)), len(_pieces(CODE))


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-test-{secrets.token_hex(8)}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", value)
    monkeypatch.setenv("OPENAI_API_KEY", value)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return value


@pytest.fixture
def api(keys: str) -> Iterator[FakeAPI]:
    with FakeAPI(lambda request: THOUGHT + CODE, api_key=keys, reasoning=True) as server:
        yield server


def _generate(spec: str, options: dict[str, str], max_tokens: int) -> Any:
    model = load_model(parse_model_spec(spec), options)
    try:
        return asyncio.run(model.generate(PROMPT, GenerateConfig(max_tokens=max_tokens)))
    finally:
        model.close()


def test_extraction_ignores_thinking_and_knows_when_the_limit_cut_it() -> None:
    assert thinking_truncated("<think>still going", hit_limit=True)
    assert not thinking_truncated("<think>done</think>def f(): pass", hit_limit=True)
    assert not thinking_truncated("<think>still going", hit_limit=False)
    assert thinking_truncated("", hit_limit=True, reasoning_unfinished=True)


def test_anthropic_thinking_blocks_are_kept_apart_from_the_answer(api: FakeAPI) -> None:
    options = {"base_url": api.url, "thinking_budget": "1024"}
    assert not load_model(
        parse_model_spec("anthropic/c"), options
    ).provider.capabilities.supports_prefill
    out = _generate("anthropic/c", options, 2000)
    sent = api.posts[-1].body
    assert sent is not None and sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert out.text == CODE
    assert out.extra["thinking"].startswith("The user wants a sum.")
    assert out.extra["thinking_truncated"] is False
    # The API counts thinking in output_tokens; its share is estimated from the characters.
    assert out.completion_tokens == THINK_TOKENS + CODE_TOKENS
    assert abs(out.extra["thinking_tokens"] - THINK_TOKENS) <= 0.1 * THINK_TOKENS
    assert out.extra["thinking_tokens_estimated"] is True


def test_anthropic_thinking_cut_by_max_tokens_is_reported_as_such(api: FakeAPI) -> None:
    out = _generate("anthropic/c", {"base_url": api.url, "thinking_budget": "1024"}, 1025)
    assert out.finish_reason == "stop"  # 1025 tokens are enough here: the limit is below
    api.script = lambda request: "<think>" + "hmm " * 2000 + "</think>" + CODE
    out = _generate("anthropic/c", {"base_url": api.url, "thinking_budget": "1024"}, 1025)
    assert out.finish_reason == "length"
    assert out.text == ""
    assert out.extra["thinking_truncated"] is True


def test_openai_compatible_reasoning_content_and_its_token_count(api: FakeAPI) -> None:
    out = _generate("openai-compat/r1", {"base_url": api.openai_url}, 2000)
    assert out.text == CODE
    assert out.extra["thinking_tokens"] == THINK_TOKENS  # the server's reasoning_tokens
    assert "thinking_tokens_estimated" not in out.extra
    assert out.completion_tokens == THINK_TOKENS + CODE_TOKENS
    cut = _generate("openai-compat/r1", {"base_url": api.openai_url}, 50)
    assert cut.finish_reason == "length" and cut.text == ""
    assert cut.extra["thinking_truncated"] is True


# --- through a run: the verdicts and the price ---------------------------------------------

TASK = {
    "task_id": "t/add",
    "prompt": 'def add(a, b):\n    """Sum of a and b."""\n',
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
}


def _run(tmp_path: Path, spec: str, base: str, max_tokens: int, name: str) -> Any:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(TASK) + "\n")
    prices = tmp_path / "prices.json"
    model = spec.split("/", 1)[1]
    prices.write_text(
        json.dumps({"models": {spec: {"input_per_mtok": 1.0, "output_per_mtok": 10.0}}})
    )
    db = tmp_path / "runs.db"
    argv = [
        "run", str(tasks), "--model", spec, "-M", f"base_url={base}", "--max-tokens",
        str(max_tokens), "--no-progress", "--db", str(db), "--run-name", name,
        "--format", "json",
    ]  # fmt: skip
    assert exit_code(argv) == 0, model
    with Store(db) as store:
        (status,) = store.db.execute(
            "SELECT s.status FROM samples s JOIN runs r ON r.id = s.run_id WHERE r.name = ?",
            (name,),
        ).fetchone()
    assert exit_code(["report", name, "--db", str(db), "--prices", str(prices)]) == 0
    return status


def test_a_run_grades_the_final_code_and_prices_the_thinking(
    api: FakeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, "openai-compat/r1", api.openai_url, 2000, "thought") == "passed"
    report = capsys.readouterr().out
    assert f"thinking: {THINK_TOKENS} tokens of reasoning before the answers" in report
    db, prices = tmp_path / "runs.db", tmp_path / "prices.json"
    argv = ["report", "thought", "--db", str(db), "--prices", str(prices), "--format", "json"]
    assert exit_code(argv) == 0
    (row,) = json.loads(capsys.readouterr().out)["runs"][0]["rows"]
    assert row["thinking_tokens"] == THINK_TOKENS
    # The thinking is in the output tokens, at the output price ($10/Mtok; prompt $1/Mtok).
    assert row["completion_tokens_mean"] == THINK_TOKENS + CODE_TOKENS
    expected = (row["prompt_tokens_mean"] * 1.0 + (THINK_TOKENS + CODE_TOKENS) * 10.0) / 1e6
    assert row["usd_total"] == pytest.approx(expected)


@pytest.mark.parametrize("separate", [True, False])
def test_thinking_cut_off_is_its_own_status_not_wrong_code(
    api: FakeAPI, tmp_path: Path, separate: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Inline: the server sends `<think>` in the text, as models without a reasoning parser do.
    api.reasoning = separate
    assert _run(tmp_path, "openai-compat/r1", api.openai_url, 50, "cut") == "thinking_truncated"
    assert "thinking_truncated 1" in capsys.readouterr().out
