#!/usr/bin/env bash
# The Fashion-MNIST model measurements that need a GPU, run side by side on one card (the
# networks are small: one process leaves the GPU mostly idle, so several share it well):
#   * benchmarks/ae_choices.py: autoencoder pretraining variants -> AE + k-means, ACe/DeC, DCN,
#   * benchmarks/genksc_choices.py: GenKSC settings on the 60k training images.
# Every finished run is one JSON line in OUTDIR, so a run cut off by LIMIT seconds keeps
# what it measured.  Usage: bash benchmarks/gpu_choices.sh OUTDIR [LIMIT]
# Fashion-MNIST is read from $PYDEEPCLUST_FASHION_MNIST when set.
set -uo pipefail
OUT_DIR=${1:?usage: gpu_choices.sh OUTDIR [LIMIT]}
LIMIT=${2:-500}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi -L | tee "$OUT_DIR/gpu.txt"

for variant in base zscore dae zscore-dae long; do
  timeout "$LIMIT" $PY benchmarks/ae_choices.py --data fashion-mnist --variant "$variant" \
    --methods acedec dcn0.1 --out "$OUT_DIR/ae_choices.jsonl" >"$OUT_DIR/ae_$variant.log" 2>&1 &
done
for variant in paper rec0.01 cl0.08 lr3e-4; do
  timeout "$LIMIT" $PY benchmarks/genksc_choices.py --data fashion-mnist --split train \
    --variant "$variant" --epochs 60 --warmup 20 --out "$OUT_DIR/genksc_choices.jsonl" \
    >"$OUT_DIR/genksc_$variant.log" 2>&1 &
done
wait
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv | tee -a "$OUT_DIR/gpu.txt"
for f in ae_choices genksc_choices; do
  [ -s "$OUT_DIR/$f.jsonl" ] && $PY benchmarks/$f.py --report "$OUT_DIR/$f.jsonl"
done
tail -n 3 "$OUT_DIR"/*.log
