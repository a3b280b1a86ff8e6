"""The prompt and answer token lengths of a stored run, for replaying its shape on random weights
(bench/gpu_humaneval.py --dummy SHAPE --replay FILE).

    .venv/bin/python bench/replay_lengths.py RUN --db PATH > lengths.json

One pair per model call of the run's first attempt of each sample, in task order.
"""

from __future__ import annotations

import argparse
import json
import sqlite3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    rows = db.execute(
        """SELECT s.task_id, s.prompt_tokens, s.completion_tokens FROM samples s
           JOIN runs r ON r.id = s.run_id WHERE r.name = ? ORDER BY s.id""",
        (args.run,),
    ).fetchall()
    if not rows:
        raise SystemExit(f"no samples in run {args.run!r}")
    print(
        json.dumps(
            {
                "run": args.run,
                "tasks": [r[0] for r in rows],
                "lengths": [[r[1], r[2]] for r in rows],
            }
        )
    )


if __name__ == "__main__":
    main()
