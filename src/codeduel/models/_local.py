"""What the in-process providers share (`llamacpp`, `transformers`): the loaded model's chat
template, family and FIM format, its file's identity, and the capabilities of a batching
engine."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from codeduel.errors import ModelUnusableError
from codeduel.models._chat import FALLBACK_TEMPLATE, render_chat
from codeduel.models._provider import Capabilities, Provider, ProviderOptions
from codeduel.models.bundled import file_identity
from codeduel.models.families import Family, FimFormat, family_for_template, fim_format_for
from codeduel.types import GenerateConfig, Message

__all__ = ["LocalProvider"]


class LocalProvider(Provider):
    """A model run in this process by an engine that decodes `parallel` sequences at once."""

    def __init__(self, model: str, options: ProviderOptions, *, parallel: int) -> None:
        super().__init__(model, options)
        # The engine decodes greedily at temperature 0 and renders the model's own template.
        self.capabilities = Capabilities(
            local=True,
            max_concurrency=parallel,
            supports_prefill=True,
            deterministic_greedy=True,
            infill=True,
        )
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._template = FALLBACK_TEMPLATE
        self._family: Family = family_for_template(None)
        self._fim: FimFormat | None = None
        self._bos = self._eos = ""
        self._identity: dict[str, str] | None = None

    @abc.abstractmethod
    def load(self) -> Any:
        """Load the model (once); what it returns is the provider's own."""

    def _use_chat(self, template: object, bos: str, eos: str) -> None:
        """Take the loaded model's chat template (where it has one) and its BOS and EOS text."""
        own = template if isinstance(template, str) and template else None
        if own:
            self._template = own
        self._family = family_for_template(own)
        self._bos, self._eos = bos, eos

    def _use_fim(self, is_token: Callable[[str], bool]) -> None:
        """Take the FIM format whose markers are tokens of the loaded model's vocab."""
        self._fim = fim_format_for(is_token)

    @property
    def family(self) -> Family:
        self.load()
        return self._family

    def stops(self, config: GenerateConfig) -> tuple[str, ...]:
        """What ends this call as text: the config's stops and the family's end of turn, or
        for a FIM call the FIM format's end of middle (load first)."""
        if config.infill is not None and self._fim is not None:
            return (*config.stop, *self._fim.stops)
        return (*config.stop, *self._family.end_of_turn)

    def render(self, messages: Sequence[Message], config: GenerateConfig) -> str:
        """The prompt text the model sees (load first): the chat template's, or for a FIM
        call the prefix and suffix in the model's own FIM tokens."""
        if config.infill is not None:
            if self._fim is None:
                raise ModelUnusableError(
                    f"{self.name}/{self.model} has no fill-in-the-middle tokens in its vocab "
                    "(known: Qwen2.5-Coder's, StarCoder's, DeepSeek-Coder's): use a code model "
                    "trained for FIM"
                )
            return self._fim.render(*config.infill)
        return render_chat(
            self._template, messages, config.prefill, bos_token=self._bos, eos_token=self._eos
        )

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = file_identity(self.model, self._path)
        return self._identity
