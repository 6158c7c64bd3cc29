"""Datasets: one module per dataset, and the registry that maps ``dataset.name`` to it.

A loader takes its validated config dataclass and the data directory and returns fixed tensors
(:class:`~secondorder.data.splits.DataSplits`), a token corpus (:class:`~secondorder.data.sequences.TokenCorpus`)
or a generated sequence task (:class:`~secondorder.data.sequences.GeneratedSequences`); it knows nothing of
models or optimisers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secondorder.data.cifar10 import Cifar10Config, load_cifar10
from secondorder.data.curves import CurvesConfig, load_curves
from secondorder.data.faces import FacesConfig, FacesLfwConfig, load_faces
from secondorder.data.mnist import (
    Mnist5kClassConfig,
    Mnist5kConfig,
    Mnist5kParityConfig,
    MnistClassConfig,
    MnistConfig,
    MnistParityConfig,
    load_mnist,
)
from secondorder.data.pathological import TASKS as PATHOLOGICAL_TASKS
from secondorder.data.ptb import PtbCharConfig, PtbConfig, load_ptb
from secondorder.data.sequence_tasks import DncCopyConfig, PathologicalConfig, load_sequence_task
from secondorder.data.sequences import GeneratedSequences, SequenceBatch, TokenCorpus
from secondorder.data.splits import DataSplits


@dataclass(frozen=True)
class DatasetEntry:
    config: type
    load: Callable[[Any, Path], DataSplits | TokenCorpus | GeneratedSequences]


DATASETS: dict[str, DatasetEntry] = {
    "curves": DatasetEntry(CurvesConfig, load_curves),
    "mnist": DatasetEntry(MnistConfig, load_mnist),
    "mnist_class": DatasetEntry(MnistClassConfig, load_mnist),
    "mnist_5k": DatasetEntry(Mnist5kConfig, load_mnist),
    "mnist_5k_class": DatasetEntry(Mnist5kClassConfig, load_mnist),
    "mnist_parity": DatasetEntry(MnistParityConfig, load_mnist),
    "mnist_5k_parity": DatasetEntry(Mnist5kParityConfig, load_mnist),
    "faces": DatasetEntry(FacesConfig, load_faces),
    "faces_lfw": DatasetEntry(FacesLfwConfig, load_faces),
    "cifar10": DatasetEntry(Cifar10Config, load_cifar10),
    "ptb_word": DatasetEntry(PtbConfig, load_ptb),
    "ptb_char": DatasetEntry(PtbCharConfig, load_ptb),
    "pathological": DatasetEntry(PathologicalConfig, load_sequence_task),
    "dnc_copy": DatasetEntry(DncCopyConfig, load_sequence_task),
    # dataset=addition etc.: one config per pathological problem (conf/dataset/<task>.yaml)
    **{task: DatasetEntry(PathologicalConfig, load_sequence_task) for task in PATHOLOGICAL_TASKS
       if task != "dnc_copy"},
}


def load_dataset(cfg: Any, data_dir: Path) -> DataSplits | TokenCorpus | GeneratedSequences:
    return DATASETS[cfg.name].load(cfg, data_dir)


__all__ = ["DATASETS", "DataSplits", "GeneratedSequences", "SequenceBatch", "TokenCorpus", "load_dataset"]
