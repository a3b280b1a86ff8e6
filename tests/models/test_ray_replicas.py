"""`-M ray_replicas=2`: the tiny model's engine in two Ray actors (a local Ray of two CPUs);
every task is scored once and both replicas answer; the cache key is the engine's own."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_run import exit_code

TASKS = [f"HumanEval/{i}" for i in range(8)]
TINY = "llamacpp/smollm2-135m-instruct"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="ray is in the dev extras (codeduel[ray])")
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is in the dev extras")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_replicas_share_the_calls_and_every_task_is_scored_once(
    tmp_path: Path, local_ray: None
) -> None:
    db = tmp_path / "r.db"
    argv = ["run", "humaneval", "--model", TINY, "-M", "n_threads=1", "-M", "ray_replicas=2"]
    argv += ["--task-ids", ",".join(TASKS), "--max-tokens", "32", "--db", str(db)]
    argv += ["--no-progress", "--no-reuse"]
    assert exit_code(argv) == 0
    con = sqlite3.connect(db)
    counts = con.execute("SELECT task_id, COUNT(*) FROM samples GROUP BY task_id").fetchall()
    assert sorted(counts) == sorted((t, 1) for t in TASKS)
    replicas = [json.loads(e)["replica"] for (e,) in con.execute("SELECT extra FROM model_calls")]
    assert sorted(set(replicas)) == [0, 1] and len(replicas) == len(TASKS)
    (info,) = con.execute("SELECT info FROM run_models").fetchone()
    assert len(json.loads(info)["replicas"]) == 2


def test_replicas_are_for_in_process_engines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "run",
        "humaneval",
        "--model",
        "openai-compat/m",
        "-M",
        "base_url=http://127.0.0.1:9/v1",
    ]
    argv += ["-M", "ray_replicas=2", "--limit", "1", "--db", str(tmp_path / "r.db")]
    assert exit_code([*argv, "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "-M ray_replicas is for in-process engines (llamacpp, transformers)" in line
