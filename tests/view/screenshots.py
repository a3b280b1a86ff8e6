"""The screenshots of docs/view: `codeduel view` over a copy of a committed run store while a
real `codeduel run` (two stub models, tests/cli/stub_provider.py) writes a new run into it.

    .venv/bin/python -m tests.view.screenshots docs/results/hybrid-humaneval/runs.db docs/view
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codeduel.store import Store
from tests.view.browser import open_tab

_RUN = (
    "import sys\n"
    "from codeduel.models import register_provider\n"
    "register_provider('stub', 'tests.cli.stub_provider:StubProvider')\n"
    "from codeduel.cli import main\n"
    "main(sys.argv[1:])\n"
)


def _hold_after(writer: subprocess.Popen[bytes], db: Path, samples: int) -> None:
    """Stop `writer` once its run has stored `samples` samples."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with Store(db, read_only=True) as store:
            row = store.db.execute(
                "SELECT COUNT(*) FROM samples s JOIN runs r ON r.id = s.run_id "
                "WHERE r.name = 'stub-duel'"
            ).fetchone()
        if row[0] >= samples:
            writer.send_signal(signal.SIGSTOP)
            return
        time.sleep(0.05)
    raise TimeoutError("the stub run stored too few samples")


def main(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.db"
        shutil.copy(source, db)
        with Store(db) as store:  # brought up to this codeduel's migrations
            runs = {r.name: r.id for r in store.runs()}
        repair = runs.get("he-repair", max(runs.values()))
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _RUN,
                "run",
                "humaneval",
                "--db",
                str(db),
                "--model",
                "stub/small",
                "--model",
                "stub/large",
                "--workers",
                "1",
                "--run-name",
                "stub-duel",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "codeduel", "view", "--db", str(db), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            found = re.search(r"http://127\.0\.0\.1:\d+", server.stdout.readline())
            assert found
            with open_tab(found.group(0), width=1200, height=800) as tab:
                # Held mid-run (SIGSTOP), so the page shows it running however fast it is.
                _hold_after(writer, db, samples=60)
                tab.goto("/")
                four = [runs[n] for n in ("he-single", "he-repair", "he-resample", "he-cascade")]
                for run in four:
                    tab.eval(f"document.querySelector('input[value=\"{run}\"]').click()")
                tab.screenshot(out / "runs.png", height=800)
                tab.goto(f"/runs/{repair}")
                tab.screenshot(out / "run.png", height=1150)
                tab.goto(f"/runs/{repair}/tasks?show=failed")
                tab.screenshot(out / "tasks.png", height=700)
                # A repair sample that failed: three attempts, each with its visible feedback.
                sample = tab.eval(
                    "[...document.querySelectorAll('table.grid tr:not([hidden]) a.cell')]"
                    ".map(a => a.getAttribute('href'))[1]"
                )
                tab.goto(sample)
                tab.screenshot(out / "sample.png", height=1100)
                tab.screenshot(
                    out / "sample-feedback.png", height=900, at="#attempt-1 h4.tests-visible"
                )
                query = "&".join(f"runs={r}" for r in four)
                tab.goto(f"/compare?{query}")
                tab.screenshot(out / "compare.png", height=1000)
                tab.goto(f"/compare/tasks?{query}&show=disagree")
                tab.screenshot(out / "compare-tasks.png", height=800)
                problems = tab.problems()
                assert problems == [], problems
        finally:
            writer.send_signal(signal.SIGCONT)
            writer.terminate()
            server.terminate()
            writer.wait()
            server.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
