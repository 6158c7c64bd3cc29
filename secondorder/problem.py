"""The workload every optimiser trains: model, matching loss, data, ℓ2 prior and error metric.

Objective (thesis Ch. 2; seed000 report §1): h(θ) = (1/B) Σ_b L(y_b, f(x_b; θ)) + (η/2)‖θ‖², where the sum
is over a batch, L is the matching loss and η = ``objective.l2`` is the papers' "ℓ2 prior" (Table 4.3's
starred rows: 1e-4 on MNIST*, 1e-2 on FACES*). The thesis does not say whether biases are included;
Martens' code includes them (seed000 report §5, §10), which is our default (``objective.l2_biases``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from secondorder.data.splits import DataSplits
from secondorder.losses import MatchingLoss
from secondorder.validation import Check, non_negative


@dataclass
class ObjectiveConfig:
    l2: float = 0.0
    l2_biases: bool = True

    def check(self) -> list[Check]:
        return list(non_negative(self, "l2"))


class Problem:
    """A model, its loss and data, and the objective h(θ) that optimisers minimise."""

    def __init__(
        self,
        model: nn.Module,
        loss: MatchingLoss,
        data: DataSplits,
        metric: Callable[[Tensor, Tensor], Tensor],
        objective: ObjectiveConfig,
    ) -> None:
        self.model = model
        self.loss = loss
        self.data = data
        self.metric = metric
        self.l2 = objective.l2
        self.l2_parameters = [
            p for name, p in model.named_parameters() if objective.l2_biases or not name.endswith("bias")
        ]

    def l2_penalty(self) -> Tensor:
        """(η/2) Σ ‖θ‖² over the penalised parameters (zero tensor when η = 0)."""
        if self.l2 == 0.0:
            return torch.zeros((), device=self.l2_parameters[0].device, dtype=self.l2_parameters[0].dtype)
        return 0.5 * self.l2 * sum(p.pow(2).sum() for p in self.l2_parameters)

    def objective(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """h(θ) on one batch: mean matching loss plus the ℓ2 prior."""
        return self.loss(self.model(inputs), targets) + self.l2_penalty()

    @torch.no_grad()
    def evaluate(self, inputs: Tensor, targets: Tensor, batch_size: int) -> dict[str, float]:
        """The paper's error metric and the mean loss over a whole split, in chunks of ``batch_size``."""
        was_training = self.model.training
        self.model.eval()
        error_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=inputs.device)
        for start in range(0, inputs.shape[0], batch_size):
            x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
            z = self.model(x)
            error_sum += self.metric(self.loss.predict(z), y).sum(dtype=torch.float64)
            loss_sum += self.loss.per_case(z, y).sum(dtype=torch.float64)
        self.model.train(was_training)
        n = inputs.shape[0]
        return {"error": float(error_sum) / n, "loss": float(loss_sum) / n}
