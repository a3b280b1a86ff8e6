"""Providers on the OpenAI Chat Completions API, through the official SDK, streaming.

`openai` is OpenAI's own service; with `-M batch=true` its calls go through the Batch API
(an input file uploaded with `files.create`, `batches.create`, polled with `batches.retrieve`,
answers read with `files.content`). `openai-compat` is any server that speaks the same API
(llama.cpp server, vLLM, SGLang, Ollama, LM Studio, TGI); `ollama`, `vllm` and `lmstudio` are
`openai-compat` with that server's usual address. A fill-in-the-middle call goes to such a
server's legacy Completions API (`/v1/completions`), the prefix as `prompt` and the suffix as
`suffix`, which the server puts into the model's own FIM tokens; OpenAI's own chat models get
a FIM task as a chat prompt instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from pydantic import SecretStr

from codeduel.errors import ModelError, OptionError
from codeduel.models._batch import Batcher, PollPolicy, Result
from codeduel.models._http import (
    ApiErrors,
    ApiOptions,
    BatchOptions,
    api_info,
    client_options,
    public_url,
    reasoning_extra,
)
from codeduel.models._loop_client import LoopBoundClient
from codeduel.models._provider import Capabilities, Provider, ProviderOptions, RetryableError
from codeduel.types import FinishReason, GenerateConfig, Message, ModelOutput

__all__ = [
    "LMStudioProvider",
    "OllamaProvider",
    "OpenAICompatOptions",
    "OpenAICompatProvider",
    "OpenAIOptions",
    "OpenAIProvider",
    "VLLMProvider",
]

KEY_VARIABLE = "OPENAI_API_KEY"
BASE_URL_VARIABLE = "OPENAI_BASE_URL"
# Servers that check no key still need a non-empty one from the SDK.
NO_KEY = "not-needed"
# The API takes at most this many stop strings; the rest are applied to the stream here.
MAX_STOPS = 4

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
_REJECTED_ENV_KEY = f"the API key was rejected: check {KEY_VARIABLE}"


class OpenAIOptions(ApiOptions, BatchOptions):
    """`base_url` wins over OPENAI_BASE_URL."""


class OpenAICompatOptions(OpenAIOptions):
    # Wins over OPENAI_API_KEY; most local servers need none.
    api_key: SecretStr | None = None
    # Replicas of one model: comma-separated base URLs, load-balanced by outstanding calls,
    # each with `max_concurrency` of its own; wins over `base_url`.
    endpoints: str | None = None


@dataclass
class _Endpoint:
    """One replica: its client, the calls in flight on it, and until when it is left out
    (after a connection failure)."""

    url: str
    clients: LoopBoundClient[openai.AsyncOpenAI]
    outstanding: int = 0
    calls: int = 0
    down_until: float = 0.0


# In batch mode: calls waiting in batches at once (an input file holds up to 50,000).
BATCH_CONCURRENCY = 50_000

ENDPOINT_COOLDOWN_S = 5.0
"""A replica that refused a connection is left out this long (then tried again)."""


class OpenAIProvider(Provider):
    name = "openai"
    Options = OpenAIOptions
    # Calls in flight at once unless `-M max_concurrency` says.
    default_concurrency: ClassVar[int] = 8
    # OpenAI's API takes temperature 0 but does not promise the same answer twice.
    greedy_is_deterministic: ClassVar[bool] = False
    # Where the server is when neither the option nor OPENAI_BASE_URL says.
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    # A preset names one kind of local server, so its address wins over OPENAI_BASE_URL.
    preset: ClassVar[bool] = False
    # OpenAI's name for the output budget; servers that copy the API know `max_tokens`.
    max_tokens_field: ClassVar[Literal["max_completion_tokens", "max_tokens"]] = (
        "max_completion_tokens"
    )
    # OpenAI always ends a stream that asked for usage with a usage chunk; some servers never do.
    usage_required: ClassVar[bool] = True
    # Fill-in-the-middle through `/v1/completions` with `suffix` (servers of open models).
    native_infill: ClassVar[bool] = False

    def __init__(self, model: str, options: ProviderOptions) -> None:
        super().__init__(model, options)
        assert isinstance(options, OpenAIOptions)
        self.opts: OpenAIOptions = options
        key, self.key_source, key_fix = self._resolve_key()
        urls = self._endpoint_urls() or [self._resolve_base_url()]
        self.base_url = urls[0]
        if options.batch and self.name != "openai":
            raise OptionError(
                f"-M batch=true is for OpenAI's Batch API (provider openai), not {self.name}"
            )
        default = BATCH_CONCURRENCY if options.batch else self.default_concurrency
        self.per_endpoint = options.max_concurrency or default
        self.capabilities = Capabilities(
            local=self._serves_locally(),
            max_concurrency=self.per_endpoint * len(urls),
            supports_prefill=False,
            deterministic_greedy=self.greedy_is_deterministic,
            infill=self.native_infill,
            batch=options.batch,
        )
        self._endpoints = [
            _Endpoint(url, _client_factory(client_options(key, url, options.timeout_s)))
            for url in urls
        ]
        secret = None if key == NO_KEY else key
        self._errors = ApiErrors(f"{self.name}/{model}", secret, key_fix, self.base_url)
        if options.batch:
            policy = PollPolicy(
                first_s=options.batch_poll_s,
                cap_s=max(120.0, options.batch_poll_s),
                gather_s=min(1.0, options.batch_poll_s),
            )
            self.batcher = Batcher(self.name, _Batches(self), policy, self.base_url)

    def _resolve_key(self) -> tuple[str, str, str]:
        """The key, where it came from, and what to do if the server rejects it."""
        key = os.environ.get(KEY_VARIABLE, "").strip()
        if not key:
            raise OptionError(f"provider {self.name} needs an API key: set {KEY_VARIABLE}")
        return key, f"env {KEY_VARIABLE}", _REJECTED_ENV_KEY

    def _resolve_base_url(self) -> str:
        cls = type(self)
        env = None if cls.preset else os.environ.get(BASE_URL_VARIABLE)
        url = self.opts.base_url or env or cls.default_base_url
        if not url:
            raise OptionError(
                f"provider {self.name} needs the server's address: pass "
                f"-M base_url=http://HOST:PORT/v1 or set {BASE_URL_VARIABLE}"
            )
        return url

    def _endpoint_urls(self) -> list[str]:
        return []

    def _serves_locally(self) -> bool:
        return False

    async def _endpoint(self) -> _Endpoint:
        """The replica with the fewest calls in flight, below its own limit, that is not
        left out; those left out only when every one is."""
        while True:
            now = time.monotonic()
            up = [e for e in self._endpoints if e.down_until <= now] or self._endpoints
            free = [e for e in up if e.outstanding < self.per_endpoint]
            if free:
                return min(free, key=lambda e: (e.outstanding, e.calls))
            await asyncio.sleep(0.01)

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        if config.prefill:
            raise ValueError(f"provider {self.name} cannot prefill; check supports_prefill")
        stops = [s for s in config.stop if s]
        if self.batcher is not None:
            errors = self._errors.mapped(
                openai.APIStatusError, self._status_error, (openai.APIError,)
            )
            with errors:
                output = await self.batcher.call(self._body(messages, stops, config))
            return _cut_at_stops(output, stops)
        endpoint = await self._endpoint()
        endpoint.outstanding += 1
        endpoint.calls += 1
        try:
            client = await endpoint.clients.get()
            start = time.perf_counter()
            # Any other APIError broke the stream: the SDK wraps transport errors mid-stream as
            # APIConnectionError (a cut, a read timeout), an error object inside a 200 stream
            # as one.
            with self._errors.mapped(openai.APIStatusError, self._status_error, (openai.APIError,)):
                try:
                    if config.infill is not None:
                        output = await self._infill(client, config.infill, stops, config, start)
                    else:
                        output = await self._stream(client, messages, stops, config, start)
                except openai.APIConnectionError:
                    # A replica that died: the retry goes to another one.
                    endpoint.down_until = time.monotonic() + ENDPOINT_COOLDOWN_S
                    raise
        finally:
            endpoint.outstanding -= 1
        if len(self._endpoints) > 1:
            output.extra["endpoint"] = public_url(endpoint.url)
        return output

    def _body(
        self, messages: Sequence[Message], stops: list[str], config: GenerateConfig
    ) -> dict[str, Any]:
        """The request, as the stream sends it and as a batch's input file holds it."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_message(m) for m in messages],
            "temperature": config.temperature,
            "seed": config.seed,
            self.max_tokens_field: config.max_tokens,
        }
        if config.top_p != 1.0:
            body["top_p"] = config.top_p
        if stops:
            body["stop"] = stops[:MAX_STOPS]
        return body

    async def _stream(
        self,
        client: openai.AsyncOpenAI,
        messages: Sequence[Message],
        stops: list[str],
        config: GenerateConfig,
        start: float,
    ) -> ModelOutput:
        stream = await client.chat.completions.create(
            **self._body(messages, stops, config),
            stream=True,
            stream_options={"include_usage": True},
        )
        longest_stop = max((len(s) for s in stops), default=0)
        text = ""
        # Reasoning servers (vLLM, SGLang, DeepSeek, llama.cpp's) stream it apart from the text.
        thinking: list[str] = []
        reasoning_tokens: int | None = None
        ttft: float | None = None
        chunks = 0
        finish: str | None = None
        stopped_here = False
        usage: tuple[int, int] | None = None
        cached: dict[str, object] = {}
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    details = chunk.usage.completion_tokens_details
                    if details is not None and details.reasoning_tokens is not None:
                        reasoning_tokens = details.reasoning_tokens
                    cached = _cached(chunk.usage.prompt_tokens_details)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                thought = _reasoning(choice.delta)
                if thought:
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    chunks += 1
                    thinking.append(thought)
                piece = choice.delta.content if choice.delta else None
                if piece:
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    chunks += 1
                    text += piece
                    window = text[-(longest_stop + len(piece)) :]
                    hits = [window.find(s) for s in stops if s in window]
                    if hits:
                        text = text[: len(text) - len(window) + min(hits)]
                        stopped_here = True
                        break
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
        latency = time.perf_counter() - start
        if not stopped_here:
            if finish is None:
                raise RetryableError("the stream ended before its final chunk (cut mid-message)")
            if usage is None and self.usage_required:
                raise RetryableError("the stream ended before its usage chunk")
        extra: dict[str, object] = {"finish_reason": "stop" if stopped_here else finish, **cached}
        if usage is None:
            # Servers that send no usage stream one token per chunk, near enough.
            extra["usage"] = "estimated from stream chunks"
            usage = (0, chunks)
        if thinking:
            extra |= reasoning_extra(
                "".join(thinking),
                text,
                usage[1],
                truncated=finish == "length" and not text.strip(),
                thinking_tokens=reasoning_tokens
                if reasoning_tokens
                else (len(thinking) if "usage" in extra else None),
            )
        return ModelOutput(
            text=text,
            finish_reason="stop" if stopped_here else _FINISH.get(finish or "", "stop"),
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            latency_s=latency,
            ttft_s=ttft,
            extra=extra,
        )

    async def _infill(
        self,
        client: openai.AsyncOpenAI,
        infill: tuple[str, str],
        stops: list[str],
        config: GenerateConfig,
        start: float,
    ) -> ModelOutput:
        """One FIM call on `/v1/completions`, unstreamed: its answer is a few lines, so the
        time to first token is not measured."""
        if not self.native_infill:
            raise ValueError(f"provider {self.name} takes no infill; check capabilities.infill")
        prefix, suffix = infill
        response = await client.completions.create(
            model=self.model,
            prompt=prefix,
            suffix=suffix,
            temperature=config.temperature,
            top_p=config.top_p if config.top_p != 1.0 else openai.omit,
            seed=config.seed,
            stop=stops[:MAX_STOPS] or openai.omit,
            max_tokens=config.max_tokens,
        )
        latency = time.perf_counter() - start
        if not response.choices:
            raise RetryableError("the completion came back without a choice")
        choice = response.choices[0]
        text = choice.text or ""
        # Stops past the API's four are applied here, as the chat stream does.
        hits = [text.find(s) for s in stops[MAX_STOPS:] if s in text]
        if hits:
            text = text[: min(hits)]
        usage = response.usage
        extra: dict[str, object] = {
            "finish_reason": choice.finish_reason,
            "endpoint": "completions",
        }
        if usage is None:
            extra["usage"] = "not reported"
        return ModelOutput(
            text=text,
            finish_reason="stop" if hits else _FINISH.get(choice.finish_reason or "", "stop"),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=latency,
            extra=extra,
        )

    def _status_error(self, exc: openai.APIStatusError) -> Exception:
        detail = self._errors.redact(_api_message(exc.body) or exc.message)
        message = f"HTTP {exc.status_code}: {detail}"
        return self._errors.status(exc.status_code, exc.response.headers, message)

    def info(self) -> dict[str, Any]:
        return {
            **api_info(self.name, self.model, self.base_url, openai),
            **(
                {"endpoints": [public_url(e.url) for e in self._endpoints]}
                if len(self._endpoints) > 1
                else {}
            ),
            "api_key": self.key_source,
            "max_tokens_field": self.max_tokens_field,
            "options": self.opts.model_dump(
                mode="json",
                # Shown only when on, as runs stored before batch mode had no such options.
                exclude={"base_url", "api_key", "endpoints", "batch", "batch_poll_s"},
            )
            | self.opts.batch_settings(),
        }

    def close(self) -> None:
        for endpoint in self._endpoints:
            endpoint.clients.close()


class OpenAICompatProvider(OpenAIProvider):
    name = "openai-compat"
    Options = OpenAICompatOptions
    default_concurrency = 4
    # The servers it is for (llama.cpp's, vLLM, Ollama, LM Studio) decode greedily at
    # temperature 0.
    greedy_is_deterministic = True
    default_base_url: ClassVar[str | None] = None
    max_tokens_field = "max_tokens"
    usage_required = False
    native_infill = True

    def _resolve_key(self) -> tuple[str, str, str]:
        assert isinstance(self.opts, OpenAICompatOptions)
        if self.opts.api_key is not None:
            rejected = "the API key was rejected: check -M api_key"
            return self.opts.api_key.get_secret_value(), "option api_key", rejected
        key = os.environ.get(KEY_VARIABLE, "").strip()
        if key:
            return key, f"env {KEY_VARIABLE}", _REJECTED_ENV_KEY
        wanted = f"the server wants an API key: pass -M api_key=KEY or set {KEY_VARIABLE}"
        return NO_KEY, "none", wanted

    def _endpoint_urls(self) -> list[str]:
        assert isinstance(self.opts, OpenAICompatOptions)
        urls = [u.strip() for u in (self.opts.endpoints or "").split(",") if u.strip()]
        bad = [u for u in urls if urlsplit(u).scheme not in ("http", "https")]
        if bad:
            raise OptionError(f"-M endpoints: {bad[0]!r} is not an http(s) URL")
        return urls

    def _serves_locally(self) -> bool:
        """A server on a loopback address runs on this machine."""
        host = urlsplit(self.base_url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


class OllamaProvider(OpenAICompatProvider):
    name = "ollama"
    default_base_url = "http://127.0.0.1:11434/v1"
    preset = True


class VLLMProvider(OpenAICompatProvider):
    name = "vllm"
    default_base_url = "http://127.0.0.1:8000/v1"
    preset = True


class LMStudioProvider(OpenAICompatProvider):
    name = "lmstudio"
    default_base_url = "http://127.0.0.1:1234/v1"
    preset = True


class _Batches:
    """OpenAI's Batch API: the requests as a JSONL input file, one batch over it, its output
    and error files read when it has ended."""

    endpoint: Literal["/v1/chat/completions"] = "/v1/chat/completions"

    def __init__(self, provider: OpenAIProvider) -> None:
        self.provider = provider

    async def _client(self) -> openai.AsyncOpenAI:
        return await self.provider._endpoints[0].clients.get()

    async def submit(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> str:
        lines = [
            {"custom_id": cid, "method": "POST", "url": self.endpoint, "body": body}
            for cid, body in requests
        ]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        client = await self._client()
        upload = await client.files.create(file=("codeduel-batch.jsonl", data), purpose="batch")
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint=self.endpoint, completion_window="24h"
        )
        return batch.id

    async def ended(self, batch_id: str) -> bool:
        client = await self._client()
        with self.provider._errors.mapped(
            openai.APIStatusError, self.provider._status_error, (openai.APIError,)
        ):
            batch = await client.batches.retrieve(batch_id)
        if batch.status == "failed":
            errors = batch.errors.data if batch.errors and batch.errors.data else []
            why = "; ".join(f"{e.code}: {e.message}" for e in errors) or "no reason given"
            raise ModelError(f"{self.provider._errors.where}: batch {batch_id} failed: {why}")
        return batch.status in ("completed", "expired", "cancelled")

    async def results(self, batch_id: str) -> AsyncIterator[tuple[str, Result]]:
        client = await self._client()
        where = self.provider._errors.where
        with self.provider._errors.mapped(
            openai.APIStatusError, self.provider._status_error, (openai.APIError,)
        ):
            batch = await client.batches.retrieve(batch_id)
            for file_id in (batch.output_file_id, batch.error_file_id):
                if not file_id:
                    continue
                content = await client.files.content(file_id)
                for raw in content.text.splitlines():
                    if raw.strip():
                        line = json.loads(raw)
                        yield line["custom_id"], self._outcome(batch_id, where, line)

    def _outcome(self, batch_id: str, where: str, line: dict[str, Any]) -> Result:
        error = line.get("error")
        if error:
            code = error.get("code")
            if code == "batch_expired":
                return RetryableError(f"batch {batch_id} expired before the request ran")
            if code == "batch_cancelled":
                return ModelError(
                    f"{where}: batch {batch_id} was cancelled before the request ran "
                    "(--resume sends it again)"
                )
            return ModelError(f"{where}: batch {batch_id}: {code}: {error.get('message')}")
        response = line.get("response") or {}
        code = int(response.get("status_code") or 0)
        body = response.get("body")
        if code != 200:
            detail = self.provider._errors.redact(_api_message(body) or f"HTTP {code}")
            return self.provider._errors.status(
                code, {}, f"batch {batch_id}: HTTP {code}: {detail}"
            )
        return _from_completion(ChatCompletion.model_validate(body))


def _from_completion(completion: ChatCompletion) -> ModelOutput:
    """A batch's answer (a whole completion, not a stream) as a call's output; its latency is
    the batch's, set by the caller."""
    choice = completion.choices[0]
    text = choice.message.content or ""
    usage = completion.usage
    prompt, produced = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    extra: dict[str, object] = {"finish_reason": choice.finish_reason}
    if usage is not None:
        extra |= _cached(usage.prompt_tokens_details)
    thought = _reasoning(choice.message)
    if thought:
        details = usage.completion_tokens_details if usage else None
        extra |= reasoning_extra(
            thought,
            text,
            produced,
            truncated=choice.finish_reason == "length" and not text.strip(),
            thinking_tokens=details.reasoning_tokens if details else None,
        )
    return ModelOutput(
        text=text,
        finish_reason=_FINISH.get(choice.finish_reason or "", "stop"),
        prompt_tokens=prompt,
        completion_tokens=produced,
        latency_s=0.0,
        extra=extra,
    )


def _cut_at_stops(output: ModelOutput, stops: list[str]) -> ModelOutput:
    """A batch's answer cut at the first stop string beyond the four the API applies."""
    hits = [output.text.find(s) for s in stops[MAX_STOPS:] if s in output.text]
    if not hits:
        return output
    extra = {**output.extra, "finish_reason": "stop"}
    return replace(output, text=output.text[: min(hits)], finish_reason="stop", extra=extra)


def _cached(details: object) -> dict[str, object]:
    """Prompt tokens the API read from its cache (within `prompt_tokens`), where any were."""
    cached = getattr(details, "cached_tokens", None)
    return {"cache_read_tokens": cached} if cached else {}


def _client_factory(settings: dict[str, Any]) -> LoopBoundClient[openai.AsyncOpenAI]:
    make: Callable[[], openai.AsyncOpenAI] = lambda: openai.AsyncOpenAI(**settings)  # noqa: E731
    return LoopBoundClient(make)


def _message(m: Message) -> ChatCompletionMessageParam:
    if m.role == "system":
        return {"role": "system", "content": m.content}
    if m.role == "user":
        return {"role": "user", "content": m.content}
    return {"role": "assistant", "content": m.content}


def _reasoning(delta: object) -> str | None:
    """A chunk's reasoning text: `reasoning_content` (DeepSeek, vLLM, llama.cpp's server) or
    `reasoning` (newer vLLM, OpenRouter); fields the SDK keeps as extras."""
    extras = getattr(delta, "model_extra", None) or {}
    for name in ("reasoning_content", "reasoning"):
        value = extras.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _api_message(body: object) -> str | None:
    """`error.message` of an OpenAI-style error body, when there is one."""
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None
