"""Datasets: one module per dataset, and the registry that maps ``dataset.name`` to it.

A loader takes its validated config dataclass and the data directory and returns
:class:`~secondorder.data.splits.DataSplits`; it knows nothing of models or optimisers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secondorder.data.curves import CurvesConfig, load_curves
from secondorder.data.splits import DataSplits


@dataclass(frozen=True)
class DatasetEntry:
    config: type
    load: Callable[[Any, Path], DataSplits]


DATASETS: dict[str, DatasetEntry] = {
    "curves": DatasetEntry(CurvesConfig, load_curves),
}


def load_dataset(cfg: Any, data_dir: Path) -> DataSplits:
    return DATASETS[cfg.name].load(cfg, data_dir)


__all__ = ["DATASETS", "DataSplits", "load_dataset"]
