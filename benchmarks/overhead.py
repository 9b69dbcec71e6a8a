"""Per-call time of one op on small inputs: torch.library.register_autograd vs autograd.Function.

    OMP_NUM_THREADS=1 python -m benchmarks.overhead

cosine_simplex_assign on (64, 9) rows, k = 10 (the kernel itself takes about a microsecond), CPU:
the op as registered (``torch.library.register_autograd``, what ``ops.cosine_simplex_assign``
calls), the same kernels behind a ``torch.autograd.Function``, and the public wrapper (its
argument checks on top). Medians of 7 repeats of 2000 calls, in microseconds per call.
"""

import statistics
import time

import torch

import pydeepclust.ops as ops


class AssignFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, E, codes, scale):
        dist, label = torch.ops.pydeepclust.cosine_simplex_assign(E, codes, scale)
        ctx.save_for_backward(E, codes, label)
        ctx.scale = scale
        ctx.mark_non_differentiable(label)
        return dist, label

    @staticmethod
    def backward(ctx, grad_dist, grad_label):
        E, codes, label = ctx.saved_tensors
        return torch.ops.pydeepclust.cosine_simplex_assign_backward(
            grad_dist, E, codes, label, ctx.scale), None, None


def per_call_us(fn, calls=2000, repeats=7):
    for _ in range(200):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def main():
    codes = ops.simplex_codes(10)
    E = torch.randn(64, 9)
    Eg = E.clone().requires_grad_()
    scale = 1 / ops.max_nearest_distance(10)
    op = torch.ops.pydeepclust.cosine_simplex_assign

    def bwd(dist):
        return torch.autograd.grad(dist.sum(), Eg)

    rows = {
        "forward, no grad": (lambda: op(E, codes, scale), lambda: AssignFunction.apply(E, codes, scale),
                             lambda: ops.cosine_simplex_assign(E, codes, check_finite=False)),
        "forward, input requires grad": (
            lambda: op(Eg, codes, scale), lambda: AssignFunction.apply(Eg, codes, scale),
            lambda: ops.cosine_simplex_assign(Eg, codes, check_finite=False)),
        "forward + backward": (
            lambda: bwd(op(Eg, codes, scale)[0]), lambda: bwd(AssignFunction.apply(Eg, codes, scale)[0]),
            lambda: bwd(ops.cosine_simplex_assign(Eg, codes, check_finite=False)[0])),
    }
    print("| call | register_autograd (µs) | autograd.Function (µs) | ratio | public wrapper (µs) |")
    print("|---|---|---|---|---|")
    with ops.use_backend("extension"):
        for name, (lib, fun, public) in rows.items():
            a, b, c = per_call_us(lib), per_call_us(fun), per_call_us(public)
            print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} | {c:.1f} |")
    checked = per_call_us(lambda: ops.cosine_simplex_assign(E, codes))
    print(f"\npublic wrapper with check_finite=True, forward: {checked:.1f} µs")
    with ops.use_backend("tuned"):
        tuned = per_call_us(lambda: ops.cosine_simplex_assign(E, codes, check_finite=False))
    print(f"public wrapper under the tuned backend (choice cached), forward: {tuned:.1f} µs")


if __name__ == "__main__":
    main()
