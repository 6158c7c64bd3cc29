"""How typical the FACES stand-in's test set is, for each split (issue: stand-in data that behave like the
originals): the error of the mean training face and of the best k-component linear code (PCA fitted on the
training cases), on the training and the test cases, per-case sums of squared pixel errors (float64).

    python scripts/faces_split_statistics.py            # both splits, 414 variants per face (28 980 / 12 420)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from secondorder.data import load_dataset
from secondorder.data.faces import FacesLfwConfig


def split_statistics(train: torch.Tensor, test: torch.Tensor, components: tuple[int, ...] = (30, 100),
                     fit_cases: int = 20000) -> dict[str, tuple[float, float]]:
    """{"mean": (train, test), "pca<k>": (train, test)}: mean error of each linear reconstruction."""
    train, test = train.double(), test.double()
    mean = train.mean(dim=0)

    def error(x: torch.Tensor, basis: torch.Tensor | None) -> float:
        centred = x - mean
        residual = centred if basis is None else centred - centred @ basis @ basis.T
        return float(residual.square().sum(dim=1).mean())

    _, _, right = torch.linalg.svd(train[:fit_cases] - mean, full_matrices=False)
    out = {"mean": (error(train, None), error(test, None))}
    for k in components:
        out[f"pca{k}"] = (error(train, right[:k].T), error(test, right[:k].T))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="cache folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for split in ("stratified", "first"):
            data = load_dataset(FacesLfwConfig(split=split), args.data_dir or Path(scratch))
            stats = split_statistics(data.train_inputs, data.test_inputs)
            print(f"split={split} ({data.n_train} / {data.n_test} cases): " + "; ".join(
                f"{name} {train:.2f} / {test:.2f}" for name, (train, test) in stats.items()) + "  (train / test)")


if __name__ == "__main__":
    main()
