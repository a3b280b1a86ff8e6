"""The model layer: providers behind one wrapper.

`Provider` is the small interface each backend implements; `Model` wraps a provider and owns
timing, retries, concurrency, caching and logging.
"""

from codeduel.models._batch import Batcher, BatchLedger, MemoryLedger, PollPolicy
from codeduel.models._budget import Budget, output_usage
from codeduel.models._model import Model, RetryPolicy, load_model, redact_options
from codeduel.models._provider import (
    REDACTED,
    Capabilities,
    Provider,
    ProviderOptions,
    RetryableError,
)
from codeduel.models._registry import (
    ModelSpec,
    load_provider_class,
    parse_model_spec,
    providers,
    register_provider,
    unregister_provider,
)
from codeduel.types import FinishReason, GenerateConfig, Message, ModelOutput

__all__ = [
    "REDACTED",
    "BatchLedger",
    "Batcher",
    "Budget",
    "Capabilities",
    "FinishReason",
    "GenerateConfig",
    "MemoryLedger",
    "Message",
    "Model",
    "ModelOutput",
    "ModelSpec",
    "PollPolicy",
    "Provider",
    "ProviderOptions",
    "RetryPolicy",
    "RetryableError",
    "load_model",
    "load_provider_class",
    "output_usage",
    "parse_model_spec",
    "providers",
    "redact_options",
    "register_provider",
    "unregister_provider",
]
