"""The :class:`Dataset` container, class subsets, and seeded stratified splits."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numbers

import numpy as np
import torch
from sklearn.model_selection import train_test_split as _sklearn_split

__all__ = ["Dataset", "select_classes", "stratified_split"]


@dataclass(frozen=True)
class Dataset:
    """A labelled data set as numpy arrays.

    Attributes:
        name: registry name (e.g. ``"digits012"``), with ``":train"``/``":test"`` for a split.
        X: (n, d) float32, C-contiguous. Images are flattened row-major; pixel
            values lie in [0, 1]. numpy rather than torch so that scikit-learn
            baselines take it as is; :meth:`tensors` gives zero-copy torch views.
        y: (n,) int64 ground-truth labels, with the source's own label values
            (a class subset keeps them: digits 0/1/2 have labels 0, 1, 2).
        image_shape: (height, width) when the rows are grayscale images, else None.
        class_names: a name per label value (indexed by label) when the source has them.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    image_shape: tuple[int, int] | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        for field in ("X", "y"):
            if not isinstance(getattr(self, field), np.ndarray):
                raise TypeError(f"Dataset {self.name}: {field} must be a numpy array, got "
                                f"{type(getattr(self, field)).__name__}")
        if self.X.ndim != 2 or self.X.dtype != np.float32:
            raise ValueError(f"Dataset {self.name}: X must be (n, d) float32, got "
                             f"{self.X.dtype} {self.X.shape}")
        if self.y.shape != (self.X.shape[0],) or self.y.dtype != np.int64:
            raise ValueError(f"Dataset {self.name}: y must be ({self.X.shape[0]},) int64, got "
                             f"{self.y.dtype} {self.y.shape}")
        if self.image_shape is not None and int(np.prod(self.image_shape)) != self.X.shape[1]:
            raise ValueError(f"Dataset {self.name}: image_shape {self.image_shape} does not "
                             f"match {self.X.shape[1]} features")

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def classes(self) -> np.ndarray:
        """The distinct label values, sorted."""
        return np.unique(self.y)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def images(self) -> np.ndarray:
        """X as (n, height, width) images (a view); only for image data sets."""
        if self.image_shape is None:
            raise ValueError(f"Dataset {self.name} is not an image data set")
        return self.X.reshape(len(self), *self.image_shape)

    def tensors(self, device: str | torch.device | None = None) -> tuple[torch.Tensor, ...]:
        """``(X, y)`` as torch tensors (float32, int64); sharing memory when on the CPU."""
        X, y = torch.from_numpy(self.X), torch.from_numpy(self.y)
        return (X, y) if device is None else (X.to(device), y.to(device))

    def subset(self, index: np.ndarray, name: str | None = None) -> "Dataset":
        """The rows at ``index`` (an index array or boolean mask), as a new data set."""
        return replace(
            self,
            name=self.name if name is None else name,
            X=np.ascontiguousarray(self.X[index]),
            y=np.ascontiguousarray(self.y[index]),
        )


def select_classes(dataset: Dataset, classes, name: str | None = None) -> Dataset:
    """Only the rows whose label is in ``classes`` (labels keep their values)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"select_classes: dataset must be a pydeepclust Dataset, got "
                        f"{type(dataset).__name__}")
    given = np.asarray(classes)
    if isinstance(classes, (str, bytes)) or given.dtype.kind not in "iu":
        raise ValueError(f"select_classes: classes must be integer labels, got {classes!r}")
    wanted = np.unique(given.astype(np.int64))
    if wanted.size < 2:
        raise ValueError(f"select_classes: classes must name at least two labels, got {classes!r}")
    missing = np.setdiff1d(wanted, dataset.classes)
    if missing.size:
        raise ValueError(
            f"select_classes: {dataset.name} has no label(s) {missing.tolist()}; "
            f"its labels are {dataset.classes.tolist()}"
        )
    return dataset.subset(np.isin(dataset.y, wanted), name=name)


def stratified_split(
    dataset: Dataset, test_size: float = 0.2, random_state: int = 0
) -> tuple[Dataset, Dataset]:
    """A seeded train/test split that keeps the class proportions: ``(train, test)``."""
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real) or \
            not 0.0 < test_size < 1.0:
        raise ValueError(f"stratified_split: test_size must lie in (0, 1), got {test_size!r}")
    train_index, test_index = _sklearn_split(
        np.arange(len(dataset)),
        test_size=test_size,
        random_state=random_state,
        stratify=dataset.y,
    )
    return (
        dataset.subset(np.sort(train_index), name=f"{dataset.name}:train"),
        dataset.subset(np.sort(test_index), name=f"{dataset.name}:test"),
    )
