"""Re-extract a stored run's raw model answers with today's extraction, as evaluate input.

    .venv/bin/python bench/rescore_run.py --db DB --run NAME --out samples.jsonl
    .venv/bin/codeduel evaluate --benchmark humaneval --samples samples.jsonl --output out.json

The model calls are replayed from the store (prefill + response + closing fence), so the effect
of an extraction change on a finished greedy run is measured without generating again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from codeduel.extract import answer_code, extract_code, whole_answer
from codeduel.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-sanitize", action="store_true")
    args = parser.parse_args()
    with Store(args.db) as store:
        run = store.get_run(args.run)
        assert run is not None, f"no run {args.run}"
        rows = store.db.execute(
            "SELECT s.task_id, t.entry_point, c.config, c.response, c.finish_reason "
            "FROM samples s JOIN tasks t ON t.run_id = s.run_id AND t.task_id = s.task_id "
            "JOIN attempts a ON a.sample_id = s.id JOIN model_calls c ON c.attempt_id = a.id "
            "WHERE s.run_id = ? ORDER BY s.id",
            (run.id,),
        ).fetchall()
    with args.out.open("w") as f:
        for task_id, entry_point, config, response, finish in rows:
            prefill = json.loads(config)["prefill"]
            if args.no_sanitize:
                answer = whole_answer(response, prefill, finish == "stop")
                code = extract_code(answer, entry_point).code
            else:
                code = answer_code(response, entry_point, prefill, finish == "stop").code
            f.write(json.dumps({"task_id": task_id, "solution": code}) + "\n")
    print(f"{len(rows)} samples -> {args.out}")


if __name__ == "__main__":
    main()
