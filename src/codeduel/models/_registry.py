"""Provider lookup by name; third-party packages add providers through entry points."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from codeduel.errors import OptionError

if TYPE_CHECKING:
    from codeduel.models._provider import Provider

__all__ = ["ENTRY_POINT_GROUP", "ModelSpec", "load_provider_class", "parse_model_spec", "providers"]

ENTRY_POINT_GROUP = "codeduel.providers"

# Built-ins use the same "module:attr" form as entry points, so nothing is imported until used;
# they also resolve when codeduel runs from a source tree without installed metadata.
_BUILTIN: dict[str, str] = {
    "llamacpp": "codeduel.models.llamacpp:LlamaCppProvider",
    "anthropic": "codeduel.models.anthropic:AnthropicProvider",
    "openai": "codeduel.models.openai:OpenAIProvider",
    "openai-compat": "codeduel.models.openai:OpenAICompatProvider",
    "ollama": "codeduel.models.openai:OllamaProvider",
    "vllm": "codeduel.models.openai:VLLMProvider",
    "lmstudio": "codeduel.models.openai:LMStudioProvider",
    "transformers": "codeduel.models.transformers:TransformersProvider",
}

# What to install when a provider's module cannot import its engine or SDK.
_INSTALL_HINT: dict[str, str] = {
    "llamacpp": "pip install 'codeduel[llama]'",
    "anthropic": "pip install 'codeduel[anthropic]'",
    "openai": "pip install 'codeduel[openai]'",
    "openai-compat": "pip install 'codeduel[openai]'",
    "ollama": "pip install 'codeduel[openai]'",
    "vllm": "pip install 'codeduel[openai]'",
    "lmstudio": "pip install 'codeduel[openai]'",
    "transformers": "pip install 'codeduel[gpu]' (torch, transformers, gguf)",
}


@dataclass(frozen=True)
class ModelSpec:
    """`provider/model`, e.g. `llamacpp/qwen2.5-coder-0.5b-instruct`."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


def parse_model_spec(text: str) -> ModelSpec:
    provider, sep, model = text.strip().partition("/")
    if not sep or not provider or not model:
        raise OptionError(
            f"model spec {text!r} must look like PROVIDER/MODEL, e.g. "
            "llamacpp/qwen2.5-coder-0.5b-instruct"
        )
    return ModelSpec(provider, model)


def providers() -> dict[str, str]:
    """Every known provider name and the `module:attr` that implements it."""
    found = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def load_provider_class(name: str) -> type[Provider]:
    target = _BUILTIN.get(name) or providers().get(name)
    if target is None:
        known = ", ".join(sorted(providers()))
        raise OptionError(f"unknown provider {name!r}; known providers: {known}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "codeduel":
            raise  # a module of codeduel's own is missing: a bug, with its traceback
        hint = _INSTALL_HINT.get(name, f"install the package that provides {name!r}")
        raise OptionError(
            f"provider {name!r} needs a package that is missing ({exc.name}): {hint}"
        ) from exc
    cls: type[Provider] = getattr(module, attr)
    return cls
