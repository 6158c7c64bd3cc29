"""Matching loss / output-nonlinearity pairs (thesis §4.4.2, Table 4.1).

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

One *non-matching* loss is here for the KFRA paper's odd/even experiment (Botev et al. 2017 §5.2, eq. 27):
``mixture_binary``, a mixture of two binary classifiers whose Hessian H_L(z, y) depends on the target and can be
indefinite. Its curvature methods therefore take the targets ``y`` (``needs_targets``) and return the
Gauss–Newton output matrix with each case's H_L projected onto the PSD cone (the paper is silent; our recorded
choice), while :meth:`MatchingLoss.sample_targets` still gives K-FAC its Fisher, E_{y~p}[H_L(z, y)] ≠ H_L(z, y_data).
The matching losses ignore ``y``.
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
    needs_targets: bool = False  # True where the output curvature depends on y (non-matching losses)

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
    def output_hessian_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        """H_L(z_b) v_b for every case b, in closed form; z and v have shape (B, d)."""

    @abstractmethod
    def output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Dense per-case H_L(z_b), shape (B, d, d): for tests and small output layers."""

    @abstractmethod
    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Targets drawn from the predictive distribution p(y | z) (one per case); no gradient flows."""

    def output_shape(self, target_shape: torch.Size) -> tuple[int, ...]:
        """The network output shape these float targets need (the same shape for the matching losses)."""
        return tuple(target_shape)

    def mean_output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(1/B) Σ_b H_L(z_b), (d, d) — KFRA's top factor; subclasses avoid the B dense matrices."""
        return self.output_hessian(z, y).mean(dim=0)

    @abstractmethod
    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        """S(z_b)ᵀ v_b per case, for a factor S with SᵀS = H_L (thesis Alg. 6, §4.9.4)."""


class SquaredError(MatchingLoss):
    """½‖z − y‖² with identity output; H_L = I; predictive N(z, I)."""

    name = "squared_error"

    def per_case(self, z: Tensor, y: Tensor) -> Tensor:
        return 0.5 * (z - y).pow(2).flatten(1).sum(dim=1)

    def predict(self, z: Tensor) -> Tensor:
        return z

    def output_hessian_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        return v

    def output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        return eye.expand(z.shape[0], -1, -1).clone()

    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        return z.detach() + noise

    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        return v

    def mean_output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return torch.eye(z.shape[1], dtype=z.dtype, device=z.device)


class SigmoidBCE(MatchingLoss):
    """Binary cross-entropy of logistic outputs, written stably as softplus(z) − y z."""

    name = "sigmoid_bce"

    def per_case(self, z: Tensor, y: Tensor) -> Tensor:
        return (F.softplus(z) - y * z).flatten(1).sum(dim=1)

    def predict(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    def output_hessian_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        p = torch.sigmoid(z)
        return p * (1 - p) * v

    def output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        p = torch.sigmoid(z)
        return torch.diag_embed(p * (1 - p))

    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.bernoulli(torch.sigmoid(z.detach()), generator=generator)

    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        p = torch.sigmoid(z)
        return torch.sqrt(p * (1 - p)) * v

    def mean_output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
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

    def output_hessian_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        p = torch.softmax(z, dim=1)
        return p * v - p * (p * v).sum(dim=1, keepdim=True)

    def output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        p = torch.softmax(z, dim=1)
        return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]

    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = torch.softmax(z.detach(), dim=1)
        return torch.multinomial(p, 1, generator=generator).squeeze(1)

    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        """S = diag(√p) − √p pᵀ satisfies SᵀS = diag(p) − ppᵀ (using Σp = 1); returns Sᵀv."""
        p = torch.softmax(z, dim=1)
        root = torch.sqrt(p)
        return root * v - p * (root * v).sum(dim=1, keepdim=True)

    def mean_output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        p = torch.softmax(z, dim=1)
        return torch.diag(p.mean(dim=0)) - p.T @ p / z.shape[0]


class MixtureOfBinaryClassifiers(MatchingLoss):
    """Botev et al. 2017 eq. 27 (§5.2): three outputs z = (h₁, h₂, h₃), y ∈ {0, 1},

        p(y | z) = σ(h₁) σ(h₂)^y σ(−h₂)^{1−y} + (1 − σ(h₁)) σ(h₃)^y σ(−h₃)^{1−y},   L = −log p(y | z),

    evaluated as −logaddexp(log σ(h₁) + log q₂, log σ(−h₁) + log q₃) with log qₖ = y log σ(hₖ) + (1−y) log σ(−hₖ).
    Not a matching loss: H_L = ∂²L/∂z² depends on y and can be indefinite. The curvature methods return the
    PSD part H_L⁺ = V max(Λ, 0) Vᵀ of each case's 3×3 Hessian (the paper is silent; [choice]), with
    the factor S = max(Λ, 0)^{1/2} Vᵀ (SᵀS = H_L⁺). ``y`` is a float tensor of shape (B,).
    """

    name = "mixture_binary"
    needs_targets = True

    @staticmethod
    def _log_p(z: Tensor, y: Tensor) -> Tensor:
        y = y.reshape(-1).to(z.dtype)
        log_sig, log_sig_neg = F.logsigmoid(z), F.logsigmoid(-z)
        log_q = y[:, None] * log_sig[:, 1:] + (1 - y[:, None]) * log_sig_neg[:, 1:]
        return torch.logaddexp(log_sig[:, 0] + log_q[:, 0], log_sig_neg[:, 0] + log_q[:, 1])

    def per_case(self, z: Tensor, y: Tensor) -> Tensor:
        return -self._log_p(z, y)

    def output_shape(self, target_shape: torch.Size) -> tuple[int, ...]:
        return (*target_shape, 3)

    def predict(self, z: Tensor) -> Tensor:
        """p(y = 1 | z), shape (B,)."""
        s = torch.sigmoid(z)
        return s[:, 0] * s[:, 1] + (1 - s[:, 0]) * s[:, 2]

    def sample_targets(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.bernoulli(self.predict(z.detach()), generator=generator)

    def exact_output_hessian(self, z: Tensor, y: Tensor) -> Tensor:
        """The (possibly indefinite) per-case Hessian ∂²L/∂z², (B, 3, 3), by automatic differentiation."""
        def case(zb: Tensor, yb: Tensor) -> Tensor:
            return -self._log_p(zb[None], yb[None])[0]

        y = y.reshape(-1).to(z.dtype)
        return torch.func.vmap(torch.func.hessian(case))(z.detach(), y)

    def _psd_parts(self, z: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
        if y is None:
            raise ConfigError("loss mixture_binary: its Gauss-Newton output curvature needs the targets y")
        eigenvalues, vectors = torch.linalg.eigh(self.exact_output_hessian(z, y))
        return eigenvalues.clamp(min=0.0), vectors

    def output_hessian(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        lam, vec = self._psd_parts(z, y)
        return (vec * lam[:, None, :]) @ vec.transpose(1, 2)

    def output_hessian_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        return (self.output_hessian(z, y) @ v[:, :, None])[:, :, 0]

    def output_hessian_sqrt_t_vector(self, z: Tensor, v: Tensor, y: Tensor | None = None) -> Tensor:
        lam, vec = self._psd_parts(z, y)
        return (vec @ (lam.sqrt() * v)[:, :, None])[:, :, 0]


LOSSES: dict[str, type[MatchingLoss]] = {
    cls.name: cls for cls in (SquaredError, SigmoidBCE, SoftmaxCE, MixtureOfBinaryClassifiers)
}


def get_loss(name: str) -> MatchingLoss:
    try:
        return LOSSES[name]()
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(sorted(LOSSES))}") from None
