"""Strategies cannot read a hidden verdict: each built-in one runs to completion with a scorer
that raises on any read of one, and only the scorer stage reads them afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.executors import LocalExecutor
from codeduel.extract import NO_CODE
from codeduel.records import ExecutionRecord, SampleRecord
from codeduel.sandbox import Sandbox
from codeduel.scoring import Pending, Scorer, Solution
from codeduel.strategies import STRATEGIES, Context, get_strategy
from codeduel.types import GenerateConfig
from tests.strategies.test_hybrid import WRONG_0, Scripted, _model


class HiddenVerdictRead(AssertionError):
    pass


class Blind(Scorer):
    """Runs the hidden tests as the real scorer does; reading a verdict raises."""

    reads = 0

    async def verdict(self, pending: Pending) -> ExecutionRecord:
        self.reads += 1
        raise HiddenVerdictRead("a hidden verdict was read")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(workers=2) as box:
        yield box


# Answers that fail the visible tests, so every loop runs to its end: wrong code, then none.
ANSWERS = [WRONG_0, "", WRONG_0]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_runs_to_completion_without_reading_a_hidden_verdict(
    name: str, sandbox: Sandbox
) -> None:
    (task,) = load_benchmark("humaneval").select(["HumanEval/0"])
    providers = [Scripted(ANSWERS), Scripted(ANSWERS)]
    models = [_model(p, f"m{i}") for i, p in enumerate(providers)]
    options = {"repair": {"attempts": "3"}, "cascade": {"repair": "true", "attempts": "2"}}
    strategy = get_strategy(name, options.get(name, {}))

    async def solve_then_score() -> tuple[Solution, int, SampleRecord]:
        blind = Blind(LocalExecutor(sandbox))
        blind.set_limits({task.task_id: 5.0})
        ctx = Context(models[0], GenerateConfig(max_tokens=64), blind, chain=tuple(models))
        solution = await strategy.solve(task, 0, ctx)
        reads_while_solving = blind.reads
        # The scorer stage is where verdicts are read: the blind one fails there, a control.
        with pytest.raises(HiddenVerdictRead):
            await blind.score(solution)
        # The same attempts scored by a scorer that may read: the verdicts were there.
        seeing = Scorer(LocalExecutor(sandbox))
        seeing.set_limits({task.task_id: 5.0})
        return solution, reads_while_solving, await seeing.score(solution)

    solution, reads_while_solving, sample = asyncio.run(solve_then_score())
    assert reads_while_solving == 0
    calls = sum(len(p.sent) for p in providers)
    assert len(solution.attempts) == calls >= 1
    # Every attempt with code had its hidden tests started, on the scorer, as a handle.
    started = [a.hidden is not None for a in solution.attempts]
    assert started == [a.extract_method != "none" for a in solution.attempts]
    assert any(started)
    assert len(sample.attempts) == calls
    for attempt in sample.attempts:
        hidden = attempt.executions[-1]
        assert hidden.tests == "hidden"
        assert (hidden.status, hidden.detail == NO_CODE) == (
            ("failed", False) if attempt.code else ("error", True)
        )
    assert sample.status == sample.attempts[-1].status


def test_a_pending_hidden_run_offers_nothing_to_read() -> None:
    assert [name for name in dir(Pending) if not name.startswith("_")] == []
    assert Pending.__slots__ == ("_run",)
