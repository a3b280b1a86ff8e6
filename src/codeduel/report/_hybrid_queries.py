"""The store queries behind the hybrid figures: every SQL statement they read, returning counts,
token sums and per-sample outcomes for `_hybrid` to compute the figures from.

A system is keyed by (run id, model, strategy). Each attempt of its scored samples has one
model call and the hidden-test result of its code; a `Cutoff` picks the attempts a sample's
answer may come from (the first k, those within t tokens, those by the first p models of a
chain), and the answer is the latest answered attempt within it, as the strategies choose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codeduel.store import Run, Store

__all__ = [
    "EVERY",
    "Cutoff",
    "Key",
    "answer_attempts",
    "calls_by_model",
    "completion_tokens",
    "escalated",
    "final_models",
    "first_attempts",
    "hybrid_systems",
    "models_in",
    "most_attempts",
    "outcomes",
    "partner_run",
    "shared_samples",
    "token_budget",
    "visible_tasks",
]

Key = tuple[int, str, str]

_HYBRID = "('repair', 'resample', 'cascade')"

# One row per attempt of the run's scored samples, with its call and hidden result; `cum` is the
# completion tokens spent up to and including the attempt.
_ATTEMPTS = """
WITH at AS (
    SELECT s.id AS sid, s.run_id AS run_id, s.model AS system, s.strategy AS strategy,
        s.task_id AS task_id, a.attempt_index AS i, c.model AS call_model,
        c.error IS NULL AS answered, COALESCE(c.prompt_tokens, 0) AS pt,
        COALESCE(c.completion_tokens, 0) AS ct, COALESCE(c.latency_s, 0) AS lat,
        COALESCE(c.busy_s, c.latency_s, 0) AS busy,
        EXISTS (SELECT 1 FROM executions e WHERE e.attempt_id = a.id AND e.tests = 'hidden'
            AND e.status = 'passed') AS hidden_passed,
        SUM(COALESCE(c.completion_tokens, 0)) OVER (PARTITION BY s.id ORDER BY a.attempt_index)
            AS cum
    FROM samples s JOIN attempts a ON a.sample_id = s.id JOIN model_calls c ON c.attempt_id = a.id
    WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND s.model_error = 0
)
"""

# Keeps the rows of the tasks another system (a Key's parameters follow) has scored samples of.
_ON_TASKS_OF = (
    " AND task_id IN (SELECT task_id FROM samples WHERE run_id = ? AND model = ? "
    "AND strategy = ? AND model_error = 0)"
)


@dataclass(frozen=True)
class Cutoff:
    """The attempts a sample's answer may come from: a condition on the attempt rows."""

    sql: str
    params: tuple[Any, ...] = ()


EVERY = Cutoff("1")


def first_attempts(k: int) -> Cutoff:
    return Cutoff("i < ?", (k,))


def token_budget(tokens: int) -> Cutoff:
    """The attempts made within `tokens` completion tokens of the sample."""
    return Cutoff("cum <= ?", (tokens,))


def models_in(models: tuple[str, ...]) -> Cutoff:
    marks = ", ".join("?" for _ in models)
    return Cutoff(f"call_model IN ({marks})", models)


def hybrid_systems(store: Store, run_id: int) -> list[tuple[str, str, int]]:
    """(model, strategy, scored samples) of each repair, resample or cascade system."""
    return store.db.execute(
        "SELECT model, strategy, COUNT(*) FROM samples WHERE run_id = ? AND model_error = 0 "
        f"AND strategy IN {_HYBRID} GROUP BY model, strategy "
        "ORDER BY MIN(id)",
        (run_id,),
    ).fetchall()


def visible_tasks(store: Store, run_id: int) -> tuple[int, int]:
    """Tasks whose visible tests ran, and the tasks of the run's hybrid samples."""
    ran, total = store.db.execute(
        "SELECT COUNT(DISTINCT s.task_id), (SELECT COUNT(DISTINCT task_id) FROM samples "
        f"WHERE run_id = ? AND strategy IN {_HYBRID}) "
        "FROM samples s JOIN attempts a ON a.sample_id = s.id "
        "JOIN executions e ON e.attempt_id = a.id WHERE s.run_id = ? AND e.tests = 'visible'",
        (run_id, run_id),
    ).fetchone()
    return ran, total


def outcomes(
    store: Store, key: Key, cutoff: Cutoff, tasks: Key | None = None
) -> dict[tuple[str, int], bool]:
    """Per sample (task, index), on the tasks of `tasks` if given: did its answer within
    `cutoff` pass the hidden tests? A sample with no answer within the cut-off did not."""
    only, extra = (_ON_TASKS_OF, tasks) if tasks is not None else ("", ())
    sql = (
        _ATTEMPTS
        + ", scored AS (SELECT DISTINCT sid, task_id FROM at WHERE 1"
        + only
        + f"), answer AS (SELECT sid, MAX(i) AS i FROM at WHERE answered AND {cutoff.sql} "
        "GROUP BY sid) SELECT scored.task_id, s.sample_index, COALESCE(at.hidden_passed, 0) "
        "FROM scored JOIN samples s ON s.id = scored.sid LEFT JOIN answer USING (sid) "
        "LEFT JOIN at ON at.sid = answer.sid AND at.i = answer.i"
    )
    rows = store.db.execute(sql, (*key, *extra, *cutoff.params)).fetchall()
    return {(task, index): bool(passed) for task, index, passed in rows}


def answer_attempts(store: Store, key: Key, cutoff: Cutoff) -> dict[tuple[str, int], int | None]:
    """Per sample (task, index): the index of its answer's attempt within `cutoff`, as
    `outcomes` picks it; None where it has no answer within the cut-off."""
    sql = (
        _ATTEMPTS + f", answer AS (SELECT sid, MAX(i) AS i FROM at WHERE answered AND {cutoff.sql} "
        "GROUP BY sid) SELECT s.task_id, s.sample_index, answer.i "
        "FROM (SELECT DISTINCT sid FROM at) scored JOIN samples s ON s.id = scored.sid "
        "LEFT JOIN answer USING (sid)"
    )
    rows = store.db.execute(sql, (*key, *cutoff.params)).fetchall()
    return {(task, index): i for task, index, i in rows}


def most_attempts(store: Store, key: Key) -> int:
    """The attempts of the system's longest sample."""
    most: int = store.db.execute(
        _ATTEMPTS + "SELECT COALESCE(MAX(i), 0) + 1 FROM at", key
    ).fetchone()[0]
    return most


def completion_tokens(
    store: Store, key: Key, cutoff: Cutoff = EVERY, tasks: Key | None = None
) -> int:
    """Completion tokens the system's samples spent within `cutoff`, on the tasks of `tasks`
    if given."""
    only, extra = (_ON_TASKS_OF, tasks) if tasks is not None else ("", ())
    spent: int = store.db.execute(
        _ATTEMPTS + f"SELECT COALESCE(SUM(ct), 0) FROM at WHERE {cutoff.sql}" + only,
        (*key, *cutoff.params, *extra),
    ).fetchone()[0]
    return spent


def partner_run(store: Store, run: Run, model: str, strategy: str) -> Run | None:
    """The run with `model`'s scored `strategy` samples on `run`'s dataset: `run` itself if it
    has them and `strategy` is resample (a pair in one run is found from its repair side), else
    the latest such run."""
    found = store.db.execute(
        "SELECT r.name FROM runs r WHERE r.benchmark = ? AND r.dataset_sha256 = ? "
        "AND (r.id != ? OR ? = 'resample') "
        "AND EXISTS (SELECT 1 FROM samples s WHERE s.run_id = r.id AND s.model = ? "
        "AND s.strategy = ? AND s.model_error = 0) ORDER BY r.id = ? DESC, r.id DESC",
        (run.benchmark, run.dataset_sha256, run.id, strategy, model, strategy, run.id),
    ).fetchone()
    if found is None:
        return None
    other = store.get_run(found[0])
    assert other is not None
    return other


def shared_samples(store: Store, key: Key, tasks: Key) -> int:
    """The system's scored samples on the tasks of `tasks`."""
    count: int = store.db.execute(
        "SELECT COUNT(*) FROM samples WHERE run_id = ? AND model = ? AND strategy = ? "
        "AND model_error = 0" + _ON_TASKS_OF,
        (*key, *tasks),
    ).fetchone()[0]
    return count


def escalated(store: Store, key: Key) -> int:
    """Samples of a cascade answered by more than one model."""
    count: int = store.db.execute(
        _ATTEMPTS + "SELECT COUNT(*) FROM (SELECT sid FROM at GROUP BY sid "
        "HAVING COUNT(DISTINCT call_model) > 1)",
        key,
    ).fetchone()[0]
    return count


def final_models(store: Store, key: Key) -> dict[str, int]:
    """Samples whose final answer each model gave, most first."""
    return {
        r[0]: r[1]
        for r in store.db.execute(
            "SELECT c.model, COUNT(*) FROM samples s JOIN attempts a ON a.sample_id = s.id "
            "JOIN model_calls c ON c.attempt_id = a.id "
            "WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND s.model_error = 0 "
            "AND a.attempt_index = COALESCE(s.final_attempt, "
            "(SELECT MAX(attempt_index) FROM attempts WHERE sample_id = s.id)) "
            "GROUP BY c.model ORDER BY COUNT(*) DESC",
            key,
        )
    }


def calls_by_model(store: Store, key: Key, cutoff: Cutoff) -> list[tuple[str, int, int, float]]:
    """(model, prompt tokens, completion tokens, engine seconds) of the calls within `cutoff`."""
    return store.db.execute(
        _ATTEMPTS + "SELECT call_model, SUM(pt), SUM(ct), SUM(busy) FROM at "
        f"WHERE {cutoff.sql} GROUP BY call_model",
        (*key, *cutoff.params),
    ).fetchall()
