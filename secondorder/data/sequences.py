"""Containers for sequence data: batches of sequences, token corpora and generated sequence tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from secondorder.data.pathological import SequenceTask


@dataclass
class SequenceBatch:
    """A batch of sequences, batch-first.

    ``inputs``: (B, T, d_in) float, or (B, T) int64 token ids. ``targets``: (B, T) int64 class indices, or
    (B, T, d_out) float. ``mask``: (B, T) bool — the steps whose outputs count in the loss and the error.
    ``state``: the recurrent state to start from (truncated BPTT carries it across consecutive windows);
    ``None`` means zeros. ``final_state``: set by the problem's forward pass at the model's own parameters —
    the state the next window starts from (detached). ``complete``: the batch is a task's whole, finite set of
    distinct sequences, each once (5-bit memorisation's 32; thesis §4.13 uses all of them for the gradient and
    for the curvature alike).
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    state: Any = None
    final_state: Any = None
    complete: bool = False

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> SequenceBatch:
        """The same batch on ``device``; floating tensors take ``dtype`` when given."""

        def move(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else t.dtype)

        return SequenceBatch(move(self.inputs), move(self.targets), self.mask.to(device), self.state,
                             complete=self.complete)


@dataclass
class TokenCorpus:
    """A tokenised language-modelling corpus: train / valid / test streams of token ids and the vocabulary."""

    name: str
    train: Tensor
    valid: Tensor
    test: Tensor
    vocabulary: list[str]
    level: str
    source: str
    label: str
    stand_in: bool = False

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name, "label": self.label, "source": self.source, "stand_in": self.stand_in,
            "level": self.level, "vocab_size": self.vocab_size,
            "tokens": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
        }


@dataclass
class GeneratedSequences:
    """A generated sequence task: fresh training sequences on demand and a fixed test set."""

    name: str
    task: SequenceTask
    test: SequenceBatch
    source: str
    label: str
    stand_in: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name, "label": self.label, "source": self.source, "stand_in": self.stand_in,
            "task": self.task.name, "T": self.task.T, "n_test": int(self.test.inputs.shape[0]),
            "sequence_length": int(self.test.inputs.shape[1]),
        }
