"""LiveCodeBench code generation (Jain et al. 2024), in its "lite" release format.

Problems come from the JSONL files of the Hugging Face dataset
`livecodebench/code_generation_lite`; a release (`release_v1` … `release_v6`, `v2`, `v1_v3`,
as LiveCodeBench's own loading script defines them) names the files it holds. They are read
from `$CODEDUEL_LCB_DIR` when set (an offline copy), else the user cache, else downloaded
once from the dataset's URLs (`$HF_ENDPOINT` for a mirror). A download is checked against
the size and sha256 the Hub states for the file and lands atomically; a file whose lines do
not parse is refused as cut off or corrupt.

A benchmark spec names the release and a window of contest dates, e.g.
`livecodebench@release_v6,since=2025-02-01,until=2025-05-01`; the window keeps problems whose
contest date is in it, both ends included (LiveCodeBench's own filter). `after_cutoff(MODEL)`
gives the first day after a model's training cutoff, from a small table (package data,
overridden by `$CODEDUEL_CUTOFFS` or `--cutoffs`).

Private tests are stored as base64 of zlib of a pickle of JSON text. LiveCodeBench reads them
with `pickle.loads`, which runs whatever the downloaded file says; here the pickle is read by
an unpickler that resolves no global at all, so only the plain values a pickle builds
itself (a str, here) can come out, and the decompressed size is bounded.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from codeduel.benchmarks._types import Benchmark, Task
from codeduel.errors import BenchmarkError, OptionError
from codeduel.types import Message

if TYPE_CHECKING:
    from codeduel.sandbox import ExecResult

__all__ = [
    "DEFAULT_RELEASE",
    "RELEASES",
    "TEST_TIMEOUT_S",
    "LcbSpec",
    "LiveCodeBenchTask",
    "after_cutoff",
    "dataset_url",
    "decode_private_tests",
    "download",
    "load_cutoffs",
    "load_livecodebench",
    "parse_spec",
]

NAME = "livecodebench"
REPO = "livecodebench/code_generation_lite"
DEFAULT_RELEASE = "release_v6"
TEST_TIMEOUT_S = 6
"""Seconds per test, LiveCodeBench's default (`--timeout 6`)."""
_MAX_DECODED = 1 << 30
_FILES = ["test.jsonl", *(f"test{i}.jsonl" for i in range(2, 7))]
_VERSIONS = [f"v{i}" for i in range(1, 7)]


def _releases() -> dict[str, tuple[str, ...]]:
    """Which files each version tag holds, as LiveCodeBench's dataset script defines them."""
    releases = {f"release_v{i}": tuple(_FILES[:i]) for i in range(1, 7)}
    releases["release_latest"] = tuple(_FILES)
    releases |= {v: (_FILES[i],) for i, v in enumerate(_VERSIONS)}
    for a in range(len(_VERSIONS)):
        for b in range(a + 1, len(_VERSIONS)):
            releases[f"{_VERSIONS[a]}_{_VERSIONS[b]}"] = tuple(_FILES[a : b + 1])
    return releases


RELEASES = _releases()
_FIELDS = (
    "question_title",
    "question_content",
    "platform",
    "question_id",
    "contest_id",
    "contest_date",
    "starter_code",
    "difficulty",
    "public_test_cases",
    "private_test_cases",
    "metadata",
)
SYSTEM_MESSAGE = (
    "You are an expert Python programmer. You will be given a question (problem "
    "specification) and will generate a correct Python program that matches the "
    "specification and passes all tests."
)
_WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and "
    "enclose your code within delimiters."
)
_WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not "
    "directly test on the sample inputs). Enclose your code within delimiters as follows. "
    "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
    "writes output to STDOUT."
)


# --- the spec: release and window --------------------------------------------------------


@dataclass(frozen=True)
class LcbSpec:
    release: str = DEFAULT_RELEASE
    since: date | None = None
    until: date | None = None
    timeout_s: int = TEST_TIMEOUT_S

    @property
    def name(self) -> str:
        """The canonical spec, stored as the run's benchmark (resume and rescore read it)."""
        parts = [f"{NAME}@{self.release}"]
        if self.since:
            parts.append(f"since={self.since.isoformat()}")
        if self.until:
            parts.append(f"until={self.until.isoformat()}")
        if self.timeout_s != TEST_TIMEOUT_S:
            parts.append(f"timeout={self.timeout_s}")
        return ",".join(parts)

    def window(self) -> str:
        if not self.since and not self.until:
            return "all contest dates"
        start = self.since.isoformat() if self.since else "the first problem"
        end = self.until.isoformat() if self.until else "the last problem"
        return f"contest dates {start} to {end}"

    def holds(self, contest_date: str) -> bool:
        day = _date(contest_date[:10], "contest_date")
        return (self.since is None or day >= self.since) and (
            self.until is None or day <= self.until
        )


def _date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BenchmarkError(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


def parse_spec(spec: str) -> LcbSpec:
    """`livecodebench[@RELEASE][,since=DATE][,until=DATE][,timeout=S]`."""
    head, *options = spec.split(",")
    name, _, release = head.partition("@")
    if name != NAME:
        raise BenchmarkError(f"not a LiveCodeBench spec: {spec!r}")
    release = release or DEFAULT_RELEASE
    if release not in RELEASES:
        raise BenchmarkError(
            f"unknown LiveCodeBench release {release!r}: use release_v1 … release_v6, "
            "release_latest, v1 … v6 or a range such as v2_v5"
        )
    values: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in ("since", "until", "timeout") or key in values:
            raise BenchmarkError(f"{spec!r}: {option!r} is not since=, until= or timeout=")
        values[key] = value.strip()
    since = _date(values["since"], "since") if "since" in values else None
    until = _date(values["until"], "until") if "until" in values else None
    if since and until and since > until:
        raise BenchmarkError(f"{spec!r}: the window starts after it ends")
    timeout = values.get("timeout", str(TEST_TIMEOUT_S))
    if not timeout.isdigit() or int(timeout) < 1:
        raise BenchmarkError(f"{spec!r}: timeout= takes whole seconds, at least 1")
    return LcbSpec(release, since, until, int(timeout))


def load_cutoffs(path: Path | None = None) -> dict[str, dict[str, str]]:
    """Models' training cutoffs: the bundled table with `path` (or $CODEDUEL_CUTOFFS) over it."""
    bundled = resources.files("codeduel.benchmarks").joinpath("data/cutoffs.json")
    table = dict(json.loads(bundled.read_text("utf-8"))["models"])
    override = path or (
        Path(os.environ["CODEDUEL_CUTOFFS"]) if os.environ.get("CODEDUEL_CUTOFFS") else None
    )
    if override is None:
        return table
    try:
        data = json.loads(override.read_text(encoding="utf-8"))
        models = data["models"]
        for entry in models.values():
            _date(str(entry["cutoff"]), f"{override}: cutoff")
    except OSError as exc:
        raise OptionError(f"cannot read the cutoff table {override}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OptionError(
            f'cutoff table {override} is not {{"models": {{NAME: {{"cutoff": DATE}}}}}} ({exc})'
        ) from None
    return {**table, **models}


def after_cutoff(model: str, path: Path | None = None) -> tuple[date, str]:
    """The first day after `model`'s training cutoff, and where the cutoff comes from."""
    table = load_cutoffs(path)
    entry = table.get(model) or table.get(model.rpartition("/")[2])
    if entry is None:
        raise OptionError(
            f"no training cutoff known for {model!r}: add it to a table given with --cutoffs "
            "or $CODEDUEL_CUTOFFS, or give --since"
        )
    cutoff = _date(str(entry["cutoff"]), f"cutoff of {model}")
    return cutoff + timedelta(days=1), f"{model}'s cutoff {cutoff} ({entry.get('basis', '')})"


# --- the tasks ----------------------------------------------------------------------------


class _NoGlobals(pickle.Unpickler):
    """Builds only what a pickle's own opcodes make (str, bytes, numbers, lists, dicts):
    no class, function or module can be named, so nothing can be called."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the test data names {module}.{name}; refused")


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_DECODED)
    if inflater.unconsumed_tail:
        raise ValueError(f"decompresses to over {_MAX_DECODED} bytes")
    return out


def decode_private_tests(raw: str) -> list[dict[str, Any]]:
    """The private tests of one problem: JSON, or base64 of zlib of a pickled JSON string
    (LiveCodeBench's encoding), read without running anything the data names."""
    try:
        tests = json.loads(raw)
    except ValueError:
        try:
            text = _NoGlobals(io.BytesIO(_inflate(base64.b64decode(raw.encode())))).load()
        except (ValueError, zlib.error, pickle.UnpicklingError, EOFError, TypeError) as exc:
            raise ValueError(f"private_test_cases cannot be decoded ({exc})") from None
    else:
        return _tests(tests, "private_test_cases")
    if not isinstance(text, str):
        raise ValueError(f"private_test_cases unpickle to {type(text).__name__}, not text")
    tests = json.loads(text)
    return _tests(tests, "private_test_cases")


def _tests(tests: object, what: str) -> list[dict[str, Any]]:
    if not isinstance(tests, list) or not all(
        isinstance(t, dict) and isinstance(t.get("input"), str) and isinstance(t.get("output"), str)
        for t in tests
    ):
        raise ValueError(f"{what} is not a list of {{input, output}} strings")
    return tests


@functools.lru_cache(maxsize=4)
def _private(raw: str) -> tuple[tuple[str, str], ...]:
    return tuple((t["input"], t["output"]) for t in decode_private_tests(raw))


@functools.lru_cache(maxsize=1)
def _harness() -> str:
    return resources.files("codeduel.benchmarks").joinpath("_lcb_harness.py").read_text("utf-8")


@dataclass(frozen=True)
class LiveCodeBenchTask(Task):
    """One problem. Its hidden tests are the public and the private ones (as LiveCodeBench
    grades), its visible tests the public ones; both run through `_lcb_harness.py`."""

    question: str = ""
    starter_code: str = ""
    # The method a functional (LeetCode) problem's `Solution` defines; None: stdin/stdout.
    fn_name: str | None = None
    public_tests: tuple[tuple[str, str], ...] = ()
    private_raw: str = "[]"
    n_tests: int = 0
    test_timeout_s: int = TEST_TIMEOUT_S
    platform: str = ""
    difficulty: str = ""
    contest_date: str = ""
    # A stdin answer prints at its top level: generation must not stop there.
    stops_after_code: ClassVar[bool] = False

    def _program(self, solution: str, tests: tuple[tuple[str, str], ...]) -> str:
        spec = {
            "code": solution,
            "inputs": [i for i, _ in tests],
            "outputs": [o for _, o in tests],
            "fn_name": self.fn_name,
            "timeout": self.test_timeout_s,
        }
        return f"{_harness()}\n\n_lcb_main(json.loads({json.dumps(json.dumps(spec))}))\n"

    def program(self, solution: str) -> str:
        return self._program(solution, self.public_tests + _private(self.private_raw))

    def visible_program(self, solution: str) -> str:
        return self._program(solution, self.public_tests)

    def time_limit_floor_s(self) -> float:
        # LiveCodeBench's own bound on a whole problem: (timeout + 1) per test, plus 5 s.
        return float((self.test_timeout_s + 1) * self.n_tests + 5)

    def read_result(self, result: ExecResult) -> ExecResult:
        from dataclasses import replace

        if result.status == "error" and result.detail.startswith("TimeLimitExceeded:"):
            return replace(result, status="timeout")
        return result

    def chat_prompt(self) -> tuple[tuple[Message, ...], str]:
        """LiveCodeBench's generic prompt, with the answer's fence prefilled."""
        text = f"### Question:\n{self.question}\n\n"
        if self.starter_code:
            text += f"### Format: {_WITH_STARTER}\n```python\n{self.starter_code}\n```\n\n"
        else:
            text += f"### Format: {_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
        text += "### Answer: (use the provided format with backticks)\n\n"
        return (Message("system", SYSTEM_MESSAGE), Message("user", text)), "```python\n"


def _shown(tests: tuple[tuple[str, str], ...]) -> str:
    """The public tests as the model may see them in feedback."""
    return "\n".join(
        f"# test {n}\n# input:\n{_comment(i)}\n# expected output:\n{_comment(o)}"
        for n, (i, o) in enumerate(tests, start=1)
    )


def _comment(text: str) -> str:
    return "\n".join(f"#   {line}" for line in text.rstrip("\n").split("\n"))


def lcb_task(row: Mapping[str, Any], timeout_s: int = TEST_TIMEOUT_S) -> LiveCodeBenchTask:
    """One JSONL row of the dataset as a task; ValueError/KeyError/TypeError when malformed."""
    missing = [k for k in _FIELDS if k not in row]
    if missing:
        raise KeyError(f"missing field(s) {', '.join(missing)}")
    bad = [k for k in _FIELDS if not isinstance(row[k], str)]
    if bad:
        raise TypeError(f"field(s) {', '.join(bad)} must be strings")
    public = _tests(json.loads(row["public_test_cases"]), "public_test_cases")
    private = _private(row["private_test_cases"])
    metadata = json.loads(row["metadata"] or "{}")
    fn_name = metadata.get("func_name") if isinstance(metadata, dict) else None
    if fn_name is not None and not (isinstance(fn_name, str) and fn_name.isidentifier()):
        raise ValueError(f"metadata func_name {fn_name!r} is not a Python identifier")
    shown = tuple((t["input"], t["output"]) for t in public)
    return LiveCodeBenchTask(
        task_id=f"LiveCodeBench/{row['question_id']}",
        prompt=row["question_content"],
        entry_point="Solution" if fn_name else "",
        test="",
        visible_test=_shown(shown),
        question=row["question_content"],
        starter_code=row["starter_code"],
        fn_name=fn_name,
        public_tests=shown,
        private_raw=row["private_test_cases"],
        n_tests=len(shown) + len(private),
        test_timeout_s=timeout_s,
        platform=row["platform"],
        difficulty=row["difficulty"],
        contest_date=row["contest_date"],
    )


# --- the files ----------------------------------------------------------------------------


def dataset_url(filename: str) -> str:
    """Where the Hub serves one of the dataset's files ($HF_ENDPOINT for a mirror)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/datasets/{REPO}/resolve/main/{filename}"


def _cache_dir() -> Path:
    override = os.environ.get("CODEDUEL_CACHE_DIR")
    if override:
        return Path(override) / "datasets" / NAME
    import platformdirs

    return Path(platformdirs.user_cache_dir("codeduel")) / "datasets" / NAME


class _Linked(urllib.request.HTTPRedirectHandler):
    """Keeps what the Hub says of a file on its redirect to the CDN: size and sha256."""

    def __init__(self) -> None:
        self.stated: dict[str, str] = {}

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        for name in ("x-linked-size", "x-linked-etag"):
            if headers.get(name):
                self.stated[name] = headers[name].strip().strip('"')
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(
    url: str,
    target: Path,
    timeout_s: float = 60.0,
    *,
    title: str = "LiveCodeBench's",
    hint: str = "set CODEDUEL_LCB_DIR to a folder holding the dataset's files",
) -> Path:
    """Fetch `url` into `target` atomically. A file shorter or longer than stated, or whose
    sha256 is not the one the Hub states for it, is refused and nothing is left behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    linked = _Linked()
    opener = urllib.request.build_opener(linked)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        digest = hashlib.sha256()
        size = 0
        try:
            with opener.open(url, timeout=timeout_s) as response, os.fdopen(fd, "wb") as out:
                length = response.headers.get("content-length")
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BenchmarkError(
                f"could not download {title} {target.name} from {url} ({reason}); {hint}"
            ) from None
        expected = linked.stated.get("x-linked-size") or length
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise BenchmarkError(
                f"the download of {target.name} from {url} is incomplete ({size} of "
                f"{expected} bytes); run again to download it anew"
            )
        sha = linked.stated.get("x-linked-etag")
        if sha and re.fullmatch(r"[0-9a-f]{64}", sha) and sha != digest.hexdigest():
            raise BenchmarkError(
                f"the download of {target.name} from {url} is corrupt (sha256 "
                f"{digest.hexdigest()}, the Hub states {sha}); run again to download it anew"
            )
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _locate(filename: str) -> Path:
    folder = os.environ.get("CODEDUEL_LCB_DIR")
    if folder:
        path = Path(folder) / filename
        if not path.is_file():
            raise BenchmarkError(f"CODEDUEL_LCB_DIR is set but {path} does not exist")
        return path
    cached = _cache_dir() / filename
    if cached.is_file():
        return cached
    return download(dataset_url(filename), cached)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise BenchmarkError(
                    f"{path}:{number}: not a JSON line: the file is cut off or corrupt; "
                    "delete it and run again to download it anew"
                ) from None
            if not isinstance(row, dict):
                raise BenchmarkError(f"{path}:{number}: expected a JSON object")
            yield number, row


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_livecodebench(spec_text: str = NAME) -> Benchmark:
    spec = parse_spec(spec_text)
    files = RELEASES[spec.release]
    paths = [_locate(name) for name in files]
    tasks: list[LiveCodeBenchTask] = []
    seen: set[str] = set()
    total = 0
    for path in paths:
        for number, row in _rows(path):
            total += 1
            contest_date = row.get("contest_date")
            if not isinstance(contest_date, str):
                raise BenchmarkError(f"{path}:{number}: contest_date must be a string")
            if not spec.holds(contest_date):
                continue
            try:
                task = lcb_task(row, spec.timeout_s)
            except (ValueError, KeyError, TypeError) as exc:
                message = exc.args[0] if exc.args else exc
                raise BenchmarkError(f"{path}:{number}: {message}") from None
            if task.task_id in seen:
                raise BenchmarkError(f"{path}:{number}: duplicate question_id {task.task_id!r}")
            seen.add(task.task_id)
            tasks.append(task)
    if not tasks:
        raise BenchmarkError(
            f"LiveCodeBench {spec.release} has no problem with {spec.window()} "
            f"({total} problems in all)"
        )
    digest = hashlib.sha256("".join(f"{p.name} {_sha256(p)}\n" for p in paths).encode())
    source = ", ".join(str(p) for p in paths)
    window = f"{spec.release}, {spec.window()}: {len(tasks)} of {total} problems"
    return Benchmark(spec.name, tuple(tasks), digest.hexdigest(), source, window)
