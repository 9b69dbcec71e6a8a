#!/bin/bash
# Data-parallel RSM (RBF graph) on every GPU of one node: one step's time and peak CUDA memory
# per rank at global batches of 65,536 and 262,144 (d = 784), for 1 GPU and for all of them.
# Appends to benchmarks/results/distributed_rsm_gpu.jsonl. Needs PYDEEPCLUST_MNIST and a built
# extension (make build). What the run has to show (docs/guide/distributed.md): the time per
# step falling as ~1/W (each rank streams its rows against the gathered batch), per-rank memory
# flat in W apart from the gathered batch, and the same loss for every W.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GPUS=$(nvidia-smi -L | wc -l)
OUT=benchmarks/results/distributed_rsm_gpu.jsonl
for batch in 65536 262144; do
  "$PY" benchmarks/distributed_rsm.py --device cuda --batch "$batch" --steps 3 --out "$OUT"
  if [ "$GPUS" -gt 1 ]; then
    "$PY" -m torch.distributed.run --standalone --nproc-per-node="$GPUS" \
      benchmarks/distributed_rsm.py --device cuda --batch "$batch" --steps 3 --out "$OUT"
  fi
done
