"""The provider interface: the one thing each backend implements."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr

from codeduel.types import GenerateConfig, Message, ModelOutput

if TYPE_CHECKING:
    from codeduel.models._batch import Batcher

__all__ = ["REDACTED", "Capabilities", "Provider", "ProviderOptions", "RetryableError"]

REDACTED = "***"
"""What is stored and shown in place of a secret option's value."""


class ProviderOptions(BaseModel):
    """Base of each provider's `-M key=value` options; unknown keys are an error.

    An option declared as `SecretStr` (an API key) is a secret: `redact` keeps it out of the
    run store, the reports and every message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def secret_names(cls) -> frozenset[str]:
        return frozenset(
            name
            for name, info in cls.model_fields.items()
            if SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ()))
        )

    @classmethod
    def redact(cls, options: Mapping[str, str]) -> dict[str, str]:
        """`options` with each secret's value replaced by `REDACTED`."""
        secret = cls.secret_names()
        return {key: REDACTED if key in secret else value for key, value in options.items()}


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, declared as data instead of checked by name."""

    local: bool
    # How many calls the wrapper lets run at once against one instance.
    max_concurrency: int = 1
    supports_prefill: bool = True
    # A temperature-0 call is determined by its request (the engine decodes greedily), so its
    # answer may be replayed from the call cache. Off where temperature 0 is still a draw.
    deterministic_greedy: bool = False
    # The temperature and top_p asked for are sent and honoured (else the API's own apply).
    honours_sampling: bool = True
    # Calls go through the API's batch endpoint (`-M batch=true`), billed at its batch rates.
    batch: bool = False
    # Takes a fill-in-the-middle request (`GenerateConfig.infill`) as it is; else a FIM task
    # is asked for its middle in a chat prompt.
    infill: bool = False


class RetryableError(Exception):
    """A transient failure (rate limit, overload, dropped connection) worth retrying."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Provider(abc.ABC):
    """Turns messages plus a generation config into one output.

    Providers do only that: timing of the whole call, retries, concurrency limits, caching
    and logging belong to `codeduel.models.Model`, which wraps every provider.
    """

    name: ClassVar[str]
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions
    # What this instance can do, as configured: each provider sets it in `__init__`.
    capabilities: Capabilities
    # Batch mode's queue, where the provider has one and it is on; the runner gives it the
    # store's ledger so a resumed run finds its pending batches.
    batcher: Batcher | None = None

    def __init__(self, model: str, options: ProviderOptions) -> None:
        self.model = model
        self.options = options

    @abc.abstractmethod
    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        """Run one call; raise `RetryableError` for failures worth another try."""

    def identity(self) -> dict[str, Any]:
        """What identifies the weights beyond the model's name (a model file's sha256): part
        of every call's cache key, so a replaced file never replays the old file's answers."""
        return {}

    def info(self) -> dict[str, Any]:
        """Provenance of the loaded model (file, hash, engine version), stored with each run."""
        return {}

    def close(self) -> None:  # noqa: B027 - most providers hold nothing to release
        """Release what the provider holds (weights, connections)."""
