"""Per-model-family data: how a family ends its turn.

A family is recognised from the chat template a model file carries, never from the model's
name, so a fine-tune or a re-quantisation of a known family gets the right stops.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILIES", "Family", "family_for_template"]


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
