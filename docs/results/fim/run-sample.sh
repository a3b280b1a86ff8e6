#!/usr/bin/env bash
# The bundled model on 50 humaneval-fim-single tasks (random.Random(0).sample(range(1033), 50),
# docs/results/fim/sample-50-seed0.txt), greedy, through its own FIM tokens.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ids=$(paste -sd, docs/results/fim/sample-50-seed0.txt)
.venv/bin/codeduel run humaneval-fim-single --task-ids "$ids" \
  --model llamacpp/qwen2.5-coder-0.5b-instruct -M n_threads=2 --max-tokens 128 \
  --db docs/results/fim/runs.db --run-name fim-single-50-qwen0.5b
