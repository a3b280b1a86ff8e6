from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from codeduel.errors import ModelError, OptionError
from codeduel.models import (
    Capabilities,
    GenerateConfig,
    Message,
    Model,
    ModelOutput,
    ModelSpec,
    Provider,
    ProviderOptions,
    RetryableError,
    RetryPolicy,
    load_model,
    load_provider_class,
    parse_model_spec,
    providers,
    register_provider,
    unregister_provider,
)


def test_model_spec_parsing() -> None:
    assert parse_model_spec("llamacpp/qwen2.5-coder-0.5b-instruct") == ModelSpec(
        "llamacpp", "qwen2.5-coder-0.5b-instruct"
    )
    # Everything after the first slash is the model, so paths and org/model names survive.
    assert parse_model_spec("llamacpp//tmp/m.gguf").model == "/tmp/m.gguf"
    for bad in ("qwen", "/model", "provider/", ""):
        with pytest.raises(OptionError, match="PROVIDER/MODEL"):
            parse_model_spec(bad)


def test_builtin_provider_is_registered_like_a_plugin() -> None:
    assert providers()["llamacpp"] == "codeduel.models.llamacpp:LlamaCppProvider"


def test_unknown_provider_lists_known_ones() -> None:
    with pytest.raises(OptionError, match="known providers: .*llamacpp"):
        load_model(ModelSpec("nosuch", "m"), {})


def test_option_typos_and_bad_values_are_errors() -> None:
    with pytest.raises(OptionError, match="n_thread.*Extra inputs are not permitted"):
        load_model(ModelSpec("llamacpp", "smollm2-135m-instruct"), {"n_thread": "2"})
    with pytest.raises(OptionError, match="n_ctx"):
        load_model(ModelSpec("llamacpp", "smollm2-135m-instruct"), {"n_ctx": "lots"})


class _Flaky(Provider):
    """Fails `failures` times with a retryable error, then answers."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__("m", ProviderOptions())
        # Its answer is a function of the request: a greedy call may be replayed.
        self.capabilities = Capabilities(local=False, max_concurrency=2, deterministic_greedy=True)
        self.failures = failures
        self.calls = 0
        self.active = 0
        self.max_active = 0

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        self.calls += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(0.01)
            if self.calls <= self.failures:
                raise RetryableError("overloaded", retry_after_s=2.5)
            return ModelOutput(messages[-1].content, "stop", 1, 1, latency_s=0.01)
        finally:
            self.active -= 1


def _model(
    provider: Provider,
    sleeps: list[float],
    attempts: int = 3,
    cache: dict[str, ModelOutput] | None = None,
) -> Model:
    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return Model(
        ModelSpec("flaky", "m"),
        provider,
        retry=RetryPolicy(max_attempts=attempts),
        sleep=fake_sleep,
        cache=cache,
    )


def test_retries_honour_retry_after_then_succeed() -> None:
    sleeps: list[float] = []
    model = _model(_Flaky(failures=2), sleeps)
    out = asyncio.run(model.generate([Message("user", "x")], GenerateConfig()))
    assert out.text == "x"
    assert out.extra["attempts"] == 3
    assert len(sleeps) == 2 and all(s >= 2.5 for s in sleeps)


def test_retries_are_bounded() -> None:
    sleeps: list[float] = []
    model = _model(_Flaky(failures=10), sleeps, attempts=3)
    with pytest.raises(ModelError, match="gave up after 3 attempts"):
        asyncio.run(model.generate([Message("user", "x")], GenerateConfig()))
    assert len(sleeps) == 2


def test_concurrency_is_limited_by_the_provider_capability() -> None:
    provider = _Flaky(failures=0)
    model = _model(provider, [])

    async def many() -> None:
        await asyncio.gather(
            *(model.generate([Message("user", str(i))], GenerateConfig()) for i in range(8))
        )

    asyncio.run(many())
    assert provider.calls == 8
    assert provider.max_active == 2


def test_cache_answers_a_repeated_request_without_a_call() -> None:
    provider = _Flaky(failures=0)
    model = _model(provider, [], cache={})
    messages = [Message("user", "same")]
    first = asyncio.run(model.generate(messages, GenerateConfig()))
    second = asyncio.run(model.generate(messages, GenerateConfig()))
    assert provider.calls == 1
    assert second.text == first.text and second.extra["cached"] is True
    asyncio.run(model.generate(messages, GenerateConfig(temperature=0.5)))
    assert provider.calls == 2


def test_a_provider_whose_greedy_call_is_a_draw_is_never_replayed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cloud API that keeps its own sampling (Anthropic's, here): temperature 0 is no promise.
    provider = _Flaky(failures=0)
    provider.capabilities = Capabilities(local=False, max_concurrency=2)
    model = _model(provider, [], cache={})
    messages = [Message("user", "same")]
    for _ in range(2):
        assert "cached" not in asyncio.run(model.generate(messages, GenerateConfig())).extra
    assert provider.calls == 2
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    anthropic = load_model(ModelSpec("anthropic", "claude-test"), {}).provider
    assert anthropic.capabilities.deterministic_greedy is False
    assert anthropic.capabilities.honours_sampling is False
    llamacpp = load_model(ModelSpec("llamacpp", "smollm2-135m-instruct"), {}).provider
    assert llamacpp.capabilities.deterministic_greedy is True


def test_a_missing_sdk_says_what_to_install_and_a_bug_stays_a_bug() -> None:
    register_provider("nosdk", "tests.models.missing_sdk_provider:P")
    register_provider("buggy", "tests.models.broken_providers:P")
    try:
        with pytest.raises(OptionError, match="needs a package that is missing"):
            load_provider_class("nosdk")
        # An ImportError raised by codeduel's own code is a bug: it keeps its type and traceback.
        with pytest.raises(ImportError, match="NoSuchProvider") as caught:
            load_provider_class("buggy")
        assert not isinstance(caught.value, OptionError)
    finally:
        unregister_provider("nosdk")
        unregister_provider("buggy")


def test_a_registered_provider_is_used_by_name_until_unregistered() -> None:
    register_provider("flaky", _Flaky)
    try:
        assert load_provider_class("flaky") is _Flaky
        assert providers()["flaky"].endswith(":_Flaky")
    finally:
        unregister_provider("flaky")
    with pytest.raises(OptionError, match="unknown provider 'flaky'"):
        load_provider_class("flaky")
    with pytest.raises(OptionError, match="without '/'"):
        register_provider("a/b", _Flaky)
