"""Greedy RBM pre-training of a deep autoencoder, then unrolling (Hinton & Salakhutdinov 2006; thesis §4.12's
"PT" columns of Table 4.3). Facts from H&S's released MATLAB code (``rbm.m``, ``rbmhidlinear.m``,
``mnistdeepauto.m``, ``backprop.m``) and their Science paper; our own implementation.

The encoder dims d₀-d₁-…-d_K give K RBMs, trained bottom-up on mini-batches of 100 with CD-1:

* hidden layers: binary-binary RBMs; learning rate 0.1 for weights and both biases (``rbm.m``);
* the code layer (top RBM): linear hidden units with unit-variance Gaussian noise, learning rate 0.001
  (``rbmhidlinear.m``);
* real-valued data (FACES, squared error): the bottom RBM has Gaussian visible units of unit variance
  (negative-phase visibles = W h + b, no logistic) [H&S SOM; rate 0.001 as for linear units: our choice];
* weight cost 2e-4 on the weights, momentum 0.5 for the first 5 epochs then 0.9, initial weights N(0, 0.1²),
  biases 0; 50 epochs per layer ("In the Science paper we use maxepoch=50");
* CD-1 as in the code: positive statistics with hidden probabilities, sampled binary (or noisy linear) hidden
  states drive a mean-field reconstruction of the visibles, whose hidden probabilities give the negative
  statistics. Each next RBM trains on the previous one's hidden probabilities (its "batchposhidprobs").

Unrolling (``backprop.m``): encoder layer k gets (Wₖ, hidden biases), the mirrored decoder layer gets (Wₖᵀ,
visible biases), so the unrolled net computes the stack's deterministic mean-field up-down pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from secondorder.validation import Check, non_negative, positive

log = logging.getLogger(__name__)


@dataclass
class RBMConfig:
    name: str = "rbm"
    epochs: int = 50
    batch_size: int = 100
    lr_binary: float = 0.1
    lr_linear: float = 0.001
    weight_cost: float = 0.0002
    initial_momentum: float = 0.5
    final_momentum: float = 0.9
    momentum_switch_epoch: int = 5
    init_std: float = 0.1
    max_cases: int | None = None
    layer_epochs: list[int] = field(default_factory=list)

    def check(self) -> list[Check]:
        return [*positive(self, "epochs", "batch_size", "lr_binary", "lr_linear", "init_std"),
                *non_negative(self, "weight_cost", "initial_momentum", "final_momentum", "momentum_switch_epoch"),
                *positive(self, "max_cases", allow_none=True)]


@dataclass
class NoPretrainConfig:
    name: str = "none"


class RBM:
    """One RBM with visible units ``visible`` ("binary" or "gaussian") and hidden ``hidden`` ("binary"/"linear")."""

    def __init__(self, n_visible: int, n_hidden: int, visible: str, hidden: str, cfg: RBMConfig,
                 generator: torch.Generator, device: torch.device, dtype: torch.dtype) -> None:
        self.visible, self.hidden, self.cfg = visible, hidden, cfg
        self.generator = generator
        self.W = (cfg.init_std * torch.randn(n_visible, n_hidden, generator=generator)).to(device, dtype)
        self.b_visible = torch.zeros(n_visible, device=device, dtype=dtype)
        self.b_hidden = torch.zeros(n_hidden, device=device, dtype=dtype)
        self.lr = cfg.lr_linear if hidden == "linear" or visible == "gaussian" else cfg.lr_binary
        self.velocity = [torch.zeros_like(t) for t in (self.W, self.b_visible, self.b_hidden)]

    def hidden_mean(self, v: Tensor) -> Tensor:
        pre = v @ self.W + self.b_hidden
        return pre if self.hidden == "linear" else torch.sigmoid(pre)

    def visible_mean(self, h: Tensor) -> Tensor:
        pre = h @ self.W.T + self.b_visible
        return pre if self.visible == "gaussian" else torch.sigmoid(pre)

    def sample_hidden(self, mean: Tensor) -> Tensor:
        noise = torch.rand(mean.shape, generator=self.generator).to(mean) if self.hidden == "binary" else \
            torch.randn(mean.shape, generator=self.generator).to(mean)
        return (mean > noise).to(mean.dtype) if self.hidden == "binary" else mean + noise

    def cd1(self, v: Tensor, momentum: float) -> float:
        """One CD-1 update on a mini-batch; returns Σ squared reconstruction error (as the code prints)."""
        n = v.shape[0]
        h_pos = self.hidden_mean(v)
        v_neg = self.visible_mean(self.sample_hidden(h_pos))
        h_neg = self.hidden_mean(v_neg)
        grad_W = (v.T @ h_pos - v_neg.T @ h_neg) / n - self.cfg.weight_cost * self.W
        grad_bv = (v - v_neg).mean(dim=0)
        grad_bh = (h_pos - h_neg).mean(dim=0)
        for velocity, param, grad in zip(self.velocity, (self.W, self.b_visible, self.b_hidden),
                                         (grad_W, grad_bv, grad_bh), strict=True):
            velocity.mul_(momentum).add_(grad, alpha=self.lr)
            param.add_(velocity)
        return float((v - v_neg).pow(2).sum())


def _epochs_for(cfg: RBMConfig, layer: int) -> int:
    return cfg.layer_epochs[layer] if layer < len(cfg.layer_epochs) else cfg.epochs


@torch.no_grad()
def pretrain_autoencoder(model: nn.Module, inputs: Tensor, cfg: RBMConfig, gaussian_visible: bool,
                         seed: int) -> dict[str, Any]:
    """Train the RBM stack on ``inputs`` (cases × d₀) and write it into the autoencoder ``model`` in place.

    Returns per-layer final reconstruction errors and the seconds spent (counted in the run's wall time).
    """
    start = time.perf_counter()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    n_layers = len(linears) // 2
    generator = torch.Generator().manual_seed(seed)
    data = inputs if cfg.max_cases is None else inputs[: cfg.max_cases]
    history: list[float] = []
    rbms: list[RBM] = []
    for k in range(n_layers):
        encoder = linears[k]
        visible = "gaussian" if (k == 0 and gaussian_visible) else "binary"
        hidden = "linear" if k == n_layers - 1 else "binary"
        rbm = RBM(encoder.in_features, encoder.out_features, visible, hidden, cfg, generator, data.device,
                  data.dtype)
        order = torch.randperm(data.shape[0], generator=generator).to(data.device)  # fixed batches (makebatches)
        log.info("pre-training RBM %d of %d (%d → %d, %s visible, %d epochs)", k + 1, n_layers,
                 encoder.in_features, encoder.out_features, visible, _epochs_for(cfg, k))
        for epoch in range(1, _epochs_for(cfg, k) + 1):
            momentum = cfg.final_momentum if epoch > cfg.momentum_switch_epoch else cfg.initial_momentum
            error = 0.0
            for s in range(0, data.shape[0] - cfg.batch_size + 1, cfg.batch_size):
                error += rbm.cd1(data[order[s : s + cfg.batch_size]], momentum)
            history.append(error / data.shape[0])
        rbms.append(rbm)
        data = rbm.hidden_mean(data)  # the next RBM's data: this one's hidden probabilities
    unroll(linears, rbms)
    return {"pretrain_time_s": time.perf_counter() - start, "rbm_layers": n_layers,
            "rbm_reconstruction_error": history}


@torch.no_grad()
def unroll(linears: list[nn.Linear], rbms: list[RBM]) -> None:
    """Encoder k ← (Wₖᵀ as out×in, hidden biases); mirrored decoder ← (Wₖ, visible biases)."""
    n = len(rbms)
    for k, rbm in enumerate(rbms):
        encoder, decoder = linears[k], linears[2 * n - 1 - k]
        encoder.weight.copy_(rbm.W.T)
        encoder.bias.copy_(rbm.b_hidden)
        decoder.weight.copy_(rbm.W)
        decoder.bias.copy_(rbm.b_visible)
