"""The batch ledger in the store: which requests went out in which pending batch, so a run
resumed after its driver was killed waits for those batches instead of sending them again."""

from __future__ import annotations

from collections.abc import Sequence

from codeduel.store._store import Store, _now

__all__ = ["StoredBatches"]


class StoredBatches:
    """`codeduel.models.BatchLedger` over the `batch_requests` table, for one run."""

    def __init__(self, store: Store, run_id: int) -> None:
        self._store = store
        self._run_id = run_id
        # Entries handed to a caller by this process, so no two callers wait on one result.
        self._claimed: set[tuple[str, str]] = set()

    def claim(self, provider: str, key: str) -> tuple[str, str] | None:
        rows = self._store.db.execute(
            "SELECT batch_id, custom_id FROM batch_requests WHERE request_key = ? AND done = 0 "
            "AND provider = ? AND run_id IS ? ORDER BY created_at, custom_id",
            (key, provider, self._run_id),
        )
        for batch_id, custom_id in rows:
            if (batch_id, custom_id) not in self._claimed:
                self._claimed.add((batch_id, custom_id))
                return batch_id, custom_id
        return None

    def submitted(self, provider: str, batch_id: str, entries: Sequence[tuple[str, str]]) -> None:
        now = _now()
        with self._store.transaction():
            self._store.db.executemany(
                "INSERT OR IGNORE INTO batch_requests (batch_id, custom_id, run_id, provider, "
                "request_key, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(batch_id, cid, self._run_id, provider, key, now) for cid, key in entries],
            )
        self._claimed.update((batch_id, cid) for cid, _ in entries)

    def delivered(self, batch_id: str, custom_id: str) -> None:
        with self._store.transaction():
            self._store.db.execute(
                "UPDATE batch_requests SET done = 1 WHERE batch_id = ? AND custom_id = ?",
                (batch_id, custom_id),
            )
