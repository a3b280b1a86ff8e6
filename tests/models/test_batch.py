"""Batch mode (`-M batch=true`) through the official SDKs against the loopback batch APIs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from codeduel.errors import ModelError, OptionError
from codeduel.models import (
    GenerateConfig,
    Message,
    Model,
    ModelOutput,
    RetryPolicy,
    load_model,
    parse_model_spec,
)
from tests.models.fakeapi import FakeAPI

ANSWER = "```python\ndef f():\n    return 1\n```"
PROVIDERS = ["anthropic/claude-sonnet-4-5", "openai/gpt-4o"]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-test-{secrets.token_hex(8)}"
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, value)
    for name in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return value


@pytest.fixture
def api(key: str) -> Iterator[FakeAPI]:
    with FakeAPI(lambda request: ANSWER, api_key=key, batch_polls=2) as server:
        yield server


def _model(api: FakeAPI, spec: str, **options: str) -> Model:
    url = api.url if spec.startswith("anthropic") else api.openai_url
    parsed = parse_model_spec(spec)
    settings = {"base_url": url, "batch": "true", "batch_poll_s": "0.02", **options}
    provider = load_model(parsed, settings).provider

    async def no_wait(seconds: float) -> None:
        pass

    return Model(parsed, provider, retry=RetryPolicy(max_attempts=3, base_s=0.01), sleep=no_wait)


def _many(model: Model, n: int) -> list[ModelOutput | BaseException]:
    async def go() -> list[ModelOutput | BaseException]:
        calls = [
            model.generate([Message("user", f"task {i}")], GenerateConfig(max_tokens=40))
            for i in range(n)
        ]
        return await asyncio.gather(*calls, return_exceptions=True)

    return asyncio.run(go())


@pytest.mark.parametrize("spec", PROVIDERS)
def test_calls_made_together_go_out_in_one_batch(api: FakeAPI, spec: str) -> None:
    outputs = _many(_model(api, spec), 4)
    assert all(isinstance(o, ModelOutput) and o.text == ANSWER for o in outputs)
    (batch,) = api.batches.values()
    assert len(batch.requests) == 4
    assert not [r for r in api.posts if r.path in ("/v1/messages", "/v1/chat/completions")]
    for out in outputs:
        assert isinstance(out, ModelOutput)
        assert out.extra["batch"] is True and out.extra["batch_id"] == batch.id
        assert out.prompt_tokens == 2 and out.completion_tokens == 9
        assert out.ttft_s is None and out.latency_s > 0
    # Polled until it ended: in progress twice, then ended.
    polls = [r for r in api.requests if r.method == "GET" and r.path.endswith(batch.id)]
    assert len(polls) >= 3


@pytest.mark.parametrize("spec", PROVIDERS)
def test_an_expired_or_overloaded_request_is_sent_again_a_refused_one_fails(
    api: FakeAPI, spec: str
) -> None:
    api.fail_batched(1, "expired")
    api.fail_batched(2, "errored")
    api.fail_batched(3, "invalid")
    outputs = _many(_model(api, spec), 4)
    assert [isinstance(o, ModelOutput) for o in outputs] == [True, True, False, True]
    assert isinstance(outputs[2], ModelError) and "batch" in str(outputs[2])
    # The first batch of 4, then the two transient ones again (together or one each).
    assert api.batched_requests == 6
    first = next(iter(api.batches.values()))
    later = [o for o in outputs[:2] if isinstance(o, ModelOutput)]
    assert all(o.extra["batch_id"] != first.id for o in later)
    assert all(isinstance(o, ModelOutput) and o.extra["attempts"] == 2 for o in outputs[:2])


@pytest.mark.parametrize("spec", PROVIDERS)
def test_a_cancelled_batch_fails_its_calls_without_sending_them_again(
    api: FakeAPI, spec: str
) -> None:
    api.cancel_batch(1)
    outputs = _many(_model(api, spec), 2)
    assert all(isinstance(o, ModelError) and "cancel" in str(o) for o in outputs)
    assert len(api.batches) == 1 and api.batched_requests == 2


@pytest.mark.parametrize("spec", PROVIDERS)
def test_cache_usage_of_batched_answers_is_kept(api: FakeAPI, spec: str) -> None:
    api.cached_tokens = 1
    (out,) = _many(_model(api, spec), 1)
    assert isinstance(out, ModelOutput)
    assert out.extra["cache_read_tokens"] == 1 and out.prompt_tokens == 2


def test_the_key_is_in_no_batch_body(api: FakeAPI, key: str) -> None:
    _many(_model(api, "openai/gpt-4o"), 2)
    _many(_model(api, "anthropic/claude-sonnet-4-5"), 2)
    files = b"".join(api._files.values())
    assert key.encode() not in files
    assert all(key not in str(r.body) + str(r.headers) for r in api.requests)


def test_compat_servers_have_no_batch_mode(key: str) -> None:
    spec = parse_model_spec("openai-compat/m")
    with pytest.raises(OptionError, match="Batch API"):
        load_model(spec, {"base_url": "http://127.0.0.1:1/v1", "batch": "true"})


def test_batch_options_show_in_info_only_when_on(api: FakeAPI) -> None:
    on = _model(api, "anthropic/claude-sonnet-4-5").provider
    off = load_model(parse_model_spec("anthropic/claude-sonnet-4-5"), {"base_url": api.url})
    assert on.info()["options"]["batch"] is True and on.capabilities.batch
    assert "batch" not in off.provider.info()["options"]
    assert off.provider.capabilities.max_concurrency == 8
    assert on.capabilities.max_concurrency > 1000
