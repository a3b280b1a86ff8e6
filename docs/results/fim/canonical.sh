#!/usr/bin/env bash
# Every FIM task's canonical middle, as a human-eval-infilling samples file ({"task_id",
# "completion": the middle}), graded by `codeduel evaluate` in the sandbox.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${1:-/tmp/fim-canonical}
mkdir -p "$out"
for name in humaneval-fim-single humaneval-fim-multi humaneval-fim-span; do
  .venv/bin/python -c "
import json, sys
from codeduel.benchmarks import load_benchmark
for t in load_benchmark('$name').tasks:
    print(json.dumps({'task_id': t.task_id, 'completion': t.canonical_solution}))
" > "$out/$name.canonical.jsonl"
  /usr/bin/time -f "$name: wall %e s" .venv/bin/codeduel evaluate --benchmark "$name" \
    --samples "$out/$name.canonical.jsonl" --output "$out/$name.results.json"
done
