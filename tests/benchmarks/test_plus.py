"""humaneval+ and mbpp+: the release files (download from a loopback server, cache, sha256,
offline copies), the tasks' visible tests, the sandboxed grader, and a run at the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from codeduel.benchmarks import load_benchmark, plus
from codeduel.errors import BenchmarkError
from codeduel.executors import LocalExecutor
from codeduel.sandbox import Sandbox
from codeduel.scoring import Scorer
from codeduel.store import Store
from tests.benchmarks.test_plus_agreement import DATA, FIXTURES, install_fixture
from tests.cli_run import exit_code


class _Releases(http.server.BaseHTTPRequestHandler):
    """Serves release files by name: as they are, changed (`served`), or cut short (`cut`:
    the full length announced, the connection closed halfway)."""

    files: ClassVar[dict[str, bytes]] = {}
    served: ClassVar[dict[str, bytes]] = {}
    cut: ClassVar[set[str]] = set()
    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[1]
        self.requests.append(name)
        if name not in self.files:
            self.send_error(404)
            return
        data = self.served.get(name, self.files[name])
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if name in self.cut else data)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[type[_Releases]]:
    """A loopback server holding the humaneval+ fixture as its release file, which the
    release table points at with the fixture's sha256."""

    class Releases(_Releases):
        files: ClassVar[dict[str, bytes]] = {}
        served: ClassVar[dict[str, bytes]] = {}
        cut: ClassVar[set[str]] = set()
        requests: ClassVar[list[str]] = []

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Releases)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    release = install_fixture("humaneval+", tmp_path / "release", monkeypatch)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{release.release_filename}"
    monkeypatch.setitem(plus.RELEASES, "humaneval+", dataclasses.replace(release, url=url))
    Releases.files = {
        release.release_filename: (tmp_path / "release" / release.filename).read_bytes()
    }
    monkeypatch.setenv("CODEDUEL_CACHE_DIR", str(tmp_path / "cache"))
    for env in (plus.DIR_ENV, "HUMANEVAL_OVERRIDE_PATH", "MBPP_OVERRIDE_PATH"):
        monkeypatch.delenv(env, raising=False)
    yield Releases
    httpd.shutdown()
    httpd.server_close()


def _cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "datasets" / "evalplus"


def test_the_real_releases_are_pinned_with_evalplus_urls() -> None:
    he, mbpp = plus.RELEASES["humaneval+"], plus.RELEASES["mbpp+"]
    # The URLs evalplus 0.3.1 builds for its pinned versions (evalplus.data.utils).
    assert he.url == (
        "https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/"
        "HumanEvalPlus.jsonl.gz"
    )
    assert mbpp.url == (
        "https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz"
    )
    assert (he.filename, mbpp.filename) == (
        "HumanEvalPlus-v0.1.10.jsonl.gz",
        "MbppPlus-v0.2.0.jsonl.gz",
    )
    assert (he.tasks, mbpp.tasks) == (164, 378)
    for release in (he, mbpp):
        assert len(release.sha256) == 64 and int(release.sha256, 16) >= 0


def test_downloaded_once_into_the_cache(server: type[_Releases], tmp_path: Path) -> None:
    bench = load_benchmark("humaneval+")
    assert [t.task_id for t in bench.tasks] == [f"HumanEval/{i}" for i in range(4)]
    assert bench.sha256 == plus.RELEASES["humaneval+"].sha256
    cache = _cache(tmp_path)
    assert [p.name for p in cache.iterdir()] == ["HumanEvalPlus-v0.1.10.jsonl.gz"]
    server.files = {}
    # From the cache now: the server has nothing left.
    assert load_benchmark("humaneval+").tasks == bench.tasks
    assert server.requests == ["HumanEvalPlus.jsonl.gz"]


@pytest.mark.parametrize("how", ["changed", "cut short"])
def test_a_bad_download_is_refused_and_nothing_is_left(
    server: type[_Releases], tmp_path: Path, how: str
) -> None:
    name = next(iter(server.files))
    if how == "changed":
        data = server.files[name]
        server.served = {name: data[:50] + bytes([data[50] ^ 1]) + data[51:]}
    else:
        server.cut = {name}
    with pytest.raises(BenchmarkError) as info:
        load_benchmark("humaneval+")
    message = str(info.value)
    assert "\n" not in message and "HumanEval+ v0.1.10" in message
    assert ("corrupt or incomplete" if how == "changed" else "IncompleteRead") in message
    assert list(_cache(tmp_path).iterdir()) == []


def test_a_corrupt_download_is_one_sentence_and_exit_2_at_the_cli_and_the_store_keeps_its_runs(
    server: type[_Releases],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stub_provider: str,
) -> None:
    db = tmp_path / "runs.db"
    with Store(db) as store:
        store.create_run("earlier", "humaneval", "0" * 64, {}, {})
    name = next(iter(server.files))
    server.served = {name: server.files[name][:100]}
    code = exit_code(["run", "humaneval+", "--model", stub_provider, "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "the download is corrupt or incomplete and was not kept" in err
    assert list(_cache(tmp_path).iterdir()) == []
    with Store(db) as store:
        assert [r.name for r in store.runs()] == ["earlier"]


def test_an_offline_copy_is_read_from_the_folder_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = install_fixture("humaneval+", tmp_path / "copy", monkeypatch)
    monkeypatch.setenv(plus.DIR_ENV, str(tmp_path / "copy"))
    assert len(load_benchmark("humaneval+").tasks) == 4
    raw = (tmp_path / "copy" / release.filename).read_bytes()
    (tmp_path / "copy" / release.filename).write_bytes(raw[:50] + bytes([raw[50] ^ 1]) + raw[51:])
    with pytest.raises(BenchmarkError, match=r"has sha256 \w+, expected"):
        load_benchmark("humaneval+")
    monkeypatch.setenv(plus.DIR_ENV, str(tmp_path))
    with pytest.raises(BenchmarkError, match="holds none of HumanEvalPlus-v0.1.10.jsonl.gz"):
        load_benchmark("humaneval+")


def test_evalplus_override_paths_are_honoured_and_uncompressed_files_need_their_own_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(plus.DIR_ENV, raising=False)
    release = install_fixture("mbpp+", tmp_path, monkeypatch)
    monkeypatch.setenv("MBPP_OVERRIDE_PATH", str(tmp_path / release.filename))
    assert [t.task_id for t in load_benchmark("mbpp+").tasks][:2] == ["Mbpp/2", "Mbpp/3"]
    # EvalPlus's own cache file is the uncompressed JSONL: no pin for it, no use of it.
    jsonl = FIXTURES / DATA["mbpp+"]
    monkeypatch.setenv("MBPP_OVERRIDE_PATH", str(jsonl))
    with pytest.raises(BenchmarkError, match="is not gzip-compressed"):
        load_benchmark("mbpp+")
    pinned = dataclasses.replace(
        release, jsonl_sha256=hashlib.sha256(jsonl.read_bytes()).hexdigest()
    )
    monkeypatch.setitem(plus.RELEASES, "mbpp+", pinned)
    assert load_benchmark("mbpp+").sha256 == release.sha256


def test_a_broken_row_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    row = json.loads((FIXTURES / DATA["mbpp+"]).read_text().splitlines()[0])
    row["atol"] = "0"
    install_fixture("mbpp+", tmp_path, monkeypatch, text=json.dumps(row).encode())
    monkeypatch.setenv(plus.DIR_ENV, str(tmp_path))
    with pytest.raises(BenchmarkError, match=r":1: field\(s\) atol have the wrong type"):
        load_benchmark("mbpp+")


def test_visible_tests_are_the_prompts_examples_and_the_inputs_stay_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("humaneval+", "mbpp+"):
        install_fixture(name, tmp_path, monkeypatch)
    monkeypatch.setenv(plus.DIR_ENV, str(tmp_path))
    he = {t.task_id: t for t in load_benchmark("humaneval+").tasks}
    mbpp = {t.task_id: t for t in load_benchmark("mbpp+").tasks}
    assert he["HumanEval/2"].visible_test == "assert digit_sum(123) == 6"
    assert he["HumanEval/0"].visible_test == "assert abs(mean_of([1, 2, 3, 4]) - 2.5) < 1e-6"
    assert mbpp["Mbpp/4"].visible_test == "assert sum_div(8) == 7"
    visible = he["HumanEval/2"].visible_program("def digit_sum(n):\n    return 0\n")
    # A plus input (10**20 + 7) is nowhere in what feedback may come from; it is in the hidden.
    assert "100000000000000000007" not in visible and "_plus_harness" not in visible
    assert "100000000000000000007" in he["HumanEval/2"].program("x = 1")


# Right only where the answer cannot reach the sandbox's verdict pipe (fd 3) and holds one
# descriptor beyond stdio, its progress pipe: the harness closes the rest in its process.
_FDS = """import os

def digit_sum(n):
    held = []
    for fd in range(3, 64):
        try:
            os.fstat(fd)
            held.append(fd)
        except OSError:
            pass
    return sum(map(int, str(n))) if len(held) == 1 and held[0] != 3 else -1
"""


def test_the_answer_runs_in_a_child_that_holds_no_descriptor_of_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fixture("humaneval+", tmp_path, monkeypatch)
    monkeypatch.setenv(plus.DIR_ENV, str(tmp_path))
    task = {t.task_id: t for t in load_benchmark("humaneval+").tasks}["HumanEval/2"]

    async def grade() -> list[tuple[str, object]]:
        with Sandbox(workers=1) as box:
            scorer = Scorer(LocalExecutor(box))
            scorer.set_limits({task.task_id: 3.0})
            records = await scorer.run_tests([(task, "hidden", _FDS), (task, "visible", _FDS)])
        return [(r.status, r.extra) for r in records]

    hidden, visible = asyncio.run(grade())
    assert hidden == ("passed", {"base": "pass", "plus": "pass"})
    # Run directly (the visible tests), the same code sees the sandbox's descriptors.
    assert visible == ("failed", None)


def test_verdicts_are_read_only_from_the_harness_ending() -> None:
    assert plus.plus_verdicts("passed", "") == {"base": "pass", "plus": "pass"}
    detail = "AssertionError: CODEDUEL-EVALPLUS base=pass plus=timeout (plus: 0 of 3 inputs run)"
    assert plus.plus_verdicts("failed", detail) == {"base": "pass", "plus": "timeout"}
    # Not graded: the sandbox's own limit, the reference crashing, no marker at all.
    assert plus.plus_verdicts("timeout", detail) is None
    assert plus.plus_verdicts("error", "RuntimeError: x") is None
    assert plus.plus_verdicts("failed", "AssertionError") is None


ANSWER = (
    "def mean_of(xs):\n    return sum(xs) / len(xs) if len(xs) < 10 else 0.0\n\n"
    "def digit_sum(n):\n    return sum(map(int, str(n)))"
)


def test_a_run_at_the_cli_reports_base_and_plus_side_by_side(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stub_provider: str,
) -> None:
    install_fixture("humaneval+", tmp_path / "data", monkeypatch)
    monkeypatch.setenv(plus.DIR_ENV, str(tmp_path / "data"))
    db = tmp_path / "runs.db"
    argv = [
        "run", "humaneval+", "--task-ids", "HumanEval/0,HumanEval/2", "--model", stub_provider,
        "-M", f"answer={ANSWER}", "-M", "prefill=false", "--no-progress", "--db", str(db),
        "--run-name", "p",
    ]  # fmt: skip
    assert exit_code(argv) == 0
    out = capsys.readouterr().out
    assert "| Pass@1 % base / plus (95% CI) | Passed base / plus |" in out
    assert "| 100.0 (34.2–100.0) / 50.0 (9.5–90.5) | 2 / 1/2 |" in out
    with Store(db) as store:
        rows = store.db.execute(
            "SELECT s.task_id, s.status, e.extra FROM samples s JOIN attempts a ON "
            "a.sample_id = s.id JOIN executions e ON e.attempt_id = a.id "
            "WHERE e.tests = 'hidden' ORDER BY s.task_id"
        ).fetchall()
    assert [(r[0], r[1], json.loads(r[2])) for r in rows] == [
        ("HumanEval/0", "failed", {"base": "pass", "plus": "fail"}),
        ("HumanEval/2", "passed", {"base": "pass", "plus": "pass"}),
    ]
    assert exit_code(["report", "p", "--db", str(db), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["runs"][0]["rows"]
    assert (row["passed_base"], row["passed"], row["pass_at_1_base"]["value"]) == (2, 1, 1.0)


def test_other_runs_report_no_base_figures(tmp_path: Path, stub_provider: str) -> None:
    from codeduel.report import build_rows

    db = tmp_path / "runs.db"
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(
        json.dumps({"task_id": "t/0", "prompt": "def f():\n", "entry_point": "f", "test": ""})
        + "\n"
    )
    argv = ["run", str(tasks), "--model", stub_provider, "--no-progress", "--db", str(db)]
    assert exit_code(argv) == 0
    with Store(db) as store:
        (row,) = build_rows(store, store.runs()[0])
    assert row.pass_at_1_base is None
    assert "pass_at_1_base" not in row.to_json() and "passed_base" not in row.to_json()
