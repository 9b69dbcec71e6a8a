"""GenKSC: loss terms against a plain transcription of eq. (3), training, persistence, errors."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import normalized_mutual_info_score

import pydeepclust.ops as ops
from pydeepclust.models import GenKSC


def blobs(n=300, d=8, k=3, seed=0):
    X, y = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=1.0, random_state=seed)
    X = (X - X.min()) / (X.max() - X.min())
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted():
    X, y = blobs()
    model = GenKSC(n_clusters=3, n_components=4, feature_dim=32, hidden=(64,), epochs=40,
                   warmup_epochs=15, batch_size=64, lr=3e-3, lr_stiefel=3e-3,
                   random_state=0, device="cpu", verbose=False).fit(X)
    return model, X, y


def test_loss_terms_match_eq3_transcription(fitted):
    model, X, _ = fitted
    x = torch.as_tensor(X[:50])
    model.encoder_.eval()
    model.decoder_.eval()
    with torch.no_grad():
        parts = model.losses(x)
        # eq. (3) written out with the n x n linear kernel
        phi = model.encoder_(x).double()
        K = phi @ phi.T
        d = K.sum(1)
        floor = model.degree_floor * d.abs().mean()
        Dinv = torch.diag(1 / torch.maximum(d, floor))
        ones = torch.ones(len(x), dtype=torch.float64)
        c = (ones @ Dinv @ phi) / (ones @ Dinv @ ones)
        phic = phi - c
        U = model.U_.double()
        E = phic @ U
        ksc = (-0.5 * torch.trace(E.T @ Dinv @ E) + 0.5 * torch.trace(phic.T @ phic)) / len(x)
        rec = ((x.double() - model.decoder_((phic @ U @ U.T).float()).double()) ** 2).sum() / len(x)
        m = ops.code_width(3)
        codes = ops.simplex_codes(3, dtype=torch.float64)
        cos = (E[:, :m] @ codes.T) / E[:, :m].norm(dim=1, keepdim=True)
        cl = ((1 - cos.max(1).values) / (1 - 1 / 2)).mean()
    torch.testing.assert_close(parts["ksc"].double(), ksc, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts["rec"].double(), rec, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts["cl"].double(), cl, rtol=1e-4, atol=1e-5)


def test_U_stays_orthonormal(fitted):
    model, _, _ = fitted
    U = model.U_.detach().double()
    assert torch.linalg.matrix_norm(U.T @ U - torch.eye(U.shape[1], dtype=torch.float64)) < 1e-5


def test_clusters_blobs(fitted):
    model, X, y = fitted
    assert normalized_mutual_info_score(y, model.labels_) >= 0.95


def test_predict_on_training_data_equals_labels(fitted):
    model, X, _ = fitted
    assert np.array_equal(model.predict(X), model.labels_)
    assert model.fit_predict is not None


def test_save_load_identical(fitted, tmp_path):
    model, X, _ = fitted
    path = tmp_path / "genksc.pt"
    model.save(path)
    loaded = GenKSC.load(path)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.transform(X), model.transform(X), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="not a GenKSC checkpoint"):
        torch.save({"format": 1, "estimator": "Other"}, tmp_path / "x.pt")
        GenKSC.load(tmp_path / "x.pt")


def test_same_seed_same_labels():
    X, _ = blobs(n=120)
    kw = dict(n_clusters=3, n_components=3, feature_dim=16, hidden=(32,), epochs=3,
              warmup_epochs=1, batch_size=32, random_state=7, device="cpu", verbose=False)
    a, b = GenKSC(**kw).fit(X), GenKSC(**kw).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    torch.testing.assert_close(a.U_, b.U_)


def test_generation_and_traversals(fitted):
    model, X, _ = fitted
    s = model.U_.shape[1]
    assert model.generate(torch.zeros(5, s)).shape == (5, X.shape[1])
    assert model.generate(torch.zeros(2, 2)).shape == (2, X.shape[1])  # first dims only
    trav = model.traversal_scores(X, steps=6, extrapolate=1.5)
    assert trav.shape == (3, 6, s)
    # the last step lies beyond every training point's projection on its code
    scores = torch.as_tensor(model.transform(X))
    codes = model.codes_.cpu()
    for c in range(3):
        reach = (scores[model.labels_ == c, :2] @ codes[c]).max()
        assert trav[c, -1, :2] @ codes[c] == pytest.approx(1.5 * float(reach), rel=1e-5)
    comp = model.component_traversal_scores(X, steps=5)
    assert comp.shape == (s - 2, 5, s)
    around = model.component_traversal_scores(X, components=[3], steps=5, cluster=1)
    members = scores[torch.as_tensor(model.predict(X)) == 1]
    torch.testing.assert_close(around[0, 2], members.mean(0))  # the middle step: the mean
    assert around[0, -1, 3] == pytest.approx(float(members[:, 3].mean() + 3 * members[:, 3].std()),
                                             rel=1e-5)
    with pytest.raises(ValueError, match="cluster"):
        model.component_traversal_scores(X, cluster=3)
    m = model.soft_memberships(X)
    assert m.shape == (len(X), 3)
    assert 1 / 3 <= model.average_membership_strength(X) <= 1


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"n_clusters": 1}, np.random.rand(20, 4), "n_clusters must be an integer >= 2"),
        ({"n_clusters": 4, "n_components": 2}, np.random.rand(20, 4), "n_components"),
        ({"n_clusters": 3}, np.random.rand(20), r"X must have shape \(n, d\)"),
        ({"n_clusters": 3}, np.full((20, 4), np.nan), "NaN or inf"),
        ({"n_clusters": 5}, np.random.rand(3, 4), "fewer than n_clusters=5"),
        ({"n_clusters": 3, "batch_size": 0}, np.random.rand(20, 4), "batch_size"),
        ({"n_clusters": 3, "lr": 0}, np.random.rand(20, 4), "lr must be a finite number > 0"),
        ({"n_clusters": 3, "warmup_epochs": -1}, np.random.rand(20, 4),
         "warmup_epochs must be an integer >= 0, got -1"),
        ({"n_clusters": 3, "warmup_epochs": 1.5}, np.random.rand(20, 4), "warmup_epochs must be"),
        ({"n_clusters": 3, "lr_stiefel": "1e-3"}, np.random.rand(20, 4), "lr_stiefel must be"),
        ({"n_clusters": 3, "eta_cl": -1.0}, np.random.rand(20, 4),
         "eta_cl must be a finite number >= 0, got -1.0"),
        ({"n_clusters": 3, "eta_rec": float("nan")}, np.random.rand(20, 4), "eta_rec must be"),
        ({"n_clusters": 3, "checkpoint_every": 0}, np.random.rand(20, 4),
         "checkpoint_every must be an integer >= 1, got 0"),
        ({"n_clusters": 3, "checkpoint_path": "no/such/folder/m.pt"}, np.random.rand(20, 4),
         "folder 'no/such/folder' does not exist"),
    ],
)
def test_bad_input(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        GenKSC(epochs=1, verbose=False, device="cpu", **kwargs).fit(X)


def test_predict_wrong_width_and_unfitted(fitted):
    model, X, _ = fitted
    with pytest.raises(ValueError, match="fitted on"):
        model.predict(X[:, :5])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GenKSC().predict(X)


def test_non_finite_loss_is_a_clear_error():
    X = np.full((64, 4), 1e30, dtype=np.float32)
    X[::2] = -1e30
    with pytest.raises(FloatingPointError, match="became non-finite|loss became"):
        GenKSC(n_clusters=2, n_components=2, feature_dim=8, hidden=(8,), epochs=1,
               batch_size=32, device="cpu", verbose=False, random_state=0).fit(X)


def test_diverged_features_are_named_as_genksc_not_as_bad_data():
    X = np.random.default_rng(0).random((64, 4)).astype(np.float32)
    model = GenKSC(n_clusters=2, n_components=2, feature_dim=8, epochs=1, batch_size=32,
                   device="cpu", verbose=False, random_state=0).fit(X)
    with torch.no_grad():
        next(model.encoder_.parameters()).fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="GenKSC: the encoder's features became"):
        model.losses(torch.as_tensor(X[:32]))


def test_conv_architecture_on_28x28_images():
    """(n, 28, 28) samples through the conv pair: the reconstruction compares per image."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand(48, 28, 28, generator=g)
    model = GenKSC(n_clusters=3, n_components=4, feature_dim=32, arch="conv", epochs=1,
                   warmup_epochs=0, batch_size=16, random_state=0, device="cpu",
                   verbose=False).fit(X)
    x = X[:16]
    model.decoder_.eval()
    with torch.no_grad():
        rec = model.losses(x)["rec"]
        phi = model.encoder_(x)
        scores = (phi - weighted_center_of(phi, model)) @ model.U_
        manual = ((x - model.decoder_(scores @ model.U_.T)[:, 0]) ** 2).sum((1, 2)).mean()
    assert rec <= 28 * 28
    torch.testing.assert_close(rec, manual, rtol=1e-5, atol=1e-5)
    assert model.generate(torch.zeros(2, 4)).shape == (2, 28, 28)
    assert model.predict(X).shape == (48,)


def weighted_center_of(phi, model):
    degrees, floor = model._degrees(phi)
    return ops.weighted_center(phi, degrees, nonpositive="clamp", eps=floor)


def test_schedule_defaults_follow_the_architecture():
    """None: the authors' schedule for the conv net, the measured small-set one for the mlp;
    the warm-up a fraction of the epochs (10 of 150 / 50 of 150); given values are kept."""
    from pydeepclust.models.genksc import CONV_DEFAULTS, MLP_DEFAULTS

    conv = GenKSC(3)._schedule("conv")
    assert conv == dict(batch_size=256, lr=1e-4, lr_stiefel=1e-4, warmup_epochs=10)
    assert GenKSC(3)._schedule("mlp") == dict(batch_size=64, lr=1e-3, lr_stiefel=1e-3,
                                               warmup_epochs=50)
    assert GenKSC(3, epochs=30)._schedule("mlp")["warmup_epochs"] == 10
    kept = GenKSC(3, batch_size=32, lr=5e-4, warmup_epochs=3)._schedule("conv")
    assert kept == dict(batch_size=32, lr=5e-4, lr_stiefel=CONV_DEFAULTS["lr_stiefel"],
                        warmup_epochs=3)
    assert set(MLP_DEFAULTS) == set(CONV_DEFAULTS)


def test_defaults_cluster_small_blobs():
    """GenKSC(n_clusters=3) with nothing else on 2-D KSC blobs (the README's case, 300 of its
    1,500 points to keep the test short: the same mlp schedule, 4 steps an epoch)."""
    from pydeepclust.data import load_dataset

    ds = load_dataset("blobs", n_samples=300)
    model = GenKSC(3, random_state=0, verbose=False).fit(ds.X)
    assert (model.batch_size_, model.lr_, model.warmup_epochs_) == (64, 1e-3, 50)
    assert normalized_mutual_info_score(ds.y, model.labels_) >= 0.95
