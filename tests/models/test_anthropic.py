"""Provider `anthropic` through the real SDK against a fake Messages API on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

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

SPEC = parse_model_spec("anthropic/claude-test")
PROMPT = [Message("system", "You write Python."), Message("user", "Write a function")]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-ant-test-{secrets.token_hex(8)}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", value)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    return value


@pytest.fixture
def api(key: str) -> Iterator[FakeAPI]:
    with FakeAPI(lambda request: "Hello there, world.", api_key=key) as server:
        yield server


def _model(api: FakeAPI, sleeps: list[float] | None = None, **options: str) -> Model:
    """The provider behind the real wrapper, with fast retries and a recorded sleep."""
    provider = load_model(SPEC, {"base_url": api.url, **options}).provider

    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return Model(SPEC, provider, retry=RetryPolicy(max_attempts=3, base_s=0.01), sleep=fake_sleep)


def _generate(model: Model, config: GenerateConfig | None = None) -> ModelOutput:
    return asyncio.run(model.generate(PROMPT, config or GenerateConfig()))


def test_text_usage_and_timing_come_from_the_stream(api: FakeAPI) -> None:
    api.chunk_delay_s = 0.02
    out = _generate(_model(api), GenerateConfig(max_tokens=50))
    assert out.text == "Hello there, world."
    assert out.finish_reason == "stop" and out.extra["stop_reason"] == "end_turn"
    # The fake counts prompt words and streams one piece per "token".
    assert out.prompt_tokens == 6
    assert out.completion_tokens == 3
    assert out.ttft_s is not None and 0 < out.ttft_s < out.latency_s
    # Three deltas and the closing events are spaced 20 ms apart after the first delta.
    assert out.latency_s - out.ttft_s >= 0.08
    (sent,) = api.posts
    assert sent.path == "/v1/messages" and sent.authorized
    assert sent.body is not None
    assert sent.body["system"] == "You write Python."
    assert sent.body["messages"] == [{"role": "user", "content": "Write a function"}]
    assert sent.body["max_tokens"] == 50 and sent.body["stream"] is True
    assert not {"temperature", "top_p", "top_k"} & set(sent.body)


def test_prompt_tokens_include_cache_reads(api: FakeAPI) -> None:
    api.cached_tokens = 4
    out = _generate(_model(api))
    assert out.prompt_tokens == 6


def test_max_tokens_is_a_length_finish(api: FakeAPI) -> None:
    out = _generate(_model(api), GenerateConfig(max_tokens=2))
    assert out.text == "Hello there, "
    assert out.finish_reason == "length" and out.extra["stop_reason"] == "max_tokens"
    assert out.completion_tokens == 2


def test_prefill_round_trip(key: str) -> None:
    seen: list[dict[str, Any]] = []

    def script(request: dict[str, Any]) -> str:
        seen.append(request)
        return "\ndef f():\n    return 1\n```\nExplanation follows."

    prefill = "Here it is:\n```python\n"
    stops = ("\n```", "\n", "  ")
    with FakeAPI(script, api_key=key) as api:
        out = _generate(_model(api), GenerateConfig(prefill=prefill, stop=stops))
    last = seen[0]["messages"][-1]
    # Sent without the trailing newline (the API refuses it), given back without it too.
    assert last == {"role": "assistant", "content": "Here it is:\n```python"}
    assert out.text == "def f():\n    return 1"
    assert prefill + out.text == "Here it is:\n```python\ndef f():\n    return 1"
    # Whitespace-only stops are refused by the API, so they are not sent.
    assert seen[0]["stop_sequences"] == ["\n```"]
    assert out.finish_reason == "stop" and out.extra["stop_reason"] == "stop_sequence"


def test_prefill_continuation_without_the_stripped_whitespace(key: str) -> None:
    with FakeAPI(lambda request: "x = 1", api_key=key) as api:
        out = _generate(_model(api), GenerateConfig(prefill="```python\n"))
    assert out.text == "x = 1"


def test_prefill_can_be_switched_off_for_models_that_refuse_it(api: FakeAPI) -> None:
    model = _model(api, prefill="false")
    assert model.provider.capabilities.supports_prefill is False
    with pytest.raises(ValueError, match="prefill"):
        _generate(model, GenerateConfig(prefill="```python\n"))
    assert api.posts == []


def test_a_refused_prefill_says_how_to_turn_it_off(api: FakeAPI) -> None:
    api.fail(1, fakeapi.status(400, "This model does not support assistant message prefill."))
    with pytest.raises(ModelError, match=r"HTTP 400 .*prefill.*-M prefill=false"):
        _generate(_model(api), GenerateConfig(prefill="```python\n"))


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
def test_each_fault_is_retried_then_the_call_succeeds(api: FakeAPI, fault: fakeapi.Fault) -> None:
    api.fail(1, fault)
    out = _generate(_model(api))
    assert out.text == "Hello there, world."
    assert out.extra["attempts"] == 2
    assert [r.fault for r in api.posts] == [fault.kind, None]


def test_retry_after_headers_set_the_wait(api: FakeAPI) -> None:
    api.fail(1, fakeapi.rate_limited(retry_after=1))
    api.fail(2, fakeapi.rate_limited(retry_after=None, retry_after_ms=1500))
    sleeps: list[float] = []
    out = _generate(_model(api, sleeps))
    assert out.extra["attempts"] == 3
    assert sleeps[0] >= 1.0 and sleeps[1] >= 1.5


def test_a_fault_schedule_over_many_calls(api: FakeAPI) -> None:
    api.fail_every(5, fakeapi.rate_limited(retry_after=1))
    api.fail(7, fakeapi.overloaded())
    sleeps: list[float] = []
    model = _model(api, sleeps)
    outputs = [_generate(model) for _ in range(8)]
    assert all(o.text == "Hello there, world." for o in outputs)
    faults = [(r.number, r.fault) for r in api.posts if r.fault]
    assert faults == [(5, "status"), (7, "status"), (10, "status")]
    assert len(api.posts) == 11
    assert len(sleeps) == 3 and sleeps[0] >= 1 and sleeps[2] >= 1


def test_a_timeout_is_retried(api: FakeAPI) -> None:
    api.fail(1, fakeapi.slow(2.0))
    out = _generate(_model(api, timeout_s="0.3"))
    assert out.extra["attempts"] == 2


def test_a_slow_first_byte_shows_in_ttft(api: FakeAPI) -> None:
    api.fail(1, fakeapi.slow(0.3))
    out = _generate(_model(api))
    assert out.ttft_s is not None and 0.3 <= out.ttft_s <= out.latency_s


def test_retries_are_bounded(api: FakeAPI) -> None:
    api.fail_every(1, fakeapi.server_error())
    with pytest.raises(ModelError, match="gave up after 3 attempts: HTTP 500"):
        _generate(_model(api))
    assert len(api.posts) == 3


@pytest.mark.parametrize("code", [400, 401, 403, 404, 413, 422])
def test_client_errors_fail_at_once(api: FakeAPI, code: int) -> None:
    api.fail(1, fakeapi.status(code, "you cannot do that"))
    with pytest.raises(
        ModelError, match=rf"anthropic/claude-test: HTTP {code} .*you cannot do that"
    ):
        _generate(_model(api))
    assert len(api.posts) == 1


def test_a_wrong_key_fails_at_once_without_showing_it(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = f"sk-ant-wrong-{secrets.token_hex(8)}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", wrong)
    with FakeAPI(api_key=key) as api:
        with pytest.raises(ModelError, match="HTTP 401 authentication_error") as caught:
            _generate(_model(api))
        assert len(api.posts) == 1 and not api.posts[0].authorized
    assert wrong not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "kind", "fix"),
    [
        (401, "authentication_error", "the API key was rejected: check ANTHROPIC_API_KEY"),
        (403, "permission_error", "this API key may not use the model: check its permissions"),
        (404, "not_found_error", "no such model at http://127.0.0.1:{port}: check the model name"),
    ],
)
def test_a_model_no_call_can_use_is_unusable_after_one_request(
    api: FakeAPI, code: int, kind: str, fix: str
) -> None:
    api.fail_every(1, fakeapi.status(code, "you cannot do\nthat"))
    line = f"anthropic/claude-test: HTTP {code} {kind}: you cannot do that; "
    fix = fix.format(port=api.url.rsplit(":", 1)[1])
    with pytest.raises(ModelUnusableError, match=f"^{re.escape(line + fix)}"):
        _generate(_model(api))
    assert len(api.posts) == 1


def test_a_rejected_key_is_unusable_and_not_shown(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = f"sk-ant-wrong-{secrets.token_hex(8)}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", wrong)
    with FakeAPI(api_key=key) as api:
        with pytest.raises(ModelUnusableError, match="check ANTHROPIC_API_KEY$") as caught:
            _generate(_model(api))
        assert len(api.posts) == 1
    assert wrong not in str(caught.value)


@pytest.mark.parametrize("code", [400, 413, 422])
def test_other_refusals_fail_only_their_call(api: FakeAPI, code: int) -> None:
    api.fail(1, fakeapi.status(code, "you cannot do that"))
    model = _model(api)
    with pytest.raises(ModelError) as caught:
        _generate(model)
    assert not isinstance(caught.value, ModelUnusableError)
    assert _generate(model).text == "Hello there, world."


def test_the_key_never_shows_in_info_bodies_or_errors(api: FakeAPI, key: str) -> None:
    # A server that echoes the key back in its error message.
    api.fail(1, fakeapi.status(403, f"key {key} may not use this model"))
    api.fail(2, fakeapi.overloaded())
    model = _model(api)
    with pytest.raises(ModelError) as caught:
        _generate(model)
    assert key not in str(caught.value) and "[redacted]" in str(caught.value)
    # The wrapper makes no call after a 403 (unusable); a new one over the provider does.
    model = Model(SPEC, model.provider, retry=RetryPolicy(max_attempts=3, base_s=0.01))
    _generate(model)
    assert key not in json.dumps(model.provider.info())
    assert key not in json.dumps(model.provider.options.model_dump(mode="json"))
    assert all(r.authorized and key not in json.dumps(r.body) for r in api.posts)


def test_a_missing_key_is_an_option_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(OptionError, match="set ANTHROPIC_API_KEY"):
        load_model(SPEC, {})


def test_the_base_url_variable_is_honoured_and_the_option_wins(
    api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
    model = load_model(SPEC, {})
    assert asyncio.run(model.generate(PROMPT, GenerateConfig())).text == "Hello there, world."
    assert model.provider.info()["base_url"] == api.url
    # Nothing listens on the discard port: the request can only succeed through the option.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    model = load_model(SPEC, {"base_url": api.url})
    assert asyncio.run(model.generate(PROMPT, GenerateConfig())).text == "Hello there, world."
    assert len(api.posts) == 2


def test_option_typos_and_bad_values_are_errors(key: str) -> None:
    with pytest.raises(OptionError, match="timeout.*Extra inputs are not permitted"):
        load_model(SPEC, {"timeout": "5"})
    with pytest.raises(OptionError, match="timeout_s"):
        load_model(SPEC, {"timeout_s": "0"})
    with pytest.raises(OptionError, match="max_concurrency"):
        load_model(SPEC, {"max_concurrency": "0"})


def test_max_concurrency_option_limits_calls_in_flight(api: FakeAPI) -> None:
    api.chunk_delay_s = 0.02
    model = _model(api, max_concurrency="3")
    assert model.provider.capabilities.max_concurrency == 3
    assert load_model(SPEC, {}).provider.capabilities.max_concurrency == 8

    async def many() -> list[ModelOutput]:
        prompts = [[Message("user", f"q{i}")] for i in range(8)]
        return await asyncio.gather(*(model.generate(p, GenerateConfig()) for p in prompts))

    assert len(asyncio.run(many())) == 8
    assert api.max_in_flight == 3


def test_info_is_provenance(api: FakeAPI) -> None:
    info = _model(api, timeout_s="30").provider.info()
    assert info["provider"] == "anthropic" and info["model"] == "claude-test"
    assert info["base_url"] == api.url
    assert info["sdk"] == "anthropic" and info["sdk_version"]
    assert info["options"] == {"timeout_s": 30.0, "max_concurrency": None, "prefill": True}


def test_the_client_closes_with_its_event_loop(api: FakeAPI) -> None:
    provider = _model(api).provider
    asyncio.run(provider.generate(PROMPT, GenerateConfig()))
    # Private, but the only witness: a leaked client would hold its connections open.
    first = provider._clients.current  # type: ignore[attr-defined]
    assert first is not None and first.is_closed()
    asyncio.run(provider.generate(PROMPT, GenerateConfig()))
    assert provider._clients.current is not first  # type: ignore[attr-defined]
