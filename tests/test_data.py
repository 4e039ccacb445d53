import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import dfsae
from dfsae import data as D

SHARED = Path(os.environ.get("DFSAE_SHARED_MNIST", Path(__file__).resolve().parents[2] / "shared/data/mnist"))
needs_shared = pytest.mark.skipif(not (SHARED / "t10k-images-idx3-ubyte.gz").exists(),
                                  reason=f"canonical MNIST test files not found in {SHARED}")


def test_embedded_digits(digits):
    assert digits.x_train.shape == (4000, 784) and digits.x_test.shape == (1000, 784)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert 0 <= digits.x_train.min() and digits.x_train.max() <= 1 and digits.x_train.max() > 0.99
    assert torch.bincount(digits.y_train).tolist() == [400] * 10
    assert torch.bincount(digits.y_test).tolist() == [100] * 10


def test_split_is_deterministic_and_disjoint(digits):
    again = D.load_mnist5k()
    assert torch.equal(again.x_train, digits.x_train) and torch.equal(again.y_test, digits.y_test)
    train_rows = {tuple(r) for r in digits.x_train.numpy().round(4).tolist()}
    overlap = sum(tuple(r) in train_rows for r in digits.x_test.numpy().round(4).tolist())
    assert overlap <= 5  # the raw set itself holds a few near-duplicate digits


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset"):
        dfsae.load_dataset("cifar10")


def test_missing_files_offline_gives_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="DFSAE_DATA_DIR"):
        D.load_mnist(data_dir=tmp_path, download=False)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DFSAE_DATA_DIR", str(tmp_path))
    assert D.mnist_dir() == tmp_path / "mnist"


def test_idx_parser_on_a_file_it_writes(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(tmp_path / "a.gz", "wb") as f:
        f.write(header + arr.tobytes())
    assert np.array_equal(D.read_idx(tmp_path / "a.gz"), arr)
    with gzip.open(tmp_path / "b.gz", "wb") as f:
        f.write(header + arr.tobytes()[:-1])
    with pytest.raises(ValueError, match="header says"):
        D.read_idx(tmp_path / "b.gz")
    with gzip.open(tmp_path / "c.gz", "wb") as f:
        f.write(b"\x1f\x8b" + arr.tobytes())
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(tmp_path / "c.gz")


@needs_shared
def test_canonical_test_split(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SHARED / name, folder / name)
    x, y = D.load_mnist_split("test", data_dir=tmp_path, download=False)
    assert x.shape == (10000, 784) and y.shape == (10000,)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() == 1
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_shared
def test_corrupted_copy_is_rejected(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    shutil.copy(SHARED / "t10k-labels-idx1-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    D.fetch_mnist_file("t10k-labels-idx1-ubyte.gz", data_dir=tmp_path, download=False)  # intact: fine
    path = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        D.fetch_mnist_file("t10k-labels-idx1-ubyte.gz", data_dir=tmp_path, download=False)


@needs_shared
def test_hashes_agree_with_published_sums():
    sums = dict(line.split()[::-1] for line in (SHARED / "SHA256SUMS").read_text().splitlines() if line)
    for name, digest in sums.items():
        assert D.MNIST_FILES[name] == f"sha256:{digest}"


def test_load_activations_from_tensor_npy_and_pt(tmp_path):
    x = np.random.default_rng(0).normal(size=(7, 5))
    np.save(tmp_path / "a.npy", x)
    torch.save(torch.from_numpy(x), tmp_path / "a.pt")
    for source in (x, torch.from_numpy(x), tmp_path / "a.npy", str(tmp_path / "a.pt")):
        out = D.load_activations(source)
        assert out.dtype == torch.float32 and torch.allclose(out, torch.from_numpy(x).float())
    with pytest.raises(FileNotFoundError, match="absent.npy"):
        D.load_activations(tmp_path / "absent.npy")
    (tmp_path / "a.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=".npy or .pt"):
        D.load_activations(tmp_path / "a.csv")
    with pytest.raises(ValueError, match="NaN"):
        D.load_activations(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        D.load_activations(np.ones(3))
