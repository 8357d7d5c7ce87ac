#!/usr/bin/env bash
# The benchmarks at GPU sizes, for a machine with an NVIDIA GPU (never needed by the tests).
#
#   bash benchmarks/gpu.sh            # every benchmark, then shakespeare_char's time to val loss 1.47
#   bash benchmarks/gpu.sh --quick    # tiny sizes: a short check that every benchmark runs
#
# It runs `python -m benchmarks.run_all --size gpu`: training throughput and MFU of the
# `shakespeare_char` preset (6 layers, 6 heads, 384 wide, context 256, batch 64; matmul ceiling
# 8192^2, float32 = TF32 where TF enables it, and bfloat16) against keras-hub's GPT2Backbone of the
# same shape, the input pipeline, corpora of any size, generation (6 x 384, context 1024), GPT-2
# 124M and serving under load. Rows: benchmarks/RESULTS_GPU.md; JSON: benchmarks/out/gpu/. Then the
# frozen experiment `experiments.time_to_quality`: `shakespeare_char` trained to the end, with the
# time of its first periodic estimate <= 1.47 (nanoGPT: about 3 minutes on an A100).
#
# Needs TensorFlow that sees the GPU (pip install 'tensorflow[and-cuda]>=2.21,<2.22' keras-hub).
# PYTHON overrides the interpreter (default: .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
if [ -z "${LM_KERAS_DATA_DIR:-}" ] && [ -f ../shared/data/tinyshakespeare.txt ]; then
  export LM_KERAS_DATA_DIR="$(cd ../shared/data && pwd)"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
  echo "gpu.sh: no NVIDIA GPU here (nvidia-smi failed); run python -m benchmarks.run_all for the CPU table" >&2; exit 2; }
"$PYTHON" - <<'PY' || { echo "gpu.sh: TensorFlow does not see the GPU; install tensorflow[and-cuda]" >&2; exit 2; }
import tensorflow as tf, sys
gpus = tf.config.list_physical_devices("GPU")
print("TensorFlow", tf.__version__, "GPUs:", gpus)
sys.exit(0 if gpus else 1)
PY
if [ "${1:-}" = "--quick" ]; then
  "$PYTHON" -m benchmarks.run_all --size gpu --quick
  exec "$PYTHON" -m experiments.time_to_quality --preset shakespeare_char --target 1.47 \
    --budget_seconds 1800 --quick --out benchmarks/out/quick/time_to_quality_gpu.json
fi
status=0
"$PYTHON" -m benchmarks.run_all --size gpu || status=$?
"$PYTHON" -m experiments.time_to_quality --preset shakespeare_char --target 1.47 --budget_seconds 1800 \
  --out benchmarks/out/gpu/time_to_quality.json || status=$?
exit "$status"
