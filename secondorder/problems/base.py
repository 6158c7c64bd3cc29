"""The workload every optimiser trains: model, matching loss, data, ℓ2 prior and evaluation.

Objective (thesis §2.3): h(θ) = (1/N) Σ_n L(y_n, z_n) + (η/2)‖θ‖², where the z_n are the
network's outputs at the scored positions of a batch (one per case for feed-forward nets, the masked time
steps of sequences), L is the matching loss and N is the number of *cases* the batch stands for — cases for
feed-forward nets and sequence tasks (so a sequence's loss is summed over its scored steps), tokens for
language models (the per-token loss of the LM literature). η = ``objective.l2`` is the papers' "ℓ2 prior"
(Table 4.3's starred rows: 1e-4 on MNIST*, 1e-2 on FACES*); the thesis does not say whether biases are
included — Martens' released HF code includes them, our default (``objective.l2_biases``).

Second-order methods use :meth:`Problem.outputs` with an explicit parameter dict (``torch.func``) to form
curvature products: G = (1/N) Σ_n J_nᵀ H_L(z_n) J_n.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from secondorder.distributed import Ranks
from secondorder.errors import ConfigError
from secondorder.losses import MatchingLoss
from secondorder.problems.samplers import Sampler, ShardedSampler
from secondorder.validation import Check, non_negative


@dataclass
class ObjectiveConfig:
    l2: float = 0.0
    l2_biases: bool = True

    def check(self) -> list[Check]:
        return list(non_negative(self, "l2"))


class Problem(ABC):
    """A model, its loss and data, and the objective h(θ) that optimisers minimise."""

    #: evaluation columns beyond train_error / test_error / train_loss / test_loss
    extra_eval_columns: tuple[str, ...] = ()

    def __init__(self, model: nn.Module, loss: MatchingLoss, objective: ObjectiveConfig) -> None:
        self.model = model
        self.loss = loss
        self.l2 = objective.l2
        penalised = [(n, p) for n, p in model.named_parameters() if objective.l2_biases or not n.endswith("bias")]
        self.l2_parameters = [p for _, p in penalised]
        self.l2_names = frozenset(n for n, _ in penalised)

    # ------------------------------------------------------------------ the objective
    @abstractmethod
    def outputs(self, batch: Any, params: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """(z, y): outputs at the scored positions, (n, d), and their targets; ``params`` for functional calls."""

    @abstractmethod
    def cases(self, batch: Any) -> int:
        """N, the number of cases the batch's summed loss is divided by."""

    def data_loss(self, batch: Any, params: dict[str, Tensor] | None = None) -> Tensor:
        z, y = self.outputs(batch, params)
        return self.loss.per_case(z, y).sum() / self.cases(batch)

    def l2_penalty(self) -> Tensor:
        """(η/2) Σ ‖θ‖² over the penalised parameters (zero tensor when η = 0)."""
        first = self.l2_parameters[0]
        if self.l2 == 0.0:
            return torch.zeros((), device=first.device, dtype=first.dtype)
        return 0.5 * self.l2 * sum(p.pow(2).sum() for p in self.l2_parameters)

    def objective(self, batch: Any) -> Tensor:
        """h(θ) on one batch: data loss plus the ℓ2 prior."""
        return self.data_loss(batch) + self.l2_penalty()

    def l2_penalty_at(self, params: dict[str, Tensor]) -> Tensor:
        """The ℓ2 prior at an explicit parameter dict (for functional evaluations)."""
        total = sum(params[n].pow(2).sum() for n in self.l2_names)
        return 0.5 * self.l2 * total if self.l2 else torch.zeros_like(total)

    def objective_at(self, batch: Any, params: dict[str, Tensor]) -> Tensor:
        """h at an explicit parameter dict, without touching the model's own parameters."""
        return self.data_loss(batch, params) + self.l2_penalty_at(params)

    # ------------------------------------------------------------------ cases (per-case curvature)
    def case_slices(self, batch: Any) -> tuple[Tensor, ...]:
        """Tensors with a leading case dimension from which :meth:`case_outputs` rebuilds one case."""
        raise ConfigError(f"{type(self).__name__} has no per-case decomposition (needed by diagonal "
                          "preconditioners); use optimizer.preconditioner=none")

    def case_outputs(self, params: dict[str, Tensor], *case: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(z (n, d), targets (n, …), mask (n,)) for one case: its outputs, as a batch of one."""
        raise ConfigError(f"{type(self).__name__} has no per-case decomposition")

    def subset(self, batch: Any, index: Tensor) -> Any:
        """The cases ``index`` of a batch (e.g. HF's curvature chunk of its gradient batch)."""
        raise ConfigError(f"{type(self).__name__} cannot take subsets of a batch")

    def structural_outputs(self, batch: Any, params: dict[str, Tensor]) -> tuple[Tensor, MatchingLoss]:
        """Hidden quantities c (n, m) and the matching loss d for structural damping (thesis §4.6.4)."""
        raise ConfigError(f"structural damping needs a recurrent model; {type(self.model).__name__} has none")

    def call_model(self, params: dict[str, Tensor] | None, *args: Any) -> Any:
        """The model at its own parameters, or at ``params`` through ``torch.func.functional_call``."""
        if params is None:
            return self.model(*args)
        return torch.func.functional_call(self.model, params, args)

    # ------------------------------------------------------------------ data and evaluation
    @abstractmethod
    def make_sampler(self, seed: int) -> Sampler:
        """The training-batch source (checkpointable)."""

    def shard_sampler(self, sampler: Sampler, ranks: Ranks) -> Sampler:
        """Rank ``ranks.rank``'s share of every batch ``sampler`` draws, in a data-parallel run: the strided cases
        r, r + R, … of the union batch (:class:`~secondorder.problems.samplers.ShardedSampler`), cut out by
        :meth:`subset`. Refused in one line where batches do not split into cases."""
        if type(self).subset is Problem.subset:
            raise ConfigError(f"{type(self).__name__}: its batches do not split into cases, so it does not run "
                              "data-parallel; launch it as one process or pass trainer.distributed=off")
        return ShardedSampler(sampler, self.subset, ranks, self.cases)

    @abstractmethod
    def evaluate(self, batch_size: int) -> dict[str, float]:
        """train_error, test_error, train_loss, test_loss (+ ``extra_eval_columns``) on the evaluation sets."""

    @abstractmethod
    def describe_data(self) -> dict[str, object]:
        """Provenance of the data for summaries: name, label, source, stand_in, sizes."""

    @property
    @abstractmethod
    def data_label(self) -> str: ...

    def check_compatible(self) -> None:
        """Raise :class:`~secondorder.errors.ConfigError` when the model cannot consume the data.

        The default accepts: builders of sequence models already read their sizes from the data.
        """
        return None
