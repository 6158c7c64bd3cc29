"""Matching loss / output-nonlinearity pairs (thesis §4.4.2, Table 4.1; seed000 report §3.8).

The network returns pre-activations z; the loss owns the output nonlinearity ŷ = f(z). With a *matching*
pair the loss is convex in z, its Hessian H_L with respect to z does not depend on the target, and the
generalised Gauss-Newton matrix G = Jᵀ H_L J equals the Fisher of the predictive distribution p(y | z).
Every second-order method in this package uses the three operations here:

==================  =============  ===================================  ==================  ===============
name                ŷ              L(y, z) per case                      H_L                 p(y | z)
==================  =============  ===================================  ==================  ===============
``squared_error``   z              ½‖z − y‖²                             I                   N(z, I)
``sigmoid_bce``     σ(z)           Σᵢ softplus(zᵢ) − yᵢ zᵢ               diag(ŷ ⊙ (1 − ŷ))   Bernoulli(ŷ)
``softmax_ce``      softmax(z)     logsumexp(z) − Σᵢ yᵢ zᵢ               diag(ŷ) − ŷ ŷᵀ      Categorical(ŷ)
==================  =============  ===================================  ==================  ===============

Conventions: the per-case loss is *summed* over output dimensions and the objective is its *mean* over the
cases of a batch, so the curvature of the objective is (1/B) Σ_b J_bᵀ H_L(z_b) J_b. Squared error carries
the ½ (so H_L = I and the Gaussian has unit variance); the reported reconstruction *error* of the
autoencoder papers is a separate metric without the ½ (see :mod:`secondorder.metrics`). The
cross-entropies accept soft targets in [0, 1] (image pixels, probability vectors); ``softmax_ce`` also
accepts integer class labels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from secondorder.errors import ConfigError


class MatchingLoss(ABC):
    """A loss L(y, z) paired with the output nonlinearity that makes it convex in z."""

    name: str

    @abstractmethod
    def per_case(self, z: Tensor, y: Tensor) -> Tensor:
        """Loss of each case, summed over output dimensions: shape (B,)."""

    def __call__(self, z: Tensor, y: Tensor) -> Tensor:
        """The objective's data term: mean over cases of :meth:`per_case`."""
        return self.per_case(z, y).mean()

    @abstractmethod
    def predict(self, z: Tensor) -> Tensor:
        """The prediction ŷ = f(z) (mean of the predictive distribution)."""

    @abstractmethod
    def output_hessian_vector(self, z: Tensor, v: Tensor) -> Tensor:
        """H_L(z_b) v_b for every case b, in closed form; z and v have shape (B, d)."""

    @abstractmethod
    def output_hessian(self, z: Tensor) -> Tensor:
        """Dense per-case H_L(z_b), shape (B, d, d): for tests and small output layers."""

    @abstractmethod
    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Targets drawn from the predictive distribution p(y | z) (one per case); no gradient flows."""

    def mean_output_hessian(self, z: Tensor) -> Tensor:
        """(1/B) Σ_b H_L(z_b), (d, d) — KFRA's top factor; subclasses avoid the B dense matrices."""
        return self.output_hessian(z).mean(dim=0)

    @abstractmethod
    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor) -> Tensor:
        """S(z_b)ᵀ v_b per case, for a factor S with SᵀS = H_L (thesis Alg. 6; seed000 report §3.10)."""


class SquaredError(MatchingLoss):
    """½‖z − y‖² with identity output; H_L = I; predictive N(z, I)."""

    name = "squared_error"

    def per_case(self, z: Tensor, y: Tensor) -> Tensor:
        return 0.5 * (z - y).pow(2).flatten(1).sum(dim=1)

    def predict(self, z: Tensor) -> Tensor:
        return z

    def output_hessian_vector(self, z: Tensor, v: Tensor) -> Tensor:
        return v

    def output_hessian(self, z: Tensor) -> Tensor:
        eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        return eye.expand(z.shape[0], -1, -1).clone()

    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        return z.detach() + noise

    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor) -> Tensor:
        return v

    def mean_output_hessian(self, z: Tensor) -> Tensor:
        return torch.eye(z.shape[1], dtype=z.dtype, device=z.device)


class SigmoidBCE(MatchingLoss):
    """Binary cross-entropy of logistic outputs, written stably as softplus(z) − y z."""

    name = "sigmoid_bce"

    def per_case(self, z: Tensor, y: Tensor) -> Tensor:
        return (F.softplus(z) - y * z).flatten(1).sum(dim=1)

    def predict(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    def output_hessian_vector(self, z: Tensor, v: Tensor) -> Tensor:
        p = torch.sigmoid(z)
        return p * (1 - p) * v

    def output_hessian(self, z: Tensor) -> Tensor:
        p = torch.sigmoid(z)
        return torch.diag_embed(p * (1 - p))

    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.bernoulli(torch.sigmoid(z.detach()), generator=generator)

    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor) -> Tensor:
        p = torch.sigmoid(z)
        return torch.sqrt(p * (1 - p)) * v

    def mean_output_hessian(self, z: Tensor) -> Tensor:
        p = torch.sigmoid(z)
        return torch.diag((p * (1 - p)).mean(dim=0))


class SoftmaxCE(MatchingLoss):
    """Multi-class cross-entropy of softmax outputs; targets are class indices or probability rows."""

    name = "softmax_ce"

    def per_case(self, z: Tensor, y: Tensor) -> Tensor:
        if y.dtype in (torch.int64, torch.int32):
            return F.cross_entropy(z, y.long(), reduction="none")
        return torch.logsumexp(z, dim=1) - (y * z).sum(dim=1)

    def predict(self, z: Tensor) -> Tensor:
        return torch.softmax(z, dim=1)

    def output_hessian_vector(self, z: Tensor, v: Tensor) -> Tensor:
        p = torch.softmax(z, dim=1)
        return p * v - p * (p * v).sum(dim=1, keepdim=True)

    def output_hessian(self, z: Tensor) -> Tensor:
        p = torch.softmax(z, dim=1)
        return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]

    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = torch.softmax(z.detach(), dim=1)
        return torch.multinomial(p, 1, generator=generator).squeeze(1)

    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor) -> Tensor:
        """S = diag(√p) − √p pᵀ satisfies SᵀS = diag(p) − ppᵀ (using Σp = 1); returns Sᵀv."""
        p = torch.softmax(z, dim=1)
        root = torch.sqrt(p)
        return root * v - p * (root * v).sum(dim=1, keepdim=True)

    def mean_output_hessian(self, z: Tensor) -> Tensor:
        p = torch.softmax(z, dim=1)
        return torch.diag(p.mean(dim=0)) - p.T @ p / z.shape[0]


LOSSES: dict[str, type[MatchingLoss]] = {
    cls.name: cls for cls in (SquaredError, SigmoidBCE, SoftmaxCE)
}


def get_loss(name: str) -> MatchingLoss:
    try:
        return LOSSES[name]()
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(sorted(LOSSES))}") from None
