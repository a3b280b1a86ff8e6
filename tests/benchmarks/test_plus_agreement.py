"""codeduel's humaneval+ and mbpp+ grading against EvalPlus's own grader, on the same samples.

The tasks are fixtures in tests/data/evalplus, made here in the exact schema of HumanEval+
v0.1.10 and MBPP+ v0.2.0: floats compared within `atol` (set, and enforced at 1e-6), the
MBPP+ tasks EvalPlus compares specially (set equality, "not None", `sum_div`, `surface_Area`),
MBPP+ inputs it turns back into tuples (Mbpp/2), and EvalPlus's per-input time limits. The
samples (tests/data/evalplus/*-samples.jsonl, ours too) are right, wrong, slow and crashing
answers. EvalPlus's `evaluate` (evalplus 0.3.1, installed by .ci/run) grades them offline
through its override paths, running these trusted samples in its own processes; codeduel
grades them in its sandbox. Both verdicts of every sample, base and plus, must be the same,
but for the one difference listed in KNOWN.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeduel.benchmarks import plus
from codeduel.executors import LocalExecutor
from codeduel.sandbox import Sandbox
from codeduel.scoring import TIMEOUT_FACTOR, TIMEOUT_FLOOR_S, Scorer

FIXTURES = Path(__file__).parents[1] / "data" / "evalplus"
DATA = {"humaneval+": "HumanEvalPlus-fixture.jsonl", "mbpp+": "MbppPlus-fixture.jsonl"}
SAMPLES = {"humaneval+": "humaneval-samples.jsonl", "mbpp+": "mbpp-samples.jsonl"}

# (task, sample) where the verdicts differ, and why codeduel's is the one to keep.
KNOWN: dict[tuple[str, str], str] = {
    ("HumanEval/3", "right"): (
        "evalplus 0.3.1 records no pass on find_zero's special oracle (a bare `continue`), so "
        "it fails every answer; EvalPlus's repository has since fixed it, as codeduel grades"
    ),
}

# Runs EvalPlus's CLI grader (`evalplus.evaluate`) on one sample file; prints its verdicts.
_EVALPLUS = """
import json, os, sys
from evalplus.evaluate import evaluate
dataset, samples = sys.argv[1], sys.argv[2]
evaluate(dataset=dataset, samples=samples, parallel=2)
results = json.load(open(samples.replace(".jsonl", "_eval_results.json")))["eval"]
verdicts = {t: [[r["base_status"], r["plus_status"]] for r in rs] for t, rs in results.items()}
print(json.dumps(verdicts))
sys.stdout.flush()
os._exit(0)  # its progress thread would hold the process up to 20 s more
"""


def install_fixture(
    name: str, folder: Path, monkeypatch: pytest.MonkeyPatch, text: bytes | None = None
) -> plus.Release:
    """The fixture as `name`'s release file in `folder`, pinned by its own sha256."""
    raw = gzip.compress(text or (FIXTURES / DATA[name]).read_bytes(), mtime=0)
    release = dataclasses.replace(
        plus.RELEASES[name], sha256=hashlib.sha256(raw).hexdigest(), tasks=None
    )
    monkeypatch.setitem(plus.RELEASES, name, release)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / release.filename).write_bytes(raw)
    return release


def _evalplus(name: str, tmp_path: Path) -> subprocess.Popen[str]:
    release = plus.RELEASES[name]
    samples = tmp_path / "evalplus" / SAMPLES[name]
    samples.parent.mkdir()
    samples.write_bytes((FIXTURES / SAMPLES[name]).read_bytes())
    env = {
        **os.environ,
        release.override_env: str(FIXTURES / DATA[name]),
        # Its ground-truth cache, kept out of the user's.
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
    }
    return subprocess.Popen(
        [sys.executable, "-c", _EVALPLUS, release.dataset, str(samples)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def _ours(name: str, rows: list[dict[str, str]]) -> list[tuple[str, dict[str, object]]]:
    tasks = {t.task_id: t for t in plus.load_plus(name).tasks}
    with Sandbox(workers=2) as box:
        scorer = Scorer(LocalExecutor(box))
        await scorer.calibrate(list(tasks.values()), TIMEOUT_FLOOR_S, TIMEOUT_FACTOR)
        records = await scorer.run_tests(
            (tasks[r["task_id"]], "hidden", r["solution"]) for r in rows
        )
    return [(r.status, r.extra or {}) for r in records]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["humaneval+", "mbpp+"])
def test_codeduel_and_evalplus_give_the_same_verdicts(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("evalplus.evaluate", reason="evalplus is installed by .ci/run")
    install_fixture(name, tmp_path / "data", monkeypatch)
    monkeypatch.setenv(plus.DIR_ENV, str(tmp_path / "data"))
    rows = [json.loads(line) for line in (FIXTURES / SAMPLES[name]).read_text().splitlines()]
    theirs_run = _evalplus(name, tmp_path)
    ours = asyncio.run(_ours(name, rows))
    out, _ = theirs_run.communicate(timeout=240)
    assert theirs_run.returncode == 0
    by_task = json.loads(out.splitlines()[-1])
    # EvalPlus lists each task's samples in the order the file gives them.
    seen: dict[str, int] = {}
    differ = {}
    for row, (status, extra) in zip(rows, ours, strict=True):
        index = seen[row["task_id"]] = seen.get(row["task_id"], -1) + 1
        theirs = tuple(by_task[row["task_id"]][index])
        mine = (extra.get("base"), extra.get("plus"))
        # The sample's own status is EvalPlus's `plus` figure: base and plus both pass.
        assert (status == "passed") == (mine == ("pass", "pass")), row["label"]
        if mine != theirs:
            differ[(row["task_id"], row["label"])] = (mine, theirs)
    assert set(differ) == {k for k in KNOWN if k[0] in by_task}, differ
    for key in differ:
        assert differ[key] == (("pass", "pass"), ("fail", "fail")), key
    print(f"{name}: {len(rows) - len(differ)} of {len(rows)} samples get EvalPlus's verdicts")
