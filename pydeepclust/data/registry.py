"""Data sets by name: the registry a CLI lists and :func:`load_dataset`, its one entry point."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Callable

from pydeepclust.data.base import Dataset, select_classes, stratified_split
from pydeepclust.data.images import SPLITS, load_digits, load_fashion_mnist, load_mnist
from pydeepclust.data.synthetic import make_ksc_blobs, make_synth25, make_two_circles

__all__ = ["DATASETS", "DatasetSpec", "load_dataset", "parse_dataset_name"]


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry.

    Attributes:
        loader: builds the whole data set; takes ``path`` and ``split`` when
            ``from_files``, ``random_state`` and generator options when ``synthetic``.
        from_files: read from IDX files, which carry their own train/test split.
        synthetic: generated; ``random_state`` seeds it.
    """

    name: str
    description: str
    loader: Callable[..., Dataset]
    from_files: bool = False
    synthetic: bool = False


def _load_digits012() -> Dataset:
    return select_classes(load_digits(), (0, 1, 2), name="digits012")


def _load_mnist012(path=None, split: str = "all") -> Dataset:
    return select_classes(load_mnist(path=path, split=split), (0, 1, 2), name="mnist012")


#: Every name :func:`load_dataset` accepts, with the loader behind it and its description.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("digits", "scikit-learn's 1,797 8x8 digits, 10 classes (built in)",
                    load_digits),
        DatasetSpec("digits012", "digits 0/1/2 of 'digits' (537 images), the stand-in for MNIST012",
                    _load_digits012),
        DatasetSpec("fashion-mnist", "Fashion-MNIST, 70,000 28x28 images, 10 classes "
                    "(apt-get install -y dataset-fashion-mnist)", load_fashion_mnist,
                    from_files=True),
        DatasetSpec("mnist", "MNIST, 70,000 28x28 digits (60,000 train then 10,000 test), from "
                    "IDX files you have ($PYDEEPCLUST_MNIST or path=...)", load_mnist,
                    from_files=True),
        DatasetSpec("mnist012", "MNIST digits 0/1/2 (21,770 images; 18,623 train), the GenKSC "
                    "paper's MNIST012", _load_mnist012, from_files=True),
        DatasetSpec("synth25", "SYNTH-25 (ACe/DeC): 12,000 x 27, four 2-D clusters + 25 noise dims",
                    make_synth25, synthetic=True),
        DatasetSpec("circles", "two concentric circles (RSM Fig. 1), 3,000 x 2",
                    make_two_circles, synthetic=True),
        DatasetSpec("blobs", "three well-separated Gaussian blobs (KSC style), 1,500 x 2",
                    make_ksc_blobs, synthetic=True),
    )
}


def parse_dataset_name(name) -> tuple[str, str | None]:
    """``"mnist:test"`` -> ``("mnist", "test")``; ``"digits"`` -> ``("digits", None)``.

    Raises ``ValueError`` naming the known sets and splits for anything else."""
    base, colon, split = name.partition(":") if isinstance(name, str) else (name, "", "")
    if not isinstance(base, str) or base not in DATASETS:
        raise ValueError(f"load_dataset: unknown data set {base!r}; known: {sorted(DATASETS)} "
                         f"(each optionally with a split suffix {SPLITS[1:]}, e.g. 'mnist:test')")
    if colon and split not in SPLITS:
        raise ValueError(f"load_dataset: {name!r} has split suffix {split!r}; expected one of "
                         f"{SPLITS}")
    return base, (split if colon else None)


def _check_options(spec: DatasetSpec, options: dict) -> None:
    if not options:
        return
    accepted = set(inspect.signature(spec.loader).parameters) - {"random_state", "path", "split"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(
            f"load_dataset: {spec.name!r} does not take option(s) {unknown}; "
            f"it takes {sorted(accepted) or 'none'}"
        )


def load_dataset(
    name: str,
    *,
    split: str = "all",
    classes=None,
    path=None,
    test_size: float = 0.2,
    random_state: int = 0,
    **options,
) -> Dataset:
    """Load a registered data set by name (see :data:`DATASETS`).

    Args:
        name: ``"digits"``, ``"digits012"``, ``"fashion-mnist"``, ``"mnist"``,
            ``"mnist012"``, ``"synth25"``, ``"circles"`` or ``"blobs"``, optionally
            with a split suffix: ``"mnist:test"`` is ``name="mnist", split="test"``.
        split: ``"all"``, ``"train"`` or ``"test"``. File-based sets use their
            own split (Fashion-MNIST/MNIST: 60,000 / 10,000); the others a
            seeded stratified split with ``test_size`` of the rows in test.
        classes: keep only these label values (applied before the split).
        path: directory of the IDX files (file-based sets only); see
            :func:`~pydeepclust.data.load_fashion_mnist` for the defaults.
        random_state: seeds the generator of synthetic sets and the stratified split.
        **options: generator options of synthetic sets, e.g. ``n_samples=1000``.

    Returns a :class:`Dataset` (X float32 numpy) named like ``"digits[0,1,2]:train"``.
    """
    name, suffix = parse_dataset_name(name)
    if split not in SPLITS:
        raise ValueError(f"load_dataset: split must be one of {SPLITS}, got {split!r}")
    if suffix is not None:
        if split not in ("all", suffix):
            raise ValueError(f"load_dataset: the name asks for split {suffix!r} but split="
                             f"{split!r}; give one of them")
        split = suffix
    spec = DATASETS[name]
    _check_options(spec, options)
    if spec.from_files:
        dataset = spec.loader(path=path, split=split)
    elif path is not None:
        raise ValueError(f"load_dataset: {name!r} is not read from files; path must be None")
    elif spec.synthetic:
        dataset = spec.loader(random_state=random_state, **options)
    else:
        dataset = spec.loader()
    full_name = name
    if classes is not None:
        dataset = select_classes(dataset, classes)
        full_name += f"[{','.join(str(c) for c in dataset.classes)}]"
    if split != "all" and not spec.from_files:
        train, test = stratified_split(dataset, test_size=test_size, random_state=random_state)
        dataset = train if split == "train" else test
    if split != "all":
        full_name += f":{split}"
    return replace(dataset, name=full_name)
