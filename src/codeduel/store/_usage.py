"""A run's model calls summed as the bill counts them: by batch or not, long-context or not,
with the cache's reads and writes the APIs reported (stored in each call's extra)."""

from __future__ import annotations

from codeduel.costs import Usage
from codeduel.store._store import Store

__all__ = ["call_usage"]

_SQL = """
SELECT COALESCE(json_extract(c.extra, '$.batch'), 0) = 1 AS batch,
    COALESCE(c.prompt_tokens, 0) > ? AS long,
    COALESCE(SUM(c.prompt_tokens), 0), COALESCE(SUM(c.completion_tokens), 0),
    COALESCE(SUM(json_extract(c.extra, '$.cache_read_tokens')), 0),
    COALESCE(SUM(json_extract(c.extra, '$.cache_write_tokens')), 0), COUNT(*)
FROM model_calls c JOIN attempts a ON a.id = c.attempt_id JOIN samples s ON s.id = a.sample_id
WHERE s.run_id = ? AND c.model = ? {strategy} AND c.error IS NULL
GROUP BY 1, 2 ORDER BY 1, 2
"""


def call_usage(
    store: Store,
    run_id: int,
    model: str,
    strategy: str | None = None,
    *,
    long_above: int | None = None,
    system: str | None = None,
) -> list[Usage]:
    """`model`'s calls in the run (of `system`'s samples and `strategy`, when given), one
    `Usage` per kind: batch or not, prompts above `long_above` tokens or not."""
    scope = ""
    params: list[object] = [long_above if long_above is not None else 2**62, run_id, model]
    if strategy is not None:
        scope += " AND s.strategy = ?"
        params.append(strategy)
    if system is not None:
        scope += " AND s.model = ?"
        params.append(system)
    rows = store.db.execute(_SQL.format(strategy=scope), params)
    return [
        Usage(pt, ct, read, write, calls, batch=bool(batch), long_context=bool(long))
        for batch, long, pt, ct, read, write, calls in rows
    ]
