"""pydeepclust's fused ops inside your own model, trained under torch.compile.

A tiny encoder maps points to scores on the simplex codes of k clusters. Its loss
combines two ops: RSM's streaming ratio cut (``ops.rbf_ratio_cut``: neighbours in
the input get neighbouring scores, without an n x n matrix) and GenKSC's cosine
distance to the nearest code (``ops.cosine_simplex_assign``, which also gives the
labels), plus a penalty that keeps the scores from collapsing onto one code.
Both ops have fake kernels and autograd formulas, so ``torch.compile(fullgraph=True)``
traces them as single nodes; without the native extension the same code runs the
pure-torch references.

    python examples/own_model.py          # prints the loss, the build, the cluster sizes
"""

import torch
from torch import nn

import pydeepclust
from pydeepclust import ops


class SimplexEncoder(nn.Module):
    def __init__(self, n_features: int, n_clusters: int, hidden: int = 32):
        super().__init__()
        self.register_buffer("codes", ops.simplex_codes(n_clusters))  # (k, m), unit norm
        width = ops.code_width(n_clusters)
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, width))

    def forward(self, x):
        return self.net(x)

    def loss(self, x, sigma: float = 1.0):
        e = self(x)
        cut = ops.rbf_ratio_cut(x, e, sigma)                  # scalar, streamed over tiles
        dist, _ = ops.cosine_simplex_assign(e, self.codes)    # (n,), in [0, 1]
        # balanced clusters on the codes have second moment codes^T codes / k
        target = self.codes.T @ self.codes / len(self.codes)
        spread = ((e.T @ e / len(e) - target) ** 2).sum()
        return cut + dist.mean() + spread

    @torch.no_grad()
    def predict(self, x):
        return ops.cosine_simplex_assign(self(x), self.codes)[1]


def blobs(n_per_cluster=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 4.0], [-3.5, -2.0], [3.5, -2.0]])
    x = centres.repeat_interleave(n_per_cluster, 0) + torch.randn(3 * n_per_cluster, 2, generator=gen)
    return x, torch.arange(3).repeat_interleave(n_per_cluster)


def main(steps: int = 30) -> dict:
    torch.manual_seed(0)
    x, y = blobs()
    model = SimplexEncoder(n_features=2, n_clusters=3)
    loss_fn = torch.compile(model.loss, fullgraph=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    labels = model.predict(x)
    return {
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "eager_loss": model.loss(x).item(),   # the uncompiled loss at the trained weights
        "compiled_loss": loss_fn(x).item(),
        "cluster_sizes": torch.bincount(labels, minlength=3).tolist(),
        "purity": sum(torch.bincount(y[labels == c]).max().item()
                      for c in labels.unique()) / len(y),
    }


if __name__ == "__main__":
    result = main()
    info = pydeepclust.build_info()
    print(f"pydeepclust {pydeepclust.__version__} from {pydeepclust.__file__}")
    print(f"backend {ops.backend()}, extension available {info['available']}")
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
    assert result["last_loss"] < result["first_loss"], "training did not lower the loss"
    assert abs(result["eager_loss"] - result["compiled_loss"]) < 1e-4, "compiled != eager"
