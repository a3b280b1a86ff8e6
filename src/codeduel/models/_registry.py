"""Provider lookup by name; third-party packages add providers through entry points."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from codeduel.errors import OptionError

if TYPE_CHECKING:
    from codeduel.models._provider import Provider

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelSpec",
    "load_provider_class",
    "parse_model_spec",
    "providers",
    "register_provider",
    "unregister_provider",
]

ENTRY_POINT_GROUP = "codeduel.providers"


@dataclass(frozen=True)
class _Builtin:
    """A built-in provider: where it lives ("module:attr", as an entry point names it) and the
    pip extra that installs what it imports."""

    target: str
    extra: str
    needs: str = ""


# Nothing is imported until used; they also resolve when codeduel runs from a source tree
# without installed metadata.
_BUILTIN: dict[str, _Builtin] = {
    "llamacpp": _Builtin("codeduel.models.llamacpp:LlamaCppProvider", "llama"),
    "anthropic": _Builtin("codeduel.models.anthropic:AnthropicProvider", "anthropic"),
    "openai": _Builtin("codeduel.models.openai:OpenAIProvider", "openai"),
    "openai-compat": _Builtin("codeduel.models.openai:OpenAICompatProvider", "openai"),
    "ollama": _Builtin("codeduel.models.openai:OllamaProvider", "openai"),
    "vllm": _Builtin("codeduel.models.openai:VLLMProvider", "openai"),
    "lmstudio": _Builtin("codeduel.models.openai:LMStudioProvider", "openai"),
    "transformers": _Builtin(
        "codeduel.models.transformers:TransformersProvider", "gpu", " (torch, transformers, gguf)"
    ),
}
# Providers registered at run time (`register_provider`): a plugin's, or a test's.
_REGISTERED: dict[str, str | type[Provider]] = {}


def register_provider(name: str, provider: str | type[Provider]) -> None:
    """Make `provider` (a Provider subclass, or "module:attr" naming one) usable as
    `NAME/MODEL`; it wins over a built-in or entry-point provider of the same name. Packages
    can instead declare an entry point in the `codeduel.providers` group."""
    if not name or "/" in name:
        raise OptionError(f"a provider name must be non-empty and without '/': {name!r}")
    _REGISTERED[name] = provider


def unregister_provider(name: str) -> None:
    """Undo `register_provider(name, …)`."""
    _REGISTERED.pop(name, None)


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
    found = {name: entry.target for name, entry in _BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    for name, provider in _REGISTERED.items():
        found[name] = (
            provider if isinstance(provider, str) else f"{provider.__module__}:{provider.__name__}"
        )
    return found


def load_provider_class(name: str) -> type[Provider]:
    registered = _REGISTERED.get(name)
    if registered is not None and not isinstance(registered, str):
        return registered
    builtin = _BUILTIN.get(name)
    target = registered or (builtin.target if builtin else None) or providers().get(name)
    if target is None:
        known = ", ".join(sorted(providers()))
        raise OptionError(f"unknown provider {name!r}; known providers: {known}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "codeduel":
            raise  # a module of codeduel's own is missing: a bug, with its traceback
        hint = (
            f"pip install 'codeduel[{builtin.extra}]'{builtin.needs}"
            if builtin is not None and registered is None
            else f"install the package that provides {name!r}"
        )
        raise OptionError(
            f"provider {name!r} needs a package that is missing ({exc.name}): {hint}"
        ) from exc
    cls: type[Provider] = getattr(module, attr)
    return cls
