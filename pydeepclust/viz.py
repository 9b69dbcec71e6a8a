"""Pictures for the interpretability tools: image grids (traversals, generations) and
2-D scatters of embeddings. Matplotlib with the non-interactive Agg backend."""

from __future__ import annotations

import math
import os

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, suptitle: str | None = None, dpi: int = 110) -> str:
    """Lay out, write and close ``fig``; returns the path as a string."""
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return str(path)


def as_images(samples) -> np.ndarray:
    """(..., H, W) grey images from samples of shape (..., H, W), (..., 1, H, W) or (..., d)
    with d a perfect square (8×8 digits, 28×28 images)."""
    a = np.asarray(samples, dtype=np.float32)
    if a.ndim >= 3 and a.shape[-3] == 1:
        return a.squeeze(-3)
    if a.ndim >= 2 and a.shape[-1] != a.shape[-2]:
        side = math.isqrt(a.shape[-1])
        if side * side != a.shape[-1]:
            raise ValueError(f"as_images: cannot view samples of width {a.shape[-1]} as square images")
        return a.reshape(*a.shape[:-1], side, side)
    return a


def save_image_grid(images, path: str | os.PathLike, row_labels=None, title: str | None = None,
                    cmap: str = "gray") -> str:
    """Save a (rows, cols, ...) array of samples as one PNG grid; returns the path."""
    grid = as_images(images)
    if grid.ndim != 4:
        raise ValueError(f"save_image_grid: expected (rows, cols, H, W) images, got {grid.shape}")
    rows, cols = grid.shape[:2]
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9 + 0.6, rows * 0.9 + 0.4),
                             squeeze=False)
    lo, hi = float(grid.min()), float(grid.max())
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(grid[r, c], cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
        if row_labels is not None:
            axes[r, 0].set_ylabel(str(row_labels[r]), rotation=0, ha="right", va="center")
    return save_figure(fig, path, suptitle=title, dpi=100)


def plot_scores(scores, labels, path: str | os.PathLike, codes=None, dims=(0, 1),
                title: str | None = None, xlabel: str | None = None,
                ylabel: str | None = None) -> str:
    """Scatter of two embedding dimensions coloured by cluster; optional code directions."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    i, j = dims
    ax.scatter(scores[:, i], scores[:, j], c=labels, s=4, cmap="tab10", alpha=0.6)
    if codes is not None:
        codes = np.asarray(codes)
        reach = np.linalg.norm(scores[:, [i, j]], axis=1).max()
        ends = [code[[i, j]] * reach for code in codes if code.shape[0] > max(i, j)]
        for c, end in enumerate(ends):
            ax.annotate("", xy=end, xytext=(0, 0),
                        arrowprops={"arrowstyle": "->", "color": "k", "lw": 1})
            ax.text(*end, f"s{c}", fontsize=8)
        if ends:  # annotations do not enter autoscaling; invisible points do
            ax.scatter(*np.array(ends).T, s=0)
    ax.set_xlabel(xlabel or f"score {i + 1}")
    ax.set_ylabel(ylabel or f"score {j + 1}")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
