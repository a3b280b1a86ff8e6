"""Write the stored raw answers of committed runs as a corpus for the extraction oracle test.

    .venv/bin/python bench/answer_corpus.py docs/results/hybrid-humaneval/runs.db \\
        --runs he-single he-repair he-resample he-cascade --out tests/data/answers.jsonl

One line per sample: the run, the task, the entry point and the raw text the model produced for
the sample's final attempt, as it reached codeduel (the prefilled fence, the response, and the
closing fence that the stop sequence consumed), so the test can grade codeduel's extraction and
EvalPlus's `sanitize` on exactly what the model wrote.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

from codeduel.extract import whole_answer

QUERY = """
SELECT s.task_id, t.entry_point, c.config, c.response, c.finish_reason
FROM samples s JOIN runs r ON r.id = s.run_id
JOIN tasks t ON t.run_id = s.run_id AND t.task_id = s.task_id
JOIN attempts a ON a.sample_id = s.id
  AND a.attempt_index = COALESCE(s.final_attempt,
      (SELECT MAX(attempt_index) FROM attempts WHERE sample_id = s.id))
JOIN model_calls c ON c.id = (SELECT MAX(id) FROM model_calls WHERE attempt_id = a.id)
WHERE r.name = ? AND s.model_error = 0 ORDER BY s.task_id, s.sample_index
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    lines = []
    for run in args.runs:
        for task_id, entry_point, config, response, finish in con.execute(QUERY, (run,)):
            prefill = json.loads(config).get("prefill", "")
            text = whole_answer(response, prefill, finish == "stop")
            record = {"run": run, "task_id": task_id, "entry_point": entry_point, "text": text}
            lines.append(json.dumps(record, ensure_ascii=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} answers -> {args.out}")


if __name__ == "__main__":
    main()
