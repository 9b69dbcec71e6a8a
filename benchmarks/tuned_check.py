"""Is the tuned backend as fast as the better of kernel and reference? Interleaved timing.

    OMP_NUM_THREADS=1 python -m benchmarks.tuned_check [--device cuda] [--rounds 7]

Sequential benchmark runs on a shared machine drift by tens of percent between cases, so this
script alternates the three backends call by call (in a rotating order, so that none always
follows the same one: a large reference after a kernel pays fresh page faults) and reports
medians, ``tuned / best`` (the faster of extension and reference divided by tuned;
1.00 = tuned matches it) and what tuned chose. Disk cache off: every choice is timed here.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("PYDEEPCLUST_TUNE_CACHE", "off")

import torch  # noqa: E402

import pydeepclust.ops as ops  # noqa: E402
from pydeepclust.ops import _tuned  # noqa: E402


def cases(device):
    g = torch.Generator().manual_seed(0)

    def rand(*shape, grad=False):
        return torch.randn(*shape, generator=g).to(device).requires_grad_(grad)

    out = {}
    for n in (10**4, 10**5):
        for k in (3, 10, 50):
            codes = ops.simplex_codes(k, device=device)
            E, Eg = rand(n, ops.code_width(k)), rand(n, ops.code_width(k), grad=True)
            out[f"simplex fwd n={n:.0e} k={k}"] = (
                lambda E=E, c=codes: ops.cosine_simplex_assign(E, c, check_finite=False))
            out[f"simplex fwd+bwd n={n:.0e} k={k}"] = (
                lambda E=Eg, c=codes: torch.autograd.grad(
                    ops.cosine_simplex_assign(E, c, check_finite=False)[0].sum(), E))
    X = rand(64, 512, 64).abs()
    sig = torch.full((64,), 2.0, device=device)
    out["degree_weighted_kernel rbf B=64 n=512"] = lambda: ops.degree_weighted_kernel(X, "rbf", sig)
    out["kernel_degrees rbf B=64 n=512"] = lambda: ops.kernel_degrees(X, kernel="rbf", sigma=sig)
    Xr, Zr = rand(1024, 784, grad=True), rand(1024, 10, grad=True)
    out["rbf_ratio_cut fwd+bwd n=1024"] = lambda: torch.autograd.grad(
        ops.rbf_ratio_cut(Xr, Zr, 20.0), (Xr, Zr))
    for shape in ((256, 10), (1024, 40), (4096, 64), (256, 64, 8)):
        Q = torch.linalg.qr(rand(*shape)).Q
        G = rand(*shape)
        out[f"cayley {'x'.join(map(str, shape))}"] = (
            lambda Q=Q, G=G: ops.cayley_retraction(Q, G, 0.1))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fail-below", type=float, default=None, metavar="RATIO",
                        help="exit 1 when the tuned backend runs any case below RATIO times the "
                             "reference's speed (gpu_check.sh: 0.95)")
    args = parser.parse_args()
    device = torch.device(args.device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    print("| case | extension (ms) | tuned (ms) | reference (ms) | tuned / best | tuned chose |")
    print("|---|---|---|---|---|---|")
    ratios, slow = [], []
    for name, fn in cases(device).items():
        before = set(_tuned.TUNER.choices)
        times = {b: [] for b in ("extension", "tuned", "reference")}
        for b in times:  # warm-up (tuned: the timing of both)
            with ops.use_backend(b):
                fn()
                sync()
        chose = ", ".join(v for k, v in _tuned.TUNER.choices.items() if k not in before)
        order = list(times)
        for r in range(args.rounds):
            for b in order[r % 3:] + order[:r % 3]:  # rotated: no backend always runs first
                with ops.use_backend(b):
                    start = time.perf_counter()
                    fn()
                    sync()
                    times[b].append(time.perf_counter() - start)
        med = {b: statistics.median(t) * 1e3 for b, t in times.items()}
        ratio = min(med["extension"], med["reference"]) / med["tuned"]
        ratios.append(ratio)
        if args.fail_below is not None and med["reference"] / med["tuned"] < args.fail_below:
            slow.append(f"{name} ({med['reference'] / med['tuned']:.2f}x the reference)")
        print(f"| {name} | {med['extension']:.3f} | {med['tuned']:.3f} | {med['reference']:.3f} "
              f"| {ratio:.2f} | {chose or '(cached)'} |")
    print(f"\ntuned / best over {len(ratios)} cases: median {statistics.median(ratios):.2f}, "
          f"min {min(ratios):.2f}; {device} ({torch.get_num_threads()} torch threads)")
    if slow:
        print(f"tuned below {args.fail_below}x the reference: " + "; ".join(slow))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
