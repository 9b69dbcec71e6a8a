"""What a fresh large output costs on this machine, and what the CPU output cache saves.

    OMP_NUM_THREADS=2 python -m benchmarks.output_cache

Rows (medians of 30 calls, ms): filling 36 MB already mapped, and a fresh 36 MB tensor filled
(glibc maps it anew above its 32 MiB threshold, so the OS faults in and zeroes every page);
then the simplex backward at n = 10^6, k = 10 (a 36 MB gradient) with the cache as it comes and
with it off (``PYDEEPCLUST_CPU_OUTPUT_CACHE_MB=0``, in a subprocess: the limit is read once).
"""

import os
import statistics
import subprocess
import sys
import time

import torch

N, K = 1_000_000, 10


def median_ms(fn, calls: int = 30) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def simplex_backward_ms() -> float:
    import pydeepclust.ops as ops

    E = torch.randn(N, ops.code_width(K), generator=torch.Generator().manual_seed(0))
    codes = ops.simplex_codes(K)
    _, label = torch.ops.pydeepclust.cosine_simplex_assign(E, codes, 1.0)
    grad = torch.ones(()).expand(N)
    return median_ms(lambda: torch.ops.pydeepclust.cosine_simplex_assign_backward(
        grad, E, codes, label, 1.0))


def main() -> None:
    if "--backward-only" in sys.argv:
        print(f"{simplex_backward_ms():.2f}")
        return
    numel = N * (K - 1)
    mapped = torch.empty(numel)
    print(f"threads: {torch.get_num_threads()}")
    print(f"fill 36 MB, mapped          {median_ms(lambda: mapped.fill_(1)):7.2f} ms")
    print(f"fill 36 MB, fresh tensor    {median_ms(lambda: torch.empty(numel).fill_(1)):7.2f} ms")
    for label, limit in (("cache on ", None), ("cache off", "0")):
        env = dict(os.environ)
        if limit is not None:
            env["PYDEEPCLUST_CPU_OUTPUT_CACHE_MB"] = limit
        out = subprocess.run([sys.executable, "-m", "benchmarks.output_cache", "--backward-only"],
                             env=env, capture_output=True, text=True, check=True)
        print(f"simplex backward, {label}  {float(out.stdout.split()[-1]):7.2f} ms")


if __name__ == "__main__":
    main()
