"""Benchmark fixtures: each case runs on every available device, both implementations."""

import pytest
import torch

import pydeepclust.ops as ops

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
IMPLS = (["extension"] if ops.extension_available() else []) + ["reference"]


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=IMPLS)
def impl(request):
    """Force one backend for the duration of a benchmark case."""
    with ops.use_backend(request.param):
        yield request.param


def run_case(benchmark, group, device, fn, rounds=None):
    """Time ``fn`` (synchronised on CUDA); the group name pairs the two implementations."""
    benchmark.group = f"{group} [{torch.device(device).type}]"

    def timed():
        out = fn()
        synchronize(device)
        return out

    timed()  # warm-up: allocator, lazy init, CUDA context
    if rounds is None:
        return benchmark(timed)
    return benchmark.pedantic(timed, rounds=rounds, iterations=1)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record torch and the GPU beside pytest-benchmark's CPU description."""
    machine_info["torch"] = torch.__version__
    if torch.cuda.is_available():
        machine_info["gpu"] = torch.cuda.get_device_name()
