"""codeduel latency: percentiles, a closed loop of users against the loopback API stand-in (its
first token held back by an injected delay), the time a user waits for a free slot counted in
the time to first token, and the command's report and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.latency import (
    RequestTiming,
    measure_level,
    percentile,
    prompt_requests,
    summarize,
)
from codeduel.models import load_model, parse_model_spec
from codeduel.types import GenerateConfig
from tests.cli_run import exit_code
from tests.models.fakeapi import FakeAPI

KEY = "sk-ant-test-latency"
ANSWER = "```python\ndef add(x, y):\n    return x + y\n```"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def test_percentiles_are_linear_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile([7.0], 99) == 7.0


def _timings(
    api: FakeAPI, users: int, requests: int, options: dict[str, str]
) -> list[RequestTiming]:
    model = load_model(parse_model_spec("anthropic/claude-test"), {"base_url": api.url, **options})
    tasks = load_benchmark("humaneval").select(limit=3)
    reqs = prompt_requests(tasks, model, GenerateConfig(max_tokens=64))

    async def go() -> list[RequestTiming]:
        timings, _ = await measure_level(model, reqs, users, requests, 0.0)
        return timings

    try:
        return asyncio.run(go())
    finally:
        model.close()


def test_the_first_token_comes_after_the_injected_delay_and_the_answer_after_its_chunks() -> None:
    with FakeAPI(lambda r: ANSWER, api_key=KEY, first_token_delay_s=0.2, chunk_delay_s=0.02) as api:
        timings = _timings(api, 1, 3, {})
    assert [t.task_id for t in timings] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    for t in timings:
        assert not t.error and t.ttft_s is not None
        assert t.ttft_s >= 0.2
        # The answer streams in pieces 20 ms apart: the end comes well after the first token.
        assert t.total_s - t.ttft_s >= 0.1


def test_users_send_at_once_in_a_closed_loop() -> None:
    with FakeAPI(lambda r: ANSWER, api_key=KEY, first_token_delay_s=0.1) as api:
        timings = _timings(api, 4, 8, {"max_concurrency": "4"})
        assert api.max_in_flight == 4
    assert sorted({t.user for t in timings}) == [0, 1, 2, 3]
    assert len(timings) == 8 and sorted(t.index for t in timings) == list(range(8))


def test_waiting_for_a_free_slot_counts_in_the_time_to_first_token() -> None:
    # One call at a time: the fourth user's request waits for three others (0.15 s each).
    with FakeAPI(lambda r: ANSWER, api_key=KEY, first_token_delay_s=0.15) as api:
        timings = _timings(api, 4, 4, {"max_concurrency": "1"})
        assert api.max_in_flight == 1
    ttfts = sorted(t.ttft_s for t in timings if t.ttft_s is not None)
    assert len(ttfts) == 4
    assert ttfts[-1] >= 4 * 0.15
    level = summarize(timings, False, 1.0)
    assert level.ttft_s is not None and level.ttft_s[99] >= 0.5
    assert level.requests == 4 and level.errors == 0


def test_the_command_reports_each_level_with_where_it_was_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeAPI(lambda r: ANSWER, api_key=KEY, first_token_delay_s=0.05) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        argv = ["latency", "humaneval", "--model", "anthropic/claude-test", "--users", "1,4",
                "--requests", "4", "--think-time", "0", "--limit", "2", "--location", "lab-7",
                "-M", "max_concurrency=4"]  # fmt: skip
        assert exit_code(argv) == 0
        # One uncounted warm-up request, then 4 per level.
        assert len(api.posts) == 9
    out = capsys.readouterr().out
    assert "Measured from lab-7" in out
    rows = [line for line in out.splitlines() if line.startswith("| anthropic/claude-test")]
    assert [row.split("|")[3].strip() for row in rows] == ["1", "4"]
    assert all("| remote |" in row for row in rows)


def test_bad_users_are_one_sentence_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["latency", "humaneval", "--users", "1,zero"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
