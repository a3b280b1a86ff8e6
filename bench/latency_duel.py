"""Latency as a person feels it, local against cloud, in one report: `codeduel latency` on the
bundled local model and on the loopback stand-in for the Anthropic API.

    .venv/bin/python bench/latency_duel.py [--requests 16] [--limit 16] [--users 1,4,16]
        [--think-time 1] [--max-tokens 192] [--delay 0.35] [--chunk-delay 0.012]
        [--out docs/results/latency]

The stand-in (tests/models/fakeapi.py, the real `anthropic` SDK talking to it over a socket)
holds each answer's first byte back by `--delay` seconds (a network round trip and a prefill)
and streams the answer in pieces `--chunk-delay` apart, at most 16 at once. It answers each
HumanEval task with its canonical solution, except every sixth task, which it gets wrong: its
speed and accuracy are set here and say nothing about Claude. First a small accuracy run of both
models on the same tasks (`codeduel run`, stored in OUT/runs.db), then the latency run with that
run's pass@1 beside it; the report goes to OUT/latency.md and the per-request times to
OUT/latency.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.models.fakeapi import FakeAPI  # noqa: E402

from codeduel.benchmarks import load_benchmark  # noqa: E402

KEY = "sk-ant-codeduel-latency-bench-7d21"
LOCAL = "llamacpp/qwen2.5-coder-0.5b-instruct"
CLOUD = "anthropic/claude-sonnet-4-5"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--users", default="1,4,16")
    parser.add_argument("--think-time", default="1")
    parser.add_argument("--max-tokens", default="192")
    parser.add_argument("--delay", type=float, default=0.35)
    parser.add_argument("--chunk-delay", type=float, default=0.012)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/latency")
    parser.add_argument("--local", default=LOCAL)
    parser.add_argument(
        "--accuracy-db", type=Path, help="Take pass@1 from this store's --accuracy-run instead."
    )
    parser.add_argument("--accuracy-run", default="accuracy")
    args = parser.parse_args()
    tasks = load_benchmark("humaneval").tasks
    by_prompt = {t.prompt.strip(): (n, t) for n, t in enumerate(tasks)}

    def answer(request: dict[str, Any]) -> str:
        text = request["messages"][0]["content"]
        content = text if isinstance(text, str) else text[0]["text"]
        for prompt, (n, task) in by_prompt.items():
            if prompt in content:
                body = task.canonical_solution or ""
                if n % 6 == 5:
                    body = "    return None\n"
                return f"```python\n{task.prompt}{body}```"
        return "```python\npass\n```"

    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "runs.db"
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CODEDUEL_DB": str(db)}
    codeduel = str(ROOT / ".venv/bin/codeduel")
    common = ["--model", args.local, "--model", CLOUD, "-M", "llamacpp:n_threads=1", "-M",
              "anthropic:max_concurrency=16", "-M", "anthropic:prefill=false"]  # fmt: skip
    location = f"{platform.node()} (loopback to the stand-in: no real network)"
    with FakeAPI(
        answer, api_key=KEY, first_token_delay_s=args.delay, chunk_delay_s=args.chunk_delay
    ) as api:
        env["ANTHROPIC_BASE_URL"] = api.url
        run = [codeduel, "run", "humaneval", "--limit", str(args.limit), *common, "--max-tokens",
               args.max_tokens, "--run-name", "accuracy", "--no-progress"]  # fmt: skip
        if args.accuracy_db is None:
            print("$", " ".join(run[1:]), flush=True)
            subprocess.run(run, env=env, check=True, stdout=subprocess.DEVNULL)
        else:
            env["CODEDUEL_DB"] = str(args.accuracy_db)
        with tempfile.TemporaryDirectory() as tmp:
            latency = [codeduel, "latency", "humaneval", "--limit", str(args.limit), *common,
                       "--users", args.users, "--think-time", args.think_time,
                       "--requests", str(args.requests), "--max-tokens", args.max_tokens,
                       "--location", location, "--accuracy", args.accuracy_run]  # fmt: skip
            print("$", " ".join(latency[1:]), flush=True)
            as_json = Path(tmp) / "latency.json"
            subprocess.run([*latency, "--format", "json", "--output", str(as_json)], env=env,
                           check=True)  # fmt: skip
            (args.out / "latency.json").write_text(as_json.read_text())
    # The Markdown from the same figures, without a second measurement.
    import json

    from codeduel.latency import LatencyReport, LevelSummary, render_latency_markdown

    data = json.loads((args.out / "latency.json").read_text())
    levels = [
        LevelSummary(**{**lv, "ttft_s": _keys(lv["ttft_s"]), "total_s": _keys(lv["total_s"])})
        for lv in data["levels"]
    ]
    report = LatencyReport(
        data["benchmark"], data["location"], data["think_time_s"], data["requests"],
        data["max_tokens"], levels,
        {m: (a["pass_at_1_pct"], a["tasks"], a["run"]) for m, a in data["accuracy"].items()},
    )  # fmt: skip
    text = render_latency_markdown(report)
    (args.out / "latency.md").write_text(text)
    print(text)
    return 0


def _keys(d: dict[str, float] | None) -> dict[int, float] | None:
    return None if d is None else {int(k): v for k, v in d.items()}


if __name__ == "__main__":
    sys.exit(main())
