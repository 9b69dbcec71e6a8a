#!/usr/bin/env bash
# One session on a GPU machine, in the repository root, with a CUDA build of torch
# already installed there (no venv, nothing downloaded):
#   1. build the extension for this GPU,
#   2. run every CUDA-parametrised test case,
#   3. the op benchmarks on cuda (extension vs reference) and peak GPU memory of
#      the streaming vs dense RBF ratio cut,
#   4. RSM on Fashion-MNIST at batch 16,384 on the GPU,
#   5. the tuned backend against the better of kernel and reference, interleaved
#      (benchmarks/tuned_check.py): the stage fails when tuned runs any case below
#      0.95x the reference's speed.
# With cmake on the machine, the tests stage also builds and runs the C++ device tests
# (csrc/tests/device_*.cu: the kernels on every path, through their raw launchers).
# Results go to OUTDIR.  Usage: bash benchmarks/gpu_check.sh OUTDIR [STAGE...]
# with stages among build tests bench memory rsm tuned (default: all, in that order).
# Fashion-MNIST is read from $PYDEEPCLUST_FASHION_MNIST when set.
set -uo pipefail
OUT_DIR=${1:?usage: gpu_check.sh OUTDIR [build|tests|bench|memory|rsm ...]}
shift
STAGES=${*:-build tests bench memory rsm tuned}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
stage() { [[ " $STAGES " == *" $1 "* ]]; }
FAILED=""  # stages whose command failed or timed out; the script exits 1 if any did
{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } \
  | tee "$OUT_DIR/gpu.txt"

if stage build; then
  echo "== build"
  MAX_JOBS=${MAX_JOBS:-$(nproc)} timeout 300 $PY setup.py -q build_ext --inplace >"$OUT_DIR/build.log" 2>&1 \
    || { tail -40 "$OUT_DIR/build.log"; exit 1; }
fi
$PY -m pydeepclust info | tee -a "$OUT_DIR/gpu.txt"

if stage tests; then
  echo "== CUDA test cases"
  timeout 200 $PY -m pytest tests -q -k cuda -p no:cacheprovider -rs >"$OUT_DIR/tests.log" 2>&1 \
    || FAILED+=" tests"
  tail -15 "$OUT_DIR/tests.log"
  if command -v cmake >/dev/null; then
    echo "== C++ device tests"
    { cmake -S . -B build-gpu -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" \
        && cmake --build build-gpu -j"$(nproc)" \
        && timeout 120 ctest --test-dir build-gpu -R device --output-on-failure; } \
      >"$OUT_DIR/ctest_device.log" 2>&1 || FAILED+=" ctest"
    tail -8 "$OUT_DIR/ctest_device.log"
  fi
fi

if stage bench; then
  echo "== op benchmarks on cuda"
  timeout 300 $PY -m pytest benchmarks/bench_simplex.py benchmarks/bench_rbf.py benchmarks/bench_degree.py \
  benchmarks/bench_cayley.py -k cuda --benchmark-only -q -p no:cacheprovider \
  --benchmark-max-time=0.2 --benchmark-min-rounds=5 --benchmark-json="$OUT_DIR/bench_cuda.json" \
  >"$OUT_DIR/bench.log" 2>&1 || FAILED+=" bench"
  $PY benchmarks/report.py "$OUT_DIR/bench_cuda.json" | tee "$OUT_DIR/bench_cuda.md"
fi

if stage memory; then
echo "== peak GPU memory of the RBF ratio cut (loss + dL/dZ), n = 65,536 and 16,384, d = 784, k = 10"
timeout 60 $PY - <<'PY' 2>&1 | tee "$OUT_DIR/memory_cuda.md"
import torch
import pydeepclust.ops as ops

def peak_mib(impl, n, d=784, k=10):
    X = torch.rand(n, d, device="cuda")
    Z = torch.randn(n, k, device="cuda", requires_grad=True)
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with ops.use_backend(impl):
        ops.rbf_ratio_cut(X, Z, 4.0).backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20

print("\n| impl | n | extra peak GPU memory (MiB) |\n|---|---|---|")
for impl, n in [("extension", 65536), ("extension", 16384), ("reference", 16384), ("reference", 65536)]:
    try:
        print(f"| {impl} | {n} | {peak_mib(impl, n):.1f} |")
    except torch.OutOfMemoryError:
        print(f"| {impl} | {n} | out of memory |")
    torch.cuda.empty_cache()
PY
[ "${PIPESTATUS[0]}" = 0 ] || FAILED+=" memory"
fi

if stage rsm; then
echo "== RSM on Fashion-MNIST, batch 16384, on the GPU"
timeout 150 $PY -m pydeepclust fit rsm --data fashion-mnist --test --hidden 512,512,256 \
  --batch-size 16384 --epochs 40 --device cuda --no-pictures --seed 0 --quiet \
  --out "$OUT_DIR/rsm" >"$OUT_DIR/rsm.log" 2>&1 || FAILED+=" rsm"
tail -5 "$OUT_DIR/rsm.log"
mv "$OUT_DIR/rsm/metrics.json" "$OUT_DIR/rsm_metrics.json" 2>/dev/null; rm -rf "$OUT_DIR/rsm"
fi

if stage tuned; then
  echo "== tuned backend vs the better of extension and reference, on cuda"
  timeout 180 $PY -m benchmarks.tuned_check --device cuda --rounds 5 --fail-below 0.95 \
    >"$OUT_DIR/tuned_cuda.md" 2>&1 \
    || FAILED+=" tuned"
  cat "$OUT_DIR/tuned_cuda.md"
fi

if [ -n "$FAILED" ]; then echo "gpu_check: failed:$FAILED"; exit 1; fi
