"""Batch normalisation of hidden pre-activations: the baselines of George (2017), Figures 6.1 and 6.2.

For a layer's pre-activations a = W h over a mini-batch of n cases, with batch mean μ = (1/n) Σᵢ aᵢ and biased
variance σ² = (1/n) Σᵢ (aᵢ − μ)²:

* **batch norm** (Ioffe & Szegedy 2015): â = γ ⊙ (a − μ) / √(σ² + ε) + β — ``nn.BatchNorm1d``;
* **mean-only batch norm** (Salimans & Kingma 2016, §3.1): â = a − μ + β, centring without scaling.

Training uses the batch's statistics; evaluation uses running averages, μ̂ ← (1 − m) μ̂ + m μ with momentum
m = 0.1 (PyTorch's default; George is silent). Both make the layer's own bias redundant (it cancels in a − μ), so a
normalised layer is built without one and β takes its place. [choice] Salimans & Kingma pair mean-only batch norm
with weight normalisation; George names only "mean-only batch norm" (§6.6.1), so none is applied here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NORMALIZATIONS = ("none", "batch_norm", "mean_only_batch_norm")


class MeanOnlyBatchNorm(nn.Module):
    """â = a − μ_batch + β in training, â = a − μ̂ + β in evaluation (Salimans & Kingma 2016, §3.1)."""

    def __init__(self, features: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))

    def forward(self, a: Tensor) -> Tensor:
        if self.training:
            mean = a.mean(dim=0)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
        else:
            mean = self.running_mean
        return a - mean + self.bias


def normalization_layer(kind: str, features: int) -> nn.Module:
    """The module for ``kind`` (one of :data:`NORMALIZATIONS` but ``none``) over ``features`` units."""
    if kind == "batch_norm":
        return nn.BatchNorm1d(features)
    if kind == "mean_only_batch_norm":
        return MeanOnlyBatchNorm(features)
    raise ValueError(f"no normalisation layer for {kind!r}")


def uses_batch_statistics(model: nn.Module) -> bool:
    """Whether the model's output for a case depends on the other cases of its batch (in training mode)."""
    return any(isinstance(m, (nn.modules.batchnorm._BatchNorm, MeanOnlyBatchNorm)) for m in model.modules())
