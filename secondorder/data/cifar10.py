"""CIFAR-10 (Krizhevsky 2009): 50 000 / 10 000 colour images, 32×32×3, 10 classes, pixels / 255 ∈ [0, 1].

Read from the official "python version" under ``${data_dir}/cifar-10-batches-py/`` (``data_batch_1`` …
``data_batch_5``, ``test_batch``: pickled dicts with ``data`` — N × 3072 uint8, channel-major rows — and
``labels``). ``dataset.download=true`` (or ``make data``) fetches and unpacks the archive with torchvision
where a network exists; loading never needs torchvision's checksums, so any file in the real format works.

``dataset.shape``: ``flat`` — N × 3072 vectors (the MLP benchmark of George's thesis
§4.3); ``image`` — N × 3 × 32 × 32 for convolutional models. ``dataset.standardize`` subtracts the
training-set per-channel mean and divides by its standard deviation (off by default; George's thesis is
silent).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from secondorder.data.splits import DataSplits
from secondorder.errors import DataError
from secondorder.validation import Check, one_of, positive

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


@dataclass
class Cifar10Config:
    name: str = "cifar10"
    download: bool = False
    shape: str = "flat"
    standardize: bool = False
    loss: str = "softmax_ce"
    metric: str = "classification_error"
    batch_size: int = 200

    def check(self) -> list[Check]:
        return [one_of(self, "shape", ["flat", "image"]), *positive(self, "batch_size")]


def read_batches(folder: Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate CIFAR python batches: (N, 3, 32, 32) uint8 images and (N,) int64 labels."""
    images, labels = [], []
    for name in names:
        path = folder / name
        if not path.exists():
            raise DataError(
                f"CIFAR-10 file {path} not found; run `make data` or add dataset.download=true where a network "
                f"exists (or unpack {URL} into {folder.parent})"
            )
        try:
            with path.open("rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            label = np.asarray(batch[b"labels"], dtype=np.int64)
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
            raise DataError(f"{path} is not a CIFAR-10 python batch ({exc!r})") from None
        images.append(torch.from_numpy(data))
        labels.append(torch.from_numpy(label))
    return torch.cat(images), torch.cat(labels)


def load_cifar10(cfg: Cifar10Config, data_dir: Path) -> DataSplits:
    folder = data_dir / FOLDER
    if cfg.download and not all((folder / n).exists() for n in TRAIN_FILES + TEST_FILES):
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(URL, str(data_dir))
        except OSError as exc:
            raise DataError(f"downloading CIFAR-10 failed ({exc}); fetch {URL} elsewhere into {data_dir}") from None
    x_train, y_train = read_batches(folder, TRAIN_FILES)
    x_test, y_test = read_batches(folder, TEST_FILES)
    x_train, x_test = x_train.float() / 255.0, x_test.float() / 255.0
    if cfg.standardize:
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
        std = x_train.std(dim=(0, 2, 3), keepdim=True)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if cfg.shape == "flat":
        x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    return DataSplits("cifar10", x_train, y_train, x_test, y_test, source=str(folder), label="CIFAR-10",
                      stand_in=False, num_classes=10)
