"""GPU tasks in the report: correct@1, speedups over NumPy and the GPU reference, fast_p, memory
and time, per task and per attempt, from hand-made harness reports in a real store."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from codeduel.metrics import pass_at_k_ci
from codeduel.models import GenerateConfig, Message, ModelOutput
from codeduel.records import AttemptRecord, CallRecord, ExecutionRecord, SampleRecord
from codeduel.report import (
    build_accel,
    build_report,
    render_html,
    render_json,
    render_markdown,
    time_spreads,
)
from codeduel.store import Run, Store
from tests.report.chromium import chromium_path, load_page
from tests.report.samples import make_sample
from tests.report.test_html import _Page

LOCAL = "llamacpp/qwen2.5-coder-7b"
CLOUD = "anthropic/claude-sonnet-4-5"
SIZES = ("small", "medium", "large")
# Every task's baseline: NumPy's and the GPU reference's milliseconds per size.
NUMPY_MS = {"small": 1.0, "medium": 4.0, "large": 10.0}
REFERENCE_MS = {"small": 0.5, "medium": 1.0, "large": 4.0}


def _harness(
    verdict: str, gpu_ms: dict[str, float] | None = None, peak: int = 0, gpu: bool = True
) -> dict[str, Any]:
    """A harness report: correct (and timed, on a GPU) at each size of `gpu_ms`; a failed
    answer without `gpu_ms` has no sizes."""
    report: dict[str, Any] = {
        "framework": "torch",
        "device": "NVIDIA H200" if gpu else "cpu",
        "gpu": gpu,
        "verdict": verdict,
        "detail": "",
    }
    if gpu_ms is not None:
        report["sizes"] = {
            s: {"correct": verdict == "passed", "max_abs_err": 0.0, "repeats": 10}
            | ({"gpu_ms": ms, "peak_bytes": peak * (i + 1) // 3, "in_place": True} if gpu else {})
            for i, (s, ms) in enumerate(gpu_ms.items())
        }
    return report


def _baseline(gpu: bool = True) -> dict[str, Any]:
    report = _harness("passed", REFERENCE_MS, 10_000, gpu)
    for size, ms in NUMPY_MS.items():
        report["sizes"][size]["numpy_ms"] = ms
    return report


def _sample(
    model: str,
    task: str,
    answers: list[tuple[str, dict[str, Any] | None]],
    *,
    strategy: str = "single",
    vram: int | None = None,
    seconds: float = 1.0,
    tokens: tuple[int, ...] = (),
) -> SampleRecord:
    """One attempt per (hidden status, harness report); the last is the answer."""
    attempts = []
    for i, (status, extra) in enumerate(answers):
        out = ModelOutput(
            "x", "stop", 100, tokens[i] if tokens else 50, seconds, 0.5, peak_vram_bytes=vram
        )
        call = CallRecord(model, "h", (Message("user", "q"),), GenerateConfig(), out)
        execution = ExecutionRecord("hidden", status, "", 0.5, 30.0, extra)
        attempts.append(AttemptRecord(f"code {i}", "fenced", status, (call,), (execution,)))
    status = answers[-1][0]
    return SampleRecord(
        model,
        strategy,
        task,
        0,
        status,
        f"code {len(answers) - 1}",
        "fenced",
        False,
        seconds,
        0.5,
        tuple(attempts),
        final_attempt=len(answers) - 1 if strategy != "single" else None,
    )


def _gpu_run(store: Store, name: str, tasks: int = 4, gpu: bool = True) -> Run:
    run = store.create_run(name, "accel-torch", "abc", {}, {})
    ids = [f"A/{i}" for i in range(tasks)]
    store.add_tasks(run.id, [(t, "f", 30.0) for t in ids], {t: _baseline(gpu) for t in ids})
    return run


@pytest.fixture
def gpu(tmp_path: Path) -> tuple[Store, Run]:
    """Local: 5× and 2× faster than NumPy on the large size (A/0, A/1), correct but twice as
    slow (A/2), wrong (A/3). Cloud: 5× and 2×, wrong on A/2, a model error on A/3."""
    store = Store(tmp_path / "gpu.db")
    run = _gpu_run(store, "gpu")
    local = [
        ("passed", _harness("passed", {"small": 0.5, "medium": 2.0, "large": 2.0}, 1000)),
        ("passed", _harness("passed", {"small": 1.0, "medium": 1.0, "large": 5.0}, 300)),
        ("passed", _harness("passed", {"small": 2.0, "medium": 8.0, "large": 20.0}, 2000)),
        ("failed", _harness("failed")),
    ]
    for i, answer in enumerate(local):
        store.record_sample(
            run.id,
            _sample(LOCAL, f"A/{i}", [answer], vram=2**29 * (1 + (i == 1)), seconds=1.0 + i),
        )
    cloud = [
        ("passed", _harness("passed", {"small": 0.5, "medium": 2.0, "large": 2.0}, 1000)),
        ("passed", _harness("passed", {"small": 1.0, "medium": 1.0, "large": 5.0}, 300)),
        ("failed", _harness("failed", {"small": 1.0, "medium": 1.0, "large": 1.0}, 500)),
    ]
    for i, answer in enumerate(cloud):
        store.record_sample(run.id, _sample(CLOUD, f"A/{i}", [answer], seconds=4.0))
    store.record_sample(run.id, make_sample(CLOUD, "A/3", "error", failed_call=True))
    return store, run


def test_correct_speedups_and_fast_p(gpu: tuple[Store, Run]) -> None:
    store, run = gpu
    accel = build_accel(store, run)
    assert accel is not None and accel.speed_measured and accel.devices == ("NVIDIA H200",)
    assert accel.sizes == SIZES
    local, cloud = accel.systems
    assert (local.system, local.samples, local.correct) == (LOCAL, 4, 3)
    assert local.correct_at_1 == pass_at_k_ci([(1, 1), (1, 1), (1, 1), (1, 0)], 1)
    assert local.correct_at_1.value == 0.75
    # Large: NumPy's 10 ms over 2, 5 and 20 ms; the failed answer has no speed.
    large = local.speedup_numpy["large"]
    assert large is not None and large.value == pytest.approx((5 * 2 * 0.5) ** (1 / 3))
    assert large.low <= large.value <= large.high and large.n_tasks == 3
    assert local.speedup_numpy_largest == large
    small = local.speedup_numpy["small"]
    assert small is not None and small.value == pytest.approx(1.0)
    reference = local.speedup_reference_largest
    assert reference is not None and reference.value == pytest.approx((2 * 0.8 * 0.2) ** (1 / 3))
    assert local.speedup_reference["large"] == reference
    # Small: the reference's 0.5 ms over 0.5, 1 and 2 ms.
    small_reference = local.speedup_reference["small"]
    assert small_reference is not None
    assert small_reference.value == pytest.approx((1 * 0.5 * 0.25) ** (1 / 3))
    # fast_p: of 4 scored answers, 3 correct, 2 faster than NumPy, 1 more than twice as fast.
    assert local.fast_0 == local.correct_at_1
    assert local.fast_1 is not None and local.fast_1.value == 0.5
    assert local.fast_2 is not None and local.fast_2.value == 0.25
    assert local.fast_1_reference is not None and local.fast_1_reference.value == 0.25
    curve = dict(local.fast_curve)
    assert (curve[0.0], curve[0.5], curve[1.0], curve[4.0], curve[6.0]) == (0.75, 0.5, 0.5, 0.25, 0)
    assert local.gpu_ms_largest == pytest.approx((2 * 5 * 20) ** (1 / 3))
    assert (local.answer_peak_bytes_median, local.answer_peak_bytes_max) == (1000, 2000)
    assert local.model_peak_vram_bytes == 2**30
    # Generation (1, 2, 3, 4 s) plus execution (0.5 s), median.
    assert local.time_per_problem_s == 3.0
    # The cloud's model error is not scored: 2 of 3, and its speedups 5 and 2 → √10.
    assert (cloud.samples, cloud.correct) == (3, 2)
    cloud_large = cloud.speedup_numpy["large"]
    assert cloud_large is not None and cloud_large.value == pytest.approx(math.sqrt(5 * 2))
    # Two tasks resampled: the interval spans the two speedups.
    assert (cloud_large.low, cloud_large.high) == (pytest.approx(2.0), pytest.approx(5.0))
    assert cloud.fast_1 is not None and cloud.fast_1.value == pytest.approx(2 / 3)
    # A speedup of exactly 2 is not more than 2.
    assert cloud.fast_2 is not None and cloud.fast_2.value == pytest.approx(1 / 3)
    assert cloud.model_peak_vram_bytes is None
    # The wrong answer's memory counts: it ran on the GPU.
    assert cloud.answer_peak_bytes_max == 1000
    rows = {(t.task_id, t.system): t for t in accel.tasks}
    assert rows[("A/2", LOCAL)].speedup_numpy_largest == pytest.approx(0.5)
    assert rows[("A/3", LOCAL)].correct == 0 and rows[("A/3", LOCAL)].speedup_numpy_largest is None
    assert rows[("A/0", CLOUD)].speedup_numpy_largest == pytest.approx(5.0)
    assert ("A/3", CLOUD) not in rows
    assert [t.task_id for t in accel.tasks if t.system == LOCAL] == ["A/0", "A/1", "A/2", "A/3"]
    assert accel.attempts == ()


def test_markdown_json_and_the_articles_table(gpu: tuple[Store, Run]) -> None:
    store, run = gpu
    report = build_report(store, run)
    text = render_markdown([report])
    assert "### GPU tasks" in text and "on NVIDIA H200" in text
    assert "No speed was measured" not in text
    head = (
        "| System | Correct@1 % (95% CI) | Correct | fast_0 % | fast_1 % (95% CI) | fast_2 % | "
        "Speedup vs NumPy, small (95% CI) | Speedup vs NumPy, medium (95% CI) | "
        "Speedup vs NumPy, large (95% CI) | Speedup vs GPU reference, largest (95% CI) | "
        "fast_1 vs GPU reference % | Answers' peak GPU memory median / max | "
        "Time per problem s |"
    )
    assert head in text
    gpu_lines = text.split("### GPU tasks")[1].splitlines()
    local = next(line for line in gpu_lines if line.startswith(f"| {LOCAL} | 75.0 ("))
    cells = [c.strip() for c in local.strip("|").split("|")]
    # fast_1 with pass@1's interval over tasks, as correct@1 has.
    assert cells[2:6] == ["3/4", "75.0", "50.0 (15.0–85.0)", "25.0"]
    assert cells[8].startswith("1.71× (")
    assert cells[10:] == ["25.0", "1000 B / 2.0 KiB", "3.00"]
    assert "| System | Pass@1 | Execution time | Memory |" in text
    assert (
        f"| {LOCAL} | 75.0 (30.1–95.4) | 3.00 s (5.85 ms on the GPU, largest size) | "
        "1.0 GiB model VRAM; answers' peak 2.0 KiB |"
    ) in text
    assert f"| {CLOUD} | 66.7 (20.8–93.9) | 4.50 s (3.16 ms on the GPU, largest size) | " in text
    assert "— model VRAM; answers' peak 1000 B |" in text
    # Single-shot systems have no per-attempt table.
    assert "after each attempt" not in text
    payload = json.loads(render_json([report]))
    accel = payload["runs"][0]["accel"]
    assert accel["systems"][1]["speedup_numpy"]["large"]["value"] == pytest.approx(math.sqrt(10))
    assert accel["tasks"][0] == {
        "task_id": "A/0",
        "system": LOCAL,
        "samples": 1,
        "correct": 1.0,
        "speedup_numpy_largest": pytest.approx(5.0),
    }


def test_html_has_the_tables_and_both_figures(gpu: tuple[Store, Run]) -> None:
    store, run = gpu
    text = render_html([build_report(store, run)], {run.name: time_spreads(store, run)})
    page = _Page(text)
    assert page.plots[-2:] == ["fast-p", "task-speedup"]
    metrics = page.table("accel")
    assert metrics[LOCAL][1].startswith("75.0 (") and metrics[LOCAL][4] == "50.0 (15.0–85.0)"
    articles = [rows for cls, rows in page.tables if cls == "accel"][1]
    assert articles[0] == ["System", "Pass@1", "Execution time", "Memory"]
    # fast_p from p = 0.5 (p = 0 has no place on the log axis): local is 50% at p = 1.
    points = [a for a in page.marks("fast-p", "circle", "point") if a["data-label"] == LOCAL]
    assert [(float(a["data-x"]), float(a["data-y"])) for a in points[:4]] == [
        (0.5, 0.5),
        (1.0, 0.5),
        (1.5, 0.5),
        (2.0, 0.25),
    ]
    assert len(points) == 15
    dots = {
        (a["data-label"], a["data-row"]): float(a["data-x"])
        for a in page.marks("task-speedup", "circle", "point")
    }
    assert dots == {
        (LOCAL, "A/0"): 5.0,
        (LOCAL, "A/1"): 2.0,
        (LOCAL, "A/2"): 0.5,
        (CLOUD, "A/0"): 5.0,
        (CLOUD, "A/1"): 2.0,
    }
    assert len(page.marks("task-speedup", "line", "reference")) == 1
    assert "1×" in text


def test_a_cpu_only_run_says_no_speed_was_measured(tmp_path: Path) -> None:
    store = Store(tmp_path / "cpu.db")
    run = _gpu_run(store, "cpu", tasks=2, gpu=False)
    answers = [_harness("passed", NUMPY_MS, gpu=False), _harness("failed", NUMPY_MS, gpu=False)]
    for i, (status, extra) in enumerate(zip(("passed", "failed"), answers, strict=True)):
        store.record_sample(run.id, _sample(LOCAL, f"A/{i}", [(status, extra)]))
    accel = build_accel(store, run)
    assert accel is not None and not accel.speed_measured and accel.devices == ("cpu",)
    (system,) = accel.systems
    assert system.correct_at_1.value == 0.5 and system.fast_0.value == 0.5
    assert system.fast_1 is None and system.fast_2 is None and system.fast_curve == ()
    assert system.speedup_numpy == {"small": None, "medium": None, "large": None}
    assert system.answer_peak_bytes_max is None and system.gpu_ms_largest is None
    text = render_markdown([build_report(store, run)])
    assert text.count("No speed was measured") == 1
    assert "correctness only" in text
    lines = text.split("### GPU tasks")[1].splitlines()
    line = next(x for x in lines if x.startswith(f"| {LOCAL} | 50.0"))
    assert "| 50.0 | – | – | – | – | – | – | – | – / – |" in line
    page = render_html([build_report(store, run)], {})
    assert "No data: no answer&#39;s speed was measured on a GPU." in page
    assert "No data: no correct answer was timed on a GPU." in page


def test_a_run_without_baselines_is_found_by_its_reports(tmp_path: Path) -> None:
    store = Store(tmp_path / "plain.db")
    run = store.create_run("tasks", "gpu_tasks.jsonl", "abc", {}, {})
    extra = _harness("passed", {"large": 2.0}, 100)
    store.record_sample(run.id, _sample(LOCAL, "A/0", [("passed", extra)]))
    accel = build_accel(store, run)
    assert accel is not None and accel.speed_measured
    (system,) = accel.systems
    # Nothing to compare with: GPU time, no speedup, no answer faster than NumPy.
    assert system.gpu_ms_largest == 2.0 and system.speedup_numpy == {"large": None}
    assert system.fast_1 is not None and system.fast_1.value == 0.0


def test_other_runs_have_no_gpu_section(tmp_path: Path) -> None:
    store = Store(tmp_path / "he.db")
    run = store.create_run("he", "humaneval", "abc", {}, {})
    store.add_tasks(run.id, [("T/0", "f", 3.0)])
    store.record_sample(run.id, make_sample(LOCAL, "T/0", "passed"))
    assert build_accel(store, run) is None
    report = build_report(store, run)
    assert report.accel is None
    assert "GPU tasks" not in render_markdown([report])
    assert "accel" not in json.loads(render_json([report]))["runs"][0]
    page = _Page(render_html([report], {run.name: time_spreads(store, run)}))
    assert "fast-p" not in page.plots and "task-speedup" not in page.plots


def test_attempts_of_repair_count_the_answer_so_far(tmp_path: Path) -> None:
    """Repair on A/0: wrong, then 5× faster than NumPy (70 tokens); on A/1 correct at once
    but twice as slow as NumPy."""
    store = Store(tmp_path / "repair.db")
    run = _gpu_run(store, "repair", tasks=2)
    fast = _harness("passed", {"small": 0.5, "medium": 2.0, "large": 2.0}, 100)
    slow = _harness("passed", {"small": 2.0, "medium": 8.0, "large": 20.0}, 100)
    store.record_sample(
        run.id,
        _sample(
            LOCAL,
            "A/0",
            [("failed", _harness("failed")), ("passed", fast)],
            strategy="repair",
            tokens=(50, 70),
        ),
    )
    store.record_sample(run.id, _sample(LOCAL, "A/1", [("passed", slow)], strategy="repair"))
    accel = build_accel(store, run)
    assert accel is not None
    (curve,) = accel.attempts
    assert curve.system == f"{LOCAL} (repair)" and curve.samples == 2
    assert curve.correct_after == (0.5, 1.0)
    assert curve.fast_1_after == (0.0, 0.5)
    assert curve.tokens_after == (100, 170)
    (system,) = accel.systems
    assert system.correct == 2 and system.fast_1 is not None and system.fast_1.value == 0.5
    text = render_markdown([build_report(store, run)])
    assert "| System | after 1 | after 2 |" in text
    assert f"| {LOCAL} (repair) | 50.0 / 0.0 (100) | 100.0 / 50.0 (170) |" in text


@pytest.mark.skipif(chromium_path() is None, reason="needs chromium")
def test_gpu_page_in_chromium(gpu: tuple[Store, Run], tmp_path: Path) -> None:
    store, run = gpu
    page = tmp_path / "gpu.html"
    page.write_text(
        render_html([build_report(store, run)], {run.name: time_spreads(store, run)}),
        encoding="utf-8",
    )
    shot = tmp_path / "gpu.png"
    seen = load_page(
        page,
        {
            "dots": "document.querySelectorAll('svg[data-plot=task-speedup] circle').length",
            "tables": "document.querySelectorAll('table.accel').length",
        },
        screenshot=shot,
    )
    assert seen.problems == [] and seen.external_requests == []
    assert seen.values == {"dots": 5, "tables": 2}
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
