"""Stop strings for providers that filter them themselves (the in-process engines).

A stream of text grows piece by piece; after each piece, only a stop that ends in it can be new
(an earlier one would have stopped the stream), so only the last piece and the `longest - 1`
characters before it need searching.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["cut_at_stop"]


def cut_at_stop(text: str, stops: Sequence[str], added: int) -> int | None:
    """Where to cut `text` after its last `added` characters arrived: the start of the earliest
    stop string that ends in them, or None. With `added = len(text)`, a search of all of it."""
    if not stops or added <= 0:
        return None
    longest = max(len(s) for s in stops)
    start = max(0, len(text) - added - longest + 1)
    window = text[start:]
    hits = [i for s in stops if s and (i := window.find(s)) >= 0]
    return start + min(hits) if hits else None
