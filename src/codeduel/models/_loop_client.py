"""An SDK client bound to the event loop it runs on: one per loop, closed with it.

The official async SDKs (anthropic, openai) keep an HTTP connection pool that belongs to one
event loop. Each `asyncio.run` of the runner or a test is a new loop, so a provider keeps one
client per loop (its connections reused across the calls of that loop) and lets the loop close
it: `asyncio.run` closes open async generators at its end, and the client's lifetime is one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["LoopBoundClient"]


class _Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class LoopBoundClient(Generic[C]):
    """`get()` returns this loop's client, made by `make` on first use in the loop."""

    def __init__(self, make: Callable[[], C]) -> None:
        self._make = make
        self._client: C | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifetime: AsyncGenerator[None, None] | None = None

    @property
    def current(self) -> C | None:
        """The client made last (of the loop that ran last), or None."""
        return self._client

    async def get(self) -> C:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            client = self._make()
            self._client, self._loop = client, loop
            self._lifetime = _closed_with_loop(client)
            await anext(self._lifetime)
        return self._client

    def close(self) -> None:
        lifetime, loop = self._lifetime, self._loop
        self._client = self._loop = self._lifetime = None
        # A loop that asyncio.run already closed has closed the client with it.
        if lifetime and loop and not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(lifetime.aclose())


async def _closed_with_loop(client: _Closable) -> AsyncGenerator[None, None]:
    """Holds `client` open until closed; asyncio.run closes open async generators at its end."""
    try:
        yield
    finally:
        await client.close()
