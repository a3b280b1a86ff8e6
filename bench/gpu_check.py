"""Checks of the GPU engine on random weights of a bundled shape, before timing anything:
greedy tokens with CUDA graphs equal to the same engine run eagerly, and batched equal to one
sequence at a time (bf16 kernels may legitimately differ by batch shape: counted, not asserted).

    python bench/gpu_check.py [--shape qwen2.5-coder-0.5b-instruct] [--n 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from codeduel.models._torch_engine import TorchEngine
from codeduel.models._torch_weights import SHAPES, dummy_weights

sys.path.insert(0, str(Path(__file__).parent))
from gpu_humaneval import Count


def run(engine: TorchEngine, prompts: list[list[int]], budgets: list[int], together: bool) -> list:
    if together:
        futures = [
            engine.submit(p, budget=b, sink=Count()) for p, b in zip(prompts, budgets, strict=True)
        ]
        return [f.result().tokens for f in futures]
    return [
        engine.submit(p, budget=b, sink=Count()).result().tokens
        for p, b in zip(prompts, budgets, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--compile", action="store_true", help="both engines compiled")
    args = parser.parse_args()
    shape = SHAPES[args.shape]
    weights = dummy_weights(shape, torch.device("cuda"), torch.bfloat16)
    gen = torch.Generator().manual_seed(1)
    prompts = [
        torch.randint(0, shape.vocab, (int(n),), generator=gen).tolist()
        for n in torch.randint(20, 400, (args.n,), generator=gen)
    ]
    budgets = [int(b) for b in torch.randint(5, 300, (args.n,), generator=gen)]
    graphs = TorchEngine(weights, slots=32, max_len=1024, stop_ids=[], compile=args.compile)
    print(f"capture: {graphs.forward.capture_all():.2f} s for {len(graphs.forward.graphs)} graphs")
    eager = TorchEngine(
        weights, slots=32, max_len=1024, stop_ids=[], cuda_graphs=False, compile=args.compile
    )
    a = run(graphs, prompts, budgets, together=True)
    b = run(eager, prompts, budgets, together=True)
    c = run(graphs, prompts, budgets, together=False)
    assert [len(x) for x in a] == budgets, "every sequence decodes exactly its budget"
    same_eager = sum(x == y for x, y in zip(a, b, strict=True))
    same_single = sum(x == y for x, y in zip(a, c, strict=True))
    print(
        f"graphs == eager: {same_eager}/{args.n}; batched == one at a time: {same_single}/{args.n}"
    )
    graphs.close()
    eager.close()
    if same_eager != args.n:
        raise SystemExit("graph replay differs from the eager forward")


if __name__ == "__main__":
    main()
