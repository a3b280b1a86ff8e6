"""codeduel latency: percentiles, a closed loop of users against the loopback API stand-in (its
first token held back by an injected delay), the time a user waits for a free slot counted in
the time to first token, and the command's report and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeduel.benchmarks import Task, load_benchmark
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
from tests.models.fakeapi import FakeAPI, canonical_answers

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


# --- fill-in-the-middle: what each provider is sent, and the stand-in's answers -------------


def test_a_fim_task_goes_natively_to_a_fim_provider_and_as_its_chat_prompt_to_others() -> None:
    from types import SimpleNamespace

    from codeduel.models import Capabilities

    tasks = load_benchmark("humaneval-fim-single").select(limit=2)
    native = SimpleNamespace(provider=SimpleNamespace(capabilities=Capabilities(True, infill=True)))
    chat = load_model(parse_model_spec("anthropic/claude-test"), {"prefill": "false"})
    base = GenerateConfig(max_tokens=48)
    try:
        sent = prompt_requests(tasks, native, base)  # type: ignore[arg-type]
        asked = prompt_requests(tasks, chat, base)
    finally:
        chat.close()
    for task, (_, messages, config) in zip(tasks, sent, strict=True):
        # As `run` sends it: the prefix and suffix alone, stopping at the one line's end.
        assert messages == () and config.infill == task.fim() and config.stop == ("\n",)
        assert config.prefill == "" and config.max_tokens == 48
    for task, (_, messages, config) in zip(tasks, asked, strict=True):
        assert config.infill is None and f"{task.prompt}<FILL_ME>{task.suffix}" in (
            messages[-1].content
        )


def _stand_in_middles(
    tasks: list[Task],
) -> list[tuple[Task, str]]:
    from codeduel.prompts import code_prompt

    script = canonical_answers(tasks)
    out = []
    for task in tasks:
        user = code_prompt(task).messages[-1].content
        text = script({"messages": [{"role": "user", "content": user}]})
        out.append((task, task.extract(text, "", True).code))
    return out


# A middle whose text ends with the whole suffix, though not from a line's start:
# "        return False\n" before the suffix "    return False\n" (extract_middle cut it once).
_SUFFIX_CUT_MIDLINE = "SingleLineInfilling/HumanEval/92/L4"


def test_the_stand_ins_fim_answers_extract_to_the_canonical_middle_or_every_sixth_wrong() -> None:
    tasks = load_benchmark("humaneval-fim-single").tasks
    got = _stand_in_middles(tasks)
    for n, (task, middle) in enumerate(got):
        if n % 6 == 5:
            indent = middle[: len(middle) - len(middle.lstrip())]
            assert middle == f"{indent}return None\n" != task.canonical_solution, task.task_id
        else:
            assert middle == task.canonical_solution, task.task_id


def test_a_middle_that_ends_with_the_suffix_text_midline_is_kept() -> None:
    task = next(
        t for t in load_benchmark("humaneval-fim-single").tasks if t.task_id == _SUFFIX_CUT_MIDLINE
    )
    [(_, middle)] = _stand_in_middles([task])
    assert middle == task.canonical_solution


@pytest.mark.parametrize("prefill", [False, True])
def test_the_stand_ins_fim_answers_score_through_the_sdk_and_the_latency_report(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    prefill: bool,
) -> None:
    from codeduel.store import Store

    db = tmp_path / "runs.db"
    tasks = load_benchmark("humaneval-fim-single").select(limit=12)
    with FakeAPI(canonical_answers(tasks), api_key=KEY, first_token_delay_s=0.02) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        model = ["--model", "anthropic/claude-test", "-M", f"prefill={str(prefill).lower()}"]
        argv = ["run", "humaneval-fim-single", "--limit", "12", *model, "--max-tokens", "48",
                "--no-progress", "--db", str(db), "--run-name", "acc"]  # fmt: skip
        assert exit_code(argv) == 0, capsys.readouterr().err
        if prefill:
            assert api.posts[0].body is not None
            assert api.posts[0].body["messages"][-1] == {
                "role": "assistant",
                "content": "```python",
            }
        argv = ["latency", "humaneval-fim-single", "--limit", "12", *model, "--users", "1,4",
                "--requests", "4", "--think-time", "0", "--max-tokens", "48",
                "--accuracy", "acc", "--db", str(db)]  # fmt: skip
        capsys.readouterr()
        assert exit_code(argv) == 0
    with Store(db) as store:
        rows = store.db.execute(
            "SELECT task_id, status, extract_method FROM samples ORDER BY id"
        ).fetchall()
    by_id = {r[0]: (r[1], r[2]) for r in rows}
    assert len(by_id) == 12
    for n, task in enumerate(tasks):
        status, method = by_id[task.task_id]
        # The wrong middle fails its tests or does not run (an early return, a bad indent).
        assert (status == "passed", method) == (n % 6 != 5, "infill_chat"), task.task_id
    out = capsys.readouterr().out
    assert "# Latency: humaneval-fim-single" in out
    assert "| anthropic/claude-test (single) | 83.3 | 12 | acc |" in out
    rows_out = [line for line in out.splitlines() if line.startswith("| anthropic/claude-test |")]
    assert [row.split("|")[3].strip() for row in rows_out] == ["1", "4"]
