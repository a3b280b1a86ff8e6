#!/usr/bin/env bash
# The GPU machine's part of issue 17 (llama.cpp on CUDA against codeduel's engines) and of
# issue 20 (fill-in-the-middle on the GPU), in back-to-back device calls:
#   bash bench/engines_device.sh bg        # carry .lsrc .whl .frozen: wheels, then in the
#                                          # background llama.cpp built with CUDA (libraries
#                                          # for llama-cpp-python, llama-bench, batched-bench)
#   bash /tmp/frozen/bench/engines_device.sh chunk D   # one weights part (folder D) to /tmp/w
#   bash /tmp/frozen/bench/engines_device.sh code      # carry .frozen: newer committed code
#   bash /tmp/frozen/bench/engines_device.sh models    # reassemble and check both GGUFs
#   STEPS="llama transformers fim" bash /tmp/frozen/bench/engines_device.sh measure
#   bash /tmp/frozen/bench/engines_device.sh collect   # wait up to 9 minutes, results to $OUT
#   SIDE_ARGS=... bash /tmp/frozen/bench/engines_device.sh now-llama   # both GGUFs, foreground
#   TF_ARGS=... bash /tmp/frozen/bench/engines_device.sh now-tf        # both GGUFs, foreground
# llama.cpp's sources travel as .lsrc/llama-src.tgz: llama-cpp-python 0.3.36's vendored
# llama.cpp (models/, docs/, tests/ and other backends stripped) and its Python package.
# Results gather in /tmp/eng. The code that runs is .frozen/ (`git archive HEAD`), so what
# ran is a commit.
set -uo pipefail
eng=/tmp/eng
here=$PWD
code=/tmp/frozen
site=/tmp/site
M05=/tmp/models/qwen2.5-coder-0.5b-instruct.gguf
M15=/tmp/models/qwen2.5-coder-1.5b-instruct.gguf
mkdir -p "$eng" /tmp/w /tmp/models
if [ -d .whl ] && [ ! -f $site/.done ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target $site .whl/*.whl && touch $site/.done || exit 1
fi
if { [ "${1:-}" = bg ] || [ "${1:-}" = code ]; } && [ -d .frozen ]; then
    rm -rf "$code" && cp -a .frozen "$code" && echo "code: $(cat "$code/COMMIT" 2>/dev/null)"
fi
[ -d "$code" ] || code=$here
cd "$code" || exit 1
export PYTHONPATH=$site:$code/src:$code PYTHONUNBUFFERED=1
case "${1:-}" in
bg)
    mkdir -p /tmp/lsrc && tar -xzf "$here/.lsrc/llama-src.tgz" -C /tmp/lsrc || exit 1
    setsid bash "$0" build >"$eng/build.log" 2>&1 < /dev/null &
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
    ;;
build)
    start=$(date +%s)
    cmake -S /tmp/lsrc/llama.cpp -B /tmp/lb -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF || exit 1
    cmake --build /tmp/lb --target llama-bench llama-batched-bench -j 16 || exit 1
    # llama-cpp-python's own package over these libraries: the tools and codeduel run the
    # same build of the same sources.
    rm -rf $site/llama_cpp && cp -a /tmp/lsrc/llama_cpp $site/llama_cpp
    mkdir -p $site/llama_cpp/lib && cp -a /tmp/lb/bin/lib*.so* $site/llama_cpp/lib/
    python3 -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, 'gpu offload',
llama_cpp.llama_supports_gpu_offload())"
    echo "build took $(( $(date +%s) - start )) s"
    touch "$eng/build.done"
    ;;
chunk)
    mv "$here/$2"/* /tmp/w/ && ls /tmp/w | wc -l
    ;;
code) ;;
models)
    cat /tmp/w/h05.part* >"$M05" && cat /tmp/w/q15.part* >"$M15" || exit 1
    sha256sum "$M05" "$M15" | tee "$eng/sha256.txt"
    grep -q 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 "$eng/sha256.txt" \
        && grep -q cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 \
            "$eng/sha256.txt" || exit 1
    rm -f /tmp/w/*.part*
    ;;
measure)
    setsid bash "$0" measure-job >"$eng/measure.log" 2>&1 < /dev/null &
    ;;
measure-job)
    while [ ! -f "$eng/build.done" ]; do sleep 2; done
    bin=/tmp/lb/bin
    for step in ${STEPS:-llama transformers fim}; do
        echo "== $step $(date -u +%T)"
        case $step in
        llama)
            for m in "$M05" "$M15"; do
                name=$(basename "$m" .gguf)
                timeout 900 python3 bench/llamacpp_side_by_side.py --model "$m" \
                    --llama-bench $bin/llama-bench --batched-bench $bin/llama-batched-bench \
                    ${SIDE_ARGS:-} --out "$eng/side-$name.json" 2>"$eng/side-$name.err" \
                    | tee "$eng/side-$name.txt"
            done
            ;;
        transformers)
            for m in "$M05" "$M15"; do
                name=$(basename "$m" .gguf)
                timeout 900 python3 bench/gpu_humaneval.py --model "$m" --compile \
                    ${TF_ARGS:---rounds 3 --single 8} --out "$eng/tf-$name" \
                    >"$eng/tf-$name.txt" 2>&1
            done
            ;;
        fim)
            timeout 600 python3 -m codeduel run humaneval-fim-single --model "llamacpp/$M05" \
                --max-tokens 128 --db "$eng/fim.db" --run-name fim-single-gpu-qwen0.5b \
                --no-progress >"$eng/fim-run.txt" 2>&1
            timeout 300 python3 -m codeduel report fim-single-gpu-qwen0.5b --db "$eng/fim.db" \
                >"$eng/fim-report.md" 2>&1
            [ -z "${LATENCY_CMD:-}" ] || timeout 600 bash -c "$LATENCY_CMD" >"$eng/latency.txt" 2>&1
            ;;
        esac
    done
    echo "== done $(date -u +%T)"
    touch "$eng/measure.done"
    ;;
now)
    # In the foreground, each step's output straight to $OUT (kept if the call runs out).
    while [ ! -f "$eng/build.done" ]; do sleep 2; done
    cp "$eng/build.log" "$eng/sha256.txt" "$OUT/" 2>/dev/null
    timeout ${PROFILE_S:-150} python3 bench/llamacpp_profile.py --model "$M05" ${PROFILE_ARGS:-} \
        >"$OUT/profile.txt" 2>"$OUT/profile.err"
    timeout ${SIDE_S:-240} python3 bench/llamacpp_side_by_side.py --model "$M05" \
        --llama-bench /tmp/lb/bin/llama-bench --batched-bench /tmp/lb/bin/llama-batched-bench \
        ${SIDE_ARGS:-} --out "$OUT/side-0.5b.json" >"$OUT/side-0.5b.txt" 2>"$OUT/side-0.5b.err"
    timeout ${FIM_S:-150} python3 -m codeduel run humaneval-fim-single --model "llamacpp/$M05" \
        --max-tokens 128 --db "$OUT/fim.db" --run-name fim-single-gpu-qwen0.5b --no-progress \
        >"$OUT/fim-run.txt" 2>&1
    timeout 60 python3 -m codeduel report fim-single-gpu-qwen0.5b --db "$OUT/fim.db" \
        >"$OUT/fim-report.md" 2>&1
    ;;
now-llama)
    # Both GGUFs against llama.cpp's tools, in the foreground, each model's output to $OUT.
    while [ ! -f "$eng/build.done" ]; do sleep 2; done
    cp "$eng/build.log" "$eng/sha256.txt" "$OUT/" 2>/dev/null
    for m in "$M05" "$M15"; do
        name=$(basename "$m" .gguf)
        timeout ${SIDE_S:-240} python3 bench/llamacpp_side_by_side.py --model "$m" \
            --llama-bench /tmp/lb/bin/llama-bench --batched-bench /tmp/lb/bin/llama-batched-bench \
            ${SIDE_ARGS:-} --out "$OUT/side-$name.json" >"$OUT/side-$name.txt" 2>&1
    done
    ;;
now-tf)
    # The transformers engine on both GGUFs (one load each, every --speculate variant).
    for m in ${TF_MODELS:-$M05 $M15}; do
        name=$(basename "$m" .gguf)
        timeout ${TF_S:-280} python3 bench/gpu_humaneval.py --model "$m" --compile \
            ${TF_ARGS:---rounds 2 --e2e-rounds 2 --single 8 --speculate 0 8:4 8:64} \
            --out "$OUT/tf-$name" >"$OUT/tf-$name.txt" 2>&1
    done
    ;;
collect)
    for _ in $(seq 1 ${WAIT_STEPS:-108}); do
        [ -f "$eng/measure.done" ] && break
        sleep 5
    done
    tail -3 "$eng/measure.log"
    for db in "$eng"/*.db; do
        [ -f "$db" ] || continue
        python3 -c "import sqlite3; sqlite3.connect('$db').backup(sqlite3.connect('$db.copy'))"
    done
    tar -czf "$OUT/eng.tgz" -C /tmp --exclude 'eng/*.db' eng
    ;;
esac
