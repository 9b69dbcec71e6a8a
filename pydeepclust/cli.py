"""Command line: ``python -m pydeepclust <command>``.

Commands:
  info    how the native extension was built and which backend is active
  bench   a quick timing of the fused ops against their pure-torch references
          (the full suite is ``make bench``, built on pytest-benchmark)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import pydeepclust.ops as ops


def _median_ms(fn, repeats: int, device: torch.device) -> float:
    def run():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _bench_cases(n: int, device: torch.device):
    """(name, callable) pairs; each callable runs one op forward+backward."""
    for k in (3, 10, 50):
        codes = ops.simplex_codes(k, device=device)
        E = torch.randn(n, ops.code_width(k), device=device, requires_grad=True)

        def step(E=E, codes=codes):
            dist, _ = ops.cosine_simplex_assign(E, codes, check_finite=False)
            torch.autograd.grad(dist.sum(), E)

        yield f"cosine_simplex_assign fwd+bwd n={n} k={k}", step


def cmd_info(args) -> int:
    print(json.dumps({"backend": ops.backend(), **ops.build_info()}, indent=2))
    return 0


def cmd_bench(args) -> int:
    device = torch.device(args.device)
    impls = (["extension"] if ops.extension_available() else []) + ["reference"]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats} runs (ms)")
    print(f"| case | {' | '.join(impls)} |" + (" speed-up |" if len(impls) == 2 else ""))
    print("|---" * (len(impls) + 1 + (len(impls) == 2)) + "|")
    for name, step in _bench_cases(args.n, device):
        times = {}
        for impl in impls:
            with ops.use_backend(impl):
                times[impl] = _median_ms(step, args.repeats, device)
        row = f"| {name} | " + " | ".join(f"{times[i]:.2f}" for i in impls) + " |"
        if len(impls) == 2:
            row += f" {times['reference'] / times['extension']:.1f}x |"
        print(row)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pydeepclust", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="build information and the active backend")
    info.set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="quick timing of the fused ops vs the references")
    bench.add_argument("--n", type=int, default=1_000_000, help="rows per case (default 1e6)")
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per case (default 10)")
    bench.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                       help="cpu or cuda (default: cuda when available)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "n", 1) < 1:
        raise SystemExit("--n must be >= 1")
    return args.func(args)
