"""Peak extra memory of the RBF ratio cut: streaming kernel vs dense reference.

Each case runs in a fresh child process; the number reported is the growth of
the child's peak RSS (resource.getrusage ru_maxrss) across one loss + gradient
evaluation, over a baseline taken after the inputs are allocated and the op has
run once on a tiny batch (libraries loaded, thread pools started). The peak is
reset to the current RSS just before (Linux: "5" > /proc/self/clear_refs), so
earlier allocations (inputs, the bandwidth estimate) cannot hide the op's own.

    python -m benchmarks.memory_rbf                       # the default table
    python -m benchmarks.memory_rbf --case streaming 65536 784 10 z

Gradient modes: "z" (d loss / dZ only: RSM, where X is data), "xz" (also dX).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DEFAULT_CASES = [
    ("streaming", 65536, 784, 10, "z"),
    ("streaming", 16384, 784, 10, "xz"),
    ("streaming", 4096, 784, 10, "xz"),
    ("dense", 4096, 784, 10, "xz"),
]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def run_case(impl: str, n: int, d: int, k: int, grads: str) -> dict:
    """Runs in the child: one loss + gradient, returns the peak RSS growth."""
    import torch

    import pydeepclust.ops as ops

    torch.manual_seed(0)
    X = torch.randn(n, d).requires_grad_("x" in grads)
    Z = torch.randn(n, k, requires_grad=True)
    sigma = ops.sample_bandwidths(X.detach(), generator=torch.Generator().manual_seed(0))
    wanted = [t for t in (X, Z) if t.requires_grad]
    with ops.use_backend("extension" if impl == "streaming" else "reference"):
        small = [t[:64].detach().requires_grad_() for t in (X, Z)]
        torch.autograd.grad(ops.rbf_ratio_cut(*small, sigma), small)  # warm-up
        reset_peak_rss()
        baseline = peak_rss_bytes()
        start = time.perf_counter()
        loss = ops.rbf_ratio_cut(X, Z, sigma)
        torch.autograd.grad(loss, wanted)
        seconds = time.perf_counter() - start
    return {"impl": impl, "n": n, "d": d, "k": k, "grads": grads, "seconds": seconds,
            "inputs_mb": (X.numel() + Z.numel()) * 4 / 2**20,
            "extra_mb": (peak_rss_bytes() - baseline) / 2**20}


def in_child(case) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.memory_rbf", "--case", *map(str, case)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=root).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=5, metavar=("IMPL", "N", "D", "K", "GRADS"))
    args = parser.parse_args()
    if args.case:
        impl, n, d, k, grads = args.case
        print(json.dumps(run_case(impl, int(n), int(d), int(k), grads)))
        return
    print("| impl | n | d | k | gradients | inputs (MB) | extra peak RSS (MB) | time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    dense_per_pair = None
    for case in DEFAULT_CASES:
        r = in_child(case)
        print(f"| {r['impl']} | {r['n']} | {r['d']} | {r['k']} | {r['grads']} | "
              f"{r['inputs_mb']:.0f} | {r['extra_mb']:.0f} | {r['seconds']:.1f} |", flush=True)
        if r["impl"] == "dense":
            dense_per_pair = r["extra_mb"] * 2**20 / r["n"] ** 2
    n = 65536
    print(f"\nDense reference at n = {n} (computed, not run): one float32 n x n matrix is "
          f"{n * n * 4 / 1e9:.1f} GB", end="")
    if dense_per_pair is not None:
        print(f"; the measured dense peak of {dense_per_pair:.1f} bytes per pair scales to "
              f"{dense_per_pair * n * n / 1e9:.0f} GB")
    else:
        print()


if __name__ == "__main__":
    main()
