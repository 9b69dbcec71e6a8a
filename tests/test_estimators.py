"""What every estimator shares (pydeepclust.models.base): n_clusters, random_state and device
checked before any work, checkpoints that refuse to be something else, loading on a machine
without the fitting device."""

import io
import pickle

import numpy as np
import pytest
import torch

from pydeepclust.models import (DCN, KSC, RSM, ACeDeC, AEKMeans, GenKSC, KMeansBaseline,
                                SpectralBaseline, SubKMeans)

NET = dict(latent_dim=2, hidden=(8,), pretrain_epochs=1)
TINY = {
    GenKSC: dict(epochs=1, warmup_epochs=0, batch_size=16, verbose=False),
    RSM: dict(epochs=1, hidden=(8,), batch_size=32, n_init=1),
    KSC: dict(n_train=40),
    ACeDeC: dict(epochs=1, n_init=1, **NET),
    DCN: dict(epochs=1, **NET),
    AEKMeans: NET,
    KMeansBaseline: {},
    SubKMeans: dict(n_init=1),
    SpectralBaseline: dict(n_neighbors=5),
}
ESTIMATORS = list(TINY)


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 4.0, 0.0], [3.5, -2.0, 0.0], [-3.5, -2.0, 1.0]])
    return (centers[np.arange(60) % 3] + 0.3 * rng.standard_normal((60, 3))).astype(np.float32)


@pytest.mark.parametrize("k", ["3", None, 2.5, True, 0, -1])
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_n_clusters_of_the_wrong_kind_is_named(cls, k, X):
    with pytest.raises(ValueError, match="n_clusters must be an integer >= "):
        cls(k, **TINY[cls]).fit(X)


@pytest.mark.parametrize("seed", ["abc", 1.5, [1], True, np.random.RandomState(0)])
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_random_state_of_the_wrong_kind_is_named(cls, seed, X):
    with pytest.raises(ValueError, match="random_state must be an integer or None"):
        cls(3, random_state=seed, **TINY[cls]).fit(X)


@pytest.mark.parametrize("seed", [-1, 2**70, np.int64(5)])
def test_any_integer_seed_works_and_reproduces(seed, X):
    # the network, the batches and k-means all drawn from the one seed
    def fit():
        return AEKMeans(3, random_state=seed, **NET).fit(X)

    first, second = fit(), fit()
    np.testing.assert_array_equal(first.labels_, second.labels_)
    for name, value in first.autoencoder_.state_dict().items():
        assert torch.equal(value, second.autoencoder_.state_dict()[name]), name


DEVICE_CASES = [("tpu", "device must be 'cpu', 'cuda', 'cuda:N' or None, got 'tpu'"),
                ("gpu", "device must be 'cpu', 'cuda', 'cuda:N' or None, got 'gpu'"),
                (3.5, "device must be 'cpu', 'cuda', 'cuda:N' or None, got 3.5")]
if not torch.cuda.is_available():
    DEVICE_CASES.append(("cuda", "device='cuda', but this torch sees no CUDA GPU"))
else:
    DEVICE_CASES.append((f"cuda:{torch.cuda.device_count()}", "CUDA device(s)"))


@pytest.mark.parametrize("device, match", DEVICE_CASES)
@pytest.mark.parametrize("cls", [c for c in ESTIMATORS if "device" in c().get_params()],
                         ids=lambda c: c.__name__)
def test_a_device_this_machine_lacks_is_named(cls, device, match, X):
    with pytest.raises(ValueError, match=match):
        cls(3, device=device, **TINY[cls]).fit(X)


@pytest.mark.parametrize("content, match", [
    (b"", "torch.load could not read it safely"),
    (b"not a checkpoint at all", "torch.load could not read it safely"),
    (pickle.dumps({"format": 1}), "torch.load could not read it safely"),
])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain pickle's
def test_unreadable_files_are_not_checkpoints(content, match, tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"is not a GenKSC checkpoint: {match}"):
        GenKSC.load(path)


@pytest.mark.parametrize("obj, match", [(torch.ones(3), "it holds a Tensor"),
                                        ([1, 2], "it holds a list"),
                                        ({"format": 99}, "estimator=None, format=99")])
def test_other_torch_files_are_not_checkpoints(obj, match, tmp_path):
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(ValueError, match=match):
        GenKSC.load(path)


def test_a_model_fitted_on_a_gpu_loads_on_a_cpu_machine(X, tmp_path, monkeypatch):
    model = AEKMeans(3, **TINY[AEKMeans]).fit(X)
    model.set_params(device="cuda")  # as saved on a GPU machine
    model.save(tmp_path / "gpu.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="loaded on the CPU"):
        loaded = AEKMeans.load(tmp_path / "gpu.pt")
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict(X), model.labels_)


def test_cpu_only_models_take_device_cpu_on_load(X, tmp_path):
    model = KMeansBaseline(3).fit(X)
    model.save(tmp_path / "km.pt")
    np.testing.assert_array_equal(KMeansBaseline.load(tmp_path / "km.pt", device="cpu").labels_,
                                  model.labels_)
    with pytest.raises(ValueError, match="runs on the CPU only, got device='cuda'"):
        KMeansBaseline.load(tmp_path / "km.pt", device="cuda")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_numpy_integers_are_integers(cls, X):
    params = {k: np.int64(v) if isinstance(v, int) and not isinstance(v, bool) else v
              for k, v in TINY[cls].items()}
    labels = cls(np.int64(3), random_state=np.int64(0), **params).fit(X).labels_
    np.testing.assert_array_equal(labels, cls(3, random_state=0, **TINY[cls]).fit(X).labels_)


def test_save_to_a_file_like_object_round_trips(X):
    model = KMeansBaseline(3).fit(X)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(KMeansBaseline.load(buffer).labels_, model.labels_)


def test_aekmeans_takes_scikit_learns_auto_starts(X):
    assert AEKMeans(3, n_init="auto", **NET).fit(X).labels_.shape == (len(X),)


@pytest.mark.parametrize("params", [
    dict(kernel="rbf", bandwidth_scale="knn", n_neighbors=np.int64(5)),
    dict(kernel="knn", n_neighbors_range=(np.int64(3), np.int64(6))),
    dict(penalty_weight=np.float32(1.0)),
])
def test_rsm_takes_numpy_scalars(params, X):
    RSM(3, random_state=0, **{**TINY[RSM], **params}).fit(X)
