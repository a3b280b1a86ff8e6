"""Per-model-family data: how a family ends its turn, and how it fills in a middle.

A family is recognised from the chat template a model file carries, never from the model's
name, so a fine-tune or a re-quantisation of a known family gets the right stops. A FIM format
is recognised the same way, from its three markers being tokens of the model's vocab.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "FAMILIES",
    "FIM_FORMATS",
    "Family",
    "FimFormat",
    "family_for_template",
    "fim_format_for",
]


@dataclass(frozen=True)
class Family:
    name: str
    # A string whose presence in the chat template identifies the family.
    template_marker: str
    # End-of-turn markers to stop on as text, for files whose vocab does not flag them as EOG.
    end_of_turn: tuple[str, ...]


FAMILIES: tuple[Family, ...] = (
    Family("chatml", "<|im_start|>", ("<|im_end|>", "<|endoftext|>")),
    Family("llama3", "<|start_header_id|>", ("<|eot_id|>", "<|end_of_text|>")),
    Family("gemma", "<start_of_turn>", ("<end_of_turn>",)),
    Family("mistral", "[INST]", ("</s>",)),
    Family("deepseek", "<｜Assistant｜>", ("<｜end▁of▁sentence｜>",)),
)

GENERIC = Family("generic", "", ())


def family_for_template(template: str | None) -> Family:
    if template:
        for family in FAMILIES:
            if family.template_marker in template:
                return family
    return GENERIC


@dataclass(frozen=True)
class FimFormat:
    """A code family's fill-in-the-middle tokens, in prefix-suffix-middle order (PSM, the
    order these models were trained on and their model cards show)."""

    name: str
    prefix: str
    suffix: str
    middle: str
    # Tokens that end a middle (beyond the vocab's own end-of-generation tokens).
    stops: tuple[str, ...]

    def render(self, prefix: str, suffix: str) -> str:
        return f"{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}"


FIM_FORMATS: tuple[FimFormat, ...] = (
    # Qwen2.5-Coder's model card and technical report (section 3, "file-level" FIM).
    FimFormat(
        "qwen2.5-coder",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"),
    ),
    # StarCoder and StarCoder2.
    FimFormat(
        "starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", ("<|endoftext|>", "<file_sep>")
    ),
    # DeepSeek-Coder (its own order of markers: begin, hole, end).
    FimFormat("deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", ("<|EOT|>",)),
)


def fim_format_for(is_token: Callable[[str], bool]) -> FimFormat | None:
    """The FIM format whose three markers are each one token of the vocab; None: the model
    declares none (a chat model, a family without FIM training)."""
    for fmt in FIM_FORMATS:
        if all(is_token(marker) for marker in (fmt.prefix, fmt.suffix, fmt.middle)):
            return fmt
    return None
