"""What one sample produced: its model calls, executions and attempts, ready for the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codeduel.types import GenerateConfig, Message, ModelOutput

__all__ = ["AttemptRecord", "CallRecord", "ExecutionRecord", "SampleRecord"]


@dataclass(frozen=True)
class CallRecord:
    model: str
    request_hash: str
    messages: tuple[Message, ...]
    config: GenerateConfig
    output: ModelOutput | None
    error: str | None = None


@dataclass(frozen=True)
class ExecutionRecord:
    # Which tests ran: "hidden" scores the sample; "visible" may feed back to the model.
    tests: str
    status: str
    detail: str
    duration_s: float
    timeout_s: float
    # What the run measured beyond the verdict: a GPU task's harness report (`parse_report`).
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class AttemptRecord:
    code: str
    extract_method: str
    status: str
    calls: tuple[CallRecord, ...] = ()
    executions: tuple[ExecutionRecord, ...] = ()


@dataclass(frozen=True)
class SampleRecord:
    model: str
    strategy: str
    task_id: str
    sample_index: int
    status: str
    code: str
    extract_method: str
    hit_token_limit: bool
    generation_s: float
    execution_s: float
    attempts: tuple[AttemptRecord, ...] = field(default=())
    # Every model call failed (after retries): an infrastructure error, not a wrong answer.
    model_error: bool = False
    # Index of the attempt whose code is the answer; None means the last one.
    final_attempt: int | None = None

    @property
    def calls(self) -> list[CallRecord]:
        return [c for a in self.attempts for c in a.calls]

    def _outputs(self) -> list[ModelOutput]:
        return [c.output for c in self.calls if c.output is not None]

    @property
    def prompt_tokens(self) -> int:
        return sum(o.prompt_tokens for o in self._outputs())

    @property
    def completion_tokens(self) -> int:
        return sum(o.completion_tokens for o in self._outputs())

    @property
    def ttft_s(self) -> float | None:
        outputs = self._outputs()
        return outputs[0].ttft_s if outputs else None

    def peak(self, attr: str) -> int | None:
        values = [getattr(o, attr) for o in self._outputs() if getattr(o, attr) is not None]
        return max(values) if values else None
