"""The container every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DataSplits:
    """Train and test tensors plus where they came from.

    ``label`` is the human-readable provenance that every output (run summary, tables, plots) carries;
    ``stand_in`` is True when the data are a re-creation or a subset rather than the paper's dataset.
    For autoencoders the targets are the inputs themselves (the same tensor, not a copy); for classifiers they
    are int64 labels and ``num_classes`` is set.
    """

    name: str
    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    source: str
    label: str
    stand_in: bool
    num_classes: int | None = None

    @property
    def n_train(self) -> int:
        return int(self.train_inputs.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.test_inputs.shape[0])

    def to(self, device: torch.device, dtype: torch.dtype) -> DataSplits:
        """Move to ``device``; floating tensors take ``dtype``. Shared input/target tensors stay shared."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)

        train_inputs, test_inputs = move(self.train_inputs), move(self.test_inputs)
        train_targets = train_inputs if self.train_targets is self.train_inputs else move(self.train_targets)
        test_targets = test_inputs if self.test_targets is self.test_inputs else move(self.test_targets)
        return DataSplits(
            self.name, train_inputs, train_targets, test_inputs, test_targets,
            self.source, self.label, self.stand_in, self.num_classes,
        )

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "label": self.label,
            "source": self.source,
            "stand_in": self.stand_in,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "num_classes": self.num_classes,
        }
