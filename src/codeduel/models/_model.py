"""The one wrapper around every provider: timing, retries, concurrency, caching, logging."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from pydantic import ValidationError

from codeduel.errors import ModelError, ModelUnusableError, OptionError
from codeduel.models._budget import Budget
from codeduel.models._provider import Provider, ProviderOptions, RetryableError
from codeduel.models._ray_replicas import REPLICA_OPTIONS
from codeduel.models._registry import ModelSpec, load_provider_class
from codeduel.types import GenerateConfig, Message, ModelOutput, config_fields

__all__ = ["Model", "RetryPolicy", "load_model", "redact_options"]

log = logging.getLogger("codeduel.models")


class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter, honouring retry-after."""

    def __init__(self, max_attempts: int = 5, base_s: float = 1.0, cap_s: float = 60.0) -> None:
        self.max_attempts = max_attempts
        self.base_s = base_s
        self.cap_s = cap_s

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        backoff = random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))
        return max(backoff, retry_after_s or 0.0)


class Model:
    """A provider instance plus the policies every call goes through."""

    def __init__(
        self,
        spec: ModelSpec,
        provider: Provider,
        *,
        max_concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        cache: MutableMapping[str, ModelOutput] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.spec = spec
        self.provider = provider
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self._sleep = sleep
        limit = max_concurrency or provider.capabilities.max_concurrency
        self._semaphore = asyncio.Semaphore(limit)
        # Once the provider said it cannot work as configured, no call is made again.
        self._unusable: ModelUnusableError | None = None
        # The run's `--cost-limit`, over its cloud models (local calls cost no money per call).
        self.budget: Budget | None = None

    @property
    def key(self) -> str:
        return str(self.spec)

    def request_hash(self, messages: Sequence[Message], config: GenerateConfig) -> str:
        """Identifies a call by everything that can change its output."""
        payload = {
            "model": self.key,
            "options": self.provider.options.model_dump(mode="json"),
            "messages": [asdict(m) for m in messages],
            "config": config_fields(config),
        }
        identity = self.provider.identity()
        if identity:  # absent for providers without one, so their stored calls still match
            payload["identity"] = identity
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        # Only a greedy call's answer is determined by its request, and only where the provider
        # decodes greedily at temperature 0; a sampled one, or any of a cloud API that keeps its
        # own sampling, is a new draw and never replayed.
        greedy = config.temperature == 0 and self.provider.capabilities.deterministic_greedy
        cache = self.cache if greedy else None
        key = self.request_hash(messages, config)
        if cache is not None and key in cache:
            return replace(cache[key], extra={**cache[key].extra, "cached": True})
        caps = self.provider.capabilities
        budget = self.budget if not caps.local else None
        async with self._semaphore:
            if self._unusable is not None:
                raise self._unusable
            held, cost = 0.0, None
            if budget is not None:
                held = await budget.reserve(self.key, messages, config, caps.batch)
            try:
                output = await self._generate_with_retries(messages, config)
                if budget is not None:
                    cost = budget.cost(self.key, output, caps.batch)
            except ModelUnusableError as exc:
                self._unusable = exc
                raise
            finally:
                if budget is not None:
                    await budget.settle(self.key, held, cost)
        if cache is not None:
            cache[key] = output
        return output

    async def _generate_with_retries(
        self, messages: Sequence[Message], config: GenerateConfig
    ) -> ModelOutput:
        for attempt in range(self.retry.max_attempts):
            start = time.perf_counter()
            try:
                output = await self.provider.generate(messages, config)
            except RetryableError as exc:
                if attempt + 1 == self.retry.max_attempts:
                    raise ModelError(
                        f"{self.key}: gave up after {attempt + 1} attempts: {exc}"
                    ) from exc
                delay = self.retry.delay(attempt, exc.retry_after_s)
                log.warning("%s: %s; retrying in %.1f s", self.key, exc, delay)
                await self._sleep(delay)
                continue
            elapsed = time.perf_counter() - start
            log.debug(
                "%s: %d+%d tokens in %.2f s",
                self.key,
                output.prompt_tokens,
                output.completion_tokens,
                elapsed,
            )
            return replace(output, extra={**output.extra, "attempts": attempt + 1})
        raise AssertionError("unreachable: the loop returns or raises")

    def close(self) -> None:
        self.provider.close()


def redact_options(spec: ModelSpec, options: Mapping[str, str]) -> dict[str, str]:
    """`-M` options as they may be stored and shown: secrets (e.g. `api_key`) as `***`."""
    return load_provider_class(spec.provider).Options.redact(options)


def load_model(spec: ModelSpec, options: Mapping[str, str]) -> Model:
    """Validate `-M` options against the provider's schema and instantiate it."""
    cls = load_provider_class(spec.provider)
    engine = dict(options)
    replicas = {k: engine.pop(k) for k in REPLICA_OPTIONS if k in engine}
    try:
        parsed = cls.Options.model_validate(engine)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in exc.errors()
        )
        raise OptionError(f"bad option for {spec.provider}: {problems}") from None
    if replicas:
        return Model(spec, _replicated(cls, spec, parsed, replicas))
    return Model(spec, cls(spec.model, parsed))


def _replicated(
    cls: type[Provider], spec: ModelSpec, parsed: ProviderOptions, options: dict[str, str]
) -> Provider:
    """`-M ray_replicas=N`: the engine in N Ray actors (`_ray_replicas.RayReplicas`)."""
    from codeduel.models._local import LocalProvider

    if not issubclass(cls, LocalProvider):
        raise OptionError(
            f"-M ray_replicas is for in-process engines (llamacpp, transformers), not "
            f"{spec.provider}: give a server's replicas as -M endpoints=URL1,URL2"
        )
    try:
        count = int(options.get("ray_replicas", "1"))
        gpus = float(options.get("ray_gpus", "0"))
        cpus = float(options.get("ray_cpus", "1"))
    except ValueError:
        raise OptionError(
            "-M ray_replicas takes a whole number, ray_gpus and ray_cpus numbers"
        ) from None
    if count < 1 or gpus < 0 or cpus < 0:
        raise OptionError("-M ray_replicas must be at least 1, ray_gpus and ray_cpus not negative")
    from codeduel.models._ray_replicas import RayReplicas

    return RayReplicas(cls, spec.model, parsed, count, gpus, cpus)
