"""Prompts for code tasks: Qwen's EvalPlus instruction prompt, with the answer fence prefilled.

A repair turn follows the same shape: the previous answer as the assistant's turn, then one user
turn with the visible test it fails and the error, and the same prefilled answer fence.
"""

from __future__ import annotations

from dataclasses import dataclass

from codeduel.benchmarks import Task
from codeduel.extract import AFTER_CODE, CLOSE_FENCE
from codeduel.types import GenerateConfig, Message

__all__ = [
    "CLOSE_FENCE",
    "CodePrompt",
    "answer_turn",
    "code_prompt",
    "feedback_prompt",
    "repair_prompt",
]

INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem "
    "in a markdown code block:"
)
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the "
    "problem and passes corresponding tests:"
)
OPEN_FENCE = "```python\n"


@dataclass(frozen=True)
class CodePrompt:
    messages: tuple[Message, ...]
    prefill: str
    # Where generation may also stop: after the code, before example calls (`AFTER_CODE`).
    after_code: tuple[str, ...] = AFTER_CODE

    def config(self, base: GenerateConfig, *, use_prefill: bool = True) -> GenerateConfig:
        """`base` with this prompt's prefill, and the closing fence and `AFTER_CODE` as stops."""
        from dataclasses import replace

        if not use_prefill:
            return base
        return replace(base, prefill=self.prefill, stop=(*base.stop, CLOSE_FENCE, *self.after_code))


def code_prompt(task: Task) -> CodePrompt:
    after = AFTER_CODE if task.stops_after_code else ()
    own = task.chat_prompt()
    if own is not None:
        return CodePrompt(own[0], own[1], after)
    user = f"{INSTRUCTION}\n```\n{task.prompt.strip()}\n```\n"
    return CodePrompt((Message("user", user),), f"{RESPONSE_PREFIX}\n{OPEN_FENCE}", after)


def answer_turn(code: str) -> str:
    """A previous answer, as the assistant turn that the repair prompt shows it in."""
    return f"{RESPONSE_PREFIX}\n{OPEN_FENCE}{code.rstrip()}{CLOSE_FENCE}"


def feedback_prompt(task: Task, answer: str, feedback: str) -> CodePrompt:
    """The follow-up of an attempt with what its visible run measured (a GPU task's)."""
    first = code_prompt(task)
    user = f"{feedback.strip()}\nPlease provide the whole improved script in a markdown code block."
    messages = (*first.messages, Message("assistant", answer), Message("user", user))
    return CodePrompt(messages, first.prefill, first.after_code)


def repair_prompt(task: Task, answer: str, failing_test: str, error: str) -> CodePrompt:
    """The follow-up of a failed attempt; it must hold nothing but visible-test output."""
    first = code_prompt(task)
    user = (
        f"The script fails this test:\n```python\n{failing_test.strip()}\n```\n"
        f"Error:\n```\n{error.strip()}\n```\n"
        "Please fix it and provide the whole corrected script in a markdown code block."
    )
    messages = (*first.messages, Message("assistant", answer), Message("user", user))
    return CodePrompt(messages, first.prefill, first.after_code)
