#!/usr/bin/env bash
# One GPU check for the first machine with a GPU (issue 9, item 7). About 5-8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh                    # full check; needs CUDA, fails without it
#   GPU_CHECK_SMALL=1 bash benchmarks/gpu_check.sh  # tiny sizes, any device: checks that the script runs
#
# Steps (each under its own time limit; any failure stops the script with a non-zero exit status):
#   1. pytest -m cuda            AMP fp16/bf16 step, proxies/selection on CUDA vs CPU, Jacobian on CUDA
#                                vs CPU, a checkpoint written on CUDA resumed on CPU (tests/test_cuda.py)
#   2. proxy pass benchmark      benchmarks/bench_proxy.py on the GPU (50k images, several batch sizes)
#   3. selection benchmark       benchmarks/bench_select.py (on the GPU when it takes --device)
#   4. Jacobian benchmark        benchmarks/bench_jacobian.py --device cuda
#   5. throughput                benchmarks/bench_cifar_shaped.py: 50k CIFAR-shaped images, ResNet-20, AMP,
#                                full-aug vs subset-only 10% at R=1 and R=5: epoch time, selection share,
#                                speed-up
# Results: $OUT if set (the device runner's output folder), else benchmarks/results/gpu/.
set -euo pipefail

cd "$(dirname "$0")/.."
RESULTS="${OUT:-benchmarks/results/gpu}"
SMALL="${GPU_CHECK_SMALL:-0}"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
: > "$LOG"

log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
SCALE=1  # time limits are sized for the GPU run; the small mode on a (shared) CPU gets more
[ "$SMALL" = "1" ] && SCALE=5
step() {  # step NAME SECONDS CMD...: run with a time limit, log its output, fail the script on failure
    local name="$1" limit=$(($2 * SCALE))
    shift 2
    log "start: $name (limit ${limit}s)"
    local t0=$SECONDS rc=0
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG" || rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        log "FAILED: $name (exit $rc after $((SECONDS - t0))s)"
        exit "$rc"
    fi
    log "done: $name in $((SECONDS - t0))s"
}

"$PY" - <<'EOF' | tee "$RESULTS/device.txt" | tee -a "$LOG"
import os, platform, torch
print(f"host {platform.node()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"available {torch.cuda.is_available()}, cores {len(os.sched_getaffinity(0))}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU {p.name}, {p.total_memory / 2**30:.1f} GiB, bf16 {torch.cuda.is_bf16_supported()}")
EOF

if [ "$SMALL" = "1" ]; then
    DEVICE=auto
    log "small mode: tiny sizes on device '$DEVICE' (numbers mean nothing)"
    PROXY_ARGS=(--n 128 --batches 64,128 --repeats 1)
    SELECT_ARGS=(--sizes 1000 --single 0 --wide 1000 --no-naive)
    JAC_ARGS=(--quick --cases cnn)
    THROUGHPUT_ARGS=(--n-train 300 --n-test 100 --full-epochs 1 --r1-epochs 1 --r5-epochs 1)
    THREADS=1
else
    if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        log "FAILED: CUDA is not available (run with GPU_CHECK_SMALL=1 to test the script without a GPU)"
        exit 3
    fi
    DEVICE=cuda
    PROXY_ARGS=(--n 50000 --batches 256,512,1024,2048 --repeats 3)
    SELECT_ARGS=(--sizes 10000,50000 --single 10000 --wide 0 --no-naive)
    JAC_ARGS=(--repeats 3)
    THROUGHPUT_ARGS=(--n-train 50000 --n-test 10000 --full-epochs 1 --r1-epochs 2 --r5-epochs 5 --amp)
    THREADS=$("$PY" -c "import os; print(min(8, len(os.sched_getaffinity(0))))")
fi

step "pytest -m cuda" 240 "$PY" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider \
    --junitxml "$RESULTS/pytest_cuda.xml"
if [ "$SMALL" != "1" ] && grep -q "needs a CUDA" "$RESULTS/pytest_cuda.xml"; then
    log "FAILED: cuda tests were skipped on a machine with CUDA"
    exit 4
fi
step "proxy pass benchmark" 150 "$PY" benchmarks/bench_proxy.py --device "$DEVICE" --threads "$THREADS" \
    "${PROXY_ARGS[@]}" --out "$RESULTS/proxy_pass.csv"
SELECT_DEVICE=()
if "$PY" benchmarks/bench_select.py --help | grep -q -- "--device"; then
    SELECT_DEVICE=(--device "$DEVICE")
fi
step "selection benchmark" 150 "$PY" benchmarks/bench_select.py "${SELECT_ARGS[@]}" "${SELECT_DEVICE[@]}" \
    --out "$RESULTS/select.csv"
step "jacobian benchmark" 120 "$PY" benchmarks/bench_jacobian.py --device "$DEVICE" "${JAC_ARGS[@]}" \
    --out "$RESULTS/jacobian.csv"
step "CIFAR-shaped throughput" 300 "$PY" benchmarks/bench_cifar_shaped.py --device "$DEVICE" --threads "$THREADS" \
    "${THROUGHPUT_ARGS[@]}" --out-dir "$RESULTS" --tag cifar_shaped_gpu
log "all steps passed; results in $RESULTS"
