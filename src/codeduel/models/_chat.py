"""Chat templates: a model's own Jinja template rendered the way local providers need it."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from codeduel.types import Message

__all__ = ["FALLBACK_TEMPLATE", "render_chat"]


@functools.lru_cache(maxsize=16)
def _compiled(template: str) -> Template:
    # Compiling a template takes milliseconds: a batched engine renders hundreds a second.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template)


def render_chat(
    template: str,
    messages: Sequence[Message],
    prefill: str,
    *,
    bos_token: str = "",
    eos_token: str = "",
) -> str:
    """Render the model's own chat template, ending inside the assistant turn after `prefill`.

    The assistant turn is rendered complete around a marker and cut at the marker, so the
    template decides everything around the prefill (the trick evalplus uses).
    """
    compiled = _compiled(template)
    marker = "\x00codeduel-prefill-marker\x00"
    chat = [asdict(m) for m in messages]
    if prefill:
        rendered = compiled.render(
            messages=[*chat, {"role": "assistant", "content": prefill + marker}],
            add_generation_prompt=False,
            bos_token=bos_token,
            eos_token=eos_token,
        )
        if marker in rendered:
            return rendered.split(marker)[0]
    return (
        compiled.render(
            messages=chat, add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token
        )
        + prefill
    )


FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m.role | capitalize }}: {{ m.content }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)
