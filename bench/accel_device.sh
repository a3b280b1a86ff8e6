#!/usr/bin/env bash
# The GPU machine's part of issue 16 (docs/results/accel/), in back-to-back device calls:
#   bash bench/accel_device.sh bg       # in the background: environment, GPU tests, the
#                                       # references checked and timed, 4 timing-noise runs
#   bash bench/accel_device.sh chunk D  # one weights part (carried in folder D) to /tmp/w
#   bash bench/accel_device.sh model    # reassemble and check the 1.5B GGUF, then (in the
#                                       # background) bench/accel_model_runs.py
#   bash bench/accel_device.sh collect  # wait for both (up to 9 minutes), results to $OUT
# Missing wheels travel in .whl/ (installed once into /tmp/site); results gather in /tmp/acc.
set -uo pipefail
acc=/tmp/acc
mkdir -p "$acc" /tmp/w
if [ -d .whl ] && [ ! -f /tmp/site/.done ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && touch /tmp/site/.done || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD PYTHONUNBUFFERED=1
MODEL=/tmp/models/qwen2.5-coder-1.5b-instruct.gguf
case "${1:-}" in
bg)
    setsid bash "$0" bg-job >"$acc/bg.log" 2>&1 < /dev/null &
    ;;
bg-job)
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
        python3 -c "import sys, os, torch, cupy, numpy; print(sys.version.split()[0], 'torch',
torch.__version__, 'cupy', cupy.__version__, 'numpy', numpy.__version__, 'cpus', os.cpu_count())"
        timeout 120 python3 -m codeduel doctor
    } >"$acc/env.txt" 2>&1
    CODEDUEL_TEST_UNSAFE_SANDBOX=1 timeout 300 python3 -m pytest -q -rA -p no:cacheprovider \
        tests/benchmarks/test_accel_gpu.py >"$acc/gpu-tests.txt" 2>&1
    timeout 400 python3 bench/accel_references.py --out "$acc/refs-1.jsonl" \
        >"$acc/refs-1.md" 2>"$acc/refs-1.err"
    for run in 2 3 4 5; do
        timeout 200 python3 bench/accel_references.py --quick --out "$acc/refs-$run.jsonl" \
            >/dev/null 2>>"$acc/refs-noise.err" || echo "noise run $run: rc=$?"
    done
    python3 bench/accel_references.py --spread "$acc"/refs-*.jsonl >"$acc/noise.md"
    touch "$acc/bg.done"
    ;;
chunk)
    mv "$2"/* /tmp/w/ && ls /tmp/w | wc -l
    ;;
model)
    mkdir -p /tmp/models
    cat /tmp/w/q15.part* >"$MODEL" && sha256sum "$MODEL" | tee "$acc/sha256.txt"
    grep -q cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 "$acc/sha256.txt" \
        || exit 1
    setsid bash -c "python3 bench/accel_model_runs.py --model $MODEL --db $acc/runs.db \
        --wait $acc/bg.done; touch $acc/model.done" >"$acc/model.log" 2>&1 < /dev/null &
    ;;
collect)
    for _ in $(seq 1 108); do
        [ -f "$acc/model.done" ] && [ -f "$acc/bg.done" ] && break
        sleep 5
    done
    tail -5 "$acc/model.log"
    tar -czf "$OUT/acc.tgz" -C /tmp acc
    ;;
esac
