"""External clustering metrics: NMI, ARI, cluster accuracy (Hungarian matching), and AMS.

Label arrays may be numpy arrays, lists or torch tensors of any integer (or other
hashable) label values; predicted cluster ids need not share values, or even the
number of distinct values, with the ground truth. Average membership strength is
the op :func:`pydeepclust.ops.average_membership_strength`, re-exported here.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from pydeepclust.ops import average_membership_strength

__all__ = [
    "adjusted_rand_index",
    "average_membership_strength",
    "cluster_accuracy",
    "cluster_report",
    "normalized_mutual_info",
]


def _as_label_array(labels, name: str, fn: str) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{fn}: {name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{fn}: {name} is empty")
    if array.dtype.kind == "c":
        raise ValueError(f"{fn}: {name} must hold labels (integers or strings), got {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{fn}: {name} contains NaN or inf")
    if array.dtype.kind == "O":
        try:
            np.unique(array)
        except TypeError as err:  # e.g. strings mixed with numbers: labels must be comparable
            raise ValueError(f"{fn}: {name} mixes label types that cannot be compared "
                             f"({err})") from err
    return array


def _check_pair(y_true, y_pred, fn: str) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_label_array(y_true, "y_true", fn)
    y_pred = _as_label_array(y_pred, "y_pred", fn)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{fn}: y_true and y_pred must have the same length, got {y_true.size} and "
            f"{y_pred.size}"
        )
    return y_true, y_pred


def normalized_mutual_info(y_true, y_pred) -> float:
    """NMI with the arithmetic-mean normalisation (scikit-learn's default), in [0, 1]."""
    y_true, y_pred = _check_pair(y_true, y_pred, "normalized_mutual_info")
    return float(normalized_mutual_info_score(y_true, y_pred))


def adjusted_rand_index(y_true, y_pred) -> float:
    """Adjusted Rand index: 1 for identical partitions, about 0 for random ones."""
    y_true, y_pred = _check_pair(y_true, y_pred, "adjusted_rand_index")
    return float(adjusted_rand_score(y_true, y_pred))


def cluster_accuracy(y_true, y_pred) -> float:
    """Unsupervised accuracy: the best one-to-one map from clusters to classes.

    The map maximises the number of matched points (Hungarian algorithm on the
    contingency table). With more clusters than classes, the unmatched clusters'
    points count as errors; with fewer, some classes are simply never predicted.
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "cluster_accuracy")
    _, true_index = np.unique(y_true, return_inverse=True)
    _, pred_index = np.unique(y_pred, return_inverse=True)
    contingency = np.zeros((pred_index.max() + 1, true_index.max() + 1), dtype=np.int64)
    np.add.at(contingency, (pred_index, true_index), 1)
    rows, cols = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, cols].sum() / y_true.size)


def cluster_report(y_true, y_pred, memberships: torch.Tensor | None = None) -> dict[str, float]:
    """``{"nmi", "ari", "acc"}`` for a clustering, plus ``"ams"`` when soft memberships are given.

    ``memberships`` is the (n, k) soft-membership tensor of the same points; AMS
    is computed with ``y_pred`` as the hard assignment.
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "cluster_report")
    report = {
        "nmi": normalized_mutual_info(y_true, y_pred),
        "ari": adjusted_rand_index(y_true, y_pred),
        "acc": cluster_accuracy(y_true, y_pred),
    }
    if memberships is not None:
        if not isinstance(memberships, torch.Tensor) or memberships.dim() != 2:
            raise ValueError(
                "cluster_report: memberships must be a tensor of shape (n, k), got "
                f"{getattr(memberships, 'shape', type(memberships).__name__)}"
            )
        if memberships.shape[0] != y_pred.size:
            raise ValueError(
                f"cluster_report: memberships has {memberships.shape[0]} rows but y_pred has "
                f"{y_pred.size} labels"
            )
        if y_pred.dtype.kind not in "iu":
            raise ValueError("cluster_report: y_pred must hold integer cluster ids to compute AMS")
        labels = torch.from_numpy(y_pred.astype(np.int64)).to(memberships.device)
        report["ams"] = float(average_membership_strength(memberships, labels))
    return report
