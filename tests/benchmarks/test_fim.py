"""HumanEval-Infilling: the splits as the official release cut them, the check program its
harness runs, the official files through a real HTTP server on loopback, and runs through the
command line with a provider that takes FIM natively and one that only chats."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.benchmarks.fim import FIM_BENCHMARKS, FimTask, download
from codeduel.errors import BenchmarkError
from codeduel.models import (
    Capabilities,
    GenerateConfig,
    Message,
    ModelOutput,
    Provider,
    ProviderOptions,
)
from codeduel.store import Store
from tests.cli_run import exit_code


def test_the_splits_have_the_official_counts_and_ids() -> None:
    single = load_benchmark("humaneval-fim-single")
    multi = load_benchmark("humaneval-fim-multi")
    span = load_benchmark("humaneval-fim-span")
    assert (len(single.tasks), len(multi.tasks), len(span.tasks)) == (1033, 5815, 1640)
    # HumanEval/0's solution has 8 lines, the 7th (L6) blank: no task masks it alone, and a
    # span may run over it but neither start nor end on it.
    ids = [
        t.task_id for t in single.tasks if t.task_id.startswith("SingleLineInfilling/HumanEval/0/")
    ]
    assert ids == [f"SingleLineInfilling/HumanEval/0/L{i}" for i in (0, 1, 2, 3, 4, 5, 7)]
    multi_ids = {t.task_id for t in multi.tasks}
    assert "MultiLineInfilling/HumanEval/0/L0_L7" in multi_ids
    assert "MultiLineInfilling/HumanEval/0/L6_L7" not in multi_ids
    assert "MultiLineInfilling/HumanEval/0/L5_L6" not in multi_ids
    assert span.tasks[0].task_id == "RandomSpanInfilling/HumanEval/0/s0"


def test_a_task_is_cut_where_its_id_says_and_scored_as_the_harness_does() -> None:
    bench = load_benchmark("humaneval-fim-multi")
    task = next(t for t in bench.tasks if t.task_id == "MultiLineInfilling/HumanEval/0/L0_L7")
    assert isinstance(task, FimTask)
    assert task.suffix == ""
    assert task.canonical_solution is not None
    assert task.canonical_solution.startswith("    for idx, elem in enumerate(numbers):\n")
    assert task.canonical_solution.endswith("\n\n    return False\n")
    # HumanEval-Infilling's check program: prompt + completion + suffix, test, check(...).
    assert task.program("MID") == f"{task.prompt}MID\n{task.test}\ncheck(has_close_elements)\n"
    assert task.reference_solution() == task.canonical_solution
    assert task.code_from_completion("MID") == "MID"


def test_random_spans_are_seeded_and_hold_code() -> None:
    first = load_benchmark("humaneval-fim-span")
    again = load_benchmark("humaneval-fim-span")
    assert first.sha256 == again.sha256
    assert [t.canonical_solution for t in first.tasks] == [
        t.canonical_solution for t in again.tasks
    ]
    assert all((t.canonical_solution or "").strip() for t in first.tasks)
    assert len({t.task_id for t in first.tasks}) == 1640


def test_canonical_middles_pass_and_a_wrong_one_fails_in_the_sandbox() -> None:
    from codeduel.executors import LocalExecutor
    from codeduel.sandbox import Sandbox

    bench = load_benchmark("humaneval-fim-single")
    tasks = bench.tasks[::150]

    async def run(executor: LocalExecutor) -> tuple[list[str], str]:
        jobs = [(t.program(t.canonical_solution or ""), 10.0) for t in tasks]
        results = await executor.run_many(jobs)
        wrong = await executor.run(tasks[0].program("    return not True\n"), 10.0)
        return [r.status for r in results], wrong.status

    with Sandbox(workers=2) as box:
        statuses, wrong = asyncio.run(run(LocalExecutor(box)))
    assert statuses == ["passed"] * len(tasks)
    assert wrong != "passed"


# --- the official files ---------------------------------------------------------------------


def _official_gz() -> bytes:
    """The single-line split in the official file's schema, gzipped (a stand-in for it)."""
    rows = [
        {
            "task_id": t.task_id,
            "prompt": t.prompt,
            "suffix": t.suffix,
            "canonical_solution": t.canonical_solution,
            "test": t.test,
            "entry_point": t.entry_point,
        }
        for t in load_benchmark("humaneval-fim-single").tasks
        if isinstance(t, FimTask)
    ]
    return gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())


class _GitHub(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    # What the server sends instead, and the Content-Length it states.
    served: ClassVar[dict[str, bytes]] = {}
    stated: ClassVar[int | None] = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.files:
            self.send_error(404)
            return
        data = self.served.get(name, self.files[name])
        self.send_response(200)
        self.send_header("content-length", str(self.stated or len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def official() -> bytes:
    return _official_gz()


@pytest.fixture
def github(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, official: bytes
) -> Iterator[type[_GitHub]]:
    class GitHub(_GitHub):
        files: ClassVar[dict[str, bytes]] = {"HumanEval-SingleLineInfilling.jsonl.gz": official}
        served: ClassVar[dict[str, bytes]] = {}
        stated: ClassVar[int | None] = None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GitHub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("CODEDUEL_FIM_URL", f"http://127.0.0.1:{httpd.server_address[1]}/data")
    monkeypatch.setenv("CODEDUEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CODEDUEL_FIM_DIR", raising=False)
    yield GitHub
    httpd.shutdown()
    httpd.server_close()


def test_the_official_file_is_downloaded_once_and_used(
    github: type[_GitHub], tmp_path: Path
) -> None:
    bench = load_benchmark("humaneval-fim-single@official")
    assert bench.name == "humaneval-fim-single@official"
    assert len(bench.tasks) == 1033
    cached = tmp_path / "cache" / "datasets" / "humaneval-infilling"
    assert [p.name for p in cached.iterdir()] == ["HumanEval-SingleLineInfilling.jsonl.gz"]
    github.files = {}
    assert load_benchmark("humaneval-fim-single@official").sha256 == bench.sha256
    # Without @official the tasks are built, unless CODEDUEL_FIM_DIR holds the file.
    assert load_benchmark("humaneval-fim-single").name == "humaneval-fim-single"


def test_a_folder_of_official_files_wins_over_building(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, official: bytes
) -> None:
    (tmp_path / "HumanEval-SingleLineInfilling.jsonl.gz").write_bytes(official)
    monkeypatch.setenv("CODEDUEL_FIM_DIR", str(tmp_path))
    assert load_benchmark("humaneval-fim-single").name == "humaneval-fim-single@official"


@pytest.mark.parametrize(
    ("cut", "fragment"),
    [
        (lambda raw: raw[: len(raw) // 2], "cut off or corrupt"),
        (
            lambda raw: gzip.compress(b"".join(gzip.decompress(raw).splitlines(True)[:-5])),
            "holds 1028",
        ),
        (lambda raw: raw[:12] + bytes(b ^ 0xFF for b in raw[12:40]) + raw[40:], "corrupt"),
    ],
)
def test_a_cut_or_corrupt_download_is_refused_and_nothing_is_left(
    github: type[_GitHub], tmp_path: Path, official: bytes, cut: object, fragment: str
) -> None:
    name = "HumanEval-SingleLineInfilling.jsonl.gz"
    assert callable(cut)
    github.served = {name: cut(official)}
    target = tmp_path / "out" / name
    with pytest.raises(BenchmarkError, match=fragment):
        url = f"{os.environ['CODEDUEL_FIM_URL']}/{name}"
        download(url, target, FIM_BENCHMARKS["humaneval-fim-single"])
    assert not target.exists()


def test_a_short_read_against_its_length_is_refused(github: type[_GitHub], official: bytes) -> None:
    github.stated = len(official) + 10
    with pytest.raises(BenchmarkError, match="incomplete"):
        load_benchmark("humaneval-fim-single@official")


def test_a_corrupt_download_is_one_sentence_and_exit_2_at_the_cli(
    github: type[_GitHub], capsys: pytest.CaptureFixture[str], stub_provider: str, official: bytes
) -> None:
    github.served = {"HumanEval-SingleLineInfilling.jsonl.gz": official[:-300]}
    code = exit_code(["run", "humaneval-fim-single@official", "--model", stub_provider])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "cut off or corrupt" in err


# --- runs: a FIM provider and a chat provider -----------------------------------------------


class FimStubOptions(ProviderOptions):
    # Takes FIM requests natively (a FIM-trained model, an openai-compat server).
    native: bool = True


seen: list[tuple[tuple[Message, ...], GenerateConfig]] = []


class FimStub(Provider):
    """Answers a FIM call with the canonical middle of the task whose prefix it was given
    (and a chat prompt with that middle in a fence, after the prefix's last line)."""

    name = "fimstub"
    Options = FimStubOptions
    middles: ClassVar[dict[str, str]] = {}

    def __init__(self, model: str, options: ProviderOptions) -> None:
        super().__init__(model, options)
        assert isinstance(options, FimStubOptions)
        self.capabilities = Capabilities(
            local=True, deterministic_greedy=True, supports_prefill=False, infill=options.native
        )

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        seen.append((tuple(messages), config))
        if config.infill is not None:
            return ModelOutput(
                self.middles[config.infill[0]].removesuffix("\n"), "stop", 9, 3, 0.01
            )
        prompt = messages[-1].content
        prefix = next(p for p in self.middles if f"{p}<FILL_ME>" in prompt)
        last = prefix.rstrip("\n").rsplit("\n", 1)[-1]
        answer = f"Here it is:\n```python\n{last}\n{self.middles[prefix]}```\n"
        return ModelOutput(answer, "stop", 9, 3, 0.01)


@pytest.fixture
def fimstub() -> Iterator[str]:
    from codeduel.models import register_provider, unregister_provider

    task_ids = [f"SingleLineInfilling/HumanEval/{n}/L0" for n in (0, 2, 7)]
    bench = load_benchmark("humaneval-fim-single")
    FimStub.middles = {
        t.prompt: t.canonical_solution or "" for t in bench.tasks if t.task_id in task_ids
    }
    seen.clear()
    register_provider("fimstub", "tests.benchmarks.test_fim:FimStub")
    yield ",".join(task_ids)
    unregister_provider("fimstub")


@pytest.mark.parametrize("native", [True, False])
def test_a_run_sends_fim_natively_or_as_chat_and_grades_the_middle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fimstub: str, native: bool
) -> None:
    db = tmp_path / "runs.db"
    argv = [
        "run", "humaneval-fim-single", "--task-ids", fimstub, "--model", "fimstub/m",
        "-M", f"native={str(native).lower()}", "--no-progress", "--db", str(db),
        "--run-name", "r",
    ]  # fmt: skip
    assert exit_code(argv) == 0, capsys.readouterr().err
    with Store(db) as store:
        rows = store.db.execute("SELECT status, extract_method FROM samples").fetchall()
    method = "infill" if native else "infill_chat"
    assert [tuple(r) for r in rows] == [("passed", method)] * 3
    messages, config = seen[0]
    if native:
        # No chat prompt: the prefix and suffix alone, stopping at the one line's end.
        assert messages == () and config.infill is not None and config.stop == ("\n",)
    else:
        assert config.infill is None and "<FILL_ME>" in messages[-1].content
