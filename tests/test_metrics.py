"""Clustering metrics: hand-made tables, a brute-force check of the Hungarian matching, errors."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from pydeepclust import metrics, ops
from pydeepclust.metrics import (
    adjusted_rand_index,
    cluster_accuracy,
    cluster_report,
    normalized_mutual_info,
)

ACCURACY_TABLE = [
    # (y_true, y_pred, expected accuracy)
    ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], 1.0),
    ([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1], 1.0),  # relabelled
    ([5, 5, 9, 9], [-1, -1, 7, 7], 1.0),  # arbitrary label values
    (["a", "a", "b"], [1, 1, 0], 1.0),  # non-integer class names
    ([0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 0, 0], 5 / 6),  # one point off
    ([0, 0, 1, 1], [0, 1, 2, 3], 0.5),  # k_pred > k_true: unmatched clusters are errors
    ([0, 1, 2, 3], [0, 0, 0, 0], 0.25),  # k_pred < k_true
    ([0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1], 4 / 6),  # greedy-by-cluster would also give 4/6
    ([0, 0, 1, 1, 1, 2], [1, 1, 1, 2, 2, 0], 5 / 6),
    ([7], [3], 1.0),  # single point
]


@pytest.mark.parametrize("y_true, y_pred, expected", ACCURACY_TABLE)
def test_cluster_accuracy_table(y_true, y_pred, expected):
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(expected)


def _brute_force_accuracy(y_true, y_pred):
    true_values, pred_values = np.unique(y_true), np.unique(y_pred)
    best = 0
    # Every injective map from the smaller label set into the larger one.
    if len(pred_values) <= len(true_values):
        for image in itertools.permutations(true_values, len(pred_values)):
            mapping = dict(zip(pred_values, image))
            best = max(best, sum(mapping[p] == t for p, t in zip(y_pred, y_true)))
    else:
        for image in itertools.permutations(pred_values, len(true_values)):
            mapping = dict(zip(image, true_values))
            best = max(best, sum(mapping.get(p) == t for p, t in zip(y_pred, y_true)))
    return best / len(y_true)


@pytest.mark.parametrize("k_true, k_pred", [(2, 2), (3, 3), (4, 4), (3, 5), (5, 3), (2, 4)])
def test_cluster_accuracy_matches_brute_force(k_true, k_pred):
    rng = np.random.default_rng(k_true * 10 + k_pred)
    for _ in range(10):
        y_true = rng.integers(0, k_true, size=30)
        y_pred = rng.integers(0, k_pred, size=30)
        assert cluster_accuracy(y_true, y_pred) == pytest.approx(
            _brute_force_accuracy(y_true, y_pred)
        )


RELABELLED_PARTITIONS = [
    ([0, 0, 1, 1, 2, 2], [1, 1, 2, 2, 0, 0]),
    ([0, 1, 0, 1, 0, 1], [10, 20, 10, 20, 10, 20]),
    (np.arange(12) % 4, (np.arange(12) % 4) * -3 + 100),
]


@pytest.mark.parametrize("y_true, y_pred", RELABELLED_PARTITIONS)
def test_relabelled_partitions_score_one(y_true, y_pred):
    assert normalized_mutual_info(y_true, y_pred) == pytest.approx(1.0)
    assert adjusted_rand_index(y_true, y_pred) == pytest.approx(1.0)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(1.0)


def test_independent_partitions():
    # Each cluster holds one point of each class: no information at all.
    y_true, y_pred = [0, 0, 1, 1], [0, 1, 0, 1]
    assert normalized_mutual_info(y_true, y_pred) == pytest.approx(0.0, abs=1e-12)
    assert adjusted_rand_index(y_true, y_pred) == pytest.approx(-0.5)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(0.5)


def test_nmi_and_ari_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    assert normalized_mutual_info(y_true, y_pred) == pytest.approx(
        normalized_mutual_info_score(y_true, y_pred)
    )
    assert adjusted_rand_index(y_true, y_pred) == pytest.approx(
        adjusted_rand_score(y_true, y_pred)
    )


def test_accepts_tensors_lists_and_arrays():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [1, 1, 0, 0, 2, 0]
    expected = cluster_report(y_true, y_pred)
    assert cluster_report(np.array(y_true), torch.tensor(y_pred)) == expected
    assert cluster_report(torch.tensor(y_true), np.array(y_pred, dtype=np.int32)) == expected
    assert expected["acc"] == pytest.approx(5 / 6)


def test_cluster_report_keys_and_values():
    y_true, y_pred = [0, 0, 1, 1], [1, 1, 0, 0]
    assert cluster_report(y_true, y_pred) == {"nmi": 1.0, "ari": 1.0, "acc": 1.0}


def test_cluster_report_with_memberships_adds_ams():
    memberships = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    y_pred = np.array([0, 0, 1, 1])
    report = cluster_report([0, 0, 1, 1], y_pred, memberships=memberships)
    # Cluster 0: mean(0.9, 0.6) = 0.75; cluster 1: mean(0.8, 0.7) = 0.75.
    assert report["ams"] == pytest.approx(0.75)
    assert report["ams"] == pytest.approx(
        float(ops.average_membership_strength(memberships, torch.from_numpy(y_pred)))
    )


def test_average_membership_strength_is_the_op():
    assert metrics.average_membership_strength is ops.average_membership_strength


BAD_INPUTS = [
    ([0, 1, 2], [0, 1], "same length"),
    ([], [], "y_true is empty"),
    ([0, 1], [], "y_pred is empty"),
    ([[0, 1]], [[0, 1]], "one-dimensional"),
    ([0.0, np.nan], [0, 1], "NaN"),
    ([0, 1], np.array([0j, 1j]), "y_pred must hold labels"),
    (np.array(["a", 1, "b"], dtype=object), [0, 1, 0], "y_true mixes label types"),
]


@pytest.mark.parametrize("fn", [normalized_mutual_info, adjusted_rand_index, cluster_accuracy,
                                cluster_report])
@pytest.mark.parametrize("y_true, y_pred, message", BAD_INPUTS)
def test_bad_input_raises(fn, y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        fn(y_true, y_pred)


def test_cluster_report_bad_memberships():
    with pytest.raises(ValueError, match="memberships has 3 rows but y_pred has 2"):
        cluster_report([0, 1], [0, 1], memberships=torch.full((3, 2), 0.5))
    with pytest.raises(ValueError, match=r"memberships must be a tensor of shape \(n, k\)"):
        cluster_report([0, 1], [0, 1], memberships=np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="integer cluster ids"):
        cluster_report([0, 1], ["a", "b"], memberships=torch.full((2, 2), 0.5))
