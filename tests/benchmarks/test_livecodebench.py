"""LiveCodeBench: releases and windows, the private tests' decoding, the download path against a
real HTTP server on loopback, and a run through the command line on the fixtures."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import pickle
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.benchmarks.livecodebench import (
    RELEASES,
    LiveCodeBenchTask,
    after_cutoff,
    dataset_url,
    decode_private_tests,
    download,
    parse_spec,
)
from codeduel.errors import BenchmarkError, OptionError
from codeduel.prompts import code_prompt
from codeduel.store import Store
from codeduel.types import GenerateConfig
from tests.cli_run import exit_code

FIXTURES = Path(__file__).parents[1] / "data" / "livecodebench"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODEDUEL_LCB_DIR", str(FIXTURES))
    return FIXTURES


def test_releases_hold_the_files_livecodebench_names() -> None:
    assert RELEASES["release_v1"] == ("test.jsonl",)
    assert RELEASES["release_v3"] == ("test.jsonl", "test2.jsonl", "test3.jsonl")
    assert RELEASES["v2"] == ("test2.jsonl",)
    assert RELEASES["v2_v4"] == ("test2.jsonl", "test3.jsonl", "test4.jsonl")
    assert RELEASES["release_latest"] == RELEASES["release_v6"]


def test_a_window_keeps_the_contests_in_it_both_ends_included(offline: Path) -> None:
    everything = load_benchmark("livecodebench@release_v2")
    assert len(everything.tasks) == 5
    first = load_benchmark("livecodebench@release_v1")
    assert [t.task_id for t in first.tasks] == [
        "LiveCodeBench/9001",
        "LiveCodeBench/9002",
        "LiveCodeBench/abc900_a",
    ]
    window = load_benchmark("livecodebench@release_v2,since=2023-12-02,until=2024-09-14")
    assert [t.task_id for t in window.tasks] == [
        "LiveCodeBench/9002",
        "LiveCodeBench/abc900_a",
        "LiveCodeBench/1999_A",
    ]
    assert window.name == "livecodebench@release_v2,since=2023-12-02,until=2024-09-14"
    assert window.window == ("release_v2, contest dates 2023-12-02 to 2024-09-14: 3 of 5 problems")
    with pytest.raises(BenchmarkError, match="no problem with contest dates 2026-01-01"):
        load_benchmark("livecodebench@release_v2,since=2026-01-01")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("livecodebench@release_v9", "unknown LiveCodeBench release"),
        ("livecodebench,since=yesterday", "not a date"),
        ("livecodebench,since=2025-01-02,until=2025-01-01", "starts after it ends"),
        ("livecodebench,from=2025-01-01", "not since="),
    ],
)
def test_bad_specs_are_refused(spec: str, fragment: str) -> None:
    with pytest.raises(BenchmarkError, match=fragment):
        parse_spec(spec)


def test_the_cutoff_table_is_bundled_and_a_users_table_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    day, basis = after_cutoff("anthropic/claude-sonnet-4-5")
    assert day.isoformat() == "2025-08-01"
    assert "Anthropic" in basis
    mine = tmp_path / "cutoffs.json"
    mine.write_text(json.dumps({"models": {"my-model": {"cutoff": "2024-02-29"}}}))
    monkeypatch.setenv("CODEDUEL_CUTOFFS", str(mine))
    assert after_cutoff("openai-compat/my-model")[0].isoformat() == "2024-03-01"
    with pytest.raises(OptionError, match="no training cutoff known"):
        after_cutoff("nobody/knows")


def _pickled(value: object) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(value))).decode()


def test_private_tests_decode_as_livecodebench_encodes_them() -> None:
    tests = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    assert decode_private_tests(_pickled(json.dumps(tests))) == tests
    assert decode_private_tests(json.dumps(tests)) == tests


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("ran code from the dataset",))


def test_a_pickle_that_names_anything_is_refused_without_running_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValueError, match=r"names builtins\.print; refused"):
        decode_private_tests(_pickled(_Boom()))
    assert "ran code" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="not text"):
        decode_private_tests(_pickled([1, 2]))


def test_the_prompt_is_livecodebenchs_and_generation_may_not_stop_at_a_print(
    offline: Path,
) -> None:
    tasks = {t.task_id: t for t in load_benchmark("livecodebench@release_v1").tasks}
    functional = tasks["LiveCodeBench/9001"]
    assert isinstance(functional, LiveCodeBenchTask)
    assert functional.fn_name == "maxPairSum" and functional.entry_point == "Solution"
    prompt = code_prompt(functional)
    assert prompt.messages[0].role == "system"
    assert "### Format: You will use the following starter code" in prompt.messages[1].content
    stdin = code_prompt(tasks["LiveCodeBench/abc900_a"])
    assert "Read the inputs from stdin" in stdin.messages[1].content
    assert stdin.config(GenerateConfig()).stop == ("\n```",)
    # HumanEval-style tasks keep their stops after the code.
    assert (
        "\nprint("
        in code_prompt(load_benchmark("humaneval").tasks[0]).config(GenerateConfig()).stop
    )


# --- the download path ----------------------------------------------------------------------


class _Hub(http.server.BaseHTTPRequestHandler):
    """The Hub's resolve URL: a redirect stating the file's size and sha256, then the file
    (its bytes as `served`, which a test may cut or change)."""

    files: ClassVar[dict[str, bytes]] = {}
    served: ClassVar[dict[str, bytes]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        prefix = "/datasets/livecodebench/code_generation_lite/resolve/main/"
        if self.path.startswith(prefix):
            name = self.path[len(prefix) :]
            if name not in self.files:
                self.send_error(404)
                return
            self.send_response(302)
            self.send_header("location", f"/cdn/{name}")
            self.send_header("x-linked-size", str(len(self.files[name])))
            self.send_header("x-linked-etag", f'"{hashlib.sha256(self.files[name]).hexdigest()}"')
            self.end_headers()
            return
        name = self.path.removeprefix("/cdn/")
        data = self.served.get(name, self.files.get(name, b""))
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[type[_Hub]]:
    class Hub(_Hub):
        files: ClassVar[dict[str, bytes]] = {
            n: (FIXTURES / n).read_bytes() for n in ("test.jsonl", "test2.jsonl")
        }
        served: ClassVar[dict[str, bytes]] = {}

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setenv("CODEDUEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CODEDUEL_LCB_DIR", raising=False)
    yield Hub
    httpd.shutdown()
    httpd.server_close()


def test_the_files_are_downloaded_once_into_the_cache(hub: type[_Hub], tmp_path: Path) -> None:
    assert dataset_url("test.jsonl").endswith(
        "/datasets/livecodebench/code_generation_lite/resolve/main/test.jsonl"
    )
    bench = load_benchmark("livecodebench@release_v2")
    assert len(bench.tasks) == 5
    cache = tmp_path / "cache" / "datasets" / "livecodebench"
    assert sorted(p.name for p in cache.iterdir()) == ["test.jsonl", "test2.jsonl"]
    hub.files = {}
    # Read from the cache now: the server has nothing left.
    assert load_benchmark("livecodebench@release_v2").sha256 == bench.sha256


def test_a_cut_download_is_refused_and_nothing_is_left(hub: type[_Hub], tmp_path: Path) -> None:
    hub.served = {"test.jsonl": hub.files["test.jsonl"][:-100]}
    target = tmp_path / "out" / "test.jsonl"
    with pytest.raises(BenchmarkError, match="is incomplete"):
        download(dataset_url("test.jsonl"), target)
    assert list(target.parent.iterdir()) == []


def test_a_changed_download_is_refused(hub: type[_Hub], tmp_path: Path) -> None:
    data = hub.files["test.jsonl"]
    hub.served = {"test.jsonl": data.replace(b"max-pair-sum", b"max-pair-sun")}
    with pytest.raises(BenchmarkError, match="is corrupt"):
        download(dataset_url("test.jsonl"), tmp_path / "test.jsonl")
    assert not (tmp_path / "test.jsonl").exists()


def test_a_corrupt_download_is_one_sentence_and_exit_2_at_the_cli(
    hub: type[_Hub], capsys: pytest.CaptureFixture[str], stub_provider: str
) -> None:
    hub.served = {"test.jsonl": hub.files["test.jsonl"][:-100]}
    code = exit_code(["run", "livecodebench", "--release", "v1", "--model", stub_provider])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "is incomplete" in err


def test_a_cut_off_offline_file_is_one_sentence_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stub_provider: str
) -> None:
    copy = tmp_path / "lcb"
    copy.mkdir()
    (copy / "test.jsonl").write_bytes((FIXTURES / "test.jsonl").read_bytes()[:-50])
    code = exit_code(["run", "livecodebench@v1", "--lcb-dir", str(copy), "--model", stub_provider])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "cut off or corrupt" in err


# --- a run ----------------------------------------------------------------------------------

ROWS = "n = int(input())\nfor _ in range(n):\n    print(sum(map(int, input().split())))"


def test_a_run_on_a_window_grades_in_the_sandbox_and_reports_the_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stub_provider: str
) -> None:
    db = tmp_path / "runs.db"
    argv = [
        "run", "livecodebench", "--lcb-dir", str(FIXTURES), "--release", "release_v1",
        "--since", "2024-01-01", "--model", stub_provider, "-M", f"answer={ROWS}",
        "-M", "prefill=false",
        "--no-progress", "--db", str(db), "--run-name", "w",
    ]  # fmt: skip
    assert exit_code(argv) == 0
    out = capsys.readouterr().out
    assert "problems: release_v1, contest dates 2024-01-01 to the last problem: 1 of 3" in out
    with Store(db) as store:
        run = store.get_run("w")
        assert run is not None
        assert run.benchmark == "livecodebench@release_v1,since=2024-01-01"
        statuses = store.db.execute("SELECT task_id, status FROM samples").fetchall()
    assert [tuple(r) for r in statuses] == [("LiveCodeBench/abc900_a", "passed")]
