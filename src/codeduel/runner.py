"""`codeduel run`: every (model, strategy, task, sample) of a run, committed as each finishes."""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from codeduel import provenance
from codeduel.benchmarks import Benchmark, Task, load_benchmark
from codeduel.costs import PriceTable, bill
from codeduel.errors import CostLimitReached, OptionError, StoreError
from codeduel.executors import Executor, open_executor
from codeduel.models import (
    Budget,
    GenerateConfig,
    Model,
    ModelSpec,
    load_model,
    parse_model_spec,
    redact_options,
)
from codeduel.records import SampleRecord
from codeduel.sandbox import Limits
from codeduel.scoring import TIMEOUT_FACTOR, TIMEOUT_FLOOR_S, Scorer, preflight
from codeduel.store import Run, Store, StoredBatches, StoredCalls, call_usage
from codeduel.strategies import Context, Strategy, chain_key, get_strategy
from codeduel.types import config_fields

__all__ = ["RunOptions", "run_benchmark"]


@dataclass(frozen=True)
class RunOptions:
    benchmark: str
    models: tuple[ModelSpec, ...]
    # Provider options per model spec.
    model_options: dict[str, dict[str, str]] = field(default_factory=dict)
    strategy: str = "single"
    # `-S key=value` options of the strategy, checked against its schema.
    strategy_options: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    task_ids: tuple[str, ...] = ()
    samples: int = 1
    config: GenerateConfig = field(default_factory=GenerateConfig)
    run_name: str | None = None
    resume: bool = False
    timeout_floor_s: float = TIMEOUT_FLOOR_S
    timeout_factor: float = TIMEOUT_FACTOR
    workers: int | None = None
    # Run untrusted code even where the sandbox lacks REQUIRED_LAYERS (--unsafe-sandbox).
    unsafe_sandbox: bool = False
    # Where programs run (`codeduel.executors.EXECUTORS`).
    executor: str = "local"
    # Answer a greedy call from the store when the same request was answered before.
    reuse_calls: bool = True
    # `--cost-limit`: no cloud call is sent that could take the run's measured spend (over
    # every session) past this many dollars, at `prices`. Not part of the stored config: a
    # resume may raise it.
    cost_limit_usd: float | None = None
    prices: PriceTable | None = None

    def stored_config(self) -> dict[str, Any]:
        """What must match for `--resume` to continue a run (JSON-normalised, as stored)."""
        config = {
            "models": [str(m) for m in self.models],
            # Secret options (API keys) as `***`: a resume with the key matches, none is stored.
            "model_options": {
                spec: redact_options(parse_model_spec(spec), options)
                for spec, options in self.model_options.items()
            },
            "strategy": self.strategy,
            "limit": self.limit,
            "task_ids": list(self.task_ids),
            "samples": self.samples,
            "generation": config_fields(self.config),
            "timeout_floor_s": self.timeout_floor_s,
            "timeout_factor": self.timeout_factor,
        }
        strategy = get_strategy(self.strategy, self.strategy_options)
        settings = strategy.options.stored()
        # Only strategies with options store them, so runs from before options still resume.
        if settings:
            config["strategy_options"] = settings
        # Likewise the executor, stored only when it is not the local sandbox.
        if self.executor != "local":
            config["executor"] = self.executor
        normalised: dict[str, Any] = json.loads(json.dumps(config))
        return normalised


Progress = Callable[[SampleRecord], None]


def _systems(models: list[Model], strategy: Strategy) -> list[tuple[str, tuple[Model, ...]]]:
    """What is scored as one system: each model, or all of them together (cascade)."""
    if strategy.uses_chain:
        return [(chain_key(models), tuple(models))]
    return [(m.key, (m,)) for m in models]


def _sandbox_provenance(executor: Executor, unsafe: bool, before: Any = None) -> dict[str, Any]:
    """How the run's samples were isolated; over several sessions (resumes), the weakest."""
    isolation = executor.provenance
    layers = dict(isolation["layers"])
    missing = set(isolation["missing"])
    launches = {isolation["launch"]}
    if isinstance(before, dict):
        layers = {k: v and bool(before.get("layers", {}).get(k, False)) for k, v in layers.items()}
        missing |= set(before.get("missing", []))
        unsafe = unsafe or bool(before.get("unsafe_sandbox"))
        launches |= set(before.get("launches", []))
    extra: dict[str, Any] = {
        k: isolation[k] for k in ("gpus", "programs", "cluster") if k in isolation
    }
    return {
        "layers": layers,
        "missing": sorted(missing),
        "unsafe_sandbox": unsafe,
        "launches": sorted(launches),
        **extra,
    }


def _open_run(store: Store, bench: Benchmark, opts: RunOptions, executor: Executor) -> Run:
    config = opts.stored_config()
    if opts.resume:
        run = store.get_run(opts.run_name) if opts.run_name else store.latest_unfinished(bench.name)
        if run is None:
            what = f"named {opts.run_name!r}" if opts.run_name else f"of {bench.name} to resume"
            raise StoreError(f"no run {what} in {store.path}")
        if run.benchmark != bench.name or run.dataset_sha256 != bench.sha256:
            raise StoreError(f"run {run.name!r} was on {run.benchmark} with another dataset file")
        if run.config != config:
            changed = sorted(k for k in config if run.config.get(k) != config[k])
            raise StoreError(
                f"run {run.name!r} was started with other settings "
                f"({', '.join(changed)}); resume it with the same options"
            )
        before = run.provenance.get("sandbox")
        meta = {
            **run.provenance,
            "sandbox": _sandbox_provenance(executor, opts.unsafe_sandbox, before),
        }
        store.set_provenance(run.id, meta)
        return run
    name = opts.run_name or f"{bench.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    meta = provenance.collect()
    meta["dataset"] = {"name": bench.name, "sha256": bench.sha256, "source": bench.source}
    if bench.window:
        meta["dataset"]["window"] = bench.window
    meta["sandbox"] = _sandbox_provenance(executor, opts.unsafe_sandbox)
    # Figures this run's reports show that reports of older runs do not.
    meta["figures"] = ["format_failures"]
    return store.create_run(name, bench.name, bench.sha256, config, meta)


async def _run_jobs(
    store: Store,
    run: Run,
    tasks: list[Task],
    jobs: list[tuple[Task, int]],
    models: list[Model],
    opts: RunOptions,
    executor: Executor,
    on_sample: Progress | None,
) -> int:
    """Every job not yet stored: solved by the strategy, then scored; generation starts while
    the time limits are calibrated (from the reference solutions). Returns how many samples
    were left unsent by the cost limit."""
    strategy = get_strategy(opts.strategy, opts.strategy_options)
    done = store.done_keys(run.id)
    scorer = Scorer(executor)
    unsent = 0

    async def calibrated() -> None:
        await scorer.calibrate(tasks, opts.timeout_floor_s, opts.timeout_factor)
        limits = {t.task_id: await scorer.timeout_s(t) for t in tasks}
        store.add_tasks(
            run.id,
            [(t.task_id, t.entry_point, limits[t.task_id]) for t in tasks],
            scorer.baselines,
        )

    async def one(chain: tuple[Model, ...], task: Task, index: int) -> None:
        nonlocal unsent
        ctx = Context(chain[0], opts.config, scorer, chain=chain)
        try:
            solution = await strategy.solve(task, index, ctx)
        except CostLimitReached:
            # Unsent, not an error: nothing is stored, so `--resume` sends the whole sample.
            unsent += 1
            return
        sample = await scorer.score(solution)
        await stored_tasks
        store.record_sample(run.id, sample)
        if on_sample is not None:
            on_sample(sample)

    # The first failure (calibration's, a provider unusable as configured) stops every sample,
    # and is raised as itself: one line for a user's error, its traceback for a bug.
    try:
        async with asyncio.TaskGroup() as group:
            stored_tasks = group.create_task(calibrated())
            for key, chain in _systems(models, strategy):
                for task, index in jobs:
                    if (key, strategy.name, task.task_id, index) not in done:
                        group.create_task(one(chain, task, index))
    except BaseExceptionGroup as failed:
        raise _first(failed) from None
    return unsent


def _cloud_spend(store: Store, run: Run, models: list[Model], prices: PriceTable) -> float:
    """What the run's stored cloud calls cost so far, as billed."""
    spent = 0.0
    for model in models:
        if model.provider.capabilities.local:
            continue
        price = prices.get(model.key)
        assert price is not None
        tier = price.long_context
        usage = call_usage(
            store, run.id, model.key, long_above=tier.above_tokens if tier is not None else None
        )
        spent += bill(price, usage).usd
    return spent


def _budget(models: list[Model], opts: RunOptions) -> Budget | None:
    """The run's `--cost-limit`, refused where a cloud model has no price to measure by."""
    if opts.cost_limit_usd is None:
        return None
    if not math.isfinite(opts.cost_limit_usd) or opts.cost_limit_usd < 0:
        raise OptionError("--cost-limit must be a finite number of dollars, 0 or more")
    prices = opts.prices
    assert prices is not None
    cloud = [m.key for m in models if not m.provider.capabilities.local]
    unpriced = [key for key in cloud if prices.get(key) is None]
    if unpriced:
        raise OptionError(
            f"--cost-limit needs a price for {unpriced[0]}; add it with --prices FILE"
        )
    return Budget(opts.cost_limit_usd, {key: prices.models[key] for key in cloud})


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _record_cost_limit(store: Store, run: Run, budget: Budget, unsent: int) -> None:
    """The cap this session ran under, what the run had spent, and the samples it left unsent
    (the report says so)."""
    current = store.get_run(run.name)
    assert current is not None
    meta = dict(current.provenance)
    meta["cost_limit"] = {
        "usd": budget.limit_usd,
        "spent_usd": round(budget.spent_usd, 6),
        "reached": unsent > 0,
        "unsent": unsent,
    }
    store.set_provenance(run.id, meta)


def _release(models: list[Model], owned: bool, caches: list[Any]) -> None:
    """Close the models the run loaded; give a caller's models back as they came."""
    for model, cache in zip(models, caches, strict=True):
        if owned:
            model.close()
        else:
            model.cache = cache


def run_benchmark(
    store: Store,
    opts: RunOptions,
    on_start: Callable[[Run, int, int], None] | None = None,
    on_sample: Progress | None = None,
    models: Sequence[Model] | None = None,
) -> Run:
    """Run (or resume) a benchmark; returns the stored run once every sample is in.

    `models`, when given, are used as loaded instead of loading `opts.models` (a library
    caller keeping weights across runs); they stay open, the caller's to close.
    """
    if opts.samples < 1:
        raise OptionError("--samples must be at least 1")
    for name, value in (("--temperature", opts.config.temperature), ("top_p", opts.config.top_p)):
        if not math.isfinite(value):
            raise OptionError(f"{name} must be a finite number, not {value}")
    if not opts.models:
        raise OptionError("give at least one --model")
    bench = load_benchmark(opts.benchmark)
    tasks = bench.select(list(opts.task_ids) or None, opts.limit)
    strategy = get_strategy(opts.strategy, opts.strategy_options)
    owned = models is None
    if models is None:
        models = [load_model(spec, opts.model_options.get(str(spec), {})) for spec in opts.models]
    else:
        models = list(models)
        if [m.spec for m in models] != list(opts.models):
            raise OptionError("the models given must be the run's models, in order")
    caches = [model.cache for model in models]
    try:
        budget = _budget(models, opts)
    except BaseException:
        _release(models, owned, caches)
        raise
    if opts.reuse_calls:
        calls = StoredCalls(store)
        for model in models:
            model.cache = calls
    workers = opts.workers or os.cpu_count() or 1
    try:
        # Before the run is stored: where untrusted code cannot be isolated, refuse first.
        executor = open_executor(
            opts.executor, workers=workers, limits=Limits(), allow_unsafe=opts.unsafe_sandbox
        )
    except BaseException:
        _release(models, owned, caches)
        raise
    try:
        # GPU tasks whose framework samples cannot import are refused before a run is stored.
        asyncio.run(preflight(tasks, executor))
        run = _open_run(store, bench, opts, executor)
    except BaseException:
        executor.close()
        _release(models, owned, caches)
        raise
    try:
        with executor:
            layers = executor.provenance["layers"]
            for model in models:
                caps = model.provider.capabilities
                info = {
                    **model.provider.info(),
                    "local": caps.local,
                    "deterministic_greedy": caps.deterministic_greedy,
                    "honours_sampling": caps.honours_sampling,
                }
                store.add_model(run.id, model.key, {**info, "sandbox_layers": layers})
            systems = _systems(models, strategy)
            if strategy.uses_chain:
                local = all(m.provider.capabilities.local for m in models)
                chain = [m.key for m in models]
                store.add_model(run.id, systems[0][0], {"chain": chain, "local": local})
            for model in models:
                if model.provider.batcher is not None:
                    # Pending batches are found again by a resumed run, not sent twice.
                    model.provider.batcher.ledger = StoredBatches(store, run.id)
            if budget is not None:
                assert opts.prices is not None
                budget.spent_usd = _cloud_spend(store, run, models, opts.prices)
                budget.reached = budget.spent_usd >= budget.limit_usd
                for model in models:
                    model.budget = budget
            jobs = [(t, i) for t in tasks for i in range(opts.samples)]
            done = len(store.done_keys(run.id))
            if on_start is not None:
                on_start(run, len(jobs) * len(systems), done)
            unsent = asyncio.run(
                _run_jobs(store, run, tasks, jobs, models, opts, executor, on_sample)
            )
        if budget is not None:
            _record_cost_limit(store, run, budget, unsent)
        # Samples lost to failed model calls leave the run unfinished: `--resume` retries them;
        # so do samples the cost limit left unsent.
        holes = store.model_error_count(run.id) + unsent
        store.set_run_status(run.id, "incomplete" if holes else "complete")
    except BaseException:
        store.set_run_status(run.id, "interrupted")
        raise
    finally:
        for model in models:
            model.budget = None
        _release(models, owned, caches)
    final = store.get_run(run.name)
    assert final is not None
    return final
