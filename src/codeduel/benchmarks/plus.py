"""EvalPlus's HumanEval+ and MBPP+ (Liu et al. 2023): the original tasks with many more test
inputs, graded by differential testing against the reference solution.

Each task's hidden program is EvalPlus's grader (`_plus_harness.py`, its source embedded) with
the task and the answer as JSON. It gives two verdicts per attempt: *base* (the original
benchmark's inputs) and *plus* (EvalPlus's added inputs). An attempt passes when both do, as
EvalPlus counts `humaneval+`; `Task.measured` keeps both (`executions.extra`). The visible
tests stay the prompt's examples.

The release files are read, in this order, from `CODEDUEL_EVALPLUS_DIR` (a folder holding
`HumanEvalPlus-v0.1.10.jsonl.gz` or `MbppPlus-v0.2.0.jsonl.gz`, or the release's own name, or
EvalPlus's uncompressed cache file), from EvalPlus's own override variables
(`HUMANEVAL_OVERRIDE_PATH`, `MBPP_OVERRIDE_PATH`: a file), from the user cache, and otherwise
downloaded once from EvalPlus's GitHub releases into the user cache. Whatever the source, the
file must match its pinned sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import urllib.request
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from codeduel.benchmarks._download import FETCH_ERRORS, write_atomically
from codeduel.benchmarks._types import Benchmark, Task
from codeduel.benchmarks._visible import docstring_checks
from codeduel.errors import BenchmarkError

__all__ = [
    "PLUS_BENCHMARKS",
    "RELEASES",
    "PlusTask",
    "Release",
    "download",
    "load_plus",
    "parse_plus_rows",
    "plus_verdicts",
]

DIR_ENV = "CODEDUEL_EVALPLUS_DIR"
MARK = "CODEDUEL-EVALPLUS"
# EvalPlus's longest phase: its 60 s cap on a task's inputs, + 2 s before it kills the process.
_PHASE_CAP_S = 62.0


@dataclass(frozen=True)
class Release:
    """One pinned EvalPlus release file."""

    benchmark: str
    # EvalPlus's name for the dataset: it picks the special oracles ("humaneval" or "mbpp").
    dataset: str
    title: str
    url: str
    # The name EvalPlus's own cache gives the uncompressed file, without ".jsonl".
    stem: str
    # sha256 of the .jsonl.gz as released at `url`.
    sha256: str
    # sha256 of its uncompressed JSONL (EvalPlus's cache file); None where not yet recorded.
    jsonl_sha256: str | None
    override_env: str
    tasks: int | None

    @property
    def filename(self) -> str:
        return f"{self.stem}.jsonl.gz"

    @property
    def release_filename(self) -> str:
        return self.url.rsplit("/", 1)[1]


# The URLs are the ones evalplus 0.3.1 builds (`evalplus.data.utils.get_dataset_metadata`) for
# its pinned versions (HUMANEVAL_PLUS_VERSION, MBPP_PLUS_VERSION). The sha256 of each release
# file could not be computed here (no internet where this was written): these are the values
# that several public projects' build scripts pin for the same files (three independent ones
# agree), still to be checked on a machine with internet (`curl -L URL | sha256sum`); a file
# that does not match is refused in one sentence. `jsonl_sha256`, the hash of
# the uncompressed file (`curl -L URL | gunzip | sha256sum`), is yet to be recorded. Tests pin
# their own fixtures instead (tests/benchmarks/test_plus_download.py).
RELEASES: dict[str, Release] = {
    "humaneval+": Release(
        benchmark="humaneval+",
        dataset="humaneval",
        title="HumanEval+ v0.1.10",
        url="https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/"
        "HumanEvalPlus.jsonl.gz",
        stem="HumanEvalPlus-v0.1.10",
        sha256="272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
        jsonl_sha256=None,
        override_env="HUMANEVAL_OVERRIDE_PATH",
        tasks=164,
    ),
    "mbpp+": Release(
        benchmark="mbpp+",
        dataset="mbpp",
        title="MBPP+ v0.2.0",
        url="https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/"
        "MbppPlus.jsonl.gz",
        stem="MbppPlus-v0.2.0",
        sha256="af43697e8791c4c149bdfd6b489d8b5412507551ac20e28a439f650b8225db63",
        jsonl_sha256=None,
        override_env="MBPP_OVERRIDE_PATH",
        tasks=378,
    ),
}
PLUS_BENCHMARKS = tuple(RELEASES)


def _harness_source() -> str:
    return resources.files("codeduel.benchmarks").joinpath("_plus_harness.py").read_text("utf-8")


@dataclass(frozen=True)
class PlusTask(Task):
    """A HumanEval+ or MBPP+ task: its hidden program is EvalPlus's grader over the inputs."""

    dataset: str = "humaneval"
    # The task's base and plus inputs as JSON, as the release holds them.
    base_input: str = "[]"
    plus_input: str = "[]"
    atol: float = 0.0
    inputs: tuple[int, int] = (0, 0)

    def program(self, solution: str) -> str:
        task = {
            "dataset": self.dataset,
            "task_id": self.task_id,
            "entry_point": self.entry_point,
            "atol": self.atol,
            "reference": self.reference_solution(),
            "solution": solution,
        }
        # The inputs go in as the release's own JSON text, not parsed and written again.
        payload = (
            json.dumps(task)[:-1] + f', "base": {self.base_input}, "plus": {self.plus_input}}}'
        )
        return f"{_harness_source()}\n\nmain({payload!r})\n"

    def reference_solution(self) -> str | None:
        # EvalPlus runs prompt + canonical solution for both datasets (`get_groundtruth`).
        return self.prompt + (self.canonical_solution or "")

    def hidden_timeout_s(self, limit: float) -> float:
        # EvalPlus's own limits (per input, per phase) apply inside the program; the sandbox's
        # limit only has to outlast them: each phase takes at most min(60, its limits) + 2 s,
        # each input's limit at most max(1 s, 4 × the reference's time, which is below limit).
        base, plus = self.inputs
        return round(limit + sum(min(_PHASE_CAP_S, n + limit + 2) for n in (base, plus)), 3)

    def measured(self, tests: str, status: str, detail: str) -> dict[str, Any] | None:
        return plus_verdicts(status, detail) if tests == "hidden" else None


_VERDICTS = re.compile(rf"{MARK} base=(pass|fail|timeout) plus=(pass|fail|timeout)\b")


def plus_verdicts(status: str, detail: str) -> dict[str, Any] | None:
    """EvalPlus's base and plus verdicts of one hidden run ("pass", "fail" or "timeout"), read
    from how the harness ended; None when it did not get as far as grading."""
    if status == "passed":
        return {"base": "pass", "plus": "pass"}
    found = _VERDICTS.search(detail) if status == "failed" else None
    return None if found is None else {"base": found[1], "plus": found[2]}


def _mbpp_visible(prompt: str) -> str:
    """The example assert MBPP+ puts in its prompt's docstring."""
    return "\n".join(
        line.strip() for line in prompt.splitlines() if line.strip().startswith("assert ")
    )


def _humaneval_visible(task_id: str, prompt: str, entry_point: str) -> str:
    from codeduel.benchmarks.humaneval import _WRONG_EXAMPLES

    return "\n".join(
        c for c in docstring_checks(prompt, entry_point) if (task_id, c) not in _WRONG_EXAMPLES
    )


_STRINGS = ("task_id", "prompt", "entry_point", "canonical_solution")


def _inputs(value: Any) -> bool:
    # Mbpp/793 of v0.2.0 holds its (empty) plus inputs as {}, which EvalPlus iterates as none.
    return isinstance(value, list) or value == {}


def parse_plus_rows(rows: list[tuple[str, dict[str, Any]]], dataset: str) -> list[PlusTask]:
    """Tasks from (where, object) rows of an EvalPlus release file."""
    tasks: list[PlusTask] = []
    seen: set[str] = set()
    for where, obj in rows:
        missing = [k for k in (*_STRINGS, "base_input", "plus_input", "atol") if k not in obj]
        if missing:
            raise BenchmarkError(f"{where}: missing field(s) {', '.join(missing)}")
        bad = [k for k in _STRINGS if not isinstance(obj[k], str)]
        bad += [k for k in ("base_input", "plus_input") if not _inputs(obj[k])]
        atol = obj["atol"]
        if isinstance(atol, bool) or not isinstance(atol, int | float):
            bad.append("atol")
        if bad:
            raise BenchmarkError(f"{where}: field(s) {', '.join(bad)} have the wrong type")
        task_id, prompt, entry = obj["task_id"], obj["prompt"], obj["entry_point"]
        if task_id in seen:
            raise BenchmarkError(f"{where}: duplicate task_id {task_id!r}")
        if not entry.isidentifier():
            raise BenchmarkError(f"{where}: entry_point {entry!r} is not a Python identifier")
        if dataset == "mbpp" and not re.fullmatch(r"\w+/\d+", task_id):
            raise BenchmarkError(f"{where}: MBPP+ task_id {task_id!r} is not Mbpp/NUMBER")
        seen.add(task_id)
        visible = (
            _mbpp_visible(prompt)
            if dataset == "mbpp"
            else _humaneval_visible(task_id, prompt, entry)
        )
        tasks.append(
            PlusTask(
                task_id=task_id,
                prompt=prompt,
                entry_point=entry,
                test="",
                test_style="check" if dataset == "humaneval" else "asserts",
                canonical_solution=obj["canonical_solution"],
                visible_test=visible,
                dataset=dataset,
                base_input=json.dumps(obj["base_input"]),
                plus_input=json.dumps(obj["plus_input"]),
                atol=float(atol),
                inputs=(len(obj["base_input"]), len(obj["plus_input"])),
            )
        )
    return tasks


def _cache_dir() -> Path:
    override = os.environ.get("CODEDUEL_CACHE_DIR")
    if override:
        return Path(override) / "datasets" / "evalplus"
    import platformdirs

    return Path(platformdirs.user_cache_dir("codeduel")) / "datasets" / "evalplus"


def download(release: Release, target: Path, timeout_s: float = 60.0) -> Path:
    """Fetch the release file into `target`, atomically: a file that is cut short or does not
    match its sha256 is refused, and nothing of it is left (a file already there stays)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(release.url, timeout=timeout_s) as response:
            data = response.read()
    except FETCH_ERRORS as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise BenchmarkError(
            f"could not download {release.title} from {release.url} ({reason}); set {DIR_ENV} "
            f"to a folder holding {release.filename}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != release.sha256:
        raise BenchmarkError(
            f"{release.title} from {release.url} has sha256 {digest}, expected "
            f"{release.sha256}: the download is corrupt or incomplete and was not kept"
        )
    return write_atomically(target, data)


def _locate(release: Release) -> Path:
    folder = os.environ.get(DIR_ENV)
    if folder:
        names = (release.filename, release.release_filename, f"{release.stem}.jsonl")
        for name in names:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
        raise BenchmarkError(
            f"{DIR_ENV} is set but {folder} holds none of {', '.join(names)} ({release.title})"
        )
    override = os.environ.get(release.override_env)
    if override:
        if not Path(override).is_file():
            raise BenchmarkError(f"{release.override_env} is set but {override} is not a file")
        return Path(override)
    cached = _cache_dir() / release.filename
    if cached.is_file():
        return cached
    return download(release, cached)


def _read(release: Release, path: Path) -> str:
    """The release's JSONL text from `path`, checked against its pinned sha256."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BenchmarkError(f"cannot read {path}: {exc.strerror}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if raw[:2] == b"\x1f\x8b":
        if digest != release.sha256:
            raise BenchmarkError(
                f"{path} has sha256 {digest}, expected {release.sha256} ({release.title})"
            )
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            raise BenchmarkError(f"{path} is not a readable gzip file") from None
    elif release.jsonl_sha256 is None:
        raise BenchmarkError(
            f"{path} is not gzip-compressed, and this codeduel has no pinned sha256 for "
            f"{release.title} uncompressed yet: use the release file {release.release_filename}"
        )
    elif digest != release.jsonl_sha256:
        raise BenchmarkError(
            f"{path} has sha256 {digest}, expected {release.jsonl_sha256} ({release.title})"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BenchmarkError(f"{path}: not UTF-8 text") from None


def load_plus(name: str) -> Benchmark:
    """`humaneval+` or `mbpp+`, from the pinned release file."""
    from codeduel.benchmarks.jsonl import read_jsonl

    release = RELEASES[name]
    path = _locate(release)
    text = _read(release, path)
    rows = [(f"{path}:{n}", obj) for n, obj in read_jsonl(text.splitlines(), str(path))]
    tasks = parse_plus_rows(rows, release.dataset)
    if release.tasks is not None and len(tasks) != release.tasks:
        raise BenchmarkError(f"{path} holds {len(tasks)} tasks, expected {release.tasks}")
    # One hash names the data whichever form it was read in: the release file's.
    return Benchmark(name, tuple(tasks), release.sha256, str(path))
