"""What the API providers share (`anthropic`, `openai` and its kin): their common options, the
settings of their SDK clients, their provenance, and one way to report an API's failures.

A transient failure (a rate limit, an overload, a dropped or garbled stream) is worth another
try. A rejected key (401), a denied permission (403) or an unknown model (404) fails every call
alike, so it is a `ModelUnusableError` that says what to fix. Any other refusal fails the call.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import Field

from codeduel.errors import ModelError, ModelUnusableError
from codeduel.models._provider import ProviderOptions, RetryableError

__all__ = [
    "ApiErrors",
    "ApiOptions",
    "BatchOptions",
    "api_info",
    "client_options",
    "public_url",
    "reasoning_extra",
    "retry_after",
    "retryable_status",
]

E = TypeVar("E", bound=Exception)


class ApiOptions(ProviderOptions):
    # Wins over the provider's base-URL variable.
    base_url: str | None = None
    timeout_s: float = Field(600.0, gt=0)
    # Calls in flight at once; the provider's default when unset.
    max_concurrency: int | None = Field(None, ge=1)


class BatchOptions(ProviderOptions):
    """`-M batch=true`: a run's calls go through the API's batch endpoint (half the price,
    answers within a day). `batch_poll_s`: the first wait before a batch is polled; each
    wait is 1.5 times the last, up to 120 s (or `batch_poll_s`, if longer)."""

    batch: bool = False
    batch_poll_s: float = Field(10.0, gt=0)

    def batch_settings(self) -> dict[str, object]:
        """The batch options as `info` shows them: only when batch mode is on, as runs stored
        before the options existed had none."""
        return {"batch": True, "batch_poll_s": self.batch_poll_s} if self.batch else {}


def client_options(key: str, base_url: str, timeout_s: float) -> dict[str, Any]:
    """An official SDK client's settings: no retries of its own, since `Model` retries."""
    return {"api_key": key, "base_url": base_url, "max_retries": 0, "timeout": timeout_s}


def api_info(provider: str, model: str, base_url: str, sdk: ModuleType) -> dict[str, Any]:
    """What each API provider's `info` starts with: the server, less credentials, and the SDK."""
    return {
        "provider": provider,
        "model": model,
        "base_url": public_url(base_url),
        "sdk": sdk.__name__,
        "sdk_version": sdk.__version__,
    }


@dataclass(frozen=True)
class ApiErrors:
    """How one provider instance reports its API's failures: as `where` (provider/model), with
    `secret` (its key) kept out of every message, `key_fix` said for a rejected key."""

    where: str
    secret: str | None
    key_fix: str
    base_url: str

    def redact(self, text: str) -> str:
        return text.replace(self.secret, "[redacted]") if self.secret else text

    def status(self, code: int, headers: Mapping[str, str], message: str) -> Exception:
        """The error for HTTP status `code`, which the API explained in `message`."""
        if retryable_status(code):
            return RetryableError(message, retry_after_s=retry_after(headers))
        line = f"{self.where}: {' '.join(message.split())}"
        fix = {
            401: self.key_fix,
            403: "this API key may not use the model: check its permissions or pick another",
            404: f"no such model at {public_url(self.base_url)}: check the model name and base_url",
        }.get(code)
        return ModelUnusableError(f"{line}; {fix}") if fix else ModelError(line)

    @contextlib.contextmanager
    def mapped(
        self,
        status: type[E],
        on_status: Callable[[E], Exception],
        broken: tuple[type[Exception], ...],
    ) -> Iterator[None]:
        """The SDK's errors in the block as ours: its HTTP status error through `on_status`,
        and `broken` (no connection, a stream that broke off) and garbled JSON as retryable."""
        try:
            yield
        except status as exc:
            raise on_status(exc) from None
        except json.JSONDecodeError as exc:
            raise RetryableError(f"malformed JSON in the stream: {exc}") from None
        except broken as exc:
            raise RetryableError(
                self.redact(f"the call broke off: {type(exc).__name__}: {exc}")
            ) from None


def reasoning_extra(
    thinking: str,
    text: str,
    output_tokens: int,
    *,
    truncated: bool,
    thinking_tokens: int | None = None,
) -> dict[str, object]:
    """What a call stores of the reasoning an API returned apart from its answer: the text,
    its tokens (part of the output tokens, and priced as them; estimated from its share of the
    characters when the API does not count them apart), and whether the token limit cut it."""
    extra: dict[str, object] = {"thinking": thinking, "thinking_truncated": truncated}
    if thinking_tokens is None:
        share = len(thinking) / (len(thinking) + len(text)) if thinking or text else 0.0
        thinking_tokens = round(output_tokens * share)
        extra["thinking_tokens_estimated"] = True
    extra["thinking_tokens"] = thinking_tokens
    return extra


def retryable_status(code: int) -> bool:
    return code in (408, 409, 429) or code >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def public_url(url: str) -> str:
    """The URL without user info or query, which can carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
