"""The estimator base every pydeepclust model shares.

scikit-learn conventions: hyperparameters are stored unchanged by ``__init__``
(so ``get_params``/``set_params``/``clone`` work), ``fit`` returns ``self`` and
sets ``labels_`` and ``n_features_in_``, ``predict``/``transform`` take new data,
``fit_predict`` comes from ``ClusterMixin`` and ``fit_transform`` from
``TransformerMixin``; ``y`` is accepted and ignored. Input is any array-like that
``sklearn.utils.check_array`` reads (lists, numpy arrays, read-only memmaps) or a
torch tensor, converted to float32. ``__sklearn_tags__`` declares a clusterer and
transformer on 2-D (and (n, H, W)) float input without NaN, non-deterministic
only where it is (see ``DeepClusterer._non_deterministic``); the estimators pass
``sklearn.utils.estimator_checks`` (``tests/test_sklearn_checks.py``). Fitted
models pickle (torch modules included) and ``clone``. Reproducible with
``random_state`` without touching the global torch RNG. Checkpoints hold tensors
and plain values only and load with ``torch.load(weights_only=True)``.

Resumable training: the models trained over epochs (those with ``checkpoint_path``) write,
beside the fitted model, a "training" entry into every checkpoint (see
``DeepClusterer._checkpoint``): the phase and the epochs done in it, every trainable
module's weights, the fitted tensors (including those updated outside autograd), every
optimizer's and generator's state, the history, and fingerprints of the hyperparameters and
of the data. ``fit(X, resume=True)`` continues from it and ends with the labels an
uninterrupted fit of the same seed gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import os
import pickle
import warnings
from collections.abc import Iterator

import numpy as np
import scipy.sparse
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn
from tqdm.auto import tqdm

from pydeepclust import distributed as pdist

CHECKPOINT_FORMAT = 1
# ``precision`` of the models trained over epochs: "fp32", or "bf16" (the networks' forward
# passes under torch.autocast in bfloat16, the losses in float32).
PRECISIONS = ("fp32", "bf16")


class InputError(TypeError, ValueError):
    """Input of the wrong kind (complex numbers, strings, booleans): a ``TypeError`` as
    pydeepclust has always raised it, and a ``ValueError`` as scikit-learn expects."""


class MethodUnavailable(AttributeError, NotImplementedError):
    """A method a model does not have: ``hasattr`` answers False (what scikit-learn looks
    at), and calling it raises ``NotImplementedError`` with the reason."""


class unavailable:
    """Hides an inherited method (e.g. ``transform`` of a model with no embedding)."""

    def __init__(self, reason: str):
        self.reason = reason

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        raise MethodUnavailable(f"{owner.__name__} has no {self.name}: {self.reason}")


class DeepClusterer(TransformerMixin, ClusterMixin, BaseEstimator):
    """Shared machinery: input checks, seeding, mini-batches, progress, checkpoints.

    Subclasses implement ``_fit(X)`` (X a float32 CPU tensor of validated shape),
    ``_transform(X)``, ``_predict(X)``, and list their trainable modules in
    ``_modules()`` and their other fitted tensors in ``_fitted_tensors()``.
    """

    # The fewest training samples the model can work with (models that relate samples to
    # each other, through a graph, a kernel or batch degrees, need two).
    _min_samples = 1

    # -- public API ---------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = True  # (n, H, W) images; (n, C, H, W) too (no tag)
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.requires_fit = True
        tags.non_deterministic = self._non_deterministic()
        if tags.transformer_tags is not None:
            # every embedding is float32, whatever the input's dtype
            tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _non_deterministic(self) -> bool:
        """True where a fit with the same ``random_state`` may not repeat exactly:
        ``random_state=None`` (fresh entropy), and models that run on a CUDA GPU, where
        float atomics (``index_add_``, the backward of indexing and of ``cdist``) and
        cuBLAS may sum in a different order from run to run, so the low bits of the
        weights, and then possibly labels, differ (not measured here: no GPU was at hand
        when this was written). On the CPU a seeded fit repeats exactly at a fixed thread
        count (scikit-learn's idempotence and pickling checks, one thread; the CPU kernels
        split their work by rows)."""
        if getattr(self, "random_state", None) is None:
            return True
        if "device" not in self.get_params(deep=False):  # CPU-only models
            return False
        try:
            return self._device().type == "cuda"
        except ValueError:  # an invalid device: fit will say so
            return False

    def fit(self, X, y=None, resume: bool = False):
        """Train on ``X`` of shape (n, d), (n, H, W) or (n, C, H, W); ``y`` is ignored.

        ``resume=True`` (models trained over epochs): continue the fit whose checkpoint is at
        ``checkpoint_path`` (weights, optimizer and generator states, epoch), so that a run
        killed mid-training and resumed ends as an uninterrupted one would. The checkpoint
        must come from the same hyperparameters (all but ``verbose``, ``device`` and the
        checkpoint settings) and the same data: a ValueError names what differs. A missing
        file starts the fit from scratch (what a restarted job wants on its first try); a
        checkpoint of a finished fit gives its result at once."""
        name = type(self).__name__
        with pdist.use_process_group(self._data_parallel()):
            entry = None
            with pdist.raise_together(name):  # a bad input on one rank stops every rank
                self._check_common_types()
                if resume and not getattr(self, "checkpoint_path", None):
                    raise ValueError(
                        f"{name}: resume=True needs checkpoint_path, the checkpoint to continue "
                        "from" + ("" if "checkpoint_path" in self.get_params(deep=False) else
                                  f" ({name} is not trained over epochs and has none)"))
                X = self._check_X(X, fitting=True)
                self.sample_shape_ = tuple(X.shape[1:])
                self.n_features_in_ = int(np.prod(self.sample_shape_))
                if getattr(self, "checkpoint_path", None):
                    self._check_checkpoint_params()
                    self._fingerprint = {"params": self._params_fingerprint(),
                                         "data": data_fingerprint(X)}
                    # rank 0 reads (the only rank that writes), the others get its copy
                    if resume and pdist.rank() == 0 and os.path.exists(self.checkpoint_path):
                        entry = self._checked_training_entry()
            pdist.check_same_data(X, name)
            if resume:
                self._resume_entry = pdist.broadcast_object(entry)
            try:
                self._fit(X)
            finally:  # fit-time state only: fitted models pickle and compare without it
                self.__dict__.pop("_fingerprint", None)
                self.__dict__.pop("_resume_entry", None)
        return self

    def predict(self, X) -> np.ndarray:
        """Cluster labels of new samples (numpy int64)."""
        check_is_fitted(self, "labels_")
        with torch.no_grad():
            return self._predict(self._check_X(X)).cpu().numpy()

    def transform(self, X) -> np.ndarray:
        """The model's embedding of new samples (numpy float32)."""
        check_is_fitted(self, "labels_")
        with torch.no_grad():
            return self._transform(self._check_X(X)).cpu().numpy()

    def save(self, path: str | os.PathLike) -> None:
        """Write hyperparameters, network weights and fitted state to ``path``."""
        check_is_fitted(self, "labels_")
        atomic_save(self._model_state(), path)

    def _model_state(self, fitted: bool = True) -> dict:
        """What :meth:`save` writes; ``fitted=False``: only what names the model (a checkpoint
        written before there is a fitted model, e.g. during pretraining)."""
        # A network passed as a parameter (e.g. a pretrained autoencoder) is not stored as a
        # parameter: its trained copy is among the modules, and weights_only loads no modules.
        params = {k: None if isinstance(v, nn.Module) else v
                  for k, v in self.get_params(deep=False).items()}
        state = {
            "format": CHECKPOINT_FORMAT,
            "estimator": type(self).__name__,
            "params": params,
            "sample_shape": list(self.sample_shape_),
        }
        if fitted:
            state.update({
                "labels": torch.as_tensor(self.labels_),
                "modules": {name: m.state_dict() for name, m in self._modules().items()},
                "tensors": {k: v.detach().cpu() for k, v in self._fitted_tensors().items()},
            })
        return state

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None):
        """Rebuild a fitted estimator from :meth:`save`'s file (safe: ``weights_only=True``)."""
        state = cls._read_checkpoint(path)
        if "labels" not in state:
            training = state.get("training", {})
            raise ValueError(f"{path} holds a {cls.__name__} fit in progress (phase "
                             f"{training.get('phase')!r}, {training.get('epoch')} epoch(s) done) "
                             "and no fitted model yet: continue it with fit(X, resume=True)")
        params = dict(state["params"])
        if "device" not in params:  # runs on the CPU only
            if device is not None and str(device) != "cpu":
                raise ValueError(f"{cls.__name__}.load: this model runs on the CPU only, "
                                 f"got device={device!r}")
        elif device is not None:
            params["device"] = device
        elif params["device"] not in (None, "auto", "cpu") and \
                torch.device(params["device"]).type == "cuda" and not torch.cuda.is_available():
            warnings.warn(f"{path} was fitted with device={params['device']!r}; this torch sees "
                          "no CUDA GPU, so it is loaded on the CPU (pass device= to choose)",
                          stacklevel=2)
            params["device"] = "cpu"
        est = cls(**params)
        est.sample_shape_ = tuple(state["sample_shape"])
        est.n_features_in_ = int(np.prod(est.sample_shape_))
        est._build(est.sample_shape_)
        for name, module in est._modules().items():
            module.load_state_dict(state["modules"][name])
            module.to(est._device()).eval()
        est._load_fitted_tensors({k: v.to(est._device()) for k, v in state["tensors"].items()})
        est.labels_ = state["labels"].numpy()
        return est

    @classmethod
    def _read_checkpoint(cls, path: str | os.PathLike) -> dict:
        """The one reader of checkpoints (:meth:`load`, resumed fits): ``torch.load`` with
        ``weights_only=True`` on the CPU, checked to be this estimator's."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
            raise ValueError(f"{path} is not a {cls.__name__} checkpoint: torch.load could not "
                             f"read it safely ({type(err).__name__})") from err
        if not isinstance(state, dict):
            raise ValueError(f"{path} is not a {cls.__name__} checkpoint: it holds a "
                             f"{type(state).__name__}")
        if state.get("format") != CHECKPOINT_FORMAT or state.get("estimator") != cls.__name__:
            raise ValueError(
                f"{path} is not a {cls.__name__} checkpoint (estimator={state.get('estimator')!r}, "
                f"format={state.get('format')!r})"
            )
        return state

    def _write_checkpoint(self, state: dict) -> None:
        """The one writer of ``checkpoint_path`` during training (atomically; under
        torch.distributed rank 0 alone writes: every rank holds the same state)."""
        if pdist.rank() == 0:
            atomic_save(state, self.checkpoint_path)

    # -- data-parallel training (torch.distributed) ---------------------------------

    def _data_parallel(self) -> bool:
        """Whether this fit trains data-parallel over the default process group: for the
        models with a ``distributed`` parameter (None: when a group of more than one rank is
        initialised; True: require one; False: train alone on every rank)."""
        if "distributed" not in self.get_params(deep=False):
            return False
        name, wanted = type(self).__name__, self.distributed
        if wanted not in (None, True, False):
            raise ValueError(f"{name}: distributed must be None (use a torch.distributed "
                             "process group when one is initialised), True (require one) or "
                             f"False (train alone on every rank), got {wanted!r}")
        active = pdist.process_group_active()
        if wanted is True and not active:
            raise ValueError(f"{name}: distributed=True, but no torch.distributed process group "
                             "of more than one rank is initialised (run under torchrun, or call "
                             "torch.distributed.init_process_group first)")
        return active and wanted is not False

    def _check_global_batch(self, batch_size: int) -> None:
        """Under torch.distributed ``batch_size`` is the global batch, split evenly over the
        ranks: it must be divisible by their number (checked on every rank alike)."""
        world = pdist.world_size()
        if batch_size % world:
            raise ValueError(f"{type(self).__name__}: batch_size={batch_size} is the global "
                             f"batch, split over the {world} ranks of torch.distributed, and "
                             f"must be divisible by {world}")

    def _check_ranks_in_sync(self, what: str) -> None:
        """The debug check of :func:`pydeepclust.distributed.check_in_sync` on the weights
        and the tensors updated outside autograd (``PYDEEPCLUST_CHECK_SYNC=1``)."""
        if not pdist.is_distributed():
            return
        state = {f"{name}.{key}": value for name, module in self._modules().items()
                 for key, value in module.state_dict().items()}
        try:
            state.update(self._fitted_tensors())
        except AttributeError:  # not all fitted yet (e.g. before the first clustering)
            pass
        pdist.check_in_sync(state, what)

    # -- resumable training -----------------------------------------------------

    def _checkpoint(self, phase: str, epoch: int, optimizers: dict | None = None,
                    generators: dict | None = None, fitted: bool = True) -> None:
        """Write the checkpoint of a fit in progress: the fitted model as :meth:`save` writes
        it (``fitted=False``: not yet one, e.g. during pretraining) and the "training" entry
        that :meth:`_resume_model` and :meth:`_resume_loop` read back. ``epoch``: the epochs
        of ``phase`` done. Draws no random numbers, so checkpoints never change a result."""
        state = self._model_state(fitted)
        state["training"] = {
            "phase": phase,
            "epoch": int(epoch),
            "fingerprint": self._fingerprint,
            # the same tensors as the fitted model's: torch.save stores them once
            "modules": {n: m.state_dict() for n, m in self._checkpoint_modules().items()},
            "tensors": ({k: v.detach().cpu() for k, v in self._fitted_tensors().items()}
                        if fitted else {}),
            "labels": torch.as_tensor(self.labels_) if fitted else None,
            "optimizers": {n: o.state_dict() for n, o in (optimizers or {}).items()},
            "generators": {n: g.get_state() for n, g in (generators or {}).items()},
            "history": list(self.history_) if hasattr(self, "history_") else None,
        }
        self._write_checkpoint(state)

    def _resumed(self, *phases: str) -> dict | None:
        """The training entry this fit resumes from, if it was written in one of ``phases``
        (any phase when none is named); None when starting fresh."""
        entry = getattr(self, "_resume_entry", None)
        if entry is None or (phases and entry["phase"] not in phases):
            return None
        return entry

    def _resume_model(self, entry: dict) -> None:
        """Load a training entry's module weights, fitted tensors, labels and history (before
        the optimizers over those tensors are made)."""
        device = self._device()
        for name, module in self._checkpoint_modules().items():
            module.load_state_dict(entry["modules"][name])
        if entry["tensors"]:
            self._load_fitted_tensors({k: v.to(device) for k, v in entry["tensors"].items()})
        if entry["labels"] is not None:
            self.labels_ = entry["labels"].numpy()
        if entry["history"] is not None:
            self.history_ = list(entry["history"])

    def _resume_loop(self, entry: dict, optimizers: dict | None = None,
                     generators: dict | None = None) -> int:
        """Load a training entry's optimizer and generator states; returns the epochs done."""
        for name, optimizer in (optimizers or {}).items():
            optimizer.load_state_dict(entry["optimizers"][name])
        for name, generator in (generators or {}).items():
            generator.set_state(entry["generators"][name])
        return entry["epoch"]

    def _checkpoint_modules(self) -> dict[str, nn.Module]:
        """The modules whose weights a resumed fit needs: :meth:`_modules`, and any network a
        model trains or uses during the fit without keeping it."""
        return self._modules()

    def _params_fingerprint(self) -> dict[str, str]:
        """The hyperparameters a resumed fit must share with its checkpoint, as text (a
        network passed as a parameter by a checksum of its weights)."""
        skip = {"verbose", "device", "checkpoint_path", "checkpoint_every"}
        return {k: (f"network {tensor_checksum(v.state_dict().values())}"
                    if isinstance(v, nn.Module) else repr(v))
                for k, v in sorted(self.get_params(deep=False).items()) if k not in skip}

    def _checked_training_entry(self) -> dict:
        """The training entry of the checkpoint at ``checkpoint_path``, or a ValueError when it
        has none or was written for other hyperparameters or other data."""
        path, name = os.fspath(self.checkpoint_path), type(self).__name__
        entry = self._read_checkpoint(path).get("training")
        if entry is None:
            raise ValueError(f"{name}: cannot resume from {path!r}: it holds no training state "
                             "(written by save() or an older pydeepclust); remove it or fit "
                             "without resume")
        for kind, saved in entry["fingerprint"].items():
            now = self._fingerprint[kind]
            differ = [f"{k}: {saved.get(k, '(none)')} in the checkpoint, {now.get(k, '(none)')} "
                      "now" for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
            if differ:
                what = "hyperparameters" if kind == "params" else "data"
                raise ValueError(f"{name}: cannot resume from {path!r}: it was written for other "
                                 f"{what} ({'; '.join(differ)})")
        return entry

    # -- hooks for subclasses -------------------------------------------------

    def _fit(self, X: Tensor) -> None:
        raise NotImplementedError

    def _predict(self, X: Tensor) -> Tensor:
        raise NotImplementedError

    def _transform(self, X: Tensor) -> Tensor:
        raise NotImplementedError

    def _build(self, sample_shape: tuple[int, ...]) -> None:
        """Create the networks for samples of ``sample_shape`` (seeded)."""
        raise NotImplementedError

    def _modules(self) -> dict[str, nn.Module]:
        return {}

    def _fitted_tensors(self) -> dict[str, Tensor]:
        return {}

    def _load_fitted_tensors(self, tensors: dict[str, Tensor]) -> None:
        for name, value in tensors.items():
            setattr(self, name, value)

    # -- helpers ----------------------------------------------------------------

    def _check_common_types(self) -> None:
        """``n_clusters`` an integer >= 1 and ``random_state`` None or an integer, before any
        work (a model needing more clusters says so itself)."""
        name = type(self).__name__
        k = getattr(self, "n_clusters", 1)
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"{name}: n_clusters must be an integer >= 1, got {k!r}")
        seed = getattr(self, "random_state", None)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"{name}: random_state must be an integer or None (pydeepclust "
                             f"derives every generator from one int seed), got {seed!r}")
        if getattr(self, "precision", "fp32") not in PRECISIONS:
            raise ValueError(f"{name}: precision must be one of {PRECISIONS}, got "
                             f"{self.precision!r}")

    def _check_checkpoint_params(self) -> None:
        """``checkpoint_every`` an integer >= 1, ``checkpoint_path`` None or a file path whose
        folder exists: checked before training, not at the first save after hours of it."""
        name = type(self).__name__
        self._check_integers("checkpoint_every")
        path = self.checkpoint_path
        if path is None:
            return
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{name}: checkpoint_path must be a file path or None, "
                            f"got {type(path).__name__}")
        if os.path.isdir(path):
            raise ValueError(f"{name}: checkpoint_path {os.fspath(path)!r} is a folder; give a "
                             "file path in it, e.g. model.pt")
        folder = os.path.dirname(os.fspath(path)) or "."
        if not os.path.isdir(folder):
            raise ValueError(f"{name}: checkpoint_path {os.fspath(path)!r}: folder {folder!r} "
                             "does not exist")

    def _check_integers(self, *names: str, minimum: int = 1) -> None:
        """Each parameter in ``names`` an integer (numpy's too, not bool) >= ``minimum``."""
        for param in names:
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
                    value < minimum:
                raise ValueError(f"{type(self).__name__}: {param} must be an integer >= "
                                 f"{minimum}, got {value!r}")

    def _check_numbers(self, *names: str, minimum: float = 0.0, strict: bool = True) -> None:
        """Each parameter in ``names`` a finite real number above ``minimum`` (at or above it
        with ``strict=False``): learning rates, loss weights."""
        for param in names:
            value = getattr(self, param)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
                math.isfinite(value) and (value > minimum if strict else value >= minimum)
            if not ok:
                bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
                raise ValueError(f"{type(self).__name__}: {param} must be a finite number "
                                 f"{bound}, got {value!r}")

    def _checkpoint_due(self, epoch: int) -> bool:
        return bool(self.checkpoint_path) and (epoch + 1) % self.checkpoint_every == 0

    def _device(self) -> torch.device:
        device = getattr(self, "device", None)
        if device in (None, "auto"):
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return check_device(device, type(self).__name__)

    def _generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from ``random_state`` (fresh entropy when None)."""
        seed = getattr(self, "random_state", None)
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            # any int; the modulus keeps the streams every seed had before it
            g.manual_seed((int(seed) * 1_000_003 + offset) % 2**64)
        return g

    def _int_seed(self, offset: int = 0) -> int:
        """An int seed for libraries with their own RNG (scikit-learn, numpy), from ``random_state``."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self._generator(offset)))

    @contextlib.contextmanager
    def _seeded(self, offset: int = 0):
        """Seed the global torch RNG from ``random_state`` inside the block, then restore it."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self._generator(offset)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield

    def _check_X(self, X, fitting: bool = False) -> Tensor:
        """A float32 CPU tensor of shape (n, *sample_shape), finite, with enough rows.

        ``X``: a torch tensor or anything ``sklearn.utils.check_array`` reads (numpy arrays,
        lists, object arrays of numbers, memmaps); sparse matrices are refused. The messages
        are scikit-learn's where its estimator checks look for them."""
        name = type(self).__name__
        if isinstance(X, Tensor):
            if X.is_complex() or X.dtype == torch.bool:
                raise InputError(f"{name}: X must hold real numbers, got dtype {X.dtype}")
            X = X.detach().to("cpu", torch.float32)
        else:
            X = self._array(X, name)
        if X.dim() not in (2, 3, 4):
            raise ValueError(
                f"{name}: X must have shape (n, d), (n, H, W) or (n, C, H, W), got "
                f"{tuple(X.shape)}. Reshape your data either using X.reshape(-1, 1) if it has "
                "a single feature or X.reshape(1, -1) if it is a single sample."
            )
        if X.shape[0] == 0:
            raise ValueError(f"{name}: X has no samples: found array with 0 sample(s) "
                             f"(shape={tuple(X.shape)}) while a minimum of 1 is required.")
        if fitting and X[0].numel() == 0:
            raise ValueError(f"{name}: found array with 0 feature(s) (shape={tuple(X.shape)}) "
                             "while a minimum of 1 is required.")
        if not fitting and tuple(X.shape[1:]) != tuple(self.sample_shape_):
            raise ValueError(
                f"{name}: X has {X[0].numel()} features, but {name} is expecting "
                f"{self.n_features_in_} features as input (X has samples of shape "
                f"{tuple(X.shape[1:])}, but the model was fitted on {tuple(self.sample_shape_)})"
            )
        if fitting and X.shape[0] < self._min_samples:
            raise ValueError(f"{name}: X has {X.shape[0]} sample(s), n_samples={X.shape[0]}; "
                             f"{name} needs at least {self._min_samples}")
        n_clusters = getattr(self, "n_clusters", 1)
        if fitting and X.shape[0] < n_clusters:
            raise ValueError(
                f"{name}: X has {X.shape[0]} samples, fewer than n_clusters={n_clusters}"
            )
        bad = ~torch.isfinite(X.reshape(X.shape[0], -1)).all(dim=1)
        if bad.any():
            rows = bad.nonzero().squeeze(1)
            raise ValueError(
                f"{name}: X has NaN or inf in {rows.numel()} sample(s) (first: row {int(rows[0])})"
            )
        return X

    @staticmethod
    def _array(X, name: str) -> Tensor:
        """A float32 tensor from an array-like (see :meth:`_check_X`)."""
        if scipy.sparse.issparse(X):
            raise TypeError(f"{name}: sparse input ({type(X).__name__}) is not supported; pass "
                            "a dense array (X.toarray())")
        if X is None or isinstance(X, (str, bytes, numbers.Number, dict)):
            raise TypeError(f"{name}: X must be an array-like (numpy array, torch tensor, "
                            f"nested list), got {type(X).__name__}")
        dtype = getattr(X, "dtype", None)
        if isinstance(dtype, np.dtype):
            if np.issubdtype(dtype, np.complexfloating):
                raise InputError(f"{name}: Complex data not supported (X has dtype {dtype})")
            if dtype != object and not np.issubdtype(dtype, np.number):
                raise InputError(f"{name}: X must hold real numbers, got dtype {dtype}")
        try:
            X = check_array(X, dtype=np.float32, order="C", ensure_2d=False, allow_nd=True,
                            ensure_all_finite=False, ensure_min_samples=0,
                            ensure_min_features=0, input_name="X")
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
        if not X.flags.writeable:  # a read-only memmap: torch wants its own copy
            X = X.copy()
        return torch.from_numpy(X)

    def _minibatches(self, n: int, batch_size: int, generator: torch.Generator,
                     drop_last: bool = False) -> Iterator[Tensor]:
        """Shuffled index batches covering ``range(n)`` once."""
        order = torch.randperm(n, generator=generator)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            yield order[start:start + batch_size]

    def _progress(self, iterable, desc: str, total: int | None = None):
        return tqdm(iterable, desc=desc, total=total, disable=not getattr(self, "verbose", True),
                    leave=False, dynamic_ncols=True)

    def _check_loss(self, loss: Tensor, epoch: int, parts: dict[str, Tensor] | None = None):
        """Stop with a clear error before a non-finite loss reaches the weights."""
        loss = loss.detach()
        if not math.isfinite(float(loss)):
            detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in (parts or {}).items())
            raise FloatingPointError(
                f"{type(self).__name__}: the training loss became {float(loss)} in epoch {epoch}"
                f"{' (' + detail + ')' if detail else ''}; the weights are left as they were before "
                "this step. Lower the learning rate or the loss weights, or check the data scale."
            )

    def _autocast(self):
        """``torch.autocast`` in bfloat16 on the model's device with ``precision="bf16"``, for
        the networks' forward passes (the losses are computed in float32 outside it); a no-op
        context otherwise."""
        return torch.autocast(self._device().type, dtype=torch.bfloat16,
                              enabled=getattr(self, "precision", "fp32") == "bf16")

    def _training_data(self, X: Tensor) -> Tensor:
        """``X`` on the model's device (see :func:`to_device_if_fits`)."""
        return to_device_if_fits(X, self._device())

    def _embed_in_batches(self, fn, X: Tensor, batch_size: int = 1024) -> Tensor:
        """Apply ``fn`` to ``X`` in batches on the model's device, concatenated on that device."""
        device = self._device()
        return torch.cat([fn(X[i:i + batch_size].to(device)) for i in range(0, len(X), batch_size)])


def check_device(device, owner: str) -> torch.device:
    """``device`` as a torch.device this machine has, or a ValueError naming it."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{owner}: device must be 'cpu', 'cuda', 'cuda:N' or None, "
                         f"got {device!r}") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{owner}: device={device!r}, but this torch sees no CUDA GPU "
                             "(use 'cpu', or None for the best available)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"{owner}: device={device!r}, but there are only "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif resolved.type != "cpu":
        raise ValueError(f"{owner}: device must be 'cpu', 'cuda', 'cuda:N' or None, "
                         f"got {device!r}")
    return resolved


def tensor_checksum(tensors) -> str:
    """An exact checksum (BLAKE2b) of the bytes, shapes and dtypes of ``tensors``."""
    digest = hashlib.blake2b(digest_size=16)
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def data_fingerprint(X: Tensor) -> dict[str, str]:
    """What a resumed fit compares of its data: the shape and an exact checksum."""
    return {"n_samples": str(X.shape[0]), "sample_shape": str(tuple(X.shape[1:])),
            "checksum": tensor_checksum([X])}


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then a rename: a run killed while
    writing leaves the previous checkpoint intact instead of a truncated one. A file-like
    object is written directly."""
    if not isinstance(path, (str, os.PathLike)):
        torch.save(obj, path)
        return
    path = os.fspath(path)
    partial = f"{path}.partial-{os.getpid()}"
    try:
        torch.save(obj, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def to_device_if_fits(X: Tensor, device: torch.device) -> Tensor:
    """``X`` copied to ``device`` once, so that training batches are indexed there instead of
    copied from the host at every step (on a GPU that copy, not the arithmetic, bounds small
    networks); ``X`` itself when the device lacks the memory."""
    if X.device == device or device.type == "cpu":
        return X
    try:
        return X.to(device)
    except torch.OutOfMemoryError:
        return X
