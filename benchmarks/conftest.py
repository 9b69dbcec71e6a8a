"""Benchmark fixtures: each case runs on every available device and implementation.

Implementations: the native kernel (``extension``), the pure-torch ``reference`` and the
``tuned`` dispatch (times both on its first call, the warm-up; no disk cache here).

The limit of a case: :func:`run_case` takes the bytes a case must move at least and the flops
it must do, and records ``bound_s = max(bytes / bandwidth, flops / GEMM rate)`` on the machine
it runs on, with the rates measured here once per device (:func:`machine_rates`: a large tensor
copy, a large float32 matmul). ``report.py`` prints it and the fraction of it each
implementation reaches.
"""

import statistics
import time

import pytest
import torch

import pydeepclust.ops as ops

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
IMPLS = (["extension", "tuned"] if ops.extension_available() else []) + ["reference"]
_RATES: dict[str, dict] = {}


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=IMPLS)
def impl(request, monkeypatch):
    """Force one backend for the duration of a benchmark case."""
    if request.param == "tuned":
        from pydeepclust.ops import _tuned
        monkeypatch.setenv(_tuned.ENV_CACHE, "off")  # timed in this run, not read from disk
        monkeypatch.setattr(_tuned, "TUNER", _tuned.Tuner())
    with ops.use_backend(request.param):
        yield request.param


def _median_seconds(fn, device, repeats=5):
    fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_rates(device) -> dict:
    """Copy bandwidth (bytes/s, read + write) and float32 GEMM rate (flop/s) of ``device``,
    measured once per session: a copy of a 256 MiB (CPU) / 2 GiB (CUDA) tensor, a
    2048^3 (CPU) / 8192^3 (CUDA) matmul; torch's thread count as set."""
    dev = torch.device(device)
    if dev.type not in _RATES:
        big = (1 << 26) if dev.type == "cpu" else (1 << 29)  # float32 elements
        src = torch.ones(big, device=dev)
        dst = torch.empty_like(src)
        copy_s = _median_seconds(lambda: dst.copy_(src), dev)
        del src, dst
        size = 2048 if dev.type == "cpu" else 8192
        a = torch.randn(size, size, device=dev)
        b = torch.randn(size, size, device=dev)
        gemm_s = _median_seconds(lambda: a @ b, dev, repeats=3)
        _RATES[dev.type] = {"bandwidth_Bps": 2 * 4 * big / copy_s,
                            "gemm_flops": 2 * size**3 / gemm_s,
                            "threads": torch.get_num_threads()}
    return _RATES[dev.type]


def run_case(benchmark, group, device, fn, rounds=None, bytes=None, flops=None):
    """Time ``fn`` (synchronised on CUDA); the group name pairs the implementations.

    ``bytes`` and ``flops``: the least memory traffic and arithmetic the case needs (inputs
    read once, outputs written once); with either, the case's limit on this machine is
    recorded in ``extra_info`` (``bound_s`` and whether memory or FLOP-bound).
    """
    benchmark.group = f"{group} [{torch.device(device).type}]"
    if bytes or flops:
        rates = machine_rates(device)
        t_mem = (bytes or 0) / rates["bandwidth_Bps"]
        t_flop = (flops or 0) / rates["gemm_flops"]
        benchmark.extra_info.update(bytes=bytes or 0, flops=flops or 0,
                                    bound_s=max(t_mem, t_flop),
                                    bound="memory" if t_mem >= t_flop else "FLOP",
                                    bandwidth_GBps=rates["bandwidth_Bps"] / 1e9,
                                    gemm_GFLOPs=rates["gemm_flops"] / 1e9,
                                    threads=rates["threads"])

    def timed():
        out = fn()
        synchronize(device)
        return out

    timed()  # warm-up: allocator, lazy init, CUDA context (and the tuned backend's timing)
    if ops.backend() == "tuned":
        from pydeepclust.ops import _tuned
        benchmark.extra_info["tuned_choices"] = dict(_tuned.TUNER.choices)
    if rounds is None:
        return benchmark(timed)
    return benchmark.pedantic(timed, rounds=rounds, iterations=1)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record torch and the GPU beside pytest-benchmark's CPU description."""
    machine_info["torch"] = torch.__version__
    if torch.cuda.is_available():
        machine_info["gpu"] = torch.cuda.get_device_name()
    machine_info["rates"] = dict(_RATES)  # filled once the cases have run (saved at the end)
