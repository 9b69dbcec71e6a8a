"""Data sets that exist without a network: built-in digits, IDX files on disk, synthetic sets.

``load_dataset(name, ...)`` is the one entry point; :data:`DATASETS` lists the
names (for a CLI). Every loader returns a :class:`Dataset` whose ``X`` is an
(n, d) float32 numpy array (``Dataset.tensors()`` gives torch views) and ``y``
int64 labels. Nothing is ever downloaded: Fashion-MNIST comes from the Debian
package ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``).
"""

from pydeepclust.data.augment import affine_images, random_affine
from pydeepclust.data.base import Dataset, select_classes, stratified_split
from pydeepclust.data.idx import read_idx
from pydeepclust.data.images import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_ENV,
    MNIST_ENV,
    load_digits,
    load_fashion_mnist,
    load_mnist,
)
from pydeepclust.data.registry import DATASETS, DatasetSpec, load_dataset, parse_dataset_name
from pydeepclust.data.synthetic import make_ksc_blobs, make_synth25, make_two_circles

__all__ = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_ENV",
    "MNIST_ENV",
    "Dataset",
    "DatasetSpec",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "make_ksc_blobs",
    "make_synth25",
    "make_two_circles",
    "parse_dataset_name",
    "affine_images",
    "random_affine",
    "read_idx",
    "select_classes",
    "stratified_split",
]
