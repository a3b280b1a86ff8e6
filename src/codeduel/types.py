"""The value types every stage shares: messages in, a generation config, one model output.

A neutral module: `prompts`, `models`, `records` and `store` all import it, and it imports
nothing of codeduel, so no two of them need import each other for a type."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

__all__ = ["FinishReason", "GenerateConfig", "Message", "ModelOutput", "Role", "config_fields"]

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerateConfig:
    """How to generate; the same for every provider."""

    max_tokens: int = 768
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    # Extra stop strings; a provider adds its model family's own end-of-turn markers.
    stop: tuple[str, ...] = ()
    # Text the assistant turn starts with (e.g. an opening code fence). Not part of `text`.
    prefill: str = ""
    # Fill-in-the-middle: (prefix, suffix) for a provider that takes them as they are (the
    # model's FIM tokens, a completions API's `suffix`); no messages then, `text` is the middle.
    infill: tuple[str, str] | None = None


def config_fields(config: GenerateConfig) -> dict[str, object]:
    """The config as stored and hashed; `infill` only when set, so the stored configs and
    request hashes of calls from before it existed stay the same."""
    fields = asdict(config)
    if fields["infill"] is None:
        del fields["infill"]
    return fields


@dataclass(frozen=True)
class ModelOutput:
    """One completed model call, as the provider saw it."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    ttft_s: float | None = None
    # The exact prompt the model saw, when the provider renders it itself.
    prompt_text: str | None = None
    peak_rss_bytes: int | None = None
    peak_vram_bytes: int | None = None
    # Engine time this call accounts for when it shared the engine with others (batching): the
    # sum over its steps of step time x its share of the step's tokens. None: the latency.
    busy_s: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Output tokens per second after the first token (decode speed)."""
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        decode_s = self.latency_s - self.ttft_s
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 else None
