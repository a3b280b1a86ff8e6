"""Latency as a person feels it: `codeduel latency`.

Each model gets the benchmark's prompts as `run` sends a first attempt (a fill-in-the-middle
task as its prefix and suffix where the provider takes FIM natively, else its chat prompt) from
a closed loop of users: every user sends a request, waits for the whole answer, thinks for
`think_time_s`, and sends the next, until the level's requests are done; levels of 1, 4 and 16
users by default (one user: each request alone). A request's times are taken where the user
stands, around the wrapper's `generate`: waiting for a free slot (the wrapper's concurrency
limit, the engine's queue) counts, as it would in an editor. The time to the first token is that
wall time less the provider's own decode time (its `latency_s - ttft_s`, from the stream's first
and last tokens), so it holds the queue, the network round trip and the prefill. Calls bypass
the call cache (an answer replayed from the store has no latency). Figures are summarised as
p50, p95 and p99 per model and level.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from codeduel.benchmarks import Task
from codeduel.errors import ModelError
from codeduel.models import Model
from codeduel.prompts import code_prompt
from codeduel.types import GenerateConfig, Message

__all__ = [
    "LatencyReport",
    "LevelSummary",
    "RequestTiming",
    "measure_level",
    "percentile",
    "render_latency_json",
    "render_latency_markdown",
    "summarize",
    "where_run",
]

QUANTILES = (50, 95, 99)


@dataclass(frozen=True)
class RequestTiming:
    model: str
    users: int
    user: int
    index: int
    task_id: str
    # Seconds from the user's send: to the first token, and to the end of the answer.
    ttft_s: float | None
    total_s: float
    completion_tokens: int
    error: str = ""


@dataclass(frozen=True)
class LevelSummary:
    model: str
    local: bool
    users: int
    requests: int
    errors: int
    # p50, p95, p99 by QUANTILES; None where no request of the level measured it.
    ttft_s: dict[int, float] | None
    total_s: dict[int, float] | None
    # Output tokens per second over the level's wall time, all users together.
    tokens_per_s: float | None
    wall_s: float


@dataclass
class LatencyReport:
    benchmark: str
    location: str
    think_time_s: float
    requests: int
    max_tokens: int
    levels: list[LevelSummary] = field(default_factory=list)
    # pass@1 (%) per model, from a stored run (`--accuracy RUN`); empty without one.
    accuracy: dict[str, tuple[float, int, str]] = field(default_factory=dict)


def where_run(location: str | None) -> str:
    """The place the figures were measured from: the option's text, else the host's name."""
    return location if location else f"host {socket.gethostname()}"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (NumPy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def prompt_requests(
    tasks: Sequence[Task], model: Model, base: GenerateConfig
) -> list[tuple[str, tuple[Message, ...], GenerateConfig]]:
    """(task id, messages, config) per task, as `run` would send its first attempt: a
    fill-in-the-middle task to a provider that takes FIM natively as its prefix and suffix
    alone (no messages, the task's stops), any other task as its chat prompt."""
    capabilities = model.provider.capabilities
    out: list[tuple[str, tuple[Message, ...], GenerateConfig]] = []
    for task in tasks:
        fim = task.fim()
        if fim is not None and capabilities.infill:
            config = replace(base, infill=fim, prefill="", stop=task.fim_stops())
            out.append((task.task_id, (), config))
            continue
        prompt = code_prompt(task)
        config = prompt.config(base, use_prefill=capabilities.supports_prefill)
        out.append((task.task_id, prompt.messages, config))
    return out


async def _timed(
    model: Model, users: int, user: int, index: int, request: tuple[str, Any, GenerateConfig]
) -> RequestTiming:
    task_id, messages, config = request
    start = time.perf_counter()
    try:
        output = await model.generate(messages, config)
    except ModelError as exc:
        wall = time.perf_counter() - start
        return RequestTiming(model.key, users, user, index, task_id, None, wall, 0, str(exc))
    wall = time.perf_counter() - start
    ttft = None
    if output.ttft_s is not None:
        ttft = max(0.0, wall - (output.latency_s - output.ttft_s))
    return RequestTiming(
        model.key, users, user, index, task_id, ttft, wall, output.completion_tokens
    )


async def measure_level(
    model: Model,
    requests: Sequence[tuple[str, Any, GenerateConfig]],
    users: int,
    count: int,
    think_time_s: float,
) -> tuple[list[RequestTiming], float]:
    """`count` requests from `users` users in a closed loop; (timings, wall seconds). Requests
    are taken in order, cycling through `requests`."""
    taken = 0
    timings: list[RequestTiming] = []

    async def one_user(user: int) -> None:
        nonlocal taken
        while taken < count:
            index = taken
            taken += 1
            timings.append(await _timed(model, users, user, index, requests[index % len(requests)]))
            if taken < count and think_time_s > 0:
                await asyncio.sleep(think_time_s)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for user in range(users):
            group.create_task(one_user(user))
    return sorted(timings, key=lambda t: t.index), time.perf_counter() - start


def summarize(timings: Sequence[RequestTiming], local: bool, wall_s: float) -> LevelSummary:
    ok = [t for t in timings if not t.error]
    ttfts = [t.ttft_s for t in ok if t.ttft_s is not None]
    totals = [t.total_s for t in ok]
    tokens = sum(t.completion_tokens for t in ok)
    return LevelSummary(
        model=timings[0].model,
        local=local,
        users=timings[0].users,
        requests=len(timings),
        errors=len(timings) - len(ok),
        ttft_s={q: percentile(ttfts, q) for q in QUANTILES} if ttfts else None,
        total_s={q: percentile(totals, q) for q in QUANTILES} if totals else None,
        tokens_per_s=tokens / wall_s if ok and wall_s > 0 else None,
        wall_s=wall_s,
    )


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render_latency_markdown(report: LatencyReport) -> str:
    lines = [
        f"# Latency: {report.benchmark}",
        "",
        f"Measured from {report.location}; cloud and server figures include the network "
        "round trip from there.",
        f"Closed loop: each user sends a request, waits for the whole answer, thinks "
        f"{report.think_time_s:g} s, sends the next; {report.requests} requests per level, "
        f"at most {report.max_tokens} output tokens each. Seconds from the user's send.",
        "",
    ]
    if report.accuracy:
        lines += ["| Model | Pass@1 % | Tasks | From run |", "|---|---|---|---|"]
        for model, (value, tasks, run) in report.accuracy.items():
            lines.append(f"| {model} | {value:.1f} | {tasks} | {run} |")
        lines.append("")
    lines += [
        "| Model | Where | Users | Requests | TTFT p50 | TTFT p95 | TTFT p99 | Answer p50 "
        "| Answer p95 | Answer p99 | Tokens/s (all users) | Errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in report.levels:
        ttft = level.ttft_s or {}
        total = level.total_s or {}
        lines.append(
            f"| {level.model} | {'local' if level.local else 'remote'} | {level.users} "
            f"| {level.requests} | {_s(ttft.get(50))} | {_s(ttft.get(95))} | {_s(ttft.get(99))} "
            f"| {_s(total.get(50))} | {_s(total.get(95))} | {_s(total.get(99))} "
            f"| {_s(level.tokens_per_s)} | {level.errors} |"
        )
    return "\n".join(lines) + "\n"


def render_latency_json(report: LatencyReport, timings: Sequence[RequestTiming]) -> dict[str, Any]:
    data = asdict(report)
    data["accuracy"] = {
        m: {"pass_at_1_pct": v, "tasks": n, "run": r} for m, (v, n, r) in report.accuracy.items()
    }
    data["requests_timed"] = [asdict(t) for t in timings]
    return data
