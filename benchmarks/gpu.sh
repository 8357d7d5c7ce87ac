#!/usr/bin/env bash
# The benchmark table at GPU sizes, for a machine with an NVIDIA GPU (never needed by the tests).
#
#   bash benchmarks/gpu.sh            # full table + shakespeare_char's time to val loss 1.47 (~15-30 min)
#   bash benchmarks/gpu.sh --quick    # a short check that every script runs (~3 min)
#
# It runs benchmarks/run_all.py --size gpu: the matmul ceiling (8192^2, float32 = TF32 where TF
# enables it, and bfloat16), training throughput and MFU of the `shakespeare_char` preset
# (6 layers, 6 heads, 384 wide, context 256, batch 64) against keras-hub's GPT2Backbone of the
# same shape, the LSTMs, the input pipeline, generation (6 x 384, context 1024), and
# `shakespeare_char` trained to the end with the time of its first periodic estimate <= 1.47
# (nanoGPT: about 3 minutes on an A100). Results: benchmarks/RESULTS_GPU.md and benchmarks/out/.
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
  echo "gpu.sh: no NVIDIA GPU here (nvidia-smi failed); run benchmarks/run_all.py for the CPU table" >&2; exit 2; }
"$PYTHON" - <<'PY' || { echo "gpu.sh: TensorFlow does not see the GPU; install tensorflow[and-cuda]" >&2; exit 2; }
import tensorflow as tf, sys
gpus = tf.config.list_physical_devices("GPU")
print("TensorFlow", tf.__version__, "GPUs:", gpus)
sys.exit(0 if gpus else 1)
PY
QUICK=""
TTQ="--ttq_args=--preset shakespeare_char --target 1.47 --budget_seconds 1800"
if [ "${1:-}" = "--quick" ]; then
  QUICK="--quick"
  TTQ="--ttq_args=--preset shakespeare_char --target 1.47 --budget_seconds 1800 --set max_steps=100 eval_every=50 eval_batches=10"
fi
exec "$PYTHON" benchmarks/run_all.py --size gpu $QUICK "$TTQ"
