"""Latency as a person feels it, local against cloud, in one report: `codeduel latency` on a
local model (the bundled one by default) and on the loopback stand-in for the Anthropic API.

    python bench/latency_duel.py [--benchmark humaneval|humaneval-fim-single] [--requests 16]
        [--limit 16] [--users 1,4,16] [--think-time 1] [--max-tokens 192] [--delay 0.35]
        [--chunk-delay 0.012] [--local SPEC] [--local-option KEY=VALUE ...]
        [--location TEXT] [--out docs/results/latency]

The stand-in (tests/models/fakeapi.py, the real `anthropic` SDK talking to it over a socket)
holds each answer's first byte back by `--delay` seconds (a network round trip and a prefill)
and streams the answer in pieces `--chunk-delay` apart, at most 16 at once. It answers each
task with its canonical solution (`canonical_answers`: a HumanEval task with the whole
function, a fill-in-the-middle task with the middle alone, in the code block the chat FIM
prompt asks for), except every sixth task, which it gets wrong: its speed and accuracy are set
here and say nothing about Claude. The local model gets what `codeduel run` sends it: a FIM
task as its prefix and suffix in the model's own FIM tokens where the provider takes FIM.
First a small accuracy run of both models on the same tasks (`codeduel run`, stored in
OUT/runs.db), then the latency run with that run's pass@1 beside it; the report goes to
OUT/latency.md and the per-request times to OUT/latency.json.

`--local` takes any local model spec (`llamacpp//tmp/models/x.gguf`); `--local-option` (-M for
that model alone, repeatable) replaces the default `n_threads=1`, e.g. `--local-option
n_gpu_layers=-1`. codeduel is called as `.venv/bin/codeduel`, else a `codeduel` on PATH, else
`python -m codeduel` with this interpreter (codeduel imported from PYTHONPATH, else the
checkout's src/), so a bare `python3 bench/latency_duel.py` works on a GPU machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if importlib.util.find_spec("codeduel") is None:
    sys.path.insert(0, str(ROOT / "src"))

from tests.models.fakeapi import FakeAPI, canonical_answers  # noqa: E402

from codeduel.benchmarks import load_benchmark  # noqa: E402

KEY = "sk-ant-codeduel-latency-bench-7d21"
LOCAL = "llamacpp/qwen2.5-coder-0.5b-instruct"
CLOUD = "anthropic/claude-sonnet-4-5"
BENCHMARKS = ("humaneval", "humaneval-fim-single")


def codeduel_command(env: dict[str, str]) -> list[str]:
    """How to call codeduel here: the checkout's venv, a `codeduel` on PATH, else this
    interpreter's `-m codeduel`, with the folder this process imported codeduel from put first
    on `env`'s PYTHONPATH."""
    venv = ROOT / ".venv/bin/codeduel"
    if venv.exists():
        return [str(venv)]
    found = shutil.which("codeduel")
    if found:
        return [found]
    spec = importlib.util.find_spec("codeduel")
    if spec is not None and spec.origin is not None:
        # Where this process found it, as an absolute path: a relative PYTHONPATH=src, or
        # none, still finds it from the child.
        found_in = str(Path(spec.origin).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (found_in, env.get("PYTHONPATH")) if p)
    return [sys.executable, "-m", "codeduel"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=BENCHMARKS, default="humaneval")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--users", default="1,4,16")
    parser.add_argument("--think-time", default="1")
    parser.add_argument("--max-tokens", default="192")
    parser.add_argument("--delay", type=float, default=0.35)
    parser.add_argument("--chunk-delay", type=float, default=0.012)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/latency")
    parser.add_argument("--local", default=LOCAL, help=f"A local model spec (default {LOCAL}).")
    parser.add_argument(
        "--local-option", action="append", default=[], metavar="KEY=VALUE",
        help="A provider option for the local model alone, repeatable (default n_threads=1).",
    )  # fmt: skip
    parser.add_argument(
        "--location", help="Where the run is made from (default: this host, loopback)."
    )
    parser.add_argument(
        "--accuracy-db", type=Path, help="Take pass@1 from this store's --accuracy-run instead."
    )
    parser.add_argument("--accuracy-run", default="accuracy")
    args = parser.parse_args()
    tasks = load_benchmark(args.benchmark).tasks
    answer = canonical_answers(tasks)

    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "runs.db"
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "CODEDUEL_DB": str(db)}
    codeduel = codeduel_command(env)
    local_options = []
    for option in args.local_option or ["n_threads=1"]:
        local_options += ["-M", f"{args.local}:{option}"]
    common = ["--model", args.local, "--model", CLOUD, *local_options, "-M",
              "anthropic:max_concurrency=16", "-M", "anthropic:prefill=false"]  # fmt: skip
    location = args.location or f"{platform.node()} (loopback to the stand-in: no real network)"
    with FakeAPI(
        answer, api_key=KEY, first_token_delay_s=args.delay, chunk_delay_s=args.chunk_delay
    ) as api:
        env["ANTHROPIC_BASE_URL"] = api.url
        run = [*codeduel, "run", args.benchmark, "--limit", str(args.limit), *common,
               "--max-tokens", args.max_tokens, "--run-name", args.accuracy_run,
               "--no-progress"]  # fmt: skip
        if args.accuracy_db is None:
            print("$ codeduel", " ".join(run[len(codeduel) :]), flush=True)
            subprocess.run(run, env=env, check=True, stdout=subprocess.DEVNULL)
        else:
            env["CODEDUEL_DB"] = str(args.accuracy_db)
        with tempfile.TemporaryDirectory() as tmp:
            latency = [*codeduel, "latency", args.benchmark, "--limit", str(args.limit),
                       *common, "--users", args.users, "--think-time", args.think_time,
                       "--requests", str(args.requests), "--max-tokens", args.max_tokens,
                       "--location", location, "--accuracy", args.accuracy_run]  # fmt: skip
            print("$ codeduel", " ".join(latency[len(codeduel) :]), flush=True)
            as_json = Path(tmp) / "latency.json"
            subprocess.run([*latency, "--format", "json", "--output", str(as_json)], env=env,
                           check=True)  # fmt: skip
            (args.out / "latency.json").write_text(as_json.read_text())
    # The Markdown from the same figures, without a second measurement.
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
