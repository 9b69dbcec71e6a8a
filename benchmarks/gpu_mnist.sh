#!/usr/bin/env bash
# The papers' MNIST tables on one GPU: GenKSC (MNIST012), RSM (MNIST, Fashion-MNIST) and ACe/DeC
# (MNIST-Full, MNIST-Test, + Aug), three seeds each, the tables side by side on the card.
# Resumable: rows already in the results files are skipped, so a cut-off run is simply rerun.
#   PYDEEPCLUST_MNIST=/path/to/mnist bash benchmarks/gpu_mnist.sh        (after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PYDEEPCLUST_MNIST:?set PYDEEPCLUST_MNIST to the folder of the four MNIST IDX files}"
PY=${PY:-.venv/bin/python}
mkdir -p runs/logs
pids=()
for table in genksc rsm acedec-mnist; do
  "$PY" -m pydeepclust reproduce "$table" --device cuda --quiet --pictures runs/pictures \
    --out "benchmarks/results/$table-cuda.jsonl" > "runs/logs/$table-cuda.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done  # a failed table fails the script
for table in genksc rsm acedec-mnist; do
  "$PY" -m pydeepclust reproduce "$table" --report --out "benchmarks/results/$table-cuda.jsonl"
done
exit $status
