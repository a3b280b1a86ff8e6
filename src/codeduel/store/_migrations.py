"""Schema migrations: named, append-only. Never edit one that has shipped; add a new one."""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    benchmark TEXT NOT NULL,
    dataset_sha256 TEXT NOT NULL,
    config TEXT NOT NULL,
    provenance TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE run_models (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL,
    info TEXT NOT NULL,
    PRIMARY KEY (run_id, model)
);
CREATE TABLE tasks (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    task_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    entry_point TEXT NOT NULL,
    timeout_s REAL NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL,
    strategy TEXT NOT NULL,
    task_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('passed', 'failed', 'timeout', 'error')),
    code TEXT NOT NULL,
    extract_method TEXT NOT NULL,
    hit_token_limit INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    generation_s REAL NOT NULL,
    execution_s REAL NOT NULL,
    ttft_s REAL,
    peak_rss_bytes INTEGER,
    peak_vram_bytes INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (run_id, model, strategy, task_id, sample_index)
);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    attempt_index INTEGER NOT NULL,
    code TEXT NOT NULL,
    extract_method TEXT NOT NULL,
    status TEXT NOT NULL,
    UNIQUE (sample_id, attempt_index)
);
CREATE TABLE model_calls (
    id INTEGER PRIMARY KEY,
    attempt_id INTEGER NOT NULL REFERENCES attempts(id),
    model TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    messages TEXT NOT NULL,
    prompt_text TEXT,
    config TEXT NOT NULL,
    response TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    ttft_s REAL,
    latency_s REAL,
    decode_tokens_per_s REAL,
    peak_rss_bytes INTEGER,
    peak_vram_bytes INTEGER,
    error TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE executions (
    id INTEGER PRIMARY KEY,
    attempt_id INTEGER NOT NULL REFERENCES attempts(id),
    tests TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    duration_s REAL NOT NULL,
    timeout_s REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX samples_by_run ON samples (run_id, model, strategy, task_id);
CREATE INDEX model_calls_by_hash ON model_calls (request_hash);
""",
    ),
    # A sample whose model calls all failed (API down, retries exhausted): stored, reported,
    # and left out of pass@k rather than counted as the model's failure.
    (
        "0002_sample_model_error",
        """
ALTER TABLE samples ADD COLUMN model_error INTEGER NOT NULL DEFAULT 0;
""",
    ),
    # Multi-attempt strategies (repair, resample, cascade): which attempt gave the answer.
    # NULL, as in older rows, means the last attempt.
    (
        "0003_sample_final_attempt",
        """
ALTER TABLE samples ADD COLUMN final_attempt INTEGER;
""",
    ),
    # The engine time a call accounts for: its share of each batched step it was in (the
    # latency, for a call that had the engine to itself). Energy is counted from it.
    (
        "0004_call_busy_time",
        """
ALTER TABLE model_calls ADD COLUMN busy_s REAL;
""",
    ),
    # What the model wrapper and provider learned about a call (JSON, `ModelOutput.extra`):
    # `attempts` (1 + retries), `cached` (replayed from the call cache), `usage` (token counts
    # estimated from stream chunks instead of the API's own). NULL in older rows.
    (
        "0005_call_extra",
        """
ALTER TABLE model_calls ADD COLUMN extra TEXT;
""",
    ),
    # What a run measured beyond the verdict (JSON, `ExecutionRecord.extra`): a GPU task's
    # harness report (correct, GPU time and peak memory per size; the device). NULL elsewhere.
    (
        "0006_execution_extra",
        """
ALTER TABLE executions ADD COLUMN extra TEXT;
""",
    ),
    # A GPU task's baseline (JSON): its GPU reference checked and timed by the harness, with
    # NumPy's time on this host beside it, per size; what speedups are measured against.
    # NULL for other tasks and in older runs.
    (
        "0007_task_baseline",
        """
ALTER TABLE tasks ADD COLUMN baseline TEXT;
""",
    ),
    # A sample may end `thinking_truncated`: a reasoning model still thinking at the token
    # limit, which wrote no answer. SQLite cannot widen a CHECK in place, so the table is
    # rebuilt as it is, row for row (through a copy: the attempts' references to the rows,
    # deferred, hold again when they are back, and are checked at commit).
    (
        "0009_sample_thinking_truncated",
        """
PRAGMA defer_foreign_keys = ON;
CREATE TABLE samples_0009 AS SELECT * FROM samples;
DROP TABLE samples;
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    model TEXT NOT NULL,
    strategy TEXT NOT NULL,
    task_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('passed', 'failed', 'timeout', 'error', 'thinking_truncated')),
    code TEXT NOT NULL,
    extract_method TEXT NOT NULL,
    hit_token_limit INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    generation_s REAL NOT NULL,
    execution_s REAL NOT NULL,
    ttft_s REAL,
    peak_rss_bytes INTEGER,
    peak_vram_bytes INTEGER,
    created_at TEXT NOT NULL,
    model_error INTEGER NOT NULL DEFAULT 0,
    final_attempt INTEGER,
    UNIQUE (run_id, model, strategy, task_id, sample_index)
);
INSERT INTO samples SELECT id, run_id, model, strategy, task_id, sample_index, status, code,
    extract_method, hit_token_limit, prompt_tokens, completion_tokens, generation_s,
    execution_s, ttft_s, peak_rss_bytes, peak_vram_bytes, created_at, model_error,
    final_attempt FROM samples_0009;
DROP TABLE samples_0009;
CREATE INDEX samples_by_run ON samples (run_id, model, strategy, task_id);
""",
    ),
    # Requests sent through a provider's batch API (`-M batch=true`), by batch: what a driver
    # killed while its batch was pending finds again on `--resume`. `request_key` is the hash of
    # the request as sent (never its key or headers); `done` once its result was handed back.
    (
        "0011_batch_requests",
        """
CREATE TABLE batch_requests (
    batch_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    provider TEXT NOT NULL,
    request_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, custom_id)
);
CREATE INDEX batch_requests_pending ON batch_requests (request_key, done);
""",
    ),
)
