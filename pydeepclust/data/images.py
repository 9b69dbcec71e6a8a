"""Image data sets: scikit-learn's digits (built in) and MNIST-format IDX files on disk.

Nothing is downloaded. Fashion-MNIST comes from the Debian package
``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``), which puts
the four gzipped IDX files in :data:`FASHION_MNIST_DIR`; MNIST from IDX files the
user already has.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits as _sklearn_digits

from pydeepclust.data.base import Dataset
from pydeepclust.data.idx import read_idx

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_ENV",
    "MNIST_ENV",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
]

#: Where the Debian package ``dataset-fashion-mnist`` puts the IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Environment variable naming another folder of the Fashion-MNIST IDX files.
FASHION_MNIST_ENV = "PYDEEPCLUST_FASHION_MNIST"
#: Environment variable naming the folder of the MNIST IDX files (nothing is downloaded).
MNIST_ENV = "PYDEEPCLUST_MNIST"
#: The ten Fashion-MNIST class names, by label.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
SPLITS = ("all", "train", "test")
# The MNIST file stems; "train-images-idx3-ubyte" is also found as "train-images.idx3-ubyte".
_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_digits() -> Dataset:
    """scikit-learn's 1,797 handwritten digits, 8x8 pixels scaled from 0..16 to [0, 1]."""
    bunch = _sklearn_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    return Dataset("digits", X, bunch.target.astype(np.int64), image_shape=(8, 8))


def _check_split(split: str, fn: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"{fn}: split must be one of {SPLITS}, got {split!r}")


def _find_idx_file(directory: Path, stem: str) -> Path | None:
    image_or_label, _, kind = stem.rpartition("-idx")
    for name in (stem, f"{image_or_label}.idx{kind}"):
        for suffix in (".gz", ""):
            candidate = directory / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _load_idx_pair(directory: Path, part: str, name: str, how_to_get: str):
    image_stem, label_stem = _IDX_STEMS[part]
    paths = [_find_idx_file(directory, stem) for stem in (image_stem, label_stem)]
    for stem, path in zip((image_stem, label_stem), paths):
        if path is None:
            raise FileNotFoundError(
                f"{name}: {stem}[.gz] not found in {directory}. {how_to_get} "
                "(pydeepclust never downloads data.)"
            )
    images, labels = (read_idx(path) for path in paths)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{name}: {paths[0]} must hold uint8 images (n, h, w), got "
                         f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{name}: {paths[1]} must hold uint8 labels (n,), got "
                         f"{labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{name}: {paths[0]} has {images.shape[0]} images but {paths[1]} has "
                         f"{labels.shape[0]} labels")
    return images, labels


def _load_mnist_format(directory: Path, split: str, name: str, how_to_get: str,
                       class_names: tuple[str, ...] | None) -> Dataset:
    parts = ("train", "test") if split == "all" else (split,)
    pairs = [_load_idx_pair(directory, part, name, how_to_get) for part in parts]
    shapes = {images.shape[1:] for images, _ in pairs}
    if len(shapes) != 1:
        raise ValueError(f"{name}: train and test images differ in size: {sorted(shapes)}")
    images = np.concatenate([images for images, _ in pairs])
    labels = np.concatenate([labels for _, labels in pairs])
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    full_name = name if split == "all" else f"{name}:{split}"
    return Dataset(full_name, X, labels.astype(np.int64), image_shape=images.shape[1:],
                   class_names=class_names)


def _resolve_dir(path, env_var: str, default: Path | None) -> Path | None:
    if path is not None:
        return Path(path)
    if os.environ.get(env_var):
        return Path(os.environ[env_var])
    return default


def load_fashion_mnist(path: str | os.PathLike | None = None, split: str = "all") -> Dataset:
    """Fashion-MNIST (28x28 grayscale, 10 classes) from its four IDX files.

    Args:
        path: directory of the IDX files (gzipped or not); default
            ``$PYDEEPCLUST_FASHION_MNIST``, else :data:`FASHION_MNIST_DIR`.
        split: ``"train"`` (60,000), ``"test"`` (10,000) or ``"all"`` (70,000,
            train then test, as clustering papers use it).
    """
    _check_split(split, "load_fashion_mnist")
    directory = _resolve_dir(path, FASHION_MNIST_ENV, FASHION_MNIST_DIR)
    how_to_get = (
        "Install the Debian package with `apt-get install -y dataset-fashion-mnist` (it puts the "
        f"files in {FASHION_MNIST_DIR}), or point path= or ${FASHION_MNIST_ENV} at a directory "
        "holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz."
    )
    return _load_mnist_format(directory, split, "fashion-mnist", how_to_get, FASHION_MNIST_CLASSES)


def load_mnist(path: str | os.PathLike | None = None, split: str = "all") -> Dataset:
    """MNIST from IDX files you already have (no package or default location exists).

    Args:
        path: directory of the IDX files (gzipped or not); default ``$PYDEEPCLUST_MNIST``.
        split: ``"train"``, ``"test"`` or ``"all"`` (train then test).
    """
    _check_split(split, "load_mnist")
    how_to_get = (
        f"Pass path= or set ${MNIST_ENV} to a directory holding "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
        "t10k-labels-idx1-ubyte (gzipped or not), the files of the MNIST distribution."
    )
    directory = _resolve_dir(path, MNIST_ENV, None)
    if directory is None:
        raise FileNotFoundError(f"mnist: no directory given. {how_to_get}")
    return _load_mnist_format(directory, split, "mnist", how_to_get, None)
