"""humaneval-fix: the synthetic set's bugs fail in the sandbox and their fixes pass, the prompt
shows the bug and the failing visible test only, HumanEvalPack read from an offline copy or
downloaded from a loopback Hub, and a run at the CLI that names the set in its report."""

from __future__ import annotations

import ast
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.benchmarks.humanevalfix import FixTask, pack_url
from codeduel.errors import BenchmarkError
from codeduel.prompts import code_prompt
from codeduel.sandbox import Sandbox
from codeduel.store import Store
from tests.cli_run import exit_code

PACK = Path(__file__).parents[1] / "data" / "humanevalpack"


@pytest.fixture(autouse=True)
def no_pack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CODEDUEL_HUMANEVALPACK_DIR", raising=False)
    monkeypatch.setenv("CODEDUEL_CACHE_DIR", str(tmp_path / "cache"))


def test_without_a_copy_of_the_pack_humaneval_fix_is_the_synthetic_set() -> None:
    bench = load_benchmark("humaneval-fix")
    assert bench.name == "humaneval-fix@synthetic"
    assert len(bench.tasks) == 127
    assert bench.window.startswith("synthetic HumanEvalFix")
    assert load_benchmark("humaneval-fix@synthetic").sha256 == bench.sha256


def test_each_synthetic_bug_is_one_change_to_the_canonical_solution() -> None:
    for task in load_benchmark("humaneval-fix@synthetic").tasks:
        assert isinstance(task, FixTask)
        reference = task.reference_solution()
        assert reference is not None
        buggy, right = ast.parse(task.buggy_solution), ast.parse(reference)
        assert ast.dump(buggy) != ast.dump(right), task.task_id
        # Lines that differ: one (every operator rewrites one node of one line).
        diff = [
            (a, b)
            for a, b in zip(task.buggy_solution.splitlines(), reference.splitlines(), strict=True)
            if a != b
        ]
        assert len(diff) == 1, task.task_id
        assert task.failing_test in task.visible_test.splitlines()


def test_the_bugs_fail_their_tests_in_the_sandbox_and_the_canonical_fix_passes() -> None:
    tasks = load_benchmark("humaneval-fix@synthetic").tasks[::16]
    jobs = []
    for task in tasks:
        reference = task.reference_solution()
        assert reference is not None
        jobs += [
            (task.program(task.buggy_solution), 10.0),
            (task.visible_program(task.buggy_solution), 10.0),
            (task.program(reference), 10.0),
        ]
    with Sandbox(workers=2) as box:
        statuses = [r.status for r in box.map(jobs)]
    for index, task in enumerate(tasks):
        hidden, visible, fixed = statuses[3 * index : 3 * index + 3]
        assert hidden in ("failed", "error") and visible in ("failed", "error"), task.task_id
        assert fixed == "passed", task.task_id


def test_the_prompt_shows_the_bug_and_the_failing_visible_test_not_the_hidden_ones() -> None:
    task = load_benchmark("humaneval-fix@synthetic").tasks[0]
    assert isinstance(task, FixTask)
    prompt = code_prompt(task)
    text = prompt.messages[-1].content
    assert task.buggy_solution.rstrip() in text
    assert task.failing_test in text and "AssertionError" in task.error
    assert "def check" not in text and "METADATA" not in text
    assert prompt.prefill.endswith("```python\n")


def test_an_unknown_set_is_refused() -> None:
    with pytest.raises(BenchmarkError, match="humaneval-fix@pack or humaneval-fix@synthetic"):
        load_benchmark("humaneval-fix@other")


# --- HumanEvalPack ----------------------------------------------------------------------------


def test_an_offline_copy_of_the_pack_is_read_and_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEDUEL_HUMANEVALPACK_DIR", str(PACK))
    bench = load_benchmark("humaneval-fix")
    assert bench.name == "humaneval-fix@pack"
    assert [t.task_id for t in bench.tasks] == [
        "HumanEvalFix/0",
        "HumanEvalFix/2",
        "HumanEvalFix/53",
    ]
    assert "HumanEvalPack" in bench.window
    task = bench.tasks[0]
    assert isinstance(task, FixTask)
    assert "distance = elem - elem2" in task.buggy_solution
    # The pack's bugs were not run here: the prompt shows all the visible tests.
    assert task.visible_test.strip() in task.chat_prompt()[0][0].content
    # Its synthetic set stays reachable by name.
    assert load_benchmark("humaneval-fix@synthetic").name == "humaneval-fix@synthetic"


def test_the_packs_bugs_fail_and_its_canonical_solutions_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEDUEL_HUMANEVALPACK_DIR", str(PACK))
    tasks = load_benchmark("humaneval-fix@pack").tasks
    jobs = []
    for task in tasks:
        assert isinstance(task, FixTask)
        jobs += [(task.program(task.buggy_solution), 10.0)]
        jobs += [(task.program(task.reference_solution() or ""), 10.0)]
    with Sandbox(workers=2) as box:
        statuses = [r.status for r in box.map(jobs)]
    assert statuses == ["failed", "passed"] * len(tasks)


_PATH = "data/python/data/humanevalpack.jsonl"


class _Hub(http.server.BaseHTTPRequestHandler):
    data: ClassVar[bytes] = b""
    served: ClassVar[bytes | None] = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == f"/datasets/bigcode/humanevalpack/resolve/main/{_PATH}":
            self.send_response(302)
            self.send_header("location", "/cdn/humanevalpack.jsonl")
            self.send_header("x-linked-size", str(len(self.data)))
            self.send_header("x-linked-etag", f'"{hashlib.sha256(self.data).hexdigest()}"')
            self.end_headers()
            return
        body = self.data if self.served is None else self.served
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Hub]]:
    class Hub(_Hub):
        data = (PACK / "humanevalpack.jsonl").read_bytes()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield Hub
    httpd.shutdown()
    httpd.server_close()


def test_the_pack_is_downloaded_once_into_the_cache(hub: type[_Hub], tmp_path: Path) -> None:
    # Without a copy, plain humaneval-fix downloads nothing.
    assert load_benchmark("humaneval-fix").name == "humaneval-fix@synthetic"
    assert pack_url().endswith("/resolve/main/data/python/data/humanevalpack.jsonl")
    bench = load_benchmark("humaneval-fix@pack")
    assert len(bench.tasks) == 3
    cached = tmp_path / "cache" / "datasets" / "humanevalpack" / "humanevalpack.jsonl"
    assert cached.read_bytes() == hub.data
    hub.data = b""
    assert load_benchmark("humaneval-fix").sha256 == bench.sha256


def test_a_changed_download_of_the_pack_is_refused_at_the_cli(
    hub: type[_Hub], tmp_path: Path, capsys: pytest.CaptureFixture[str], stub_provider: str
) -> None:
    hub.served = hub.data.replace(b"elem - elem2", b"elem + elem2")
    db = str(tmp_path / "r.db")
    code = exit_code(["run", "humaneval-fix@pack", "--model", stub_provider, "--db", db])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "humanevalpack.jsonl" in err and "corrupt" in err
    assert not (tmp_path / "cache" / "datasets" / "humanevalpack" / "humanevalpack.jsonl").exists()


def test_a_run_at_the_cli_is_graded_on_the_hidden_tests_and_reports_the_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stub_provider: str
) -> None:
    task = load_benchmark("humaneval-fix@synthetic").tasks[0]
    fixed = task.reference_solution()
    db = tmp_path / "runs.db"
    argv = [
        "run", "humaneval-fix", "--limit", "2", "--model", stub_provider, "-M", f"answer={fixed}",
        "-M", "prefill=false", "--no-progress", "--db", str(db), "--run-name", "fix",
    ]  # fmt: skip
    assert exit_code(argv) == 0
    out = capsys.readouterr().out
    assert "problems: synthetic HumanEvalFix" in out
    with Store(db) as store:
        run = store.get_run("fix")
        assert run is not None and run.benchmark == "humaneval-fix@synthetic"
        rows = store.db.execute("SELECT task_id, status FROM samples ORDER BY id").fetchall()
    # The first task's fix passes; the second task's function is not in it (NameError).
    assert [tuple(r) for r in rows] == [("HumanEvalFix/0", "passed"), ("HumanEvalFix/1", "error")]
