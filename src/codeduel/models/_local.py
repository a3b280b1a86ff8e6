"""What the in-process providers share (`llamacpp`, `transformers`): the loaded model's chat
template and family, its file's identity, and the capabilities of a batching engine."""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codeduel.models._chat import FALLBACK_TEMPLATE, render_chat
from codeduel.models._provider import Capabilities, Provider, ProviderOptions
from codeduel.models.bundled import file_identity
from codeduel.models.families import Family, family_for_template
from codeduel.types import GenerateConfig, Message

__all__ = ["LocalProvider"]


class LocalProvider(Provider):
    """A model run in this process by an engine that decodes `parallel` sequences at once."""

    def __init__(self, model: str, options: ProviderOptions, *, parallel: int) -> None:
        super().__init__(model, options)
        # The engine decodes greedily at temperature 0 and renders the model's own template.
        self.capabilities = Capabilities(
            local=True, max_concurrency=parallel, supports_prefill=True, deterministic_greedy=True
        )
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._template = FALLBACK_TEMPLATE
        self._family: Family = family_for_template(None)
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

    @property
    def family(self) -> Family:
        self.load()
        return self._family

    def render(self, messages: Sequence[Message], config: GenerateConfig) -> str:
        """The prompt text the model sees (load first)."""
        return render_chat(
            self._template, messages, config.prefill, bos_token=self._bos, eos_token=self._eos
        )

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = file_identity(self.model, self._path)
        return self._identity
