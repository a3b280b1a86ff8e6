"""`--executor ray`: programs run in sandbox actors on a local Ray cluster (started by the
tests, two CPUs), with the verdicts of the local sandbox; refused in one line without Ray."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.executors import Executor, LocalExecutor, open_executor
from codeduel.extract import answer_code
from codeduel.sandbox import Sandbox
from tests.cli_run import exit_code

ANSWERS = Path(__file__).resolve().parents[1] / "data" / "humaneval_answers.jsonl"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Executor]:
    ray = pytest.importorskip("ray", reason="ray is in the dev extras (codeduel[ray])")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with open_executor("ray", workers=2) as executor:
            yield executor
    finally:
        ray.shutdown()


def _jobs() -> list[tuple[str, float]]:
    """HumanEval's canonical solutions ×10, then the stored real answers (656)."""
    tasks = {t.task_id: t for t in load_benchmark("humaneval").tasks}
    jobs = []
    for _ in range(10):
        jobs += [(t.program(t.reference_solution() or ""), 10.0) for t in tasks.values()]
    for line in ANSWERS.read_text("utf-8").splitlines():
        a = json.loads(line)
        code = answer_code(a["text"], a["entry_point"]).code
        jobs.append((tasks[a["task_id"]].program(code), 10.0))
    return jobs


def test_ray_gives_the_local_sandboxs_verdicts(cluster: Executor) -> None:
    jobs = _jobs()
    with Sandbox(workers=2) as box:
        local = asyncio.run(LocalExecutor(box).run_many(jobs))
    remote = asyncio.run(cluster.run_many(jobs))
    assert len(remote) == len(local) == 1640 + 656
    assert [r.status for r in remote] == [r.status for r in local]
    assert sum(r.status == "passed" for r in remote[:1640]) == 1640
    # The stored answers fail and pass as they did: some of each.
    assert 0 < sum(r.status == "passed" for r in remote[1640:]) < 656


def test_one_executor_serves_one_event_loop_after_another(cluster: Executor) -> None:
    """As `codeduel run` then `report` might, or a library caller: each `asyncio.run` anew."""
    program = [("print('hi')", 10.0)] * 8
    for _ in range(2):
        assert [r.status for r in asyncio.run(cluster.run_many(program))] == ["passed"] * 8


def test_ray_provenance_names_the_cluster_and_every_layer(cluster: Executor) -> None:
    provenance = cluster.provenance
    assert provenance["missing"] == []
    assert all(provenance["layers"].values())
    nodes = provenance["cluster"]["nodes"]
    assert len(nodes) == 1 and nodes[0]["workers"] == 2 and nodes[0]["gpus"] == 0
    assert provenance["cluster"]["ray"].count(".") == 2


def test_a_cluster_with_no_node_left_stops_with_one_sentence() -> None:
    from codeduel.errors import ClusterError
    from codeduel.executors._ray import RayExecutor

    executor = RayExecutor([], [])
    with pytest.raises(ClusterError, match="every node of the Ray cluster"):
        asyncio.run(executor.run("print(1)", 5.0))


def test_without_ray_the_executor_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "    return True\\n"}\n')
    argv = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples)]
    argv += ["--output", str(tmp_path / "out.json"), "--executor", "ray"]
    assert exit_code(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "codeduel: error: --executor ray needs Ray, which is not installed: "
        "pip install 'codeduel[ray]'"
    ]
    assert not (tmp_path / "out.json").exists()


def test_ray_gpu_on_a_cluster_without_gpus_is_refused_in_one_line(
    cluster: Executor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "    return True\\n"}\n')
    argv = ["evaluate", "--benchmark", "humaneval", "--samples", str(samples)]
    argv += ["--output", str(tmp_path / "out.json"), "--executor", "ray-gpu"]
    assert exit_code(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "codeduel: error: --executor ray-gpu needs a Ray cluster with GPUs, and this one has "
        "none (`ray status` lists them; `ray start --num-gpus N` declares them)"
    ]
    assert not (tmp_path / "out.json").exists()
