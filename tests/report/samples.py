"""Sample records for report tests, made without a model: what a run would have stored."""

from __future__ import annotations

from collections.abc import Sequence

from codeduel.costs import LocalCost, load_prices
from codeduel.models import GenerateConfig, Message, ModelOutput
from codeduel.records import AttemptRecord, CallRecord, ExecutionRecord, SampleRecord
from codeduel.report import CostSettings

__all__ = [
    "ANSWER",
    "CLOUD",
    "CODE",
    "LOCAL",
    "PROSE",
    "hybrid_sample",
    "make_sample",
    "report_costs",
]

LOCAL = "llamacpp/qwen2.5-coder-0.5b-instruct"
CLOUD = "anthropic/claude-sonnet-4-5"

# An answer of 100 characters (after the prefilled fence) whose extracted, sanitized code is
# its first 60: the example call and the prose after it are output the score did not need.
CODE = 'def add(a, b):\n    """Returns a plus b."""\n    return a + b\n'
ANSWER = CODE + "\nprint(add(1, 2))\n```\nIt adds two ints.\n"
# 40 characters with no code in them.
PROSE = "Sorry, I can not write such a function.\n"


def _call(
    model: str,
    tokens: tuple[int, int],
    seconds: float,
    peak_rss_bytes: int | None = None,
    answer: str = "x",
) -> CallRecord:
    output = ModelOutput(
        answer, "stop", tokens[0], tokens[1], seconds, 0.5, peak_rss_bytes=peak_rss_bytes
    )
    return CallRecord(model, "h", (Message("user", "q"),), GenerateConfig(), output)


def make_sample(
    model: str,
    task: str,
    status: str,
    *,
    failed_call: bool = False,
    tokens: tuple[int, int] = (200, 100),
    seconds: float = 2.0,
    peak_rss_bytes: int | None = None,
    answer: str = "x",
    code: str = "code",
) -> SampleRecord:
    """A `single` sample: one attempt, one call, its hidden tests' `status`; the call answered
    `answer`, from which `code` was extracted ("" for none)."""
    method = "fenced" if code else "none"
    if failed_call:
        call = CallRecord(model, "h", (Message("user", "q"),), GenerateConfig(), None, "API down")
    else:
        call = _call(model, tokens, seconds, peak_rss_bytes, answer)
    execution = () if failed_call else (ExecutionRecord("hidden", status, "", 0.1, 3.0),)
    attempt = AttemptRecord(code, method, status, (call,), execution)
    return SampleRecord(
        model,
        "single",
        task,
        0,
        status,
        code,
        method,
        False,
        0.0 if failed_call else seconds,
        0.1,
        (attempt,),
        model_error=failed_call,
    )


def hybrid_sample(
    system: str,
    strategy: str,
    task: str,
    hidden: Sequence[str],
    *,
    models: Sequence[str] = (),
    completion_tokens: int = 50,
    seconds: float = 1.0,
    answers: Sequence[str] = (),
) -> SampleRecord:
    """A repair, resample or cascade sample: attempt i's hidden tests gave `hidden[i]`, its
    visible tests the same, so the loop stopped at the first pass. `models[i]` made attempt i
    (default: `system`), answering `answers[i]` (default "x"); its code is "code i"."""
    attempts = []
    for i, status in enumerate(hidden):
        model = models[i] if models else system
        call = _call(
            model, (100, completion_tokens), seconds, answer=answers[i] if answers else "x"
        )
        executions = (
            ExecutionRecord("visible", status, "", 0.05, 3.0),
            ExecutionRecord("hidden", status, "", 0.1, 3.0),
        )
        attempts.append(AttemptRecord(f"code {i}", "fenced", status, (call,), executions))
    return SampleRecord(
        system,
        strategy,
        task,
        0,
        hidden[-1],
        f"code {len(hidden) - 1}",
        "fenced",
        False,
        seconds * len(hidden),
        0.15 * len(hidden),
        tuple(attempts),
        final_attempt=len(hidden) - 1,
    )


def report_costs() -> CostSettings:
    return CostSettings(
        load_prices(), LocalCost(watts=100, usd_per_kwh=0.2, hardware_usd=500, lifetime_months=36)
    )
