"""scikit-learn compatibility: every estimator under ``parametrize_with_checks``, and the
tools built on the conventions (clone, pipelines, GridSearchCV with a clustering score,
pickle) with fitted models giving identical predictions.

Settings are tiny (a few epochs, networks of a few units) so the file runs in well under a
minute on one thread; the models run on the CPU, where a seeded fit repeats exactly
(``non_deterministic`` is set on a CUDA device, see ``DeepClusterer._non_deterministic``).
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from pydeepclust.models import (DCN, KSC, RSM, ACeDeC, AEKMeans, GenKSC, KMeansBaseline,
                                SpectralBaseline, SubKMeans)

# SpectralBaseline on tiny or scattered data: "Graph is not fully connected"
pytestmark = pytest.mark.filterwarnings("ignore:Graph is not fully connected:UserWarning")

AE = dict(pretrain_epochs=2, batch_size=16, device="cpu")


def small_estimators():
    """One small instance of every estimator (fresh each call), seeded, on the CPU."""
    return [
        GenKSC(3, n_components=4, feature_dim=16, hidden=(16,), epochs=3, warmup_epochs=1,
               batch_size=16, random_state=0, device="cpu", verbose=False),
        RSM(3, hidden=(32, 32), epochs=5, n_init=1, n_neighbors_range=(2, 4), random_state=0,
            device="cpu"),
        KSC(3, n_train=60, random_state=0),
        ACeDeC(3, epochs=2, n_init=1, random_state=0, **AE),
        DCN(3, epochs=2, random_state=0, **AE),
        AEKMeans(3, random_state=0, **AE),
        KMeansBaseline(3, random_state=0),
        SubKMeans(3, n_init=1, random_state=0),
        SpectralBaseline(3, n_neighbors=5, random_state=0),
    ]


# Checks that set n_clusters=1 (to fit tiny data) on models defined for k >= 2 only.
N_CLUSTERS_1_CHECKS = ("check_dont_overwrite_parameters", "check_methods_subset_invariance",
                       "check_fit2d_1feature", "check_fit2d_predict1d")
NEEDS_TWO_CLUSTERS = {
    "GenKSC": "the check sets n_clusters=1, but GenKSC's cluster codes are the k vertices of a "
              "simplex in code_width(k) >= 2 dimensions: k >= 2",
    "KSC": "the check sets n_clusters=1, but KSC's score space is spanned by k - 1 "
           "eigenvectors, none for k = 1: k >= 2",
    "RSM": "the check sets n_clusters=1, but RSM refuses k < 2 (a ratio cut separates "
           "clusters; tests/test_rsm.py)",
}
EXPECTED_FAILURES = {
    name: {check: reason for check in N_CLUSTERS_1_CHECKS}
    for name, reason in NEEDS_TWO_CLUSTERS.items()
}
EXPECTED_FAILURES["GenKSC"]["check_methods_sample_order_invariance"] = (
    "the check sets n_clusters=2 and n_components=1, but GenKSC's scores need "
    "code_width(2) = 2 dimensions for the simplex codes")


def expected_failed_checks(estimator):
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks(small_estimators(), expected_failed_checks=expected_failed_checks,
                         xfail_strict=True)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# -- the tools built on the conventions --------------------------------------------------

IDS = [type(e).__name__ for e in small_estimators()]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=90, centers=3, n_features=4, random_state=0)
    return X.astype(np.float32), y


def test_tags():
    for est in small_estimators():
        tags = get_tags(est)
        assert tags.estimator_type == "clusterer"
        assert tags.input_tags.two_d_array and tags.input_tags.three_d_array
        assert not tags.input_tags.sparse and not tags.input_tags.allow_nan
        assert tags.requires_fit and not tags.non_deterministic  # seeded, on the CPU
        transforms = hasattr(est, "transform")
        assert transforms == (type(est) is not SpectralBaseline)
        assert (tags.transformer_tags is not None) == transforms
        assert hasattr(est, "fit_transform") == transforms
    assert get_tags(GenKSC(random_state=None)).non_deterministic  # fresh entropy


def test_spectral_baseline_has_no_transform(blobs):
    model = SpectralBaseline(3, n_neighbors=5).fit(blobs[0])
    with pytest.raises(NotImplementedError, match="no embedding of new points; use predict"):
        model.transform(blobs[0])
    with pytest.raises(AttributeError):
        model.fit_transform(blobs[0])


@pytest.mark.parametrize("estimator", small_estimators(), ids=IDS)
def test_clone_fits_like_the_original(estimator, blobs):
    X, _ = blobs
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    np.testing.assert_array_equal(copy.fit(X).labels_, estimator.fit(X).labels_)
    assert not hasattr(clone(estimator), "labels_")  # clone drops the fitted state


@pytest.mark.parametrize("estimator", small_estimators(), ids=IDS)
def test_pickle_round_trip_of_a_fitted_model(estimator, blobs):
    X, _ = blobs
    model = estimator.fit(X)
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if hasattr(model, "transform"):
        np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
        np.testing.assert_array_equal(model.fit_transform(X), loaded.transform(X))


@pytest.mark.parametrize("estimator", small_estimators(), ids=IDS)
def test_pipeline_with_a_scaler(estimator, blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), estimator).fit(X)
    labels = pipe.predict(X)
    assert labels.shape == (len(X),)
    scaled = StandardScaler().fit_transform(X)
    np.testing.assert_array_equal(labels, clone(estimator).fit(scaled).predict(scaled))
    np.testing.assert_array_equal(pipe.fit_predict(X), pipe[-1].labels_)


def test_rsm_pipeline_recovers_blobs(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), RSM(3, hidden=(32, 32), epochs=20, n_init=3,
                                               random_state=0, device="cpu"))
    assert adjusted_rand_score(y, pipe.fit(X).predict(X)) > 0.9


def test_grid_search_with_a_clustering_score(blobs):
    X, y = blobs
    ari = make_scorer(adjusted_rand_score)  # ARI of predict(X_test) against y_test
    search = GridSearchCV(
        make_pipeline(StandardScaler(), RSM(hidden=(32, 32), epochs=5, n_init=1,
                                            random_state=0, device="cpu")),
        {"rsm__n_clusters": [2, 3]}, scoring=ari, cv=3)
    search.fit(X, y)
    assert search.best_params_ == {"rsm__n_clusters": 3}
    assert search.best_score_ > 0.9
    assert adjusted_rand_score(y, search.predict(X)) > 0.9


def test_grid_search_with_a_callable_score(blobs):
    X, y = blobs

    def ari(estimator, X, y):  # a custom callable: scorer(estimator, X_test, y_test)
        return adjusted_rand_score(y, estimator.predict(X))

    search = GridSearchCV(KMeansBaseline(random_state=0), {"n_clusters": [2, 3, 6]},
                          scoring=ari, cv=3).fit(X, y)
    assert search.best_params_ == {"n_clusters": 3}
