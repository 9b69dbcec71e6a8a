"""The "tuned" backend: timing once per key, the 10 % margin, buckets, the disk cache, fallbacks."""

import json
import os
import subprocess
import sys

import pytest
import torch

import pydeepclust
import pydeepclust.ops as ops
from pydeepclust.ops import _tuned, reference
from tests.conftest import needs_extension

pytestmark = needs_extension


class FakeTimer:
    """Returns fixed times per candidate; runs the candidate (so a raising one raises)."""

    def __init__(self, extension=1.0, reference=2.0):
        self.times = {"extension": extension, "reference": reference}
        self.calls = []

    def __call__(self, name, fn, device, beat=None):
        self.calls.append(name)
        fn()
        return self.times[name]


@pytest.fixture
def tuner(monkeypatch, tmp_path):
    """A fresh tuner with a fake timer, the backend "tuned", the disk cache in tmp_path."""
    monkeypatch.setenv(_tuned.ENV_CACHE, str(tmp_path / "tune.json"))
    t = _tuned.Tuner(FakeTimer())
    monkeypatch.setattr(_tuned, "TUNER", t)
    with ops.use_backend("tuned"):
        yield t


def assign(n, k=3, grad=False):
    E = torch.randn(n, ops.code_width(k), requires_grad=grad)
    return ops.cosine_simplex_assign(E, ops.simplex_codes(k), check_finite=False)


def test_backend_name_and_env():
    with ops.use_backend("tuned"):
        assert ops.backend() == "tuned"
    out = subprocess.run(
        [sys.executable, "-c", "import pydeepclust.ops as o; print(o.backend())"],
        env={**os.environ, "PYDEEPCLUST_BACKEND": "tuned"}, capture_output=True, text=True,
        check=True)
    assert out.stdout.strip() == "tuned"


def test_bucket():
    assert _tuned.bucket(0, 1, 2, 3, 5, 8, 9, 1000) == (0, 1, 2, 4, 8, 8, 16, 1024)


@pytest.mark.parametrize("t_ref, expected", [(0.5, "reference"), (0.89, "reference"),
                                             (0.91, "extension"), (1.0, "extension"),
                                             (3.0, "extension")])
def test_choice_and_margin(tuner, t_ref, expected):
    tuner.timer.times = {"extension": 1.0, "reference": t_ref}
    assign(100)
    assert list(tuner.choices.values()) == [expected]


def test_chosen_implementation_runs(tuner, monkeypatch):
    tuner.timer.times = {"extension": 1.0, "reference": 0.1}
    ran = []
    real = reference.cosine_simplex_assign
    monkeypatch.setattr(reference, "cosine_simplex_assign",
                        lambda *a: ran.append(1) or real(*a))
    assign(100)
    timed = len(ran)
    assign(100)
    assert timed == 2 and len(ran) == 3  # timed once (warm-up inside the fake: one call), then run


def test_one_timing_per_key_and_bucket_edges(tuner):
    for n in (5, 8, 6, 8, 7):  # one bucket: 8
        assign(n)
    assert tuner.timings == 1 and tuner.timer.calls == ["extension", "reference"]
    assign(9)  # bucket 16
    assert tuner.timings == 2
    assign(16)
    assign(9, grad=True)  # needs-grad is part of the key
    assign(9, k=5)  # codes: another bucket
    assert tuner.timings == 4
    E = torch.randn(9, ops.code_width(3), dtype=torch.float64)
    ops.cosine_simplex_assign(E, ops.simplex_codes(3), check_finite=False)  # dtype
    assert tuner.timings == 5
    assert len(tuner.choices) == 5


def test_grad_timing_leaves_the_callers_graph_alone(tuner):
    E = torch.randn(50, 2, requires_grad=True)
    dist, _ = ops.cosine_simplex_assign(E, ops.simplex_codes(3))
    assert E.grad is None
    dist.sum().backward()
    assert E.grad is not None
    assert any("|grad|" in key for key in tuner.choices)


def test_disk_cache_reload_and_version_invalidation(tuner, tmp_path, monkeypatch):
    tuner.timer.times = {"extension": 1.0, "reference": 0.5}
    assign(100)
    path = tmp_path / "tune.json"
    data = json.loads(path.read_text())
    assert data["versions"] == {"pydeepclust": pydeepclust.__version__, "torch": torch.__version__}
    assert list(data["choices"].values()) == ["reference"]

    fresh = _tuned.Tuner(FakeTimer(1.0, 2.0))  # a new process, in effect
    monkeypatch.setattr(_tuned, "TUNER", fresh)
    assign(100)
    assert fresh.timings == 0 and list(fresh.choices.values()) == ["reference"]

    monkeypatch.setattr(pydeepclust, "__version__", "99.0")  # an upgrade
    upgraded = _tuned.Tuner(FakeTimer(1.0, 2.0))
    monkeypatch.setattr(_tuned, "TUNER", upgraded)
    assign(100)
    assert upgraded.timings == 1 and list(upgraded.choices.values()) == ["extension"]
    data = json.loads(path.read_text())
    assert data["versions"]["pydeepclust"] == "99.0"
    assert list(data["choices"].values()) == ["extension"]


def test_disk_cache_off(tuner, tmp_path, monkeypatch):
    monkeypatch.setenv(_tuned.ENV_CACHE, "off")
    assert _tuned.cache_path() is None
    assign(100)
    assert not (tmp_path / "tune.json").exists() and tuner.timings == 1


@pytest.mark.parametrize("broken", ["extension", "reference"])
def test_a_raising_candidate_loses(tuner, tmp_path, broken):
    def timer(name, fn, device, beat=None):
        if name == broken:
            raise RuntimeError("CUDA out of memory (pretend)")
        return 1.0

    tuner.timer = timer
    dist, _ = assign(100)
    assert torch.isfinite(dist).all()
    other = "reference" if broken == "extension" else "extension"
    assert list(tuner.choices.values()) == [other]
    assert not (tmp_path / "tune.json").exists()  # a failure is not remembered across runs


def test_no_timing_under_compile(tuner, monkeypatch):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assign(100)
    assign(100, k=50)
    assert tuner.timings == 0 and tuner.choices == {}


def test_no_timing_in_torch_compile(tuner):
    codes = ops.simplex_codes(50)
    torch._dynamo.reset()

    @torch.compile(fullgraph=True, backend="eager")
    def f(E):
        return ops.cosine_simplex_assign(E, codes, check_finite=False)[0].sum()

    E = torch.randn(64, ops.code_width(50))
    expected = reference.cosine_simplex_assign(E, codes, 1 / ops.max_nearest_distance(50))[0]
    torch.testing.assert_close(f(E), expected.sum())
    assert tuner.timings == 0 and tuner.choices == {}  # the static table decided


def test_static_table():
    assert _tuned.static_choice("cosine_simplex_assign", "cpu", False, (1024, 50)) == "reference"
    assert _tuned.static_choice("cosine_simplex_assign", "cpu", True, (1024, 50)) == "extension"
    assert _tuned.static_choice("cosine_simplex_assign", "cpu", False, (1024, 10)) == "extension"
    assert _tuned.static_choice("cosine_simplex_assign", "cuda", True, (10**6, 50)) == "reference"
    assert _tuned.static_choice("cosine_simplex_assign", "cuda", False, (10**4, 50)) == "extension"
    assert _tuned.static_choice("soft_memberships", "cuda", False, (10**5, 50)) == "reference"
    assert _tuned.static_choice("soft_memberships", "cpu", False, (10**5, 50)) == "extension"
    assert _tuned.static_choice("cayley_retraction", "cuda", False, (1, 4096, 64)) == "reference"
    assert _tuned.static_choice("cayley_retraction", "cuda", False, (256, 64, 8)) == "extension"
    assert _tuned.static_choice("rbf_row_sums", "cuda", False, (1, 8192, 8192, 64)) == "reference"
    assert _tuned.static_choice("rbf_ratio_cut", "cpu", True, (1, 1024, 1024, 16)) == "extension"


def test_memory_skip(tuner, monkeypatch):
    monkeypatch.setattr(_tuned, "free_bytes", lambda device: 1000)
    X, Z = torch.randn(64, 3), torch.randn(64, 2)
    ops.rbf_ratio_cut(X, Z, 1.0)  # dense reference: 4 * 4 * 64^2 bytes > 1000
    assert tuner.timings == 0 and list(tuner.choices.values()) == ["extension"]
    ops.cayley_retraction(torch.linalg.qr(X).Q, torch.randn(64, 3), 0.1)  # no dense reference
    assert tuner.timings == 1


def test_free_bytes_cpu():
    assert 0 < _tuned.free_bytes(torch.device("cpu"))


def test_real_timer():
    calls = []
    t = _tuned.measure("x", lambda: calls.append(1), torch.device("cpu"))
    assert t >= 0 and len(calls) == 6  # warm-up and five runs (a cheap call)
    calls.clear()
    t = _tuned.measure("x", lambda: calls.append(1), torch.device("cpu"), beat=-1.0)
    assert len(calls) == 1  # already lost: the warm-up only


def test_real_tuning_every_op(monkeypatch, tmp_path):
    """The real timer on each op wrapper: a choice per key, results as the reference's."""
    monkeypatch.setenv(_tuned.ENV_CACHE, "off")
    t = _tuned.Tuner()
    monkeypatch.setattr(_tuned, "TUNER", t)
    X = torch.randn(2, 20, 3, dtype=torch.float64)
    with ops.use_backend("tuned"):
        P, d = ops.degree_weighted_kernel(X, "rbf", torch.ones(2, dtype=torch.float64))
        ops.kernel_degrees(X, kernel="rbf", sigma=torch.ones(2, dtype=torch.float64))
        S = ops.rbf_affinity(X, 1.0)
        loss = ops.rbf_ratio_cut(X, X[..., :2].clone().requires_grad_(), 1.0)
        loss.sum().backward()
        Q = torch.linalg.qr(X).Q
        ops.cayley_retraction(Q, torch.randn_like(Q), 0.1)
        ops.soft_memberships(X[0, :, :2], ops.simplex_codes(3, torch.float64))
    assert t.timings == 6 and len(t.choices) == 6
    with ops.use_backend("reference"):
        torch.testing.assert_close(ops.rbf_affinity(X, 1.0), S)
        torch.testing.assert_close(ops.degree_weighted_kernel(X, "rbf", 1.0)[0], P)


def test_dynamic_shapes_under_compile(tuner):
    """Symbolic sizes reach the static table without being specialised to one shape."""
    codes = ops.simplex_codes(3)
    torch._dynamo.reset()

    @torch.compile(fullgraph=True, dynamic=True, backend="eager")
    def f(E):
        return ops.cosine_simplex_assign(E, codes, check_finite=False)[0].sum()

    for n in (40, 70, 130):
        E = torch.randn(n, 2)
        expected = reference.cosine_simplex_assign(E, codes, 1 / ops.max_nearest_distance(3))[0]
        torch.testing.assert_close(f(E), expected.sum())
    assert tuner.timings == 0
