"""Writers of tiny dataset files in the real on-disk formats (MNIST IDX, CIFAR-10 python batches)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """The MNIST IDX format: magic (0, 0, 0x08 = ubyte, ndim), big-endian int32 sizes, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())



def write_mnist(data_dir: Path, rng: np.random.Generator, n_train: int = 30, n_test: int = 12) -> dict[str, np.ndarray]:
    raw = data_dir / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, array in arrays.items():
        write_idx(raw / name, array)
    return arrays


def write_cifar(folder: Path, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True)
    written = {}
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 3)]:
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        written[name] = (data, labels)
    return written
