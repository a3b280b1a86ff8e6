#!/usr/bin/env bash
# The hybrid-workflow measurements on full HumanEval (docs/results/hybrid-humaneval-qwen2.5-coder.md),
# one run after another: two llama.cpp processes on 2 cores slow each other down many times over.
set -u
cd "$(dirname "$0")/.."
DB=runs/issue5.db
M=(-M parallel=16 -M n_ctx=2048)
run() {
    local name=$1; shift
    echo "== $name $(date -u +%FT%TZ)" >> runs/issue5.log
    /usr/bin/time -f "$name wall %e s, max RSS %M KiB" .venv/bin/codeduel run humaneval "$@" "${M[@]}" \
        --run-name "$name" --db "$DB" --no-progress > "runs/$name.md" 2>> runs/issue5.log
    echo "rc=$? $(date -u +%FT%TZ)" >> runs/issue5.log
}
run he-single --model llamacpp/qwen2.5-coder-0.5b-instruct
run he-repair --model llamacpp/qwen2.5-coder-0.5b-instruct --strategy repair -S attempts=3
run he-resample --model llamacpp/qwen2.5-coder-0.5b-instruct --strategy resample
run he-cascade --model llamacpp/qwen2.5-coder-0.5b-instruct --model llamacpp/qwen2.5-coder-1.5b-instruct --strategy cascade -S repair=true
