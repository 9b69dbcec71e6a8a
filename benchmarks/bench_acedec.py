"""Training speed of ACe/DeC (and DCN, and autoencoder pretraining): one epoch per round.

    python -m pytest benchmarks/bench_acedec.py --benchmark-only \\
        --benchmark-json=benchmarks/results/acedec.json
    python benchmarks/report.py benchmarks/results/acedec.json

Epochs/second = 1 / the median. Data: scikit-learn's digits (1,797 x 64) and the 10,000
Fashion-MNIST test images (784 pixels; an epoch on all 70,000 takes about 7x as long).
The network is the paper's D-500-500-2000-10, batch 256.
"""

import pytest
import torch

from benchmarks.conftest import run_case
from pydeepclust.data import load_dataset
from pydeepclust.models import DCN, ACeDeC
from pydeepclust.models.autoencoder import train_autoencoder

DATA = {"digits": dict(name="digits"), "fashion-mnist-10k": dict(name="fashion-mnist", split="test")}


def _data(key):
    try:
        return torch.as_tensor(load_dataset(**DATA[key]).X)
    except (FileNotFoundError, OSError) as err:
        pytest.skip(f"{key} not available: {err}")


@pytest.mark.parametrize("phase", ["pretrain", "acedec", "dcn"])
@pytest.mark.parametrize("data", list(DATA))
def test_epoch(benchmark, data, phase):
    if torch.cuda.is_available():
        pytest.skip("CPU benchmark")
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
