from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeduel.cli._cost import explain_break_even
from codeduel.metrics import paired_difference_ci
from codeduel.report import build_hybrid, build_report, render_json, render_markdown
from codeduel.report._hybrid_tables import hybrid_markdown
from codeduel.store import Run, Store
from tests.report.samples import CLOUD, LOCAL, hybrid_sample, report_costs


def test_rows_costs_and_model_errors(duel: tuple[Store, Run]) -> None:
    store, run = duel
    report = build_report(store, run, report_costs())
    local, cloud = report.rows
    assert (local.model, local.passed, local.samples, local.local) == (LOCAL, 4, 7, True)
    # The failed API call is stored and shown but not scored: 5 of 6, not 5 of 7.
    assert (cloud.samples, cloud.model_errors, cloud.passed) == (7, 1, 5)
    assert cloud.pass_at_1 is not None and cloud.pass_at_1.value == pytest.approx(5 / 6)
    # Sonnet: 6 scored calls of 300 in + 150 out at $3/$15 per Mtok.
    cloud_total = 6 * (300 * 3 + 150 * 15) / 1e6
    assert cloud.usd_total == pytest.approx(cloud_total)
    assert cloud.usd_per_problem == pytest.approx(cloud_total / 6)
    assert cloud.usd_per_solved == pytest.approx(cloud_total / 5)
    # Local: 100 W for 7 × 2 s at $0.2/kWh.
    assert local.usd_total == pytest.approx(100 * 14 / 3600 / 1000 * 0.2)
    (pair,) = report.paired
    assert pair.only_a == () and pair.only_b == ("T/2", "T/3")
    assert pair.tasks == 6 and pair.both == 3 and pair.neither == 1
    assert pair.p_value == pytest.approx(0.5)


def test_markdown_has_both_duel_tables(duel: tuple[Store, Run]) -> None:
    store, run = duel
    costs = report_costs()
    text = render_markdown([build_report(store, run, costs)], costs.local)
    assert "| System | Pass@1 % (95% CI) |" in text
    assert "| System | Up-front cost | Running cost per problem |" in text
    assert f"vs {CLOUD}:" in text and "problems/month" in text
    assert "McNemar exact p = 0.5" in text
    assert "1 model errors, not scored" in text
    payload = json.loads(render_json([build_report(store, run, costs)]))
    assert payload["runs"][0]["paired"][0]["only_b"] == ["T/2", "T/3"]


def test_cost_explains_break_even_from_a_measured_run(duel: tuple[Store, Run]) -> None:
    store, run = duel
    text = explain_break_even(store, run, report_costs(), None, CLOUD, 10_000)
    assert "measured in this run" in text
    assert "problems per month" in text and "paid for itself after" in text
    # Without the cloud model in the run, its listed prices are applied to the local tokens.
    text = explain_break_even(store, run, report_costs(), LOCAL, "openai/gpt-4o", 10_000)
    assert "was not in this run" in text and "$2.5/$10" in text


def test_repair_gains_come_with_paired_intervals(tmp_path: Path) -> None:
    """Repair on 10 tasks: 4 solved at once, 3 fixed later, 3 never; resample solves 5."""
    store = Store(tmp_path / "s.db")
    run = store.create_run("hy", "humaneval", "abc", {"generation": {"max_tokens": 64}}, {})
    repair = [["passed"]] * 4 + [["failed", "passed"]] * 3 + [["failed"] * 3] * 3
    resample = [["passed"]] * 4 + [["failed", "passed"]] + [["failed"] * 3] * 5
    for i, (a, b) in enumerate(zip(repair, resample, strict=True)):
        store.record_sample(run.id, hybrid_sample(LOCAL, "repair", f"T/{i}", a))
        store.record_sample(run.id, hybrid_sample(LOCAL, "resample", f"T/{i}", b))
    hybrid = build_hybrid(store, run)
    curve = next(c for c in hybrid.curves if c.strategy == "repair")
    first = [True] * 4 + [False] * 6
    final = [True] * 7 + [False] * 3
    assert curve.gain == paired_difference_ci(final, first)
    assert curve.gain is not None and curve.gain.value == pytest.approx(0.3)
    (cmp,) = hybrid.comparisons
    # With every token spent: repair 7/10 against resample 5/10, paired on the same tasks.
    assert cmp.points[-1][1:] == (0.7, 0.5)
    assert cmp.gaps[-1] == paired_difference_ci(final, [True] * 5 + [False] * 5)
    text = "\n".join(hybrid_markdown(hybrid))
    gain = curve.gain
    assert f"{100 * gain.value:+.1f} ({100 * gain.low:+.1f} to {100 * gain.high:+.1f})" in text


def test_rows_count_output_tokens_and_the_share_in_code(economy: tuple[Store, Run]) -> None:
    store, run = economy
    local, cloud, repair = build_report(store, run, report_costs()).rows
    # 100 + 100 + 400 tokens out over 3 problems; the median problem took 100.
    assert local.output_tokens_per_problem is not None
    assert (local.output_tokens_per_problem.mean, local.output_tokens_per_problem.p50) == (
        200,
        100,
    )
    # 60 + 0 + 60 characters of code in 100 + 40 + 60 of answers: the prose answer weighs in.
    assert (local.code_chars, local.answer_chars) == (120, 200)
    assert local.output_in_code == pytest.approx(0.6)
    # The failed call is no problem solved: 150 tokens out and 300 in per scored problem.
    assert cloud.output_tokens_per_problem is not None
    assert cloud.output_tokens_per_problem.mean == cloud.completion_tokens_mean == 150
    assert cloud.prompt_tokens_mean == 300
    assert (cloud.code_chars, cloud.answer_chars) == (60, 100)
    # Every attempt's call counts: 50, 150 and 50 tokens; 5 × 6 code characters in 90.
    assert repair.output_tokens_per_problem is not None
    assert repair.output_tokens_per_problem.mean == pytest.approx(250 / 3)
    assert repair.output_tokens_per_problem.p50 == 50
    assert (repair.code_chars, repair.answer_chars) == (30, 90)


def test_reports_show_the_token_economy(economy: tuple[Store, Run]) -> None:
    store, run = economy
    report = build_report(store, run, report_costs())
    text = render_markdown([report])
    # The duel table: the first table of the report, up to the blank line after it.
    duel = text[text.index("| System |") :].split("\n\n")[0].splitlines()
    head = duel[0].split(" | ")
    tokens = head.index("Tokens out per problem mean / p50")
    share = head.index("Output in extracted code % (chars)")
    cells = {line.split(" | ")[0].removeprefix("| "): line.split(" | ") for line in duel[2:]}
    assert (cells[LOCAL][tokens], cells[LOCAL][share]) == ("200 / 100", "60.0")
    assert (cells[CLOUD][tokens], cells[CLOUD][share]) == ("150 / 150", "60.0")
    assert (cells[f"{LOCAL} (repair)"][tokens], cells[f"{LOCAL} (repair)"][share]) == (
        "83 / 50",
        "33.3",
    )
    assert cells[CLOUD][head.index("Tokens in per problem")] == "300"
    assert "Output in extracted code: the characters" in text
    rows = json.loads(render_json([report]))["runs"][0]["rows"]
    assert [r["output_in_code"] for r in rows] == pytest.approx([0.6, 0.6, 1 / 3])
    assert [r["output_tokens_per_problem"]["mean"] for r in rows] == pytest.approx(
        [200, 150, 250 / 3]
    )
    assert [(r["code_chars"], r["answer_chars"]) for r in rows] == [(120, 200), (60, 100), (30, 90)]


def test_a_declared_price_prices_a_local_model_by_its_tokens(
    duel: tuple[Store, Run], tmp_path: Path
) -> None:
    from codeduel.costs import load_prices
    from codeduel.report._rows import CostSettings

    store, run = duel
    table = tmp_path / "prices.json"
    entry = {"input_per_mtok": 0.1, "output_per_mtok": 0.4, "read_on": "declared"}
    table.write_text(json.dumps({"version": "test", "models": {LOCAL: entry}}))
    declared = CostSettings(load_prices(table), report_costs().local)
    by_energy, _ = build_report(store, run, report_costs()).rows
    by_tokens, _ = build_report(store, run, declared).rows
    # Energy: 100 W for 7 × 2 s at $0.2/kWh; declared: its own tokens at $0.1/$0.4 per Mtok.
    assert by_energy.usd_total == pytest.approx(100 * 14 / 3600 / 1000 * 0.2)
    tokens_in, tokens_out = store.db.execute(
        "SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM samples "
        "WHERE run_id = ? AND model = ?",
        (run.id, LOCAL),
    ).fetchone()
    assert tokens_in and tokens_out
    assert by_tokens.usd_total == pytest.approx((tokens_in * 0.1 + tokens_out * 0.4) / 1e6)
    assert by_tokens.usd_total != pytest.approx(by_energy.usd_total)


def test_time_per_problem_is_the_systems_throughput_not_a_requests_latency(
    tmp_path: Path,
) -> None:
    # The committed full HumanEval run with 16 sequences batched: 164 problems in 2,244 s.
    db = tmp_path / "runs.db"
    db.write_bytes(
        (Path(__file__).parents[2] / "docs/results/hybrid-humaneval/runs.db").read_bytes()
    )
    with Store(db) as store:
        run = store.get_run("he-single")
        assert run is not None
        report = build_report(store, run, report_costs())
    (row,) = report.rows
    assert row.system_wall_s == pytest.approx(2244, abs=2)
    assert row.wall_s_per_problem == pytest.approx(2244 / 164, abs=0.02)  # 13.7 s
    assert row.latency_s is not None and row.latency_s.p50 > 150  # a request waits ~192 s
    assert row.aggregate_tokens_per_s == pytest.approx(
        164 * row.completion_tokens_mean / 2244, rel=0.01
    )
    text = render_markdown([report], report_costs().local)
    assert "| Wall s per problem | Request latency p50 / p95 s |" in text
    assert "| 13.67 | 192.08 / 440.30 |" in text
    # Throughput in llama.cpp's tools' units: the engine's, all sequences together, and one
    # sequence's decode rate (16 shared the engine here: 1.5 tokens/s each).
    assert row.output_tokens_per_s is not None and row.decode_tokens_per_s is not None
    assert f"; {row.output_tokens_per_s:.1f} output tokens per second of engine time (all " in text
    assert row.decode_tokens_per_s == pytest.approx(1.5, abs=0.1)
    assert f"; {row.decode_tokens_per_s:.1f} tokens/s per sequence while it decodes" in text


def test_each_system_says_how_its_answers_were_sampled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codeduel.cli import main
    from tests.models.fakeapi import FakeAPI

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-sampling")
    db = tmp_path / "runs.db"
    answer = "```python\ndef truncate_number(number):\n    return number % 1.0\n```"
    with FakeAPI(lambda request: answer, api_key="sk-ant-test-sampling") as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        argv = ["run", "humaneval", "--model", "anthropic/claude-test", "-M", "prefill=false",
                "--task-ids", "HumanEval/2", "--db", str(db), "--no-progress"]  # fmt: skip
        main([*argv, "--run-name", "one"])
        main([*argv, "--run-name", "two"])
        assert len(api.posts) == 2  # "temperature 0" to this API is a draw: not replayed
    main(["report", "two", "--db", str(db)])
    out = capsys.readouterr().out
    assert "anthropic/claude-test sampling: the API's own sampling" in out
