"""Report rows, one per model and strategy, built from SQL aggregates over the store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from codeduel.costs import LocalCost, PriceTable, Usage, bill, load_prices, token_cost
from codeduel.metrics import Estimate, Summary, pass_at_k_ci, summarize
from codeduel.report._economy import code_chars
from codeduel.report._wellformed import FIGURE, FormatFailures, format_failures
from codeduel.store import Run, Store, call_usage

__all__ = ["CostSettings", "ReportRow", "build_rows"]


@dataclass(frozen=True)
class CostSettings:
    prices: PriceTable = field(default_factory=load_prices)
    local: LocalCost = field(default_factory=LocalCost)


@dataclass(frozen=True)
class ReportRow:
    run: str
    benchmark: str
    model: str
    strategy: str
    local: bool
    tasks: int
    samples: int
    passed: int
    # Samples whose model calls all failed: stored, but not counted in pass@k.
    model_errors: int
    statuses: dict[str, int]
    pass_at_1: Estimate | None
    pass_at_k: dict[int, Estimate]
    # The system's own throughput: its wall seconds (first sample's start to the last one's
    # end, as `system_wall_s`) per scored problem. Not a request's latency, which under
    # batching or concurrency is many times longer than what a problem costs in time.
    wall_s_per_problem: float | None
    system_wall_s: float | None
    # Each sample's own time (generation plus execution): request latency, p50 / p95.
    latency_s: Summary | None
    ttft_s: Summary | None
    # Output tokens per second the system delivered: all its output tokens over its wall time.
    aggregate_tokens_per_s: float | None
    # One stream's decode speed (tokens after the first over each call's decode time): under
    # batching a share of the engine, not its speed.
    decode_tokens_per_s: float | None
    output_tokens_per_s: float | None
    # Engine seconds per scored problem (busy_s): what the energy is counted from.
    engine_s_per_problem: float | None
    # Per scored problem: all calls of a sample, model errors left out.
    prompt_tokens_mean: float
    completion_tokens_mean: float
    output_tokens_per_problem: Summary | None
    # Characters of the models' answers over all calls (the prefill not counted), and how many
    # of them are in the extracted code: what the score needed of what was generated.
    answer_chars: int
    code_chars: int
    output_in_code: float | None
    hit_token_limit: int
    peak_rss_bytes: int | None
    peak_vram_bytes: int | None
    usd_total: float | None
    usd_per_problem: float | None
    usd_per_solved: float | None
    cost_basis: str
    # The sampling the system's answers actually came from, in words.
    sampling: str = ""
    # From each call's stored extra (runs before it was stored count 0): retries the wrapper
    # made, answers replayed from the call cache, calls whose token counts the provider
    # estimated from stream chunks (the server sent no usage).
    retries: int = 0
    cache_hits: int = 0
    estimated_token_calls: int = 0
    # EvalPlus runs (humaneval+, mbpp+): pass@1 and the count passed on the base tests alone,
    # beside the row's own figures, which count base and plus tests. None for other runs.
    pass_at_1_base: Estimate | None = None
    passed_base: int | None = None
    # Reasoning tokens the providers returned apart from the answers (part of the output
    # tokens, priced as them); None when no call had any, and then left out of the JSON.
    thinking_tokens: int | None = None
    # Answers with no code, code that does not parse, or without the function asked for; only
    # for runs that record the figure (None otherwise, and then left out of the JSON).
    format_failures: FormatFailures | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.pass_at_1_base is None:
            # Only EvalPlus runs have them: other reports stay as they were.
            del data["pass_at_1_base"], data["passed_base"]
        if self.thinking_tokens is None:
            del data["thinking_tokens"]
        if self.format_failures is None:
            del data["format_failures"]
        return data


def _is_local(info: dict[str, Any], model: str) -> bool:
    if "local" in info:
        return bool(info["local"])
    return model.startswith("llamacpp/")


def _cost(
    model: str,
    local: bool,
    tokens_in: int,
    tokens_out: int,
    generation_s: float,
    costs: CostSettings,
    calls: list[Usage] | None = None,
) -> tuple[float | None, str]:
    """The model's cost and its basis in words. `calls`, the model's calls summed by kind
    (`store.call_usage`), bill batch, cache and long-context rates where any applied."""
    price = costs.prices.get(model)
    # A local model is priced by its energy, unless a token price is declared for it (--prices),
    # e.g. what a host charges for the same open model.
    if local and price is None:
        energy = costs.local.energy_usd(generation_s)
        return energy, (
            f"energy: {costs.local.watts:g} W declared × engine time at "
            f"${costs.local.usd_per_kwh:g}/kWh"
        )
    if price is None:
        return None, "no price for this model (add it with --prices)"
    listed = (
        f"${price.input_per_mtok:g}/${price.output_per_mtok:g} per Mtok in/out, "
        f"read {price.read_on}"
    )
    billed = bill(price, calls or [])
    terms = billed.terms(price)
    # Only list prices applied (every run before batch and cache usage were stored): the
    # tokens of the samples at them, as always.
    if not terms:
        return token_cost(price, tokens_in, tokens_out), listed
    return billed.usd, f"{listed}; {terms}"


def _system_info(infos: dict[str, dict[str, Any]], model: str) -> dict[str, Any]:
    """A model's stored info; for a cascade's chain, what holds for every model in it."""
    info = infos.get(model, {})
    if "chain" not in info:
        return info
    members = [_system_info(infos, m) for m in info["chain"]]
    merged: dict[str, Any] = {
        key: all(m[key] for m in members)
        for key in ("honours_sampling", "deterministic_greedy", "engine")
        if members and all(key in m for m in members)
    }
    return merged


def _sampling(info: dict[str, Any], asked: list[tuple[float, float, int]]) -> str:
    """What decoded the answers: the (temperature, top_p, calls) the system's calls asked for,
    unless the API keeps its own sampling."""
    if "honours_sampling" not in info and "engine" in info:
        # An in-process engine (llama.cpp, codeduel's torch engine) of a run that predates the
        # record: it decodes what it is asked, greedily at temperature 0.
        info = {**info, "honours_sampling": True, "deterministic_greedy": True}
    parts = []
    for temperature, top_p, calls in asked:
        what = "temperature 0" if temperature == 0 else f"temperature {temperature:g}"
        if temperature and top_p != 1:
            what += f", top_p {top_p:g}"
        parts.append(f"{what} ({calls} calls)" if len(asked) > 1 else what)
    settings = "; ".join(parts) or "no calls"
    if "honours_sampling" not in info:
        return f"{settings} asked; the run predates the record of whether the provider honours it"
    if info["honours_sampling"] is False:
        return (
            f"the API's own sampling (it takes no sampling parameters; {settings} asked): "
            "every answer is a draw, never replayed from the cache"
        )
    if all(t == 0 for t, _, _ in asked):
        if not info.get("deterministic_greedy"):
            return (
                "temperature 0, which this API does not promise to decode greedily: answers "
                "are not replayed from the cache"
            )
        return "greedy (temperature 0)"
    return settings


def _system_wall_s(run: Run, samples: list[tuple[str, float]]) -> float | None:
    """From the system's first sample's start to its last one's end (each sample stored as it
    ends, `created_at`, after its `seconds`), clipped to the run's start; a resumed run's
    pause counts, as in the run's wall time."""
    if not samples:
        return None
    ends = [(datetime.fromisoformat(end).timestamp(), seconds) for end, seconds in samples]
    start = max(datetime.fromisoformat(run.started_at).timestamp(), min(e - s for e, s in ends))
    return max(e for e, _ in ends) - start


# Per task: scored samples, and those whose answer passed EvalPlus's base tests, with how many
# answers have a base verdict at all (none: not an EvalPlus run).
_BASE = """
SELECT COUNT(*), SUM(COALESCE(json_extract(e.extra, '$.base') = 'pass', 0)),
    COUNT(json_extract(e.extra, '$.base'))
FROM samples s
LEFT JOIN attempts a ON a.sample_id = s.id AND a.attempt_index = COALESCE(s.final_attempt,
    (SELECT MAX(attempt_index) FROM attempts WHERE sample_id = s.id))
LEFT JOIN executions e ON e.id = (SELECT MAX(id) FROM executions WHERE attempt_id = a.id
    AND tests = 'hidden')
WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND s.model_error = 0
GROUP BY s.task_id
"""


def _base_tests(db: Any, key: tuple[Any, ...]) -> tuple[Estimate | None, int | None]:
    """pass@1 on EvalPlus's base tests and the samples that passed them; None, None when no
    answer has a base verdict."""
    per_task = db.execute(_BASE, key).fetchall()
    if not any(r[2] for r in per_task):
        return None, None
    return pass_at_k_ci([(r[0], r[1]) for r in per_task], 1), sum(r[1] for r in per_task)


def build_rows(store: Store, run: Run, costs: CostSettings | None = None) -> list[ReportRow]:
    costs = costs or CostSettings()
    db = store.db
    infos = store.models(run.id)
    figures = FIGURE in (run.provenance.get("figures") or [])
    groups = db.execute(
        "SELECT model, strategy, COUNT(*) AS samples, SUM(status = 'passed') AS passed, "
        "SUM(model_error) AS model_errors, SUM(hit_token_limit) AS hit_limit, "
        "COALESCE(AVG(prompt_tokens) FILTER (WHERE model_error = 0), 0) AS pt, "
        "COALESCE(AVG(completion_tokens) FILTER (WHERE model_error = 0), 0) AS ct, "
        "SUM(prompt_tokens) AS pt_sum, "
        "SUM(completion_tokens) AS ct_sum, SUM(generation_s) AS gen_sum, "
        "MAX(peak_rss_bytes) AS rss, MAX(peak_vram_bytes) AS vram "
        "FROM samples WHERE run_id = ? GROUP BY model, strategy ORDER BY MIN(id)",
        (run.id,),
    ).fetchall()
    rows = []
    for g in groups:
        key = (run.id, g["model"], g["strategy"])
        scope = "WHERE run_id = ? AND model = ? AND strategy = ?"
        per_task = [
            (r[0], r[1])
            for r in db.execute(
                f"SELECT COUNT(*), SUM(status = 'passed') FROM samples {scope} AND model_error = 0 "
                "GROUP BY task_id",
                key,
            )
        ]
        statuses = {
            r[0]: r[1]
            for r in db.execute(
                f"SELECT status, COUNT(*) FROM samples {scope} GROUP BY status ORDER BY status", key
            )
        }
        # Request latency: the time of a sample, generation plus execution.
        timed = db.execute(
            f"SELECT generation_s + execution_s, created_at FROM samples {scope} "
            "AND model_error = 0",
            key,
        ).fetchall()
        times = [r[0] for r in timed]
        wall = _system_wall_s(run, [(r[1], r[0]) for r in timed])
        output_tokens = [
            r[0]
            for r in db.execute(
                f"SELECT completion_tokens FROM samples {scope} AND model_error = 0", key
            )
        ]
        ttfts = [
            r[0]
            for r in db.execute(f"SELECT ttft_s FROM samples {scope} AND ttft_s IS NOT NULL", key)
        ]
        # Decode speed over the calls that have one; engine time over all of them (a batched
        # call counts its share of each step, so energy is not counted once per sequence).
        decode, busy = db.execute(
            "SELECT SUM(c.completion_tokens - 1) FILTER (WHERE c.completion_tokens > 1 "
            "AND c.latency_s > c.ttft_s) / SUM(c.latency_s - c.ttft_s) FILTER (WHERE "
            "c.completion_tokens > 1 AND c.latency_s > c.ttft_s), "
            "SUM(COALESCE(c.busy_s, c.latency_s, 0)) "
            "FROM model_calls c JOIN attempts a ON a.id = c.attempt_id "
            "JOIN samples s ON s.id = a.sample_id "
            "WHERE s.run_id = ? AND s.model = ? AND s.strategy = ?",
            key,
        ).fetchone()
        asked = [
            (float(t or 0), float(1 if p is None else p), int(n))
            for t, p, n in db.execute(
                "SELECT json_extract(c.config, '$.temperature') AS t, "
                "json_extract(c.config, '$.top_p') AS p, COUNT(*) "
                "FROM model_calls c JOIN attempts a ON a.id = c.attempt_id "
                "JOIN samples s ON s.id = a.sample_id "
                "WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? GROUP BY t, p ORDER BY t",
                key,
            )
        ]
        retries, cache_hits, estimated = db.execute(
            "SELECT COALESCE(SUM(json_extract(c.extra, '$.attempts') - 1), 0), "
            "COALESCE(SUM(json_extract(c.extra, '$.cached') = 1), 0), "
            "COALESCE(SUM(json_extract(c.extra, '$.usage') IS NOT NULL), 0) "
            "FROM model_calls c JOIN attempts a ON a.id = c.attempt_id "
            "JOIN samples s ON s.id = a.sample_id "
            "WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND c.extra IS NOT NULL",
            key,
        ).fetchone()
        (thinking,) = db.execute(
            "SELECT SUM(json_extract(c.extra, '$.thinking_tokens')) "
            "FROM model_calls c JOIN attempts a ON a.id = c.attempt_id "
            "JOIN samples s ON s.id = a.sample_id "
            "WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND c.extra IS NOT NULL",
            key,
        ).fetchone()
        # One call at a time: the answers are the largest texts in the store.
        answer_chars = in_code = 0
        for response, code in db.execute(
            "SELECT c.response, a.code FROM model_calls c JOIN attempts a ON a.id = c.attempt_id "
            "JOIN samples s ON s.id = a.sample_id "
            "WHERE s.run_id = ? AND s.model = ? AND s.strategy = ?",
            key,
        ):
            answer_chars += len(response)
            in_code += code_chars(response, code)
        estimates: dict[int, Estimate] = {}
        if per_task:
            max_n = min(n for n, _ in per_task)
            estimates = {k: pass_at_k_ci(per_task, k) for k in (1, 5, 10, 100) if k <= max_n}
        local = _is_local(infos.get(g["model"], {}), g["model"])
        price = costs.prices.get(g["model"])
        tier = price.long_context if price is not None else None
        usage = call_usage(
            store,
            run.id,
            g["model"],
            g["strategy"],
            system=g["model"],
            long_above=tier.above_tokens if tier is not None else None,
        )
        usd, basis = _cost(g["model"], local, g["pt_sum"], g["ct_sum"], busy or 0.0, costs, usage)
        scored = g["samples"] - g["model_errors"]
        base_at_1, passed_base = _base_tests(db, key)
        rows.append(
            ReportRow(
                run=run.name,
                benchmark=run.benchmark,
                model=g["model"],
                strategy=g["strategy"],
                local=local,
                tasks=len(per_task),
                samples=g["samples"],
                passed=g["passed"],
                model_errors=g["model_errors"],
                statuses=statuses,
                pass_at_1=estimates.get(1),
                pass_at_k=estimates,
                wall_s_per_problem=wall / scored if wall and scored else None,
                system_wall_s=wall,
                latency_s=summarize(times),
                ttft_s=summarize(ttfts),
                aggregate_tokens_per_s=g["ct_sum"] / wall if wall else None,
                decode_tokens_per_s=decode,
                output_tokens_per_s=g["ct_sum"] / busy if busy else None,
                engine_s_per_problem=busy / scored if busy and scored else None,
                prompt_tokens_mean=g["pt"],
                completion_tokens_mean=g["ct"],
                output_tokens_per_problem=summarize(output_tokens),
                answer_chars=answer_chars,
                code_chars=in_code,
                output_in_code=in_code / answer_chars if answer_chars else None,
                hit_token_limit=g["hit_limit"],
                peak_rss_bytes=g["rss"],
                peak_vram_bytes=g["vram"],
                usd_total=usd,
                usd_per_problem=usd / scored if usd is not None and scored else None,
                usd_per_solved=usd / g["passed"] if usd is not None and g["passed"] else None,
                cost_basis=basis,
                sampling=_sampling(_system_info(infos, g["model"]), asked),
                retries=retries,
                cache_hits=cache_hits,
                estimated_token_calls=estimated,
                thinking_tokens=thinking,
                format_failures=format_failures(db, key) if figures else None,
                pass_at_1_base=base_at_1,
                passed_base=passed_base,
            )
        )
    return rows
