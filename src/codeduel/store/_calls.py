"""Greedy answers already in the store, found by request hash, so no call is made twice."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, MutableMapping
from dataclasses import replace

from codeduel.store._store import Store
from codeduel.types import ModelOutput

__all__ = ["StoredCalls", "stored_output"]

_COLUMNS = (
    "response, finish_reason, prompt_tokens, completion_tokens, latency_s, ttft_s, prompt_text, "
    "peak_rss_bytes, peak_vram_bytes, busy_s, extra"
)
# What a replay keeps of the original call's extra: facts about the answer, not about how the
# original call went (its retries, or whether it was itself a replay).
_CALL_ONLY = frozenset({"attempts", "cached"})


def stored_output(row: sqlite3.Row) -> ModelOutput:
    """A model call's output as stored (a `model_calls` row with the `_COLUMNS`)."""
    return ModelOutput(
        text=row["response"],
        finish_reason=row["finish_reason"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        latency_s=row["latency_s"],
        ttft_s=row["ttft_s"],
        prompt_text=row["prompt_text"],
        peak_rss_bytes=row["peak_rss_bytes"],
        peak_vram_bytes=row["peak_vram_bytes"],
        busy_s=row["busy_s"],
        extra=json.loads(row["extra"] or "{}"),
    )


class StoredCalls(MutableMapping[str, ModelOutput]):
    """Model outputs by request hash: every successful call in the store (any run), plus those
    made by this process. The model wrapper consults it for greedy calls only."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._new: dict[str, ModelOutput] = {}

    def __getitem__(self, key: str) -> ModelOutput:
        if key in self._new:
            return self._new[key]
        row = self._store.db.execute(
            f"SELECT {_COLUMNS} FROM model_calls WHERE request_hash = ? AND error IS NULL "
            "ORDER BY id LIMIT 1",
            (key,),
        ).fetchone()
        if row is None:
            raise KeyError(key)
        out = stored_output(row)
        return replace(out, extra={k: v for k, v in out.extra.items() if k not in _CALL_ONLY})

    def __setitem__(self, key: str, value: ModelOutput) -> None:
        self._new[key] = value

    def __delitem__(self, key: str) -> None:
        del self._new[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._new)

    def __len__(self) -> int:
        return len(self._new)
