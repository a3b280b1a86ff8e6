"""How long GPU answers held their GPU's timing lock, per run, from a store.

    python3 bench/accel_lock_windows.py STORE.db RUN [RUN ...]

Reads `timed_at` (the window the harness held the lock, wall clock) of every passing hidden
run of each named run, and prints the median, 90th percentile and largest window with the
median duration of those executions (lock waits included).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys


def main(argv: list[str]) -> int:
    db = sqlite3.connect(f"file:{argv[0]}?mode=ro", uri=True)
    for name in argv[1:]:
        rows = db.execute(
            "SELECT e.extra, e.duration_s FROM executions e JOIN attempts a ON a.id = e.attempt_id"
            " JOIN samples s ON s.id = a.sample_id JOIN runs r ON r.id = s.run_id"
            " WHERE r.name = ? AND e.tests = 'hidden' AND e.status = 'passed'",
            (name,),
        ).fetchall()
        held, durations = [], []
        for extra, duration in rows:
            window = json.loads(extra or "{}").get("timed_at")
            if window:
                held.append(window[1] - window[0])
                durations.append(duration)
        if not held:
            print(f"{name}: no timed answer")
            continue
        median, p90 = statistics.median(held), sorted(held)[int(0.9 * len(held))]
        print(
            f"{name}: {len(held)} passing hidden runs; lock held median {median:.2f} s, "
            f"p90 {p90:.2f} s, max {max(held):.1f} s; "
            f"duration median {statistics.median(durations):.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
