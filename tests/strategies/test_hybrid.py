"""Repair, resample and cascade with a scripted model, a real sandbox and a real store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from codeduel.benchmarks import Benchmark, Task, load_benchmark
from codeduel.errors import OptionError
from codeduel.executors import LocalExecutor
from codeduel.models import (
    Capabilities,
    GenerateConfig,
    Message,
    Model,
    ModelOutput,
    ModelSpec,
    Provider,
    ProviderOptions,
)
from codeduel.records import SampleRecord
from codeduel.report import build_hybrid, build_report, render_json, render_markdown
from codeduel.runner import RunOptions
from codeduel.sandbox import Sandbox
from codeduel.scoring import Scorer
from codeduel.store import Store
from codeduel.strategies import Context, Strategy, get_strategy

WRONG_0 = "def has_close_elements(numbers, threshold):\n    return True\n"
# Passes both visible examples of HumanEval/0 by special-casing them, fails the hidden tests.
GAMED_0 = (
    "def has_close_elements(numbers, threshold):\n"
    "    return threshold < 0.5 and len(numbers) == 6\n"
)
RIGHT_0 = (
    "def has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
    " for b in numbers[i + 1:])\n"
)


class Scripted(Provider):
    """Answers from a list, one per call (the last one repeats), and records what it was sent."""

    name = "scripted"
    capabilities = Capabilities(local=True, max_concurrency=1)

    def __init__(self, answers: Sequence[str], completion_tokens: int = 40) -> None:
        super().__init__("m", ProviderOptions())
        self.answers = list(answers)
        self.completion_tokens = completion_tokens
        self.sent: list[tuple[Message, ...]] = []
        self.configs: list[GenerateConfig] = []

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        self.sent.append(tuple(messages))
        self.configs.append(config)
        text = self.answers[min(len(self.sent), len(self.answers)) - 1]
        prompt_tokens = sum(len(m.content) for m in messages) // 4
        return ModelOutput(text, "stop", prompt_tokens, self.completion_tokens, 0.01, 0.001)


def _model(provider: Scripted, name: str = "m") -> Model:
    return Model(ModelSpec("scripted", name), provider)


@pytest.fixture(scope="module")
def humaneval() -> Benchmark:
    return load_benchmark("humaneval")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(workers=2) as box:
        yield box


def _solve(
    strategy: Strategy,
    task: Task,
    models: Sequence[Model],
    sandbox: Sandbox,
    config: GenerateConfig | None = None,
) -> SampleRecord:
    async def solved() -> SampleRecord:
        scorer = Scorer(LocalExecutor(sandbox))
        scorer.set_limits({task.task_id: 5.0})
        ctx = Context(
            models[0], config or GenerateConfig(max_tokens=64), scorer, chain=tuple(models)
        )
        return await scorer.score(await strategy.solve(task, 0, ctx))

    return asyncio.run(solved())


def _hidden_only_lines(task: Task) -> list[str]:
    shown = {line.strip() for line in (task.prompt + "\n" + task.visible_test).splitlines()}
    hidden = [line.strip() for line in task.test.splitlines()]
    return [line for line in hidden if len(line) > 3 and line not in shown]


def _assert_no_leak(task: Task, provider: Scripted) -> None:
    secret = _hidden_only_lines(task)
    assert secret, "the task has no hidden-only test lines to check against"
    for messages in provider.sent:
        for message in messages:
            leaked = [line for line in secret if line in message.content]
            assert leaked == [], f"hidden test lines reached the model: {leaked}"


def test_repair_never_shows_hidden_tests(humaneval: Benchmark, sandbox: Sandbox) -> None:
    (task,) = humaneval.select(["HumanEval/0"])
    provider = Scripted([WRONG_0])
    sample = _solve(get_strategy("repair", {"attempts": "3"}), task, [_model(provider)], sandbox)
    assert len(provider.sent) == 3
    _assert_no_leak(task, provider)
    for messages in provider.sent:
        assert all("candidate" not in m.content for m in messages)
    # The follow-up shows the failing visible check, the error, and the previous code.
    follow_up = provider.sent[1]
    assert [m.role for m in follow_up] == ["user", "assistant", "user"]
    assert "return True" in follow_up[1].content
    feedback = follow_up[2].content
    assert "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False" in feedback
    assert "AssertionError" in feedback
    assert sample.status == "failed" and sample.final_attempt == 2
    for attempt in sample.attempts:
        assert [e.tests for e in attempt.executions] == ["visible", "hidden"]
        assert [e.status for e in attempt.executions] == ["failed", "failed"]


def test_repair_on_mbpp_shows_only_the_first_assert(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, mbpp_dir: Path
) -> None:
    monkeypatch.setenv("CODEDUEL_MBPP_DIR", str(mbpp_dir))
    task = load_benchmark("mbpp").tasks[0]
    provider = Scripted(["def similar_elements(a, b):\n    return (1 / 0,)\n"])
    _solve(get_strategy("repair", {"attempts": "2"}), task, [_model(provider)], sandbox)
    assert len(provider.sent) == 2
    _assert_no_leak(task, provider)
    feedback = provider.sent[1][-1].content
    # The traceback gets the source lines the sandbox leaves out: the test and the crash.
    assert task.visible_test in feedback
    assert "return (1 / 0,)" in feedback and "ZeroDivisionError" in feedback


def test_repair_stops_at_a_visible_pass_even_if_hidden_fails(
    humaneval: Benchmark, sandbox: Sandbox
) -> None:
    (task,) = humaneval.select(["HumanEval/0"])
    provider = Scripted([WRONG_0, GAMED_0, RIGHT_0])
    sample = _solve(get_strategy("repair"), task, [_model(provider)], sandbox)
    assert len(provider.sent) == 2
    assert sample.code == GAMED_0
    # The hidden tests score the answer; they never steered the loop.
    assert sample.status == "failed"
    visible = [a.executions[0].status for a in sample.attempts]
    assert visible == ["failed", "passed"]


def test_repair_without_visible_tests_makes_one_call(
    humaneval: Benchmark, sandbox: Sandbox
) -> None:
    (task,) = humaneval.select(["HumanEval/0"])
    task = replace(task, visible_test="")
    provider = Scripted([WRONG_0])
    sample = _solve(get_strategy("repair"), task, [_model(provider)], sandbox)
    assert len(provider.sent) == 1
    assert [e.tests for e in sample.attempts[0].executions] == ["hidden"]


def test_repair_answer_without_code_gets_feedback(humaneval: Benchmark, sandbox: Sandbox) -> None:
    (task,) = humaneval.select(["HumanEval/0"])
    provider = Scripted(["", RIGHT_0])
    sample = _solve(get_strategy("repair"), task, [_model(provider)], sandbox)
    assert len(provider.sent) == 2
    assert "no code found" in provider.sent[1][-1].content
    assert sample.status == "passed" and sample.final_attempt == 1


def test_resample_respects_the_token_budget(humaneval: Benchmark, sandbox: Sandbox) -> None:
    (task,) = humaneval.select(["HumanEval/0"])
    provider = Scripted([WRONG_0], completion_tokens=50)
    strategy = get_strategy("resample", {"budget_tokens": "200"})
    sample = _solve(strategy, task, [_model(provider)], sandbox, GenerateConfig(max_tokens=64))
    # 50 spent, +64 fits 200; 100, +64 fits; 150, +64 does not: three samples, 150 tokens.
    assert len(provider.sent) == 3
    assert sample.completion_tokens == 150 <= 200
    # Fresh samples of the same prompt, not follow-ups; later ones sampled with distinct seeds.
    assert all(len(messages) == 1 for messages in provider.sent)
    assert [c.temperature for c in provider.configs] == [0.0, 0.8, 0.8]
    assert len({c.seed for c in provider.configs}) == 3
    _assert_no_leak(task, provider)


def test_resample_default_budget_and_early_stop(humaneval: Benchmark, sandbox: Sandbox) -> None:
    (task,) = humaneval.select(["HumanEval/0"])
    # Default budget: 3 × max_tokens = 192; samples of 64 tokens fill it exactly.
    provider = Scripted([WRONG_0], completion_tokens=64)
    _solve(get_strategy("resample"), task, [_model(provider)], sandbox)
    assert len(provider.sent) == 3
    provider = Scripted([WRONG_0, RIGHT_0, WRONG_0])
    sample = _solve(get_strategy("resample"), task, [_model(provider)], sandbox)
    assert len(provider.sent) == 2 and sample.status == "passed" and sample.final_attempt == 1


def test_cascade_escalates_only_on_visible_failure(
    humaneval: Benchmark, sandbox: Sandbox, tmp_path: Path
) -> None:
    (task,) = humaneval.select(["HumanEval/0"])
    cascade = get_strategy("cascade")
    small, big = Scripted([WRONG_0]), Scripted([RIGHT_0])
    models = [_model(small, "small"), _model(big, "big")]
    escalated = _solve(cascade, task, models, sandbox)
    assert escalated.model == "scripted/small -> scripted/big"
    assert escalated.status == "passed" and escalated.final_attempt == 1
    assert [a.calls[0].model for a in escalated.attempts] == ["scripted/small", "scripted/big"]
    _assert_no_leak(task, small)
    _assert_no_leak(task, big)

    # The small model passes the visible tests (though not the hidden ones): no escalation.
    small, big = Scripted([GAMED_0]), Scripted([RIGHT_0])
    kept = _solve(cascade, task, [_model(small, "small"), _model(big, "big")], sandbox)
    assert len(big.sent) == 0
    assert kept.status == "failed" and kept.final_attempt == 0

    # With repair on, each model gets its attempts before the next is asked.
    small, big = Scripted([WRONG_0]), Scripted([WRONG_0, RIGHT_0])
    repaired = _solve(
        get_strategy("cascade", {"repair": "true", "attempts": "2"}),
        task,
        [_model(small, "small"), _model(big, "big")],
        sandbox,
    )
    assert (len(small.sent), len(big.sent)) == (2, 2)
    assert repaired.status == "passed" and repaired.final_attempt == 3

    with Store(tmp_path / "s.db") as store:
        run = store.create_run("c", "humaneval", "x", {"generation": {"max_tokens": 64}}, {})
        store.add_model(run.id, "scripted/small", {"local": True})
        store.add_model(run.id, "scripted/big", {"local": False})
        for index, sample in enumerate((escalated, kept)):
            store.record_sample(run.id, replace(sample, sample_index=index))
        (summary,) = build_hybrid(store, run).cascades
        assert (summary.samples, summary.escalated) == (2, 1)
        assert summary.final_models == {"scripted/small": 1, "scripted/big": 1}
        alone, both = summary.prefixes
        assert alone.models == ("scripted/small",) and alone.pass_at_1 == 0.0
        # The whole chain scores what the cascade scored: one of two.
        assert both.pass_at_1 == 0.5
        assert both.tokens_per_problem > alone.tokens_per_problem
        # The big model has no price, so a prefix that uses it has no cost.
        assert alone.usd_per_problem is not None and both.usd_per_problem is None
        text = render_markdown([build_report(store, run)])
        assert "Cascade scripted/small -> scripted/big: escalated 1/2 (50.0%)" in text
        assert "| scripted/small -> scripted/big | 50.0 |" in text


def test_repair_and_resample_report_at_equal_tokens(
    humaneval: Benchmark, sandbox: Sandbox, tmp_path: Path
) -> None:
    (task,) = humaneval.select(["HumanEval/0"])
    repairer = Scripted([WRONG_0, RIGHT_0], completion_tokens=50)
    resampler = Scripted([WRONG_0, WRONG_0, RIGHT_0], completion_tokens=50)
    repair = _solve(get_strategy("repair"), task, [_model(repairer)], sandbox)
    resample = _solve(get_strategy("resample"), task, [_model(resampler)], sandbox)
    config = {"generation": {"max_tokens": 64}}
    with Store(tmp_path / "s.db") as store:
        run = store.create_run("r", "humaneval", "x", config, {})
        store.record_sample(run.id, repair)
        store.record_sample(run.id, resample)
        hybrid = build_hybrid(store, run)
        curves = {c.strategy: c.pass_after for c in hybrid.curves}
        assert curves == {"repair": (0.0, 1.0), "resample": (0.0, 0.0, 1.0)}
        (cmp,) = hybrid.comparisons
        # 50 tokens per call: within 128 repair has its fix, resample only two wrong samples.
        points = {budget: (a, b) for budget, a, b in cmp.points}
        assert points == {
            32: (0.0, 0.0),
            64: (0.0, 0.0),
            128: (1.0, 0.0),
            192: (1.0, 1.0),
            None: (1.0, 1.0),
        }
        assert cmp.tokens_mean == (100.0, 150.0)
        payload = render_json([build_report(store, run)])
        assert '"comparisons"' in payload

        # Kept in separate runs, each run's report finds the other.
        runs = []
        for name, sample in (("only-repair", repair), ("only-resample", resample)):
            runs.append(store.create_run(name, "humaneval", "x", config, {}))
            store.record_sample(runs[-1].id, sample)
        for other in runs:
            (cmp,) = build_hybrid(store, other).comparisons
            assert (cmp.repair_run, cmp.resample_run) == ("only-repair", "only-resample")
            assert {b: (x, y) for b, x, y in cmp.points}[128] == (1.0, 0.0)


def test_strategy_options_are_checked_and_stored() -> None:
    with pytest.raises(OptionError, match="attempt.*Extra inputs are not permitted"):
        get_strategy("repair", {"attempt": "2"})
    with pytest.raises(OptionError, match="attempts"):
        get_strategy("repair", {"attempts": "0"})
    with pytest.raises(OptionError, match="unknown strategy"):
        get_strategy("nosuch")
    opts = RunOptions("humaneval", (), strategy="repair", strategy_options={"attempts": "2"})
    assert opts.stored_config()["strategy_options"] == {"attempts": 2}
    # Strategies without options store none, so runs made before options still resume.
    assert "strategy_options" not in RunOptions("humaneval", ()).stored_config()
