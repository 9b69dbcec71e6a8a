"""Training speed of ACe/DeC (and DCN, and autoencoder pretraining): one epoch per round.

    python -m pytest benchmarks/bench_acedec.py --benchmark-only \\
        --benchmark-json=benchmarks/results/acedec.json
    python benchmarks/report.py benchmarks/results/acedec.json

Epochs/second = 1 / the median. Data: scikit-learn's digits (1,797 x 64) and the 10,000
Fashion-MNIST test images (784 pixels; an epoch on all 70,000 takes about 7x as long).
The network is the paper's D-500-500-2000-10, batch 256.

The bound on an epoch: its weights (2.6 M for digits) cost 6 flops per sample each, forward and
backward, ~28 GFLOP a digits epoch. ``test_sgemm`` times the epoch's largest product on its own
and records that count, the GFLOP/s and the time they imply (``extra_info``); ``test_adam_step``
times the optimizer step, fused against torch's default (one step per batch: eight on digits).

    OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_acedec.py -k "adam or sgemm" \
        --benchmark-only --benchmark-json=/tmp/acedec_bound.json
"""

import pytest
import torch

from benchmarks.conftest import run_case
from pydeepclust.data import load_dataset
from pydeepclust.models import DCN, ACeDeC
from pydeepclust.models.autoencoder import Autoencoder, train_autoencoder

DATA = {"digits": dict(name="digits"), "fashion-mnist-10k": dict(name="fashion-mnist", split="test")}


def _data(key):
    try:
        return torch.as_tensor(load_dataset(**DATA[key]).X)
    except (FileNotFoundError, OSError) as err:
        pytest.skip(f"{key} not available: {err}")


def _skip_on_gpu_machines():
    if torch.cuda.is_available():
        pytest.skip("CPU benchmark")


@pytest.mark.parametrize("phase", ["pretrain", "acedec", "dcn"])
@pytest.mark.parametrize("data", list(DATA))
def test_epoch(benchmark, data, phase):
    _skip_on_gpu_machines()
    X = _data(data)
    cls = DCN if phase == "dcn" else ACeDeC
    # Fit with no epochs: the network built, V, b and the centroids initialised.
    model = cls(10, pretrain_epochs=0, epochs=0, verbose=False,
                **({"n_init": 1, "init_steps": 1} if cls is ACeDeC else {})).fit(X)
    model_X = model._check_X(X)
    generator = torch.Generator().manual_seed(0)
    if phase == "pretrain":
        def epoch():
            train_autoencoder(model.autoencoder_, model_X, 1, 256, 1e-3, generator,
                              torch.device("cpu"))
    else:
        optimizer = model._optimizer()

        def epoch():
            model._clustering_epoch(model_X, optimizer, generator, 0)
    rounds = 3 if data == "digits" else 2
    run_case(benchmark, f"{phase} epoch on {data} (n={len(X)})", "cpu", epoch, rounds=rounds)


@pytest.mark.parametrize("adam", ["default", "fused"])
def test_adam_step(benchmark, adam):
    _skip_on_gpu_machines()
    torch.manual_seed(0)
    net = Autoencoder((64,), 10, "mlp", (500, 500, 2000))
    for param in net.parameters():
        param.grad = torch.randn_like(param)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=adam == "fused")
    run_case(benchmark, "Adam step, digits autoencoder", "cpu", optimizer.step)


def test_sgemm(benchmark):
    _skip_on_gpu_machines()
    a, b = torch.randn(256, 500), torch.randn(500, 2000)
    run_case(benchmark, "mm 256x500 @ 500x2000", "cpu", lambda: torch.mm(a, b))
    gflops = 2 * 256 * 500 * 2000 / benchmark.stats.stats.median / 1e9
    weights = sum(p.numel() for p in Autoencoder((64,), 10, "mlp", (500, 500, 2000)).parameters()
                  if p.dim() == 2)
    epoch_gflop = 6 * weights * 1797 / 1e9  # 2 flops forward, 4 backward, per weight and sample
    benchmark.extra_info.update(gflops=gflops, digits_epoch_gflop=epoch_gflop,
                                digits_epoch_bound_s=epoch_gflop / gflops)
