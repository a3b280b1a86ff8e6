"""Provider `anthropic`: Claude models through the official SDK's streaming Messages API, or
its Message Batches API with `-M batch=true`."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import anthropic
import httpx2
from anthropic.types import (
    Message as ApiMessage,
)
from anthropic.types import (
    MessageParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextDelta,
    ThinkingDelta,
)
from pydantic import Field

from codeduel.errors import ModelError, OptionError
from codeduel.models._batch import Batcher, PollPolicy, Result
from codeduel.models._http import (
    ApiErrors,
    ApiOptions,
    BatchOptions,
    api_info,
    client_options,
    reasoning_extra,
)
from codeduel.models._loop_client import LoopBoundClient
from codeduel.models._provider import Capabilities, Provider, ProviderOptions, RetryableError
from codeduel.types import FinishReason, GenerateConfig, Message, ModelOutput

__all__ = ["AnthropicOptions", "AnthropicProvider"]

KEY_VARIABLE = "ANTHROPIC_API_KEY"
BASE_URL_VARIABLE = "ANTHROPIC_BASE_URL"
DEFAULT_BASE_URL = "https://api.anthropic.com"
# Calls in flight at once unless `-M max_concurrency` says.
DEFAULT_CONCURRENCY = 8
# In batch mode: calls waiting in batches at once (a Message Batch holds up to 100,000).
BATCH_CONCURRENCY = 100_000

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
}
# Error types the API also sends inside a 200 stream; all are transient.
_RETRYABLE_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


class AnthropicOptions(ApiOptions, BatchOptions):
    """`base_url` wins over ANTHROPIC_BASE_URL."""

    # Newer Claude models refuse a prefilled assistant turn: `prefill=false` for those.
    prefill: bool = True
    # Extended thinking: the model may think this many tokens first, within `max_tokens`
    # (the API wants at least 1024). The thinking is kept apart from the answer.
    thinking_budget: int | None = Field(None, ge=1024)


class AnthropicProvider(Provider):
    name = "anthropic"
    Options = AnthropicOptions

    def __init__(self, model: str, options: ProviderOptions) -> None:
        super().__init__(model, options)
        assert isinstance(options, AnthropicOptions)
        self.opts: AnthropicOptions = options
        key = os.environ.get(KEY_VARIABLE, "").strip()
        if not key:
            raise OptionError(f"provider anthropic needs an API key: set {KEY_VARIABLE}")
        self.base_url = options.base_url or os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL
        # The API takes no sampling parameters (see `_stream`): every answer is a draw at its own
        # default temperature, never a greedy, replayable one.
        self.capabilities = Capabilities(
            local=False,
            # In batch mode every call of the run waits in a batch at once.
            max_concurrency=options.max_concurrency
            or (BATCH_CONCURRENCY if options.batch else DEFAULT_CONCURRENCY),
            # The API takes no prefilled answer with thinking on.
            supports_prefill=options.prefill and options.thinking_budget is None,
            deterministic_greedy=False,
            honours_sampling=False,
            batch=options.batch,
        )
        settings = client_options(key, self.base_url, options.timeout_s)
        self._clients = LoopBoundClient(lambda: anthropic.AsyncAnthropic(**settings))
        self._errors = ApiErrors(
            f"{self.name}/{model}",
            key,
            key_fix=f"the API key was rejected: check {KEY_VARIABLE}",
            base_url=self.base_url,
        )
        if options.batch:
            policy = PollPolicy(
                first_s=options.batch_poll_s,
                cap_s=max(120.0, options.batch_poll_s),
                gather_s=min(1.0, options.batch_poll_s),
            )
            self.batcher = Batcher(self.name, _Batches(self), policy, self.base_url)

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        if config.prefill and not self.capabilities.supports_prefill:
            raise ValueError("a prefill was given to a provider instance without prefill support")
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        chat = [_message(m.role == "user", m.content) for m in messages if m.role != "system"]
        # The API refuses a final assistant turn that ends in whitespace.
        sent_prefill = config.prefill.rstrip()
        if sent_prefill:
            chat.append(_message(False, sent_prefill))
        stops = [s for s in config.stop if s.strip()]
        # No temperature or top_p: SDK 2.x has no such parameters, and the API version it
        # speaks (2026-10-21) rejects sampling parameters with a 400.
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": config.max_tokens,
            "messages": chat,
        }
        if system:
            params["system"] = system
        if stops:
            params["stop_sequences"] = stops
        if self.opts.thinking_budget:
            params["thinking"] = {"type": "enabled", "budget_tokens": self.opts.thinking_budget}
        start = time.perf_counter()
        status_error = functools.partial(self._status_error, prefilled=bool(sent_prefill))
        broken = (anthropic.APIConnectionError, httpx2.TransportError)
        with self._errors.mapped(anthropic.APIStatusError, status_error, broken):
            if self.batcher is not None:
                output = await self.batcher.call(params)
                return _prefill_cut(output, config.prefill)
            client = await self._clients.get()
            return await self._stream(client, params, config, start)

    async def _stream(
        self,
        client: anthropic.AsyncAnthropic,
        params: dict[str, Any],
        config: GenerateConfig,
        start: float,
    ) -> ModelOutput:
        stream = await client.messages.create(**params, stream=True)
        parts: list[str] = []
        thinking: list[str] = []
        # The kind of the last content block: thinking cut off by max_tokens leaves no text.
        last_block = ""
        ttft: float | None = None
        prompt_tokens = completion_tokens = 0
        cache: dict[str, object] = {}
        stop_reason: str | None = None
        finished = False
        async with stream:
            async for event in stream:
                if isinstance(event, RawContentBlockDeltaEvent):
                    if isinstance(event.delta, TextDelta) and event.delta.text:
                        if ttft is None:
                            ttft = time.perf_counter() - start
                        parts.append(event.delta.text)
                    elif isinstance(event.delta, ThinkingDelta) and event.delta.thinking:
                        if ttft is None:
                            ttft = time.perf_counter() - start
                        thinking.append(event.delta.thinking)
                elif isinstance(event, RawContentBlockStartEvent):
                    last_block = event.content_block.type
                elif isinstance(event, RawMessageStartEvent):
                    usage = event.message.usage
                    prompt_tokens = _input_tokens(
                        usage.input_tokens,
                        usage.cache_creation_input_tokens,
                        usage.cache_read_input_tokens,
                    )
                    completion_tokens = usage.output_tokens
                    cache = _cache_usage(
                        usage.cache_read_input_tokens, usage.cache_creation_input_tokens
                    )
                elif isinstance(event, RawMessageDeltaEvent):
                    stop_reason = event.delta.stop_reason
                    completion_tokens = event.usage.output_tokens
                elif isinstance(event, RawMessageStopEvent):
                    finished = True
        latency = time.perf_counter() - start
        if not finished:
            raise RetryableError("the stream ended before message_stop (cut mid-message)")
        text = "".join(parts)
        if config.prefill:
            text = _after_prefill(text, config.prefill[len(config.prefill.rstrip()) :])
        extra: dict[str, object] = {"stop_reason": stop_reason, **cache}
        if thinking:
            extra |= reasoning_extra(
                "".join(thinking),
                text,
                completion_tokens,
                truncated=stop_reason == "max_tokens" and last_block == "thinking",
            )
        return ModelOutput(
            text=text,
            finish_reason=_FINISH.get(stop_reason or "", "stop"),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
            ttft_s=ttft,
            extra=extra,
        )

    def _status_error(self, exc: anthropic.APIStatusError, *, prefilled: bool) -> Exception:
        kind = exc.type or "error"
        detail = self._errors.redact(exc.api_message or exc.message)
        # An error event inside a 200 stream carries the status of the stream itself.
        if exc.status_code == 200:
            message = f"error event in the stream: {kind}: {detail}"
            if kind in _RETRYABLE_TYPES:
                return RetryableError(message)
            return ModelError(f"{self._errors.where}: {message}")
        message = f"HTTP {exc.status_code} {kind}: {detail}"
        if prefilled and exc.status_code == 400:
            message += " (if this model refuses a prefilled answer, pass -M prefill=false)"
        return self._errors.status(exc.status_code, exc.response.headers, message)

    def info(self) -> dict[str, Any]:
        options = self.opts.model_dump(
            mode="json",
            # An option added later is shown only when set, as runs stored before it had it.
            exclude={"base_url", "batch", "batch_poll_s"}
            | ({"thinking_budget"} if not self.opts.thinking_budget else set()),
        )
        return {
            **api_info(self.name, self.model, self.base_url, anthropic),
            "sampling": "model default (temperature and top_p are not sent)",
            "options": options | self.opts.batch_settings(),
        }

    def close(self) -> None:
        self._clients.close()


class _Batches:
    """The Message Batches API: `messages.batches.create`, `retrieve`, `results`."""

    def __init__(self, provider: AnthropicProvider) -> None:
        self.provider = provider

    async def submit(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> str:
        client = await self.provider._clients.get()
        batch = await client.messages.batches.create(
            requests=[{"custom_id": cid, "params": params} for cid, params in requests]  # type: ignore[typeddict-item]
        )
        return batch.id

    async def ended(self, batch_id: str) -> bool:
        client = await self.provider._clients.get()
        with self.provider._errors.mapped(
            anthropic.APIStatusError,
            functools.partial(self.provider._status_error, prefilled=False),
            (anthropic.APIConnectionError, httpx2.TransportError),
        ):
            batch = await client.messages.batches.retrieve(batch_id)
        return batch.processing_status == "ended"

    async def results(self, batch_id: str) -> AsyncIterator[tuple[str, Result]]:
        client = await self.provider._clients.get()
        where = self.provider._errors.where
        with self.provider._errors.mapped(
            anthropic.APIStatusError,
            functools.partial(self.provider._status_error, prefilled=False),
            (anthropic.APIConnectionError, httpx2.TransportError),
        ):
            decoder = await client.messages.batches.results(batch_id)
            async for item in decoder:
                result = item.result
                outcome: Result
                if result.type == "succeeded":
                    outcome = _from_message(result.message)
                elif result.type == "errored":
                    error = result.error.error
                    message = f"batch {batch_id}: {error.type}: {error.message}"
                    outcome = (
                        RetryableError(message)
                        if error.type in _RETRYABLE_TYPES
                        else ModelError(f"{where}: {message}")
                    )
                elif result.type == "expired":
                    outcome = RetryableError(f"batch {batch_id} expired before the request ran")
                else:
                    outcome = ModelError(
                        f"{where}: batch {batch_id} was canceled before the request ran "
                        "(--resume sends it again)"
                    )
                yield item.custom_id, outcome


def _from_message(message: ApiMessage) -> ModelOutput:
    """A batch's answer (a whole Message, not a stream) as a call's output; its latency is the
    batch's, set by the caller."""
    text = "".join(b.text for b in message.content if b.type == "text")
    thinking = "".join(b.thinking for b in message.content if b.type == "thinking")
    usage = message.usage
    stop_reason = message.stop_reason
    extra: dict[str, object] = {
        "stop_reason": stop_reason,
        **_cache_usage(usage.cache_read_input_tokens, usage.cache_creation_input_tokens),
    }
    if thinking:
        last = message.content[-1].type if message.content else ""
        extra |= reasoning_extra(
            thinking,
            text,
            usage.output_tokens,
            truncated=stop_reason == "max_tokens" and last == "thinking",
        )
    return ModelOutput(
        text=text,
        finish_reason=_FINISH.get(stop_reason or "", "stop"),
        prompt_tokens=_input_tokens(
            usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens
        ),
        completion_tokens=usage.output_tokens,
        latency_s=0.0,
        ttft_s=None,
        extra=extra,
    )


def _prefill_cut(output: ModelOutput, prefill: str) -> ModelOutput:
    if not prefill:
        return output
    return replace(output, text=_after_prefill(output.text, prefill[len(prefill.rstrip()) :]))


def _cache_usage(read: int | None, written: int | None) -> dict[str, object]:
    """The cache's reads and writes as the API counted them, stored where there were any
    (they are billed at their own rates)."""
    usage: dict[str, object] = {}
    if read:
        usage["cache_read_tokens"] = read
    if written:
        usage["cache_write_tokens"] = written
    return usage


def _message(user: bool, content: str) -> MessageParam:
    return (
        {"role": "user", "content": content} if user else {"role": "assistant", "content": content}
    )


def _input_tokens(base: int | None, created: int | None, read: int | None) -> int:
    """The API counts cache writes and reads apart from `input_tokens`; the prompt is all three."""
    return (base or 0) + (created or 0) + (read or 0)


def _after_prefill(raw: str, cut: str) -> str:
    """Drop what the model wrote again of `cut`, the whitespace taken off the prefill."""
    n = 0
    while n < min(len(raw), len(cut)) and raw[n] == cut[n]:
        n += 1
    return raw[n:]
