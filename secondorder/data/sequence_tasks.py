"""Dataset configs for generated sequence tasks: the RNN pathological problems and the DNC copy task.

``dataset=pathological dataset.task=addition dataset.T=100`` — one of the long-term-dependency problems of
Martens & Sutskever (2011) / Hochreiter & Schmidhuber (1997) (thesis §4.13; definitions and every choice in
:mod:`secondorder.data.pathological`). Training draws fresh sequences at every call (thesis §4.13); the test
set is 10 000 fixed sequences from an independent seed. ``dataset=dnc_copy`` — the repeated-copy task of the
K-FAC-RNN paper's DNC experiment (total length 22; Martens, Ba & Johnson 2018, §4.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from secondorder.data.pathological import TASKS, make_task
from secondorder.data.sequences import GeneratedSequences
from secondorder.validation import Check, one_of, positive


@dataclass
class PathologicalConfig:
    name: str = "pathological"
    task: str = "addition"
    T: int = 100
    n_test: int = 10000
    test_seed: int = 12345
    batch_size: int = 1000

    def check(self) -> list[Check]:
        return [one_of(self, "task", TASKS), *positive(self, "T", "n_test", "batch_size")]


@dataclass
class DncCopyConfig(PathologicalConfig):
    name: str = "dnc_copy"
    task: str = "dnc_copy"
    T: int = 22
    batch_size: int = 32


def load_sequence_task(cfg: PathologicalConfig, data_dir: Path) -> GeneratedSequences:
    task = make_task(cfg.task, cfg.T)
    test = task.generate(cfg.n_test, torch.Generator().manual_seed(cfg.test_seed))
    return GeneratedSequences(
        name=cfg.name, task=task, test=test,
        source=f"generated ({cfg.task}, T={cfg.T}; test seed {cfg.test_seed})",
        label=f"{cfg.task} (T={cfg.T}, generated)",
    )
