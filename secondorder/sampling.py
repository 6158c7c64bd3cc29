"""Mini-batch sampling with a checkpointable state (exact resume)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class EpochSampler:
    """Draws mini-batches without replacement from a reshuffled permutation of the training set.

    When fewer than ``batch_size`` cases remain in the current epoch, a new permutation starts (the tail is
    skipped, so every batch has exactly ``batch_size`` cases); a batch as large as the training set is the
    whole set. ``examples_seen`` counts cases handed out. The permutation comes from a private CPU
    generator seeded at construction, so the sequence of batches depends only on the seed, and
    :meth:`state_dict` captures everything needed to continue it exactly.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, seed: int) -> None:
        self.inputs, self.targets = inputs, targets
        self.n = int(inputs.shape[0])
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(self.n, generator=self.generator)
        self.position = 0
        self.epochs_started = 1
        self.examples_seen = 0

    def indices(self, batch_size: int) -> Tensor:
        if batch_size >= self.n:
            self.examples_seen += self.n
            return torch.arange(self.n)
        if self.position + batch_size > self.n:
            self.permutation = torch.randperm(self.n, generator=self.generator)
            self.position = 0
            self.epochs_started += 1
        index = self.permutation[self.position : self.position + batch_size]
        self.position += batch_size
        self.examples_seen += batch_size
        return index

    def next(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The next (inputs, targets) mini-batch, on the data's device."""
        if batch_size >= self.n:
            self.indices(batch_size)
            return self.inputs, self.targets
        index = self.indices(batch_size).to(self.inputs.device)
        return self.inputs[index], self.targets[index]

    @property
    def epochs(self) -> float:
        """Training-set passes so far, as examples seen / training-set size."""
        return self.examples_seen / self.n

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "permutation": self.permutation.clone(),
            "position": self.position,
            "epochs_started": self.epochs_started,
            "examples_seen": self.examples_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.permutation = state["permutation"].clone()
        self.position = state["position"]
        self.epochs_started = state["epochs_started"]
        self.examples_seen = state["examples_seen"]
