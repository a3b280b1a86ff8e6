"""GPU tasks (accel-torch, accel-cupy) from the store: correct@1, speedups over NumPy and over
the hand-written GPU reference, KernelBench's fast_p, the memory and time of the answers.

Every figure comes from the harness's reports: each sample's final answer's hidden execution
(`executions.extra`) against its task's baseline (`Store.task_baselines`), one row per sample
read with the few numbers it needs. `accel_tables` shows them, the same in Markdown and HTML.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codeduel.metrics import Estimate, geomean_ci, pass_at_k_ci, percentile
from codeduel.report._hybrid_queries import (
    answer_attempts,
    completion_tokens,
    first_attempts,
    most_attempts,
)
from codeduel.report._table import Table, markdown_table
from codeduel.report._table import estimate as _est
from codeduel.report._table import pct as _pct
from codeduel.store import Run, Store

__all__ = [
    "FAST_P",
    "Accel",
    "AccelAttempts",
    "AccelSystem",
    "AccelTaskRow",
    "accel_intro",
    "accel_markdown",
    "accel_tables",
    "build_accel",
]

# KernelBench's speedup thresholds for the fast_p curve (p = 0 is correct@1).
FAST_P = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 128.0)
# The harness's own sizes, smallest first; a task file may name others, shown after them.
_SIZE_ORDER = ("small", "medium", "large")
_MULTI_ATTEMPT = ("repair", "resample", "cascade")

Sizes = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class AccelSystem:
    """One system's final answers on the GPU tasks."""

    system: str
    model: str
    strategy: str
    samples: int
    correct: int
    correct_at_1: Estimate
    # fast_p against NumPy on the largest size (mean over tasks, as correct@1); fast_0 is
    # correct@1. None where the run measured no speed.
    fast_0: Estimate
    fast_1: Estimate | None
    fast_2: Estimate | None
    # (p, fast_p) at each p of FAST_P; empty where no speed was measured.
    fast_curve: tuple[tuple[float, float], ...]
    fast_1_reference: Estimate | None
    # Geometric mean speedup over correct answers with both times, by size; None: none had.
    speedup_numpy: dict[str, Estimate | None]
    speedup_numpy_largest: Estimate | None
    speedup_reference: dict[str, Estimate | None]
    speedup_reference_largest: Estimate | None
    # Geometric mean GPU time of the correct answers on their task's largest size.
    gpu_ms_largest: float | None
    # Each answer's peak GPU memory (its largest over the sizes): median and max over answers.
    answer_peak_bytes_median: float | None
    answer_peak_bytes_max: int | None
    # The model's own peak VRAM, where its provider reports it (local engines).
    model_peak_vram_bytes: int | None
    # Median over samples of generation plus execution seconds.
    time_per_problem_s: float | None


@dataclass(frozen=True)
class AccelTaskRow:
    """One system on one task: what the per-task plot shows."""

    task_id: str
    system: str
    samples: int
    correct: float
    # Geometric mean over its correct answers of the speedup over NumPy on the largest size.
    speedup_numpy_largest: float | None


@dataclass(frozen=True)
class AccelAttempts:
    """A multi-attempt system had its loop stopped after attempt k, k = 1, 2, …"""

    system: str
    samples: int
    correct_after: tuple[float, ...]
    # None where the run measured no speed.
    fast_1_after: tuple[float | None, ...]
    # Completion tokens all its samples spent within the first k attempts.
    tokens_after: tuple[int, ...]


@dataclass(frozen=True)
class Accel:
    benchmark: str
    devices: tuple[str, ...]
    # False where no answer has a GPU time: a run without a GPU (PyTorch's CPU build).
    speed_measured: bool
    sizes: tuple[str, ...]
    systems: tuple[AccelSystem, ...]
    tasks: tuple[AccelTaskRow, ...]
    attempts: tuple[AccelAttempts, ...] = ()


@dataclass(frozen=True)
class _Answer:
    model: str
    strategy: str
    task_id: str
    index: int
    seconds: float
    vram: int | None
    correct: bool
    sizes: Sizes


# Each scored sample with its final attempt's hidden execution: the answer the score is of.
_FINAL = """
SELECT s.model, s.strategy, s.task_id, s.sample_index, s.generation_s + s.execution_s,
    s.peak_vram_bytes, COALESCE(e.status = 'passed', 0), json_extract(e.extra, '$.sizes')
FROM samples s
LEFT JOIN attempts a ON a.sample_id = s.id AND a.attempt_index = COALESCE(s.final_attempt,
    (SELECT MAX(attempt_index) FROM attempts WHERE sample_id = s.id))
LEFT JOIN executions e ON e.id = (SELECT MAX(id) FROM executions WHERE attempt_id = a.id
    AND tests = 'hidden')
WHERE s.run_id = ? AND s.model_error = 0
ORDER BY s.id
"""

# Every attempt of one system's scored samples with its hidden verdict and measurements.
_ATTEMPTS = """
SELECT s.task_id, s.sample_index, a.attempt_index, COALESCE(e.status = 'passed', 0),
    json_extract(e.extra, '$.sizes')
FROM samples s JOIN attempts a ON a.sample_id = s.id
LEFT JOIN executions e ON e.id = (SELECT MAX(id) FROM executions WHERE attempt_id = a.id
    AND tests = 'hidden')
WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND s.model_error = 0
"""

_GPU_RUN = """
SELECT EXISTS (SELECT 1 FROM samples s JOIN attempts a ON a.sample_id = s.id
    JOIN executions e ON e.attempt_id = a.id WHERE s.run_id = ? AND e.tests = 'hidden'
    AND json_extract(e.extra, '$.sizes') IS NOT NULL)
"""

_DEVICES = """
SELECT DISTINCT json_extract(e.extra, '$.device') FROM samples s
JOIN attempts a ON a.sample_id = s.id JOIN executions e ON e.attempt_id = a.id
WHERE s.run_id = ? AND e.tests = 'hidden' AND json_extract(e.extra, '$.device') IS NOT NULL
ORDER BY 1
"""


def _system(model: str, strategy: str) -> str:
    return model if strategy == "single" else f"{model} ({strategy})"


def _as_sizes(value: Any) -> Sizes:
    """A report's `sizes`: each size's measurements, {} where there are none."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, dict)}


def _sizes(text: str | None) -> Sizes:
    return _as_sizes(json.loads(text) if text else None)


def _number(row: Mapping[str, Any] | None, key: str) -> float | None:
    value = (row or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _size_key(size: str) -> tuple[int, str]:
    rank = _SIZE_ORDER.index(size) if size in _SIZE_ORDER else len(_SIZE_ORDER)
    return rank, size


def _largest(baseline: Sizes, answer: Sizes) -> str | None:
    """The task's largest size: where NumPy took longest on the baseline; without a baseline,
    the last of the answer's sizes (the stored JSON keeps no order of its own)."""
    timed = [(t, s) for s, row in baseline.items() if (t := _number(row, "numpy_ms"))]
    if timed:
        return max(timed)[1]
    return max(answer, key=_size_key) if answer else None


Speed = Callable[[_Answer], float | None]


class _Speeds:
    """Speedups of answers against their task's baseline."""

    def __init__(self, baselines: Mapping[str, Mapping[str, Any]]) -> None:
        self.baselines = {t: _as_sizes(b.get("sizes")) for t, b in baselines.items()}
        # The harness states the task's sizes in order (smallest first) where it is new enough.
        self.order = {
            t: order[-1]
            for t, b in baselines.items()
            if isinstance(order := b.get("size_order"), list) and order
        }

    def largest(self, a: _Answer) -> str | None:
        if a.task_id in self.order:
            return str(self.order[a.task_id])
        return _largest(self.baselines.get(a.task_id, {}), a.sizes)

    def over(self, a: _Answer, size: str | None, against: str) -> float | None:
        """Baseline's `against` time (numpy_ms or gpu_ms) over the answer's GPU time."""
        if size is None:
            return None
        base = _number(self.baselines.get(a.task_id, {}).get(size), against)
        mine = _number(a.sizes.get(size), "gpu_ms")
        return base / mine if base is not None and mine is not None else None

    def fast(self, a: _Answer, p: float, against: str = "numpy_ms") -> bool:
        speedup = self.over(a, self.largest(a), against)
        return a.correct and (p == 0 or (speedup is not None and speedup > p))

    def at(self, size: str | None, against: str = "numpy_ms") -> Speed:
        """The speedup of an answer at `size` (None: its task's largest)."""
        return lambda a: self.over(a, size if size is not None else self.largest(a), against)


def _by_task(answers: Sequence[_Answer]) -> dict[str, list[_Answer]]:
    tasks: dict[str, list[_Answer]] = {}
    for a in answers:
        tasks.setdefault(a.task_id, []).append(a)
    return tasks


def _share(tasks: Mapping[str, Sequence[_Answer]], counts: Callable[[_Answer], bool]) -> Estimate:
    """Mean over tasks of the share of answers `counts` holds for, with pass@1's interval."""
    return pass_at_k_ci([(len(v), sum(map(counts, v))) for v in tasks.values()], 1)


def _geomean(tasks: Mapping[str, Sequence[_Answer]], speed: Speed) -> Estimate | None:
    per_task = [[x for a in v if a.correct and (x := speed(a)) is not None] for v in tasks.values()]
    return geomean_ci(per_task) if any(per_task) else None


def _peak(a: _Answer) -> int | None:
    peaks = [row["peak_bytes"] for row in a.sizes.values() if _number(row, "peak_bytes")]
    return max(peaks) if peaks else None


def _summarize(
    answers: Sequence[_Answer], speeds: _Speeds, sizes: Sequence[str], measured: bool
) -> AccelSystem:
    first = answers[0]
    tasks = _by_task(answers)
    correct_at_1 = _share(tasks, lambda a: a.correct)

    def fast(p: float, against: str = "numpy_ms") -> Estimate | None:
        return _share(tasks, lambda a: speeds.fast(a, p, against)) if measured else None

    curve = tuple((p, e.value) for p in FAST_P if (e := fast(p)) is not None)
    timed = [
        t
        for a in answers
        if a.correct and (t := _number(a.sizes.get(speeds.largest(a) or ""), "gpu_ms"))
    ]
    peaks = [p for a in answers if (p := _peak(a)) is not None]
    vram = [a.vram for a in answers if a.vram]
    seconds = [a.seconds for a in answers]
    return AccelSystem(
        system=_system(first.model, first.strategy),
        model=first.model,
        strategy=first.strategy,
        samples=len(answers),
        correct=sum(a.correct for a in answers),
        correct_at_1=correct_at_1,
        fast_0=correct_at_1,
        fast_1=fast(1.0),
        fast_2=fast(2.0),
        fast_curve=curve,
        fast_1_reference=fast(1.0, "gpu_ms"),
        speedup_numpy={s: _geomean(tasks, speeds.at(s)) for s in sizes},
        speedup_numpy_largest=_geomean(tasks, speeds.at(None)),
        speedup_reference={s: _geomean(tasks, speeds.at(s, "gpu_ms")) for s in sizes},
        speedup_reference_largest=_geomean(tasks, speeds.at(None, "gpu_ms")),
        gpu_ms_largest=math.exp(statistics.fmean(map(math.log, timed))) if timed else None,
        answer_peak_bytes_median=percentile(peaks, 50) if peaks else None,
        answer_peak_bytes_max=max(peaks) if peaks else None,
        model_peak_vram_bytes=max(vram) if vram else None,
        time_per_problem_s=percentile(seconds, 50) if seconds else None,
    )


def _task_rows(
    order: Sequence[str], systems: Mapping[tuple[str, str], Sequence[_Answer]], speeds: _Speeds
) -> list[AccelTaskRow]:
    rows = []
    for task in order:
        for (model, strategy), answers in systems.items():
            mine = [a for a in answers if a.task_id == task]
            if not mine:
                continue
            largest = speeds.at(None)
            ups = [x for a in mine if a.correct and (x := largest(a)) is not None]
            rows.append(
                AccelTaskRow(
                    task,
                    _system(model, strategy),
                    len(mine),
                    sum(a.correct for a in mine) / len(mine),
                    math.exp(statistics.fmean(map(math.log, ups))) if ups else None,
                )
            )
    return rows


def _attempt_curve(
    store: Store, run: Run, model: str, strategy: str, samples: int, speeds: _Speeds, measured: bool
) -> AccelAttempts | None:
    key = (run.id, model, strategy)
    most = most_attempts(store, key)
    if most < 2 and strategy not in _MULTI_ATTEMPT:
        return None
    tried = {
        (task, index, i): _Answer(model, strategy, task, index, 0.0, None, bool(ok), _sizes(sizes))
        for task, index, i, ok, sizes in store.db.execute(_ATTEMPTS, key)
    }
    correct, fast, tokens = [], [], []
    for k in range(1, most + 1):
        chosen = [
            tried[(task, index, i)]
            for (task, index), i in answer_attempts(store, key, first_attempts(k)).items()
            if i is not None
        ]
        correct.append(sum(a.correct for a in chosen) / samples)
        fast.append(sum(speeds.fast(a, 1.0) for a in chosen) / samples if measured else None)
        tokens.append(completion_tokens(store, key, first_attempts(k)))
    return AccelAttempts(
        _system(model, strategy), samples, tuple(correct), tuple(fast), tuple(tokens)
    )


def build_accel(store: Store, run: Run) -> Accel | None:
    """The GPU-task figures of `run`; None unless it is a GPU run (a hidden execution with the
    harness's sizes, or a task baseline)."""
    baselines = store.task_baselines(run.id)
    if not baselines and not store.db.execute(_GPU_RUN, (run.id,)).fetchone()[0]:
        return None
    systems: dict[tuple[str, str], list[_Answer]] = {}
    for model, strategy, task, index, seconds, vram, ok, sizes in store.db.execute(
        _FINAL, (run.id,)
    ):
        answer = _Answer(model, strategy, task, index, seconds, vram, bool(ok), _sizes(sizes))
        systems.setdefault((model, strategy), []).append(answer)
    answers = [a for v in systems.values() for a in v]
    speeds = _Speeds(baselines)
    measured = any(_number(row, "gpu_ms") for a in answers for row in a.sizes.values())
    names = {s for a in answers for s in a.sizes} | {
        s for b in speeds.baselines.values() for s in b
    }
    sizes = tuple(sorted(names, key=_size_key))
    order = [
        r[0]
        for r in store.db.execute(
            "SELECT task_id FROM tasks WHERE run_id = ? ORDER BY position", (run.id,)
        )
    ]
    order += [t for t in dict.fromkeys(a.task_id for a in answers) if t not in order]
    attempts = [
        curve
        for (model, strategy), mine in systems.items()
        if (curve := _attempt_curve(store, run, model, strategy, len(mine), speeds, measured))
    ]
    return Accel(
        run.benchmark,
        tuple(r[0] for r in store.db.execute(_DEVICES, (run.id,))),
        measured,
        sizes,
        tuple(_summarize(v, speeds, sizes, measured) for v in systems.values()),
        tuple(_task_rows(order, systems, speeds)),
        tuple(attempts),
    )


# -- tables -----------------------------------------------------------------------------------


def _share_cell(est: Estimate | None) -> str:
    return "–" if est is None else _pct(est.value)


def _x(value: float) -> str:
    for floor, fmt in ((100, ",.0f"), (10, ".1f"), (0.1, ".2f")):
        if value >= floor:
            return format(value, fmt)
    return f"{value:.2g}"


def _speedup(est: Estimate | None) -> str:
    if est is None:
        return "–"
    if est.n_tasks < 2:
        return f"{_x(est.value)}× (1 task)"
    return f"{_x(est.value)}× ({_x(est.low)}–{_x(est.high)})"


def _bytes(value: float | None) -> str:
    if value is None:
        return "–"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value:.0f} B"


_NO_SPEED = (
    "No speed was measured: no answer has a GPU time (the harness ran without a GPU, e.g. on "
    "PyTorch's CPU build), so these figures are correctness only."
)


def accel_intro(accel: Accel) -> str:
    on = ", ".join(accel.devices) or "an unnamed device"
    text = (
        f"GPU tasks ({accel.benchmark}) on {on}: each sample's final answer checked against "
        "NumPy at every size and timed on the GPU by the harness."
    )
    return text + (" " + _NO_SPEED if not accel.speed_measured else "")


_METRICS_NOTE = (
    "Correct@1: the share of answers correct at every size (mean over tasks). fast_p "
    "(KernelBench): the share of scored answers, model errors left out, that are correct and "
    "more than p times as fast as NumPy on the task's largest size; fast_0 is correct@1. "
    "Speedup: NumPy's time (or the hand-written GPU reference's) over the answer's GPU time "
    "on the same inputs, geometric mean over correct answers, 95% bootstrap interval over "
    "tasks. Peak memory: an answer's largest GPU memory over the sizes. Time per problem: "
    "generation plus execution of a sample, median."
)

_ARTICLES_CAPTION = "The articles' table, measured:"
_ARTICLES_NOTE = (
    "Pass@1: correct@1 (95% CI). Execution time: median time per problem (generation plus "
    "execution), with the correct answers' geometric-mean GPU time on the largest size. "
    "Memory: the model's peak VRAM where its engine reports it (— for a cloud model), and the "
    "answers' peak GPU memory."
)


def accel_tables(accel: Accel) -> list[Table]:
    """The metrics table, the articles' table and, for multi-attempt systems, the curve."""
    head = (
        "System",
        "Correct@1 % (95% CI)",
        "Correct",
        "fast_0 %",
        "fast_1 % (95% CI)",
        "fast_2 %",
        *(f"Speedup vs NumPy, {s} (95% CI)" for s in accel.sizes),
        "Speedup vs GPU reference, largest (95% CI)",
        "fast_1 vs GPU reference %",
        "Answers' peak GPU memory median / max",
        "Time per problem s",
    )
    body = []
    for s in accel.systems:
        body.append(
            (
                s.system,
                _est(s.correct_at_1),
                f"{s.correct}/{s.samples}",
                _share_cell(s.fast_0),
                _est(s.fast_1),
                _share_cell(s.fast_2),
                *(_speedup(s.speedup_numpy.get(size)) for size in accel.sizes),
                _speedup(s.speedup_reference_largest),
                _share_cell(s.fast_1_reference),
                f"{_bytes(s.answer_peak_bytes_median)} / {_bytes(s.answer_peak_bytes_max)}",
                "–" if s.time_per_problem_s is None else f"{s.time_per_problem_s:.2f}",
            )
        )
    tables = [Table(head, tuple(body), note=_METRICS_NOTE)]
    articles = []
    for s in accel.systems:
        time = "–" if s.time_per_problem_s is None else f"{s.time_per_problem_s:.2f} s"
        if s.gpu_ms_largest is not None:
            time += f" ({s.gpu_ms_largest:.3g} ms on the GPU, largest size)"
        model = "—" if s.model_peak_vram_bytes is None else _bytes(s.model_peak_vram_bytes)
        memory = f"{model} model VRAM; answers' peak {_bytes(s.answer_peak_bytes_max)}"
        articles.append((s.system, _est(s.correct_at_1), time, memory))
    tables.append(
        Table(
            ("System", "Pass@1", "Execution time", "Memory"),
            tuple(articles),
            caption=_ARTICLES_CAPTION,
            note=_ARTICLES_NOTE,
        )
    )
    if accel.attempts:
        longest = max(len(c.correct_after) for c in accel.attempts)
        rows = []
        for c in accel.attempts:
            cells = [
                f"{_pct(ok)} / {'–' if fast is None else _pct(fast)} ({tokens:,})"
                for ok, fast, tokens in zip(
                    c.correct_after, c.fast_1_after, c.tokens_after, strict=True
                )
            ]
            rows.append((c.system, *cells, *["–"] * (longest - len(cells))))
        tables.append(
            Table(
                ("System", *(f"after {k}" for k in range(1, longest + 1))),
                tuple(rows),
                caption="Correct % / fast_1 % after each attempt (completion tokens spent so far, "
                "all samples):",
                note="After attempt k a sample's answer is its latest answered attempt of the "
                "first k (the loop stops when satisfied, so later attempts keep the last one); "
                "shares are of the system's scored samples. Put repair against resample at "
                "equal tokens by the token counts.",
            )
        )
    return tables


def accel_markdown(accel: Accel) -> list[str]:
    out = ["### GPU tasks", "", accel_intro(accel), ""]
    for table in accel_tables(accel):
        if table.caption:
            out += [table.caption, ""]
        out += markdown_table(table)
        if table.note:
            out += ["", table.note]
        out.append("")
    return out
