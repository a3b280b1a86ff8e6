"""Strategy `repair` (self-debugging): fix the code from the visible tests' failures.

Generate, run the visible tests, and while they fail send the model a follow-up turn with the
failing test and the error, up to `attempts` times. The answer is the first attempt to pass the
visible tests, else the last; its hidden tests score the sample. The scorer grades every
attempt's hidden tests too (never shown to the model), so reports give pass@1 after each.

On a GPU task the follow-up says what the GPU measured on the visible inputs: the mismatch,
the exception, or that the answer is correct but slower than `speedup` × NumPy's speed on the
largest input (`strategies._gpu`). The loop stops at a correct answer that fast; the answer is
that one, else the fastest correct one, else the last.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field

from codeduel.benchmarks import Task
from codeduel.benchmarks.accel import AccelTask
from codeduel.models import Model
from codeduel.prompts import answer_turn, code_prompt, feedback_prompt, repair_prompt
from codeduel.sandbox import ExecResult
from codeduel.strategies._base import (
    Attempt,
    Context,
    Solution,
    Strategy,
    StrategyOptions,
    run_attempt,
    sample_config,
)
from codeduel.strategies._gpu import DEFAULT_SPEEDUP, choose_final, judge_gpu
from codeduel.types import GenerateConfig

__all__ = ["Repair", "RepairOptions", "repair_loop", "visible_feedback"]

# A frame of the program in the sandbox's traceback, which names the program `<sample>`.
_FRAME = re.compile(r'^(\s*)File "<sample>", line (\d+)')
# Enough of a traceback to place the error, short enough for a small model's context.
_MAX_TRACEBACK_LINES = 14
_MAX_ERROR_CHARS = 1200
_MAX_TEST_LINES = 20


class RepairOptions(StrategyOptions):
    attempts: int = Field(
        default=3, ge=1, le=20, description="Model calls per sample, the first included."
    )
    speedup: float = Field(
        default=DEFAULT_SPEEDUP,
        gt=0,
        description="GPU tasks: stop once correct and this many times NumPy's speed.",
    )
    stored_unless_default: ClassVar[frozenset[str]] = frozenset({"speedup"})


class Repair(Strategy):
    name = "repair"
    Options = RepairOptions

    def __init__(self, options: RepairOptions | None = None) -> None:
        super().__init__(options)
        settings = options or RepairOptions()
        self.attempts, self.speedup = settings.attempts, settings.speedup

    async def solve(self, task: Task, sample_index: int, ctx: Context) -> Solution:
        config = sample_config(ctx.config, sample_index)
        attempts = await repair_loop(task, ctx.model, config, ctx, self.attempts, self.speedup)
        chosen = choose_final(task, attempts, self.speedup)
        return Solution(ctx.model.key, self.name, task, sample_index, tuple(attempts), chosen)


async def repair_loop(
    task: Task,
    model: Model,
    config: GenerateConfig,
    ctx: Context,
    attempts: int,
    speedup: float = DEFAULT_SPEEDUP,
) -> list[Attempt]:
    """Up to `attempts` calls of `model`, stopping at a visible pass (a GPU task's: correct
    and `speedup` × NumPy's speed) or when there is nothing to learn from: no visible tests,
    or a failed model call."""
    prompt = code_prompt(task)
    config = prompt.config(config, use_prefill=model.provider.capabilities.supports_prefill)
    messages = prompt.messages
    done: list[Attempt] = []
    for _ in range(attempts):
        attempt = await run_attempt(task, messages, config, model, ctx, visible=True)
        done.append(attempt)
        if not attempt.answered or attempt.visible is None:
            break
        answer = answer_turn(attempt.code) if attempt.code else _raw_answer(attempt)
        if isinstance(task, AccelTask):
            judged = judge_gpu(task, attempt, speedup)
            if judged.done:
                break
            messages = feedback_prompt(task, answer, judged.feedback).messages
            continue
        if attempt.visible_passed:
            break
        failing, error = visible_feedback(task, attempt.code, attempt.visible)
        messages = repair_prompt(task, answer, failing, error).messages
    return done


def _raw_answer(attempt: Attempt) -> str:
    call = attempt.call
    return call.config.prefill + (call.output.text if call.output else "")


def visible_feedback(task: Task, code: str, result: ExecResult) -> tuple[str, str]:
    """(the failing visible test, the error) from one run of `task.visible_program(code)`.

    Built from that run and the visible tests alone, so nothing of the hidden tests can leak.
    The sandbox's traceback has no source lines; they are filled in from the visible program.
    """
    program = task.visible_program(code).splitlines()
    tests = {line.strip() for line in task.visible_test.splitlines() if line.strip()}
    failing = ""
    traceback: list[str] = []
    for line in result.stderr.splitlines():
        traceback.append(line)
        frame = _FRAME.match(line)
        if frame is None:
            continue
        number = int(frame[2])
        if 0 < number <= len(program):
            source = program[number - 1].strip()
            traceback.append(f"{frame[1]}    {source}")
            if not failing and source in tests:
                failing = source
    if not failing:
        # The program failed before or outside a single test line (syntax error, time limit).
        failing = "\n".join(task.visible_test.strip().splitlines()[:_MAX_TEST_LINES])
    error = "\n".join(traceback[-_MAX_TRACEBACK_LINES:]) or result.detail
    if len(error) > _MAX_ERROR_CHARS:
        error = "…" + error[-_MAX_ERROR_CHARS:]
    return failing, error
