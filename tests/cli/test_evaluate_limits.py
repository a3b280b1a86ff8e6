"""`codeduel evaluate` scores with the same calibrated per-task limits as `codeduel run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeduel.cli import main

# The reference takes 0.4 s here: its limit is max(0.3, 4 x 0.4) = 1.6 s, not the 0.3 s floor.
TASK = {
    "task_id": "slow/0",
    "prompt": "def slow():\n",
    "entry_point": "slow",
    "canonical_solution": "    import time\n    time.sleep(0.4)\n    return 1\n",
    "test": "def check(candidate):\n    assert candidate() == 1\n",
}


def test_evaluate_uses_the_calibrated_limit_of_each_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(TASK) + "\n")
    samples = tmp_path / "samples.jsonl"
    # As slow as the reference, a little slower: inside 4 x, far outside the floor.
    completion = "    import time\n    time.sleep(0.6)\n    return 1\n"
    samples.write_text(json.dumps({"task_id": "slow/0", "completion": completion}) + "\n")
    out = tmp_path / "out.json"
    main(["evaluate", "--benchmark", str(tasks), "--samples", str(samples), "--output", str(out),
          "--timeout", "0.3"])  # fmt: skip
    result = json.loads(out.read_text())
    [scored] = result["results"]
    assert scored["status"] == "passed", scored
    assert 1.6 <= scored["timeout_s"] < 3.0
    assert result["summary"]["timeout_s"] == 0.3 and result["summary"]["timeout_factor"] == 4.0
