"""Providers `openai`, `openai-compat` and its presets: the real SDK against a fake server."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator

import pytest

from codeduel.errors import ModelError, ModelUnusableError, OptionError
from codeduel.models import (
    GenerateConfig,
    Message,
    Model,
    ModelOutput,
    RetryPolicy,
    load_model,
    parse_model_spec,
)
from tests.models import fakeapi
from tests.models.fakeapi import FakeAPI

OPENAI = parse_model_spec("openai/gpt-test")
COMPAT = parse_model_spec("openai-compat/local-test")
PROMPT = [Message("system", "You write Python."), Message("user", "Write a function")]
ANSWER = "Hello there, world."


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-oai-test-{secrets.token_hex(8)}"
    monkeypatch.setenv("OPENAI_API_KEY", value)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return value


@pytest.fixture
def api(key: str) -> Iterator[FakeAPI]:
    with FakeAPI(lambda request: ANSWER, api_key=key) as server:
        yield server


def _model(
    api: FakeAPI, spec: str = "openai/gpt-test", sleeps: list[float] | None = None, **options: str
) -> Model:
    """The provider behind the real wrapper, with fast retries and a recorded sleep."""
    parsed = parse_model_spec(spec)
    provider = load_model(parsed, {"base_url": api.openai_url, **options}).provider

    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return Model(parsed, provider, retry=RetryPolicy(max_attempts=3, base_s=0.01), sleep=fake_sleep)


def _generate(model: Model, config: GenerateConfig | None = None) -> ModelOutput:
    return asyncio.run(model.generate(PROMPT, config or GenerateConfig()))


def test_text_usage_and_timing_come_from_the_stream(api: FakeAPI) -> None:
    api.chunk_delay_s = 0.02
    out = _generate(_model(api), GenerateConfig(max_tokens=50, temperature=0.2, seed=7))
    assert out.text == ANSWER
    assert out.finish_reason == "stop"
    assert (out.prompt_tokens, out.completion_tokens) == (6, 3)
    assert "usage" not in out.extra
    assert out.ttft_s is not None and 0 < out.ttft_s < out.latency_s
    assert out.latency_s - out.ttft_s >= 0.08
    (sent,) = api.posts
    assert sent.path == "/v1/chat/completions" and sent.authorized
    assert sent.body is not None
    assert sent.body["messages"] == [
        {"role": "system", "content": "You write Python."},
        {"role": "user", "content": "Write a function"},
    ]
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["max_completion_tokens"] == 50 and "max_tokens" not in sent.body
    assert sent.body["temperature"] == 0.2 and sent.body["seed"] == 7
    assert "top_p" not in sent.body


def test_top_p_is_sent_when_it_is_not_the_default(api: FakeAPI) -> None:
    _generate(_model(api), GenerateConfig(top_p=0.9))
    assert api.posts[0].body is not None and api.posts[0].body["top_p"] == 0.9


def test_max_tokens_is_a_length_finish(api: FakeAPI) -> None:
    out = _generate(_model(api), GenerateConfig(max_tokens=2))
    assert (out.text, out.finish_reason, out.completion_tokens) == ("Hello there, ", "length", 2)


def test_stops_beyond_four_are_applied_to_the_stream(key: str) -> None:
    with FakeAPI(lambda request: "a b c d e f g", api_key=key) as api:
        stops = ("x1", "x2", "x3", "x4", " e")
        out = _generate(_model(api), GenerateConfig(stop=stops))
    assert api.posts[0].body is not None and api.posts[0].body["stop"] == list(stops[:4])
    assert out.text == "a b c d"
    assert out.finish_reason == "stop"
    assert out.extra["usage"] == "estimated from stream chunks"


def test_stops_the_server_applies(key: str) -> None:
    with FakeAPI(lambda request: "def f():\n    return 1\n```\nmore", api_key=key) as api:
        out = _generate(_model(api), GenerateConfig(stop=("\n```",)))
    assert api.posts[0].body is not None and api.posts[0].body["stop"] == ["\n```"]
    assert out.text == "def f():\n    return 1" and out.finish_reason == "stop"


def test_no_prefill(api: FakeAPI) -> None:
    model = _model(api)
    assert model.provider.capabilities.supports_prefill is False
    with pytest.raises(ValueError, match="cannot prefill"):
        _generate(model, GenerateConfig(prefill="```python\n"))
    assert api.posts == []


@pytest.mark.parametrize(
    "fault",
    [
        fakeapi.rate_limited(retry_after=None),
        fakeapi.overloaded(),
        fakeapi.server_error(),
        fakeapi.dropped(),
        fakeapi.cut(after_deltas=2),
        fakeapi.truncated(after_deltas=2),
        fakeapi.malformed(after_deltas=1),
        fakeapi.error_event(after_deltas=1),
    ],
    ids=lambda f: f"{f.kind}-{f.status}" if f.status else f.kind,
)
@pytest.mark.parametrize("spec", ["openai/gpt-test", "openai-compat/local-test"])
def test_each_fault_is_retried_then_the_call_succeeds(
    api: FakeAPI, spec: str, fault: fakeapi.Fault
) -> None:
    api.fail(1, fault)
    out = _generate(_model(api, spec))
    assert out.text == ANSWER
    assert out.extra["attempts"] == 2
    assert [r.fault for r in api.posts] == [fault.kind, None]


def test_retry_after_headers_set_the_wait(api: FakeAPI) -> None:
    api.fail(1, fakeapi.rate_limited(retry_after=1))
    api.fail(2, fakeapi.rate_limited(retry_after=None, retry_after_ms=1500))
    sleeps: list[float] = []
    out = _generate(_model(api, sleeps=sleeps))
    assert out.extra["attempts"] == 3
    assert sleeps[0] >= 1.0 and sleeps[1] >= 1.5


def test_a_timeout_is_retried(api: FakeAPI) -> None:
    api.fail(1, fakeapi.slow(2.0))
    out = _generate(_model(api, timeout_s="0.3"))
    assert out.extra["attempts"] == 2


def test_a_slow_first_byte_shows_in_ttft(api: FakeAPI) -> None:
    api.fail(1, fakeapi.slow(0.3))
    out = _generate(_model(api))
    assert out.ttft_s is not None and 0.3 <= out.ttft_s <= out.latency_s


@pytest.mark.parametrize("code", [400, 401, 403, 404, 413, 422])
def test_client_errors_fail_at_once(api: FakeAPI, code: int) -> None:
    api.fail(1, fakeapi.status(code, "you cannot do that"))
    with pytest.raises(ModelError, match=rf"openai/gpt-test: HTTP {code}: you cannot do that"):
        _generate(_model(api))
    assert len(api.posts) == 1


def test_a_wrong_key_fails_at_once_without_showing_it(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = f"sk-oai-wrong-{secrets.token_hex(8)}"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with FakeAPI(api_key=key) as api:
        with pytest.raises(ModelError, match="HTTP 401: Incorrect API key") as caught:
            _generate(_model(api))
        assert len(api.posts) == 1 and not api.posts[0].authorized
    assert wrong not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (401, "the API key was rejected: check OPENAI_API_KEY"),
        (403, "this API key may not use the model: check its permissions"),
        (404, "no such model at http://127.0.0.1:{port}/v1: check the model name and base_url"),
    ],
)
def test_a_model_no_call_can_use_is_unusable_after_one_request(
    api: FakeAPI, code: int, fix: str
) -> None:
    api.fail_every(1, fakeapi.status(code, "you cannot do\nthat"))
    line = f"openai/gpt-test: HTTP {code}: you cannot do that; "
    fix = fix.format(port=api.url.rsplit(":", 1)[1])
    with pytest.raises(ModelUnusableError, match=f"^{re.escape(line + fix)}"):
        _generate(_model(api))
    assert len(api.posts) == 1


def test_a_wrong_address_is_unusable(api: FakeAPI) -> None:
    # The server's root, not its /v1: every request is a 404.
    model = _model(api, "openai-compat/local-test", base_url=api.url)
    with pytest.raises(ModelUnusableError, match="check the model name and base_url$"):
        _generate(model)
    assert [r.path for r in api.posts] == ["/chat/completions"]


@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({"api_key": "sk-wrong-7f3a9c"}, "the API key was rejected: check -M api_key"),
        ({}, "the server wants an API key: pass -M api_key=KEY or set OPENAI_API_KEY"),
    ],
)
def test_compat_says_which_key_to_fix(
    options: dict[str, str], fix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeAPI(api_key="right") as api:
        model = _model(api, "openai-compat/local-test", **options)
        with pytest.raises(ModelUnusableError, match=f"{re.escape(fix)}$") as caught:
            _generate(model)
        assert len(api.posts) == 1
    assert "sk-wrong-7f3a9c" not in str(caught.value)


@pytest.mark.parametrize("code", [400, 413, 422])
def test_other_refusals_fail_only_their_call(api: FakeAPI, code: int) -> None:
    api.fail(1, fakeapi.status(code, "you cannot do that"))
    model = _model(api)
    with pytest.raises(ModelError) as caught:
        _generate(model)
    assert not isinstance(caught.value, ModelUnusableError)
    assert _generate(model).text == ANSWER


def test_the_key_never_shows_in_info_bodies_or_errors(api: FakeAPI, key: str) -> None:
    api.fail(1, fakeapi.status(401, f"Incorrect API key provided: {key}."))
    api.fail(2, fakeapi.server_error())
    model = _model(api)
    with pytest.raises(ModelError) as caught:
        _generate(model)
    assert key not in str(caught.value) and "[redacted]" in str(caught.value)
    # The wrapper makes no call after a 401 (unusable); a new one over the provider does.
    model = Model(OPENAI, model.provider, retry=RetryPolicy(max_attempts=3, base_s=0.01))
    _generate(model)
    assert key not in json.dumps(model.provider.info())
    assert all(r.authorized and key not in json.dumps(r.body) for r in api.posts)


def test_a_missing_key_is_an_option_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(OptionError, match="set OPENAI_API_KEY"):
        load_model(OPENAI, {})


def test_openai_needs_its_usage_chunk(key: str) -> None:
    with (
        FakeAPI(lambda request: ANSWER, api_key=key, stream_usage=False) as api,
        pytest.raises(ModelError, match="gave up after 3 attempts: .*usage chunk"),
    ):
        _generate(_model(api))


def test_the_base_url_variable_is_honoured_and_the_option_wins(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", api.openai_url)
    for spec in (OPENAI, COMPAT):
        model = load_model(spec, {})
        assert asyncio.run(model.generate(PROMPT, GenerateConfig())).text == ANSWER
        assert model.provider.info()["base_url"] == api.openai_url
    # Nothing listens on the discard port: the request can only succeed through the option.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    model = load_model(OPENAI, {"base_url": api.openai_url})
    assert asyncio.run(model.generate(PROMPT, GenerateConfig())).text == ANSWER
    assert len(api.posts) == 3


def test_option_typos_and_bad_values_are_errors(key: str) -> None:
    with pytest.raises(OptionError, match="base_ur.*Extra inputs are not permitted"):
        load_model(OPENAI, {"base_ur": "http://127.0.0.1:1/v1"})
    # `api_key` is an option of the compatible servers only: OpenAI's key comes from the env.
    with pytest.raises(OptionError, match="api_key.*Extra inputs are not permitted"):
        load_model(OPENAI, {"api_key": "sk-x"})
    with pytest.raises(OptionError, match="max_concurrency"):
        load_model(COMPAT, {"base_url": "http://127.0.0.1:1/v1", "max_concurrency": "many"})


def test_concurrency_defaults_and_option(api: FakeAPI) -> None:
    assert load_model(OPENAI, {}).provider.capabilities.max_concurrency == 8
    compat = load_model(COMPAT, {"base_url": api.openai_url}).provider
    assert compat.capabilities.max_concurrency == 4
    api.chunk_delay_s = 0.02
    model = _model(api, "openai-compat/local-test", max_concurrency="2")

    async def many() -> list[ModelOutput]:
        prompts = [[Message("user", f"q{i}")] for i in range(6)]
        return await asyncio.gather(*(model.generate(p, GenerateConfig()) for p in prompts))

    assert len(asyncio.run(many())) == 6
    assert api.max_in_flight == 2


# --- openai-compat and its presets -------------------------------------------------------


def test_compat_sends_max_tokens_and_works_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FakeAPI(lambda request: ANSWER, api_key="not-needed") as api:
        model = _model(api, "openai-compat/local-test")
        out = _generate(model, GenerateConfig(max_tokens=40))
        info = model.provider.info()
    assert out.text == ANSWER
    (sent,) = api.posts
    assert sent.authorized
    assert sent.body is not None
    assert sent.body["max_tokens"] == 40 and "max_completion_tokens" not in sent.body
    assert info["api_key"] == "none" and info["max_tokens_field"] == "max_tokens"


def test_compat_key_option_is_sent_and_kept_secret(key: str) -> None:
    secret = f"local-{secrets.token_hex(8)}"
    with FakeAPI(lambda request: ANSWER, api_key=secret) as api:
        model = _model(api, "openai-compat/local-test", api_key=secret)
        assert _generate(model).text == ANSWER
        assert api.posts[0].authorized
    provider = model.provider
    assert provider.info()["api_key"] == "option api_key"
    for shown in (
        json.dumps(provider.info()),
        json.dumps(provider.options.model_dump(mode="json")),
        repr(provider.options),
        model.request_hash(PROMPT, GenerateConfig()),
    ):
        assert secret not in shown


def test_compat_estimates_usage_when_the_server_sends_none(key: str) -> None:
    with FakeAPI(lambda request: ANSWER, api_key=key, stream_usage=False) as api:
        out = _generate(_model(api, "openai-compat/local-test"))
    assert out.text == ANSWER
    assert (out.prompt_tokens, out.completion_tokens) == (0, 3)
    assert out.extra["usage"] == "estimated from stream chunks"


def test_compat_needs_a_server_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(OptionError, match="base_url=.*OPENAI_BASE_URL"):
        load_model(COMPAT, {})


def test_local_follows_the_server_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def local(spec: str, url: str | None = None) -> bool:
        options = {"base_url": url} if url else {}
        provider = load_model(parse_model_spec(spec), options).provider
        return provider.capabilities.local

    assert local("openai-compat/m", "http://127.0.0.1:8080/v1")
    assert local("openai-compat/m", "http://localhost:8080/v1")
    assert local("openai-compat/m", "http://[::1]:8080/v1")
    assert not local("openai-compat/m", "https://inference.example.com/v1")
    assert local("ollama/m") and local("vllm/m") and local("lmstudio/m")
    assert not local("vllm/m", "http://gpu-box.example.com:8000/v1")


@pytest.mark.parametrize(
    ("preset", "url"),
    [
        ("ollama", "http://127.0.0.1:11434/v1"),
        ("vllm", "http://127.0.0.1:8000/v1"),
        ("lmstudio", "http://127.0.0.1:1234/v1"),
    ],
)
def test_presets_know_their_server(
    preset: str, url: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OPENAI_BASE_URL points at OpenAI-style endpoints in general; a preset names its server.
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    provider = load_model(parse_model_spec(f"{preset}/m"), {}).provider
    assert provider.info()["base_url"] == url
    assert provider.info()["provider"] == preset


def test_presets_talk_to_the_server_given(api: FakeAPI) -> None:
    out = _generate(_model(api, "ollama/qwen2.5-coder:0.5b"))
    assert out.text == ANSWER
    assert api.posts[0].body is not None
    assert api.posts[0].body["model"] == "qwen2.5-coder:0.5b"


def test_the_client_closes_with_its_event_loop(api: FakeAPI) -> None:
    provider = _model(api).provider
    asyncio.run(provider.generate(PROMPT, GenerateConfig()))
    # Private, but the only witness: a leaked client would hold its connections open.
    first = provider._endpoints[0].clients.current  # type: ignore[attr-defined]
    assert first is not None and first.is_closed()
    asyncio.run(provider.generate(PROMPT, GenerateConfig()))
    assert provider._endpoints[0].clients.current is not first  # type: ignore[attr-defined]
