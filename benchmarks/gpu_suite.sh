#!/usr/bin/env bash
# Every GPU figure this project reports, in one run (about 10 minutes on one H100 / H200):
#   1. exactness on CUDA: RadGraph and the whole RadCliQ scorer on the GPU equal the CPU, float32 (tests);
#   2. bench_radcliq.py: ours vs radeval 2.2.1 on base-size random weights, both on the GPU (fp32 and bf16);
#   3. bench_server.py: the reward server on the GPU under 1-32 concurrent GRPO-shaped trainers;
#   4. bench_grpo.py: GRPO on a Qwen2.5-VL-3B-shaped random policy (LoRA, bf16, 448 px images, 128-token
#      completions) launched with the ZeRO-2 accelerate config: step time, reward share and peak memory,
#      remote server vs in-process scorer.
# Each step writes its JSON and log to OUT_DIR; a failing step is reported and the others still run.
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]        (default outputs/gpu)
#   PYTHON=python3 KIT=/path/to/base-kit SKIP_RADEVAL=1 GRPO_STEPS=8 bash benchmarks/gpu_suite.sh
#   DEVICE=cpu KIT=tiny-kit POLICY_SIZE=tiny SKIP_RADEVAL=1 bash benchmarks/gpu_suite.sh   # check the script
#
# Needs: a CUDA GPU, the train + deepspeed + serve + dev extras (radeval 2.2.1 for step 2's reference side;
# without it, SKIP_RADEVAL=1 times ours alone). No network: the weights are random, written here.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-outputs/gpu}
PY=${PYTHON:-python}
KIT=${KIT:-$OUT/base-kit}
GRPO_STEPS=${GRPO_STEPS:-6}
DEVICE=${DEVICE:-cuda}
POLICY_SIZE=${POLICY_SIZE:-3b}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
failed=()

step() {  # step NAME COMMAND...: run, tee the log, remember a failure
    local name=$1
    shift
    echo "=== $name: $*" | tee "$OUT/$name.log"
    local start=$SECONDS
    if "$@" 2>&1 | tee -a "$OUT/$name.log"; then
        echo "=== $name: ok in $((SECONDS - start)) s" | tee -a "$OUT/$name.log"
    else
        echo "=== $name: FAILED after $((SECONDS - start)) s" | tee -a "$OUT/$name.log"
        failed+=("$name")
    fi
}

if [ "$DEVICE" = cuda ]; then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'" || exit 2
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
fi

step cuda_exactness "$PY" -m pytest -q -p no:cacheprovider \
    tests/reward_server/radcliq/test_radgraph.py::test_cuda_matches_cpu \
    tests/reward_server/radcliq/test_scorer.py::test_cuda_matches_cpu
[ -f "$KIT/checksums.sha256" ] || step base_kit "$PY" -m reward_server.cli make-tiny "$KIT" --size base
family=()
[ "$POLICY_SIZE" = 3b ] && family=(--family qwen2_5_vl --policy-size 3b --max-completion-length 128)
radeval=()
[ -n "${SKIP_RADEVAL:-}" ] && radeval=(--skip-radeval)
step radcliq "$PY" benchmarks/bench_radcliq.py --device "$DEVICE" --model-dir "$KIT" --pairs 192 \
    "${radeval[@]}" --json "$OUT/radcliq.json"
step server "$PY" benchmarks/bench_server.py --device "$DEVICE" --model-dir "$KIT" --trainers 1,8,32 \
    --rounds 10 --json "$OUT/server.json"
step grpo_zero2 "$PY" benchmarks/bench_grpo.py --device "$DEVICE" --model-dir "$KIT" --steps "$GRPO_STEPS" \
    "${family[@]}" --batch 8 --accelerate-config recipes/accelerate/zero2.yaml --json "$OUT/grpo_zero2.json"

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED steps: ${failed[*]} (logs in $OUT)"
    exit 1
fi
echo "all steps passed; figures in $OUT"
