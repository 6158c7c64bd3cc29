"""Shared pieces of the image datasets: the autoencoder / classification views and their config fields."""

from __future__ import annotations

import torch

from secondorder.data.splits import DataSplits
from secondorder.errors import ConfigError

TASKS = ("autoencoder", "classification", "parity")


def make_splits(
    name: str,
    task: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    source: str,
    label: str,
    stand_in: bool,
    num_classes: int | None,
) -> DataSplits:
    """Inputs (float, cases × features) with labels → the requested view.

    ``autoencoder``: targets are the inputs. ``classification``: targets are the int64 labels. ``parity``: float
    targets y = label mod 2 (1 = odd digit; the KFRA paper's odd/even task, §5.2, leaves the coding open [choice]).
    """
    (x_train, y_train), (x_test, y_test) = train, test
    if task == "autoencoder":
        return DataSplits(name, x_train, x_train, x_test, x_test, source, label, stand_in)
    if task == "parity":
        if y_train is None:
            raise ConfigError(f"dataset.task=parity: {name} has no labels")
        return DataSplits(name, x_train, (y_train % 2).float(), x_test, (y_test % 2).float(), source, label,
                          stand_in)
    if task == "classification":
        if y_train is None or num_classes is None:
            raise ConfigError(f"dataset.task=classification: {name} has no labels")
        return DataSplits(name, x_train, y_train.long(), x_test, y_test.long(), source, label, stand_in,
                          num_classes)
    raise ConfigError(f"dataset.task={task!r}: must be one of {', '.join(TASKS)}")
