#!/usr/bin/env bash
# The GPU machine's part of issue 16 (docs/results/accel/), in back-to-back device calls:
#   bash bench/accel_device.sh bg       # in the background: environment, GPU tests, the
#                                       # references checked and timed, 4 timing-noise runs
#   bash bench/accel_device.sh chunk D  # one weights part (carried in folder D) to /tmp/w
#   bash bench/accel_device.sh model    # reassemble and check the 1.5B GGUF, then (in the
#                                       # background) bench/accel_model_runs.py
#   bash bench/accel_device.sh raypart D # one part of Ray's wheel (carried in folder D)
#   bash bench/accel_device.sh ray      # install Ray (with .whl/ray-deps), then in the
#                                       # background bench/ray_gpu.py once the bg job is done
#   bash bench/accel_device.sh collect  # wait for all (up to 9 minutes), results to $OUT
# Missing wheels travel in .whl/ (installed once into /tmp/site); results gather in /tmp/acc.
# A committed store in $RUNS_DB (default: the last session's) starts /tmp/acc/runs.db, so
# the model runs do only what is missing; RUNS picks them (bench/accel_model_runs.py --runs).
# The code that runs is .frozen/ where the first call carries it (`git archive HEAD` there:
# what is committed, whatever else the working tree holds meanwhile), copied to /tmp/frozen.
set -uo pipefail
acc=/tmp/acc
here=$PWD
code=/tmp/frozen
mkdir -p "$acc" /tmp/w
if [ -d .whl ] && [ ! -f /tmp/site/.done ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && touch /tmp/site/.done || exit 1
    [ ! -d .whl/ray-deps ] || cp -a .whl/ray-deps /tmp/ray-deps
fi
if [ "${1:-}" = bg ] && [ -d .frozen ]; then
    rm -rf "$code" && cp -a .frozen "$code"
fi
[ -d "$code" ] || code=$here
cd "$code" || exit 1
export PYTHONPATH=/tmp/site:$code/src:$code PYTHONUNBUFFERED=1
MODEL=/tmp/models/qwen2.5-coder-1.5b-instruct.gguf
RUNS_DB=${RUNS_DB:-docs/results/accel/h200-2026-12-03/runs.db}
RAY_SHA=b951b40965947a63615830916be04f26440d234de1e9a29dbf2155d03fa9ad2a
case "${1:-}" in
bg)
    [ -f "$acc/runs.db" ] || [ ! -f "$here/$RUNS_DB" ] || cp "$here/$RUNS_DB" "$acc/runs.db"
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
    mv "$here/$2"/* /tmp/w/ && ls /tmp/w | wc -l
    ;;
raypart)
    mkdir -p /tmp/rw && mv "$here/$2"/* /tmp/rw/ && ls /tmp/rw
    ;;
ray)
    wheel=/tmp/rw/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl
    cat /tmp/rw/ray.part* >"$wheel" && echo "$RAY_SHA  $wheel" | sha256sum -c || exit 1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site "$wheel" /tmp/ray-deps/*.whl || exit 1
    python3 -c "import ray; print('ray', ray.__version__)"
    setsid bash -c "while [ ! -f $acc/bg.done ]; do sleep 2; done; \
        timeout 400 python3 bench/ray_gpu.py --frameworks ${RAY_FRAMEWORKS:-torch} --rounds 1; \
        touch $acc/ray.done" >"$acc/ray-gpu.txt" 2>&1 < /dev/null &
    ;;
model)
    mkdir -p /tmp/models
    cat /tmp/w/q15.part* >"$MODEL" && sha256sum "$MODEL" | tee "$acc/sha256.txt"
    grep -q cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 "$acc/sha256.txt" \
        || exit 1
    setsid bash -c "python3 bench/accel_model_runs.py --model $MODEL --db $acc/runs.db \
        --runs ${RUNS:-single repair resample duel} --wait $acc/${WAIT:-bg.done}; \
        touch $acc/model.done" >"$acc/model.log" 2>&1 < /dev/null &
    ;;
collect)
    for _ in $(seq 1 108); do
        [ -f "$acc/model.done" ] && [ -f "$acc/bg.done" ] \
            && { [ ! -f /tmp/site/ray/__init__.py ] || [ -f "$acc/ray.done" ]; } && break
        sleep 5
    done
    tail -5 "$acc/model.log"
    # A consistent copy of the store, even while a run is still writing to it.
    python3 -c "import sqlite3; sqlite3.connect('$acc/runs.db').backup(sqlite3.connect('$acc/runs-copy.db'))"
    tar -czf "$OUT/acc.tgz" -C /tmp --exclude acc/runs.db acc
    ;;
esac
