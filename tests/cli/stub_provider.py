"""A provider that answers at once with fixed code: CLI tests run `codeduel run` without a model."""

from __future__ import annotations

from collections.abc import Sequence

from codeduel.errors import ModelUnusableError
from codeduel.models import (
    Capabilities,
    GenerateConfig,
    Message,
    ModelOutput,
    Provider,
    ProviderOptions,
)


class StubOptions(ProviderOptions):
    answer: str = "def f():\n    return 1"
    delay_s: float = 0.0
    # Every call fails as with a rejected API key.
    unusable: bool = False
    # false: the answer is a whole fenced block, not the continuation of a prefilled fence.
    prefill: bool = True


calls = 0
"""Calls made to any stub provider in this process."""


class StubProvider(Provider):
    """Answers every prompt with the same fenced code."""

    name = "stub"
    Options = StubOptions

    def __init__(self, model: str, options: ProviderOptions) -> None:
        super().__init__(model, options)
        assert isinstance(options, StubOptions)
        self.capabilities = Capabilities(
            local=True,
            max_concurrency=4,
            deterministic_greedy=True,
            supports_prefill=options.prefill,
        )

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        assert isinstance(self.options, StubOptions)
        global calls
        calls += 1
        if self.options.unusable:
            raise ModelUnusableError(f"stub/{self.model}: the API key was rejected (401)")
        return ModelOutput(f"```python\n{self.options.answer}\n```", "stop", 10, 5, latency_s=0.001)
