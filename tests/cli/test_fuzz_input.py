"""Bad input, generated: every input either works or gets one line on stderr and exit code 2.

Never a traceback, and never a partly written --output file. The CLI runs in-process; `run` uses
a stub provider, so each example costs a sandbox start, not a model load.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from codeduel.cli import main
from codeduel.store import Store

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TASK_IDS = [f"HumanEval/{i}" for i in (0, 2, 4, 7, 12, 29)]


pytestmark = pytest.mark.usefixtures("stub_provider")


def outcome(argv: list[str], capsys: pytest.CaptureFixture[str], output: Path | None = None) -> str:
    """'ok' or the one error line; fails the test on anything else."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    if output is not None:
        partial = [p.name for p in output.parent.iterdir() if p.name.startswith(f".{output.name}")]
        assert partial == [], partial
    if code == 0:
        event("works")
        return "ok"
    lines = captured.err.strip().splitlines()
    assert code == 2, (argv, captured.err)
    assert len(lines) == 1 and lines[0].startswith("codeduel: error: "), captured.err
    if output is not None:
        assert not output.exists()
    reason = re.sub(r"/\S*/", "", lines[0].removeprefix("codeduel: error: "))
    event("refused: " + re.sub(r"'.*'", "'…'", reason)[:50])
    return lines[0]


def fresh_dir(base: Path) -> Path:
    path = base / uuid.uuid4().hex
    path.mkdir()
    return path


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
junk = st.one_of(
    st.text(max_size=40),
    json_values,
    st.sampled_from(["", "f", "1x", "class", "def check(c):\n    assert c() == 1\n"]),
)


def mostly(valid: Any) -> st.SearchStrategy[Any]:
    """`valid`, mostly; else junk."""
    return st.sampled_from([True] * 6 + [False]).flatmap(lambda ok: st.just(valid) if ok else junk)


@st.composite
def task_lines(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        # Well-formed: strings everywhere, whatever they say.
        tasks = [
            {
                "task_id": task_id,
                "prompt": draw(st.sampled_from(["def f():\n", ""]) | st.text(max_size=30)),
                "entry_point": draw(st.sampled_from(["f", "g", "_x"])),
                "test": draw(
                    st.just("def check(c):\n    assert c() == 1\n") | st.text(max_size=30)
                ),
            }
            for task_id in ("a", "b")
        ]
        return "\n".join(json.dumps(task) for task in tasks).encode()
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["task", "task", "task", "task", "json", "text", "bytes"]))
        if kind == "task":
            task: dict[str, Any] = {
                "task_id": draw(st.one_of(st.sampled_from(["a", "b", "a", "b"]), junk)),
                "prompt": draw(mostly("def f():\n")),
                "entry_point": draw(mostly("f")),
                "test": draw(mostly("def check(c):\n    assert c() == 1\n")),
            }
            if draw(st.booleans()):
                task["canonical_solution"] = draw(mostly("    return 1\n"))
            if draw(st.integers(0, 4)) == 0:
                del task[draw(st.sampled_from(sorted(task)))]
            lines.append(json.dumps(task).encode())
        elif kind == "json":
            lines.append(json.dumps(draw(json_values)).encode())
        elif kind == "text":
            lines.append(draw(st.text(max_size=40)).encode("utf-8", "surrogatepass"))
        else:
            lines.append(draw(st.binary(max_size=40)))
    return b"\n".join(lines)


@FUZZ
@given(
    tasks=task_lines(),
    completion=mostly("    return 1\n"),
    kind=st.sampled_from(["completion", "solution"]),
)
def test_task_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tasks: bytes, completion: Any, kind: str
) -> None:
    here = fresh_dir(tmp_path)
    task_file = here / "tasks.jsonl"
    task_file.write_bytes(tasks)
    samples = here / "samples.jsonl"
    samples.write_text(
        "".join(json.dumps({"task_id": t, kind: completion}) + "\n" for t in ("a", "b"))
    )
    output = here / "out.json"
    argv = ["evaluate", "--benchmark", str(task_file), "--samples", str(samples)]
    outcome([*argv, "--output", str(output), "--timeout", "1", "--workers", "1"], capsys, output)


@st.composite
def sample_lines(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        # Well-formed: known tasks, string completions, whatever they say.
        ids = draw(st.lists(st.sampled_from(TASK_IDS), min_size=1, max_size=4))
        field = draw(st.sampled_from(["completion", "solution"]))
        code = st.sampled_from(["    return 1\n", "", "while True: pass"]) | st.text(max_size=30)
        return "\n".join(json.dumps({"task_id": i, field: draw(code)}) for i in ids).encode()
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["sample", "sample", "sample", "sample", "json", "bytes"]))
        if kind == "sample":
            sample: dict[str, Any] = {
                "task_id": draw(st.one_of(st.sampled_from(TASK_IDS), junk)),
                draw(st.sampled_from(["completion", "solution", "completion", "code"])): draw(
                    mostly("    return 1\n")
                ),
            }
            lines.append(json.dumps(sample).encode())
        elif kind == "json":
            lines.append(json.dumps(draw(json_values)).encode())
        else:
            lines.append(draw(st.binary(max_size=30)))
    return b"\n".join(lines)


@FUZZ
@given(samples=sample_lines())
def test_sample_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], samples: bytes) -> None:
    here = fresh_dir(tmp_path)
    sample_file = here / "samples.jsonl"
    sample_file.write_bytes(samples)
    output = here / "out.json"
    argv = ["evaluate", "--benchmark", "humaneval", "--samples", str(sample_file)]
    outcome([*argv, "--output", str(output), "--timeout", "1", "--workers", "1"], capsys, output)


def junk_or(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid value, mostly."""
    bad = st.one_of(st.text(max_size=12), st.sampled_from(["", "-1", "0", "nan", "1e309"]))
    return st.sampled_from([True] * 6 + [False]).flatmap(lambda ok: valid if ok else bad)


task_ids = st.one_of(
    st.lists(st.sampled_from(TASK_IDS), min_size=1, max_size=3).map(",".join),
    st.lists(st.sampled_from([*TASK_IDS, " ", "", "HumanEval/999"]), max_size=3).map(",".join),
    st.text(max_size=20),
)
model_options = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["answer", "delay_s", "n_threads"]), st.text(max_size=10)).map(
            "=".join
        ),
        st.text(max_size=12),
    ),
    max_size=2,
)


@FUZZ
@given(
    ids=st.none() | task_ids,
    options=model_options,
    limit=junk_or(st.integers(1, 3).map(str)),
    timeout=junk_or(st.floats(0.1, 5).map(str)),
    samples=junk_or(st.integers(1, 2).map(str)),
    max_tokens=junk_or(st.integers(1, 100).map(str)),
    temperature=junk_or(st.floats(0, 2).map(str)),
    workers=junk_or(st.sampled_from(["1", "2"])) | st.sampled_from(["257", "100000"]),
)
def test_run_options(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ids: str | None,
    options: list[str],
    limit: str,
    timeout: str,
    samples: str,
    max_tokens: str,
    temperature: str,
    workers: str,
) -> None:
    here = fresh_dir(tmp_path)
    argv = ["run", "humaneval", "--model", "stub/x", "--db", str(here / "runs.db"), "--no-progress"]
    argv += ["--workers", workers, "--limit", limit, "--timeout", timeout, "--samples", samples]
    argv += ["--max-tokens", max_tokens, "--temperature", temperature]
    argv += [] if ids is None else ["--task-ids", ids]
    for option in options:
        argv += ["-M", option]
    outcome(argv, capsys)


@FUZZ
@given(
    runs=st.lists(st.one_of(st.just("mine"), st.text(max_size=10)), max_size=2),
    fmt=junk_or(st.sampled_from(["md", "json"])),
)
def test_report_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], runs: list[str], fmt: str
) -> None:
    with Store(tmp_path / "shared.db") as store:
        if store.get_run("mine") is None:
            store.create_run("mine", "humaneval", "0" * 64, {}, {})
    here = fresh_dir(tmp_path)
    output = here / "report.txt"
    argv = ["report", *runs, "--db", str(tmp_path / "shared.db"), "--format", fmt]
    outcome([*argv, "--output", str(output)], capsys, output)


def test_a_refused_task_id_with_a_line_break_in_it_is_still_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hypothesis found it: the id is in the error, and \\x1e is a line break to Python."""
    argv = ["run", "humaneval", "--model", "stub/x", "--db", str(tmp_path / "runs.db")]
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--no-progress", "--task-ids", "HumanEval/0\x1e1"])
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "HumanEval/0\\x1e1" in lines[0], lines
