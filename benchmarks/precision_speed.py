"""Training-step time with ``precision="fp32"`` and ``"bf16"`` (issue 17, mixed precision).

One model's training step (forward, loss, backward, optimizer) on MNIST, timed for both
precisions in the same run, medians of ``--steps`` steps after one warm-up step::

    OMP_NUM_THREADS=2 python benchmarks/precision_speed.py [--device cuda]

Models: RSM (mlp 784-512-512-256-10, kNN graph, batch 4,096), GenKSC (the conv net on 28x28,
batch 256), the ACe/DeC autoencoder (mlp 784-500-500-2000-10, batch 256, its pretraining step).
Prints a markdown table; ``--out`` writes it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from pydeepclust.data import load_dataset
from pydeepclust.models import RSM, GenKSC
from pydeepclust.models.autoencoder import Autoencoder, reconstruction_loss


def rsm_step(precision, X, device):
    model = RSM(10, batch_size=len(X), precision=precision, device=device, random_state=0)
    model._build(tuple(X.shape[1:]))
    opt = torch.optim.Adam(model.network_.parameters(), lr=1e-3)
    draws = torch.Generator().manual_seed(0)
    x = X.reshape(len(X), -1).to(device)

    def step():
        parts = model._batch_loss(x, x, draws)
        opt.zero_grad()
        (parts["cut"] + parts["penalty"]).backward()
        opt.step()
    return step


def genksc_step(precision, X, device):
    model = GenKSC(10, precision=precision, device=device, random_state=0)
    model._build(tuple(X.shape[1:]))
    params = [*model.encoder_.parameters(), *model.decoder_.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = X.to(device)

    def step():
        loss = model._total(model.losses(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def autoencoder_step(precision, X, device):
    net = Autoencoder(tuple(X.shape[1:]), 10, "mlp", (500, 500, 2000)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = X.to(device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            recon = net(x).float()
        opt.zero_grad()
        reconstruction_loss(x, recon).backward()
        opt.step()
    return step


CASES = {"RSM step, batch 4,096": (rsm_step, 4096),
         "GenKSC conv step, batch 256": (genksc_step, 256),
         "ACe/DeC autoencoder step, batch 256": (autoencoder_step, 256)}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0]}, {torch.backends.cpu.get_cpu_capability()}" if names else \
        platform.machine()


def timed(step, steps: int, device) -> float:
    step()  # warm-up (oneDNN / cuBLAS plans)
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    images = torch.as_tensor(load_dataset("mnist").images()[:4096])
    lines = ["| step | fp32 median (ms) | bf16 median (ms) | bf16 speed-up |", "|---|---|---|---|"]
    for name, (make, batch) in CASES.items():
        ms = {prec: 1000 * timed(make(prec, images[:batch], device), args.steps, device)
              for prec in ("fp32", "bf16")}
        lines.append(f"| {name} | {ms['fp32']:.1f} | {ms['bf16']:.1f} | "
                     f"{ms['fp32'] / ms['bf16']:.2f}x |")
        print(lines[-1], flush=True)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    lines.append(f"\nMeasured on {where} ({torch.get_num_threads()} threads), "
                 f"torch {torch.__version__}, {args.steps} steps after a warm-up, medians.")
    print(lines[-1])
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
