"""Reproduce the papers' tables: declarative rows, a resumable runner, and a report.

A :class:`Table` is a list of :class:`Row` specs -- method, data set, estimator settings,
seeds, and the paper's number where it prints one. :func:`run_table` fits every (row, seed)
that its results file does not hold yet and appends one JSON line per finished run, with the
full estimator parameters, the package version and git commit, torch, the device, threads and
wall time: a run cut off at any point continues where it stopped, and several processes (one
seed each, on one thread each) can share one file. Autoencoder-based rows of one seed share one
pretrained network, kept on disk (``autoencoder_dir``) so later rows and runs skip pretraining.
:func:`report` renders the markdown table (mean ± sd over seeds beside the paper's number and
the difference) and a PNG bar chart of ours against the paper.

From the command line::

  python -m pydeepclust reproduce --list
  python -m pydeepclust reproduce acedec-mnist --rows acedec ae-kmeans --seeds 0 1 2
  python -m pydeepclust reproduce acedec-mnist --report --png acedec-mnist.png

The same rows are the documentation's result tables (``docs/results/``, rendered at build
time from their ``--out`` files in ``benchmarks/results`` by :func:`report`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "METHODS",
    "TABLES",
    "Row",
    "Table",
    "append_row",
    "read_rows",
    "report",
    "run_table",
    "select_rows",
    "validate",
]


# -- methods ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    """How a row's ``method`` becomes an estimator: its class (imported lazily), fixed
    parameters (DCN's λ), and whether it starts from a pretrained autoencoder."""

    module: str
    cls: str
    fixed: Mapping = field(default_factory=dict)
    autoencoder: bool = False

    def estimator_class(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.cls)


#: The methods a table row may name, each a :class:`Method`: estimator class, fixed
#: parameters, and whether it starts from a pretrained autoencoder.
METHODS: dict[str, Method] = {
    "genksc": Method("pydeepclust.models", "GenKSC"),
    "rsm": Method("pydeepclust.models", "RSM"),
    "ksc": Method("pydeepclust.models", "KSC"),
    "acedec": Method("pydeepclust.models", "ACeDeC", autoencoder=True),
    "dcn0.1": Method("pydeepclust.models", "DCN", {"lam": 0.1}, autoencoder=True),
    "dcn1": Method("pydeepclust.models", "DCN", {"lam": 1.0}, autoencoder=True),
    "dcn10": Method("pydeepclust.models", "DCN", {"lam": 10.0}, autoencoder=True),
    "ae-kmeans": Method("pydeepclust.models", "AEKMeans", autoencoder=True),
    "kmeans": Method("pydeepclust.models", "KMeansBaseline"),
    "subkmeans": Method("pydeepclust.models", "SubKMeans"),
    "spectral": Method("pydeepclust.models", "SpectralBaseline"),
}
# What a shared pretraining may set (pretrain_autoencoder's arguments); the estimator gets
# the network's shape (latent_dim, arch, hidden) too.
PRETRAIN_KEYS = ("latent_dim", "arch", "hidden", "epochs", "batch_size", "lr", "standardize",
                 "augmentation_invariance")
# Bump when pretraining itself changes (init, optimiser, batching), so that cached networks
# of the old code are not reused for the new.
PRETRAINING_VERSION = 1


# -- specs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One row of a table: a method on a data set with given settings, over seeds.

    Attributes:
        name: the row's id in its table (``--rows`` selects by it).
        method: a key of :data:`METHODS`.
        data: a :func:`~pydeepclust.data.load_dataset` name, e.g. ``"mnist:train"``.
        settings: estimator parameters on top of its defaults.
        pretrain: for autoencoder methods, :func:`~pydeepclust.models.autoencoder.pretrain_autoencoder`
            arguments (one network per data set, seed and these settings, shared by rows).
        test_data: also evaluate ``predict`` on this set (e.g. ``"mnist:test"``).
        paper: the paper's NMI on ``data`` (None where it prints none), ``paper_test`` on
            ``test_data``.
        note: where the number comes from, or what differs from the paper.
    """

    name: str
    method: str
    data: str
    settings: Mapping = field(default_factory=dict)
    pretrain: Mapping | None = None
    test_data: str | None = None
    paper: float | None = None
    paper_test: float | None = None
    note: str = ""

    def spec(self) -> dict:
        """What the result depends on (the resume key hashes it): method, data, settings."""
        spec = {"method": self.method, "data": self.data, "settings": dict(self.settings)}
        if self.pretrain is not None:
            spec["pretrain"] = dict(self.pretrain)
        if self.test_data is not None:
            spec["test_data"] = self.test_data
        return _jsonable(spec)

    def spec_id(self) -> str:
        return hashlib.sha1(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Table:
    """A paper's table (or our stand-in for it): rows and the seeds each is run with."""

    name: str
    title: str
    rows: tuple[Row, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    metric: str = "nmi"


def _ae(epochs: int, **extra) -> dict:
    """The ACe/DeC paper's fully connected D-500-500-2000-10 autoencoder."""
    return {"latent_dim": 10, "hidden": (500, 500, 2000), "epochs": epochs, **extra}


def _acedec_rows(data: str, label: str, pretrain: dict, epochs: int, paper: Mapping,
                 methods: Sequence[str], augment: bool = False,
                 recluster: bool = False) -> tuple[Row, ...]:
    """ACe/DeC, DCN (λ = 0.1, 1, 10), AE + k-means, k-means and Sub-K-Means on one data set,
    the AE methods from one shared network per seed (``recluster``: ACe/DeC's and DCN's
    labels by k-means on the final embedding)."""
    rows = []
    for method in methods:
        settings: dict = {}
        if METHODS[method].autoencoder and method != "ae-kmeans":
            settings["epochs"] = epochs
            if recluster:
                settings["final_recluster"] = True
        if augment and METHODS[method].autoencoder and method != "ae-kmeans":
            # (AE + k-means sees augmentation only through the shared pretraining)
            settings["augmentation_invariance"] = True
        rows.append(Row(
            name=f"{method}{'+aug' if augment else ''}/{label}", method=method, data=data,
            settings=settings, pretrain=pretrain if METHODS[method].autoencoder else None,
            paper=paper.get(method)))
    return tuple(rows)


_ACEDEC_ALL = ("acedec", "dcn0.1", "dcn1", "dcn10", "ae-kmeans", "kmeans", "subkmeans")
# ACe/DeC paper, Table 1 (NMI)
_PAPER_ACEDEC = {
    "mnist": {"acedec": 0.89, "dcn0.1": 0.87, "dcn1": 0.86, "dcn10": 0.70, "ae-kmeans": 0.80,
              "kmeans": 0.50, "subkmeans": 0.48},
    "mnist-test": {"acedec": 0.87, "dcn0.1": 0.86, "dcn1": 0.83, "dcn10": 0.66,
                   "ae-kmeans": 0.79, "kmeans": 0.50, "subkmeans": 0.48},
    "mnist+aug": {"acedec": 0.94, "dcn0.1": 0.94, "dcn1": 0.94, "dcn10": 0.92},
    "fashion-mnist": {"acedec": 0.62, "dcn0.1": 0.62, "dcn1": 0.55, "dcn10": 0.55,
                      "ae-kmeans": 0.59, "kmeans": 0.51, "subkmeans": 0.52},
    "synth25": {"acedec": 1.00, "dcn0.1": 0.17, "dcn1": 0.22, "dcn10": 0.29,
                "ae-kmeans": 0.11, "kmeans": 0.90, "subkmeans": 0.84},
}
# GenKSC on 28x28 images: the paper's conv feature map (ClusterGAN-like) and d_f = 1024.
_GENKSC_MNIST012 = dict(arch="conv", feature_dim=1024, n_components=10, warmup_epochs=10,
                        eta_rec=1.0, eta_cl=1.0, epochs=30, batch_size=256, lr=1e-3,
                        lr_stiefel=1e-3)
_GENKSC_SMALL = dict(feature_dim=256, n_components=10, eta_rec=1.0, eta_cl=1.0,
                     warmup_epochs=50, epochs=150, batch_size=64, lr=1e-3, lr_stiefel=1e-3)
# RSM on 28x28 images: a wide MLP and large batches, trained on the train split and evaluated
# on the test split as the paper does; 40 epochs (the defaults take 80).
_RSM_MNIST = dict(hidden=(512, 512, 256), batch_size=16384, epochs=40)

#: The papers' tables, by name (``python -m pydeepclust reproduce --list``).
TABLES: dict[str, Table] = {t.name: t for t in (
    Table("genksc", "GenKSC (Winant, Achten & Suykens): MNIST012 with the paper's setup, and its stand-ins",
          rows=(
              Row("mnist012", "genksc", "mnist012:train", _GENKSC_MNIST012,
                  note="paper: s = 10, k = 3, 10 warm-up epochs, eta_rec = eta_cl = 1, conv "
                       "feature map; it prints pictures, no NMI (our bar: 0.90); 30 epochs at "
                       "lr 1e-3 here instead of the authors' 150 at 1e-4"),
              Row("digits012", "genksc", "digits012", _GENKSC_SMALL,
                  note="scikit-learn's 8x8 digits 0/1/2, the built-in stand-in for MNIST012"),
          )),
    Table("rsm", "RSM (Rykov & Hess), Table 1: NMI on the train split and on the test split",
          rows=(
              Row("knn/mnist", "rsm", "mnist:train", _RSM_MNIST, test_data="mnist:test",
                  paper=0.6869, paper_test=0.6999,
                  note="our default graph: random-m kNN (m in 5..10)"),
              Row("default/mnist", "rsm", "mnist:train", test_data="mnist:test",
                  paper=0.6869, paper_test=0.6999,
                  note="RSM(n_clusters=10) as it comes: the sizes its defaults take from the "
                       "data (widths 512-512-256, batch 16,384, 80 epochs, lr 1e-3)"),
              Row("rbf/mnist", "rsm", "mnist:train", {**_RSM_MNIST, "kernel": "rbf"},
                  test_data="mnist:test", paper=0.6869, paper_test=0.6999,
                  note="the paper's graph: RBF with a random bandwidth"),
              Row("knn/fashion-mnist", "rsm", "fashion-mnist:train", _RSM_MNIST,
                  test_data="fashion-mnist:test", paper=0.5993, paper_test=0.5862),
          )),
    Table("spectral", "RSM, classic KSC, spectral clustering and k-means on the small sets",
          rows=(
              Row("rsm/circles", "rsm", "circles", note="RSM's Fig. 1; estimator defaults"),
              Row("rsm/digits", "rsm", "digits",
                  dict(hidden=(256, 256), batch_size=2048, epochs=300)),
              Row("ksc/blobs", "ksc", "blobs"),
              Row("ksc/circles", "ksc", "circles"),
              Row("ksc/digits", "ksc", "digits"),
              Row("spectral/circles", "spectral", "circles"),
              Row("spectral/digits", "spectral", "digits"),
              Row("kmeans/circles", "kmeans", "circles", {"n_init": 10}),
              Row("kmeans/digits", "kmeans", "digits", {"n_init": 10}),
          )),
    # The 28x28 sets: 100 pretraining + 50 clustering epochs (the paper's schedule), the input
    # z-scored and the final labels reclustered (the best of our Fashion-MNIST measurements).
    Table("acedec-mnist", "ACe/DeC (Miklautz et al.), Table 1: MNIST-Full, MNIST-Test, + Aug",
          rows=(
              _acedec_rows("mnist", "mnist", _ae(100, standardize=True), 50,
                           _PAPER_ACEDEC["mnist"], _ACEDEC_ALL[:-1], recluster=True)
              + _acedec_rows("mnist:test", "mnist-test", _ae(100, standardize=True), 50,
                             _PAPER_ACEDEC["mnist-test"], _ACEDEC_ALL[:-1], recluster=True)
              # the same on [0, 1] pixels, as the authors' library trains (no z-scoring)
              + _acedec_rows("mnist:test", "mnist-test-pixels", _ae(100), 50,
                             _PAPER_ACEDEC["mnist-test"], ("acedec", "dcn0.1", "ae-kmeans"),
                             recluster=True)
              + _acedec_rows("mnist", "mnist",
                             _ae(100, standardize=True, augmentation_invariance=True), 50,
                             _PAPER_ACEDEC["mnist+aug"], ("acedec", "dcn0.1", "ae-kmeans"),
                             augment=True, recluster=True)
          )),
    Table("acedec", "ACe/DeC, Table 1 on SYNTH-25 and Fashion-MNIST, and on digits",
          rows=(
              _acedec_rows("synth25", "synth25", {"latent_dim": 27, "hidden": (), "epochs": 20},
                           20, _PAPER_ACEDEC["synth25"], _ACEDEC_ALL)
              + _acedec_rows("digits", "digits", _ae(100), 50, {}, _ACEDEC_ALL)
              + _acedec_rows("digits", "digits", _ae(100, augmentation_invariance=True), 50, {},
                             ("acedec", "dcn0.1", "dcn1", "ae-kmeans"), augment=True)
              + _acedec_rows("fashion-mnist", "fashion-mnist", _ae(100, standardize=True), 50,
                             _PAPER_ACEDEC["fashion-mnist"], _ACEDEC_ALL[:-1], recluster=True)
          )),
)}


# -- validation ------------------------------------------------------------------------------

def _estimator(row: Row, seed: int, extra: Mapping | None = None):
    method = METHODS[row.method]
    params = {**method.fixed, **row.settings, "random_state": seed, **(extra or {})}
    if method.autoencoder and row.pretrain is not None:
        params.update({k: row.pretrain[k] for k in ("latent_dim", "arch", "hidden")
                       if k in row.pretrain})
    return method.estimator_class()(**params)


def validate(table: Table, rows: Iterable[Row] | None = None) -> None:
    """Raise ``ValueError`` naming the row for an unknown method, data set, setting or
    pretraining setting: before any training, so a typo costs no hours."""
    from pydeepclust.data import parse_dataset_name

    for row in table.rows if rows is None else rows:
        where = f"table {table.name!r}, row {row.name!r}"
        if row.method not in METHODS:
            raise ValueError(f"{where}: unknown method {row.method!r}; known: {sorted(METHODS)}")
        for data in (row.data, row.test_data):
            if data is not None:
                try:
                    parse_dataset_name(data)
                except ValueError as err:
                    raise ValueError(f"{where}: {err}") from None
        cls = METHODS[row.method].estimator_class()
        known = set(cls().get_params())
        taken = sorted(set(row.settings) & ({"random_state", "autoencoder"}
                                            | set(METHODS[row.method].fixed)))
        if taken:
            raise ValueError(f"{where}: settings may not set {taken} (the runner sets the seed "
                             f"and the shared autoencoder; {row.method!r} fixes "
                             f"{dict(METHODS[row.method].fixed) or 'nothing'})")
        unknown = sorted(set(row.settings) - known)
        if unknown:
            raise ValueError(f"{where}: {cls.__name__} has no parameter(s) {unknown}; "
                             f"it takes {sorted(known)}")
        if row.pretrain is not None:
            if not METHODS[row.method].autoencoder:
                raise ValueError(f"{where}: pretrain applies to autoencoder methods "
                                 f"({[m for m, s in METHODS.items() if s.autoencoder]}), "
                                 f"not {row.method!r}")
            bad = sorted(set(row.pretrain) - set(PRETRAIN_KEYS))
            if bad:
                raise ValueError(f"{where}: unknown pretrain setting(s) {bad}; "
                                 f"known: {list(PRETRAIN_KEYS)}")


def select_rows(table: Table, names: Sequence[str] | None) -> list[Row]:
    """The rows named (a name, or a prefix before '/': ``acedec`` selects ``acedec/mnist``);
    all of them for None."""
    if not names:
        return list(table.rows)
    chosen = [row for row in table.rows
              if row.name in names or row.name.split("/")[0] in names]
    unmatched = [n for n in names if not any(r.name == n or r.name.split("/")[0] == n
                                             for r in table.rows)]
    if unmatched:
        raise ValueError(f"table {table.name!r} has no row(s) {unmatched}; its rows: "
                         f"{[r.name for r in table.rows]}")
    return chosen


# -- results files ---------------------------------------------------------------------------

def append_row(path: str | None, row: Mapping) -> None:
    """Print ``row`` and append it to ``path`` as one JSON line (its folder made if missing),
    under an exclusive lock, so processes sharing the file never interleave lines."""
    line = json.dumps(_jsonable(row))
    print(line, flush=True)
    if not path:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+b") as f:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: a single writer is assumed
            pass
        f.seek(0, os.SEEK_END)
        if f.tell():  # a line cut off by a killed process must not swallow this one
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(line.encode() + b"\n")


def read_rows(path: str) -> list[dict]:
    """Every row of a results file; blank lines skipped, and a line cut off by a process
    killed while writing skipped with a warning (the run it stood for is simply run again)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}: line {number} is not a complete JSON row (a run cut off "
                          f"while writing?): {line[:60]!r}; ignored", stacklevel=2)
    return rows


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _done(rows: Iterable[dict], table: str) -> set[tuple[str, str, int]]:
    return {(r["row"], r["spec_id"], r["seed"]) for r in rows if r.get("table") == table}


# -- provenance ------------------------------------------------------------------------------

def _git_commit() -> tuple[str | None, str | None]:
    """(commit, digest of the uncommitted changes to tracked files or None for a clean tree)
    of the source tree, if it is a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args) -> str:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    try:
        commit, diff = git("rev-parse", "HEAD").strip(), git("diff", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None


def _device_name(device: str | None) -> str:
    """``device`` as a label with the hardware's name (None: the estimators' default, CUDA
    when available)."""
    import torch

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    from pydeepclust.ops._tuned import cpu_name

    return f"cpu ({cpu_name()})"


def provenance() -> dict:
    """The code a run uses (taken when it starts: the tree may change while it trains), the
    torch build, threads and host. ``dirty``: a digest of the uncommitted changes, or None."""
    import torch

    import pydeepclust

    commit, dirty = _git_commit()
    return {"version": pydeepclust.__version__, "commit": commit, "dirty": dirty,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "host": platform.node()}


# -- running ---------------------------------------------------------------------------------

def _model_input(dataset) -> np.ndarray:
    """Images keep their shape (conv nets, augmentation); other sets are (n, d)."""
    return dataset.images() if dataset.image_shape is not None else dataset.X


class _Data:
    """Data sets loaded once per process, by name (a table's rows share them)."""

    def __init__(self, path: str | None = None):
        self.path = path
        self.cache: dict[tuple[str, int], object] = {}

    def __call__(self, name: str, seed: int):
        from pydeepclust.data import DATASETS, load_dataset, parse_dataset_name

        base, _ = parse_dataset_name(name)
        # only synthetic sets and stratified splits depend on the seed
        key = (name, seed if not DATASETS[base].from_files else 0)
        if key not in self.cache:
            path = self.path if DATASETS[base].from_files else None
            self.cache[key] = load_dataset(name, path=path, random_state=seed)
        return self.cache[key]


def _pretrained(row: Row, X: np.ndarray, seed: int, autoencoder_dir: str | None,
                device: str | None, memo: dict):
    """(autoencoder, pretraining seconds, whether it came from the cache) for a row's
    ``pretrain`` settings: one network per data content, seed and settings."""
    import torch

    from pydeepclust.models import Autoencoder, pretrain_autoencoder
    from pydeepclust.models.base import atomic_save

    settings = dict(row.pretrain)
    key = json.dumps([PRETRAINING_VERSION, list(X.shape), _jsonable(settings), seed],
                     sort_keys=True)
    digest = hashlib.sha1(key.encode())
    digest.update(memoryview(np.ascontiguousarray(X)))  # the content, without a copy
    name = f"{row.data.replace(':', '_')}_s{seed}_{digest.hexdigest()[:12]}.pt"
    if name in memo:  # pretrained (or read) for an earlier run of this call
        ae, seconds, _ = memo[name]
        return ae, seconds, True
    path = os.path.join(autoencoder_dir, name) if autoencoder_dir else None
    shape = {k: settings[k] for k in ("latent_dim", "arch", "hidden") if k in settings}
    if path and os.path.exists(path):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        ae = Autoencoder(tuple(X.shape[1:]), **shape)
        ae.load_state_dict(saved["state_dict"])
        memo[name] = (ae.eval(), saved["pretrain_s"], True)
        return memo[name]
    start = time.perf_counter()
    partial = None
    if path:
        # resumable: an hour of pretraining cut off by the end of a session continues from
        # its last checkpoint (every 5 epochs) when the runner is started again
        os.makedirs(autoencoder_dir, exist_ok=True)
        partial = path + ".partial"
    ae = pretrain_autoencoder(X, random_state=seed, device=device, checkpoint_path=partial,
                              checkpoint_every=5, **settings)
    seconds = round(time.perf_counter() - start, 1)  # resumed: this process's share
    if path:
        atomic_save({"state_dict": ae.cpu().state_dict(), "pretrain_s": seconds}, path)
        os.remove(partial)
    memo[name] = (ae.eval(), seconds, False)
    return memo[name]


def _diagnostics(model) -> dict:
    """Per-method facts worth keeping beside the numbers (ACe/DeC's cluster space)."""
    out = {}
    if hasattr(model, "cluster_dims_"):
        out["n_cluster_dims"] = len(model.cluster_dims_)
    return out


def _resolved(model, params: Mapping) -> dict:
    """The values the estimator chose for parameters left at None (``lr`` -> ``lr_``), so the
    row says what ran even when a default depends on the data or changes between versions."""
    return {k: _jsonable(getattr(model, k + "_")) for k, v in params.items()
            if v is None and hasattr(model, k + "_")}


def run_table(table: Table, rows: Sequence[Row] | None = None,
              seeds: Sequence[int] | None = None, out: str | None = None, *,
              device: str | None = None, autoencoder_dir: str | None = "runs/autoencoders",
              data_path: str | None = None, pictures: str | None = None,
              verbose: bool = False) -> list[dict]:
    """Fit each selected (row, seed) that ``out`` does not hold yet; append each result.

    A run whose fit fails is reported and the next runs go on; the call then raises a
    ``RuntimeError`` naming every failed run (nothing is appended for them).

    Args:
        table: one of :data:`TABLES` (or your own).
        rows: a subset of ``table.rows`` (default all); ``seeds`` default ``table.seeds``.
            The seed is the estimator's ``random_state`` and also seeds synthetic data sets
            and the stratified splits of the built-in ones.
        out: the JSON-lines results file (read first: finished runs are skipped). A row is
            "finished" for its name, seed and spec (method, data, settings): when a default
            of the package changes, rows that rely on it are not rerun -- use a new file.
        device: ``device`` of every estimator that takes one (default: theirs).
        autoencoder_dir: where pretrained autoencoders are kept and reused (None: not kept).
        data_path: IDX folder for the file-based sets (default: their environment variables).
        pictures: a folder for each run's pictures (the CLI's), e.g. GenKSC's traversals.
        verbose: the estimators' progress bars.

    Returns the rows appended by this call.
    """
    rows = list(table.rows if rows is None else rows)
    seeds = list(table.seeds if seeds is None else seeds)
    validate(table, rows)
    code = provenance()  # the code imported now, whatever the tree becomes while this runs
    load, memo, written, failed = _Data(data_path), {}, [], []
    for seed in seeds:
        for row in rows:
            if (row.name, row.spec_id(), seed) in _done(read_rows(out) if out else [],
                                                        table.name):
                continue
            try:
                result, model, X, train = _run_one(table, row, seed, load, memo, device,
                                                   autoencoder_dir, verbose)
            except Exception as err:  # noqa: BLE001 -- reported, and raised at the end
                warnings.warn(f"{table.name} {row.name} seed {seed} failed: "
                              f"{type(err).__name__}: {err}", stacklevel=2)
                failed.append(f"{row.name} (seed {seed}): {type(err).__name__}: {err}")
                continue
            result.update(code)
            append_row(out, result)  # before the pictures: a failing plot loses no result
            written.append(result)
            if pictures:
                try:
                    _save_pictures(row, model, X, train, pictures, seed)
                except Exception as err:  # noqa: BLE001
                    warnings.warn(f"{table.name} {row.name} seed {seed}: pictures failed: "
                                  f"{err}", stacklevel=2)
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) of table {table.name!r} failed:\n  "
                           + "\n  ".join(failed))
    return written


def _run_one(table: Table, row: Row, seed: int, load: _Data, memo: dict, device, autoencoder_dir,
             verbose: bool):
    """Fit one (row, seed): (its results row, the fitted model, its input, its data set)."""
    from pydeepclust.metrics import cluster_report

    train = load(row.data, seed)
    X = _model_input(train)
    accepts = _estimator(row, seed).get_params()
    extra = {"n_clusters": row.settings.get("n_clusters", train.n_classes), "verbose": verbose}
    if device is not None:
        extra["device"] = device
    extra = {k: v for k, v in extra.items() if k in accepts}
    pretrain_s, cached = 0.0, None
    if METHODS[row.method].autoencoder and row.pretrain is not None:
        ae, pretrain_s, cached = _pretrained(row, X, seed, autoencoder_dir, extra.get("device"),
                                             memo)
        extra["autoencoder"] = ae
    model = _estimator(row, seed, extra)
    start = time.perf_counter()
    model.fit(X)
    fit_s = round(time.perf_counter() - start, 1)
    result = {"table": table.name, "row": row.name, "spec_id": row.spec_id(), "seed": seed,
              "data": train.name, "n_samples": len(train),
              "train": cluster_report(train.y, model.labels_)}
    if row.test_data is not None:
        test = load(row.test_data, seed)
        result["test_data"] = test.name
        result["test"] = cluster_report(test.y, model.predict(_model_input(test)))
    params = {k: v for k, v in model.get_params().items() if k != "autoencoder"}
    result.update({
        "fit_s": fit_s, "pretrain_s": pretrain_s, "pretrain_cached": cached,
        # the cost of this run alone: its pretraining unless another run paid for it
        "wall_s": round(fit_s + (pretrain_s if not cached else 0.0), 1),
        "spec": row.spec(), "params": params, "resolved": _resolved(model, params),
        **_diagnostics(model),
        # a method without a device parameter runs on the CPU
        "device": _device_name(extra.get("device") if "device" in accepts else "cpu"),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    return result, model, X, train


def _save_pictures(row: Row, model, X, dataset, folder: str, seed: int) -> dict:
    import importlib

    from pydeepclust.cli import MODELS

    cli_name = {"acedec": "acedec", "genksc": "genksc"}.get(row.method)
    if cli_name is None:
        return {}
    out_dir = os.path.join(folder, f"{row.name.replace('/', '-')}-s{seed}")
    os.makedirs(out_dir, exist_ok=True)
    return importlib.import_module(MODELS[cli_name]).cli_outputs(model, X, dataset, out_dir)


# -- report ----------------------------------------------------------------------------------

def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _summaries(table: Table, rows: list[dict]) -> list[dict]:
    """Per spec row: its results of the current spec (others are older settings)."""
    metric = table.metric
    out = []
    for row in table.rows:
        by_seed = {r["seed"]: r for r in rows if r.get("table") == table.name
                   and r["row"] == row.name and r["spec_id"] == row.spec_id()}
        mine = list(by_seed.values())  # one per seed, the latest (two processes may both run one)
        summary = {"row": row, "n": len(mine), "seeds": sorted(r["seed"] for r in mine)}
        if mine:
            summary["train"] = _mean_sd([r["train"][metric] for r in mine])
            tests = [r["test"][metric] for r in mine if r.get("test")]
            summary["test"] = _mean_sd(tests) if tests else None
            summary["wall_s"] = float(np.median([r["wall_s"] for r in mine]))
            summary["devices"] = sorted({r["device"] for r in mine})
        out.append(summary)
    return out


def _cell(mean_sd, paper) -> list[str]:
    if mean_sd is None:
        return ["—", f"{paper:.3f}" if paper is not None else "—", "—"]
    mean, sd = mean_sd
    diff = f"{mean - paper:+.3f}" if paper is not None else "—"
    return [f"{mean:.3f} ± {sd:.3f}", f"{paper:.3f}" if paper is not None else "—", diff]


def report(table: Table, path: str, png: str | None = None) -> str:
    """The markdown table of a results file for ``table`` (rows of its current specs), and,
    with ``png``, a bar chart of ours (mean ± sd) against the paper."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"report: no results file {path} (run the table first, or "
                                "name the file with --out)")
    rows = read_rows(path)
    summaries = _summaries(table, rows)
    metric = table.metric.upper()
    lines = [f"**{table.title}** ({metric}, mean ± sd over seeds; results file `{path}`)", "",
             f"| row | data | seeds | {metric} | paper | Δ | test {metric} | paper | Δ | "
             "median wall (s) | device |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        row = s["row"]
        data = row.data + (f" → {row.test_data}" if row.test_data else "")
        test = _cell(s.get("test"), row.paper_test) if row.test_data else ["", "", ""]
        lines.append("| " + " | ".join([
            row.name, data, ",".join(map(str, s["seeds"])) or "—",
            *_cell(s.get("train"), row.paper), *test,
            f"{s['wall_s']:.0f}" if s["n"] else "—", "; ".join(s.get("devices", []))]) + " |")
    current = {(s["row"].name, s["row"].spec_id()) for s in summaries}
    stale = sum(1 for r in rows if r.get("table") == table.name
                and (r["row"], r["spec_id"]) not in current)
    if stale:
        lines += ["", f"({stale} row(s) of the file ran with other settings of these rows or "
                      "rows no longer in the table; not shown)"]
    notes = [f"- {r.name}: {r.note}" for r in table.rows if r.note]
    if notes:
        lines += ["", *notes]
    if png:
        _bar_chart(table, summaries, png)
        lines += ["", f"![{table.name}]({png})"]
    return "\n".join(lines)


def _bar_chart(table: Table, summaries: list[dict], png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in summaries if s["n"] or s["row"].paper is not None]
    x = np.arange(len(shown))
    ours = [s["train"][0] if s["n"] else np.nan for s in shown]
    errs = [s["train"][1] if s["n"] else 0.0 for s in shown]
    paper = [s["row"].paper if s["row"].paper is not None else np.nan for s in shown]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(shown) + 2), 4))
    ax.bar(x - 0.2, ours, 0.4, yerr=errs, capsize=3, label="pydeepclust (mean ± sd)")
    ax.bar(x + 0.2, paper, 0.4, label="paper", color="0.6")
    ax.set_xticks(x, [s["row"].name for s in shown], rotation=45, ha="right")
    ax.set_ylabel(table.metric.upper())
    ax.set_ylim(0, 1.05)
    ax.set_title(table.title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(png) or ".", exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def describe(table: Table) -> str:
    """One line per row: its name, method, data and settings (``--list``)."""
    lines = [f"{table.name}: {table.title} (seeds {list(table.seeds)})"]
    for row in table.rows:
        settings = ", ".join(f"{k}={v}" for k, v in row.settings.items())
        pre = f"; pretrain {dict(row.pretrain)}" if row.pretrain else ""
        lines.append(f"  {row.name:<24} {row.method} on {row.data}"
                     f"{' -> ' + row.test_data if row.test_data else ''}"
                     f"{' (' + settings + ')' if settings else ''}{pre}")
    return "\n".join(lines)

