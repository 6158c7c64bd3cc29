"""Matching losses against autograd (float64) and the predictive distributions they sample from."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from secondorder.errors import ConfigError
from secondorder.losses import LOSSES, SigmoidBCE, SoftmaxCE, SquaredError, get_loss

MATCHING = sorted(name for name, cls in LOSSES.items() if not cls.needs_targets)  # mixture: test_mixture_loss.py


pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def _targets(name: str, z: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    if name == "softmax_ce":
        return torch.softmax(torch.randn(z.shape, generator=g), dim=1)
    if name == "sigmoid_bce":
        return torch.rand(z.shape, generator=g)
    return torch.randn(z.shape, generator=g)


@pytest.mark.parametrize("name", MATCHING)
def test_output_hessian_matches_autograd(name: str) -> None:
    loss = get_loss(name)
    g = torch.Generator().manual_seed(0)
    z = 2 * torch.randn(3, 5, generator=g)
    y = _targets(name, z, g)
    for b in range(z.shape[0]):
        dense = torch.func.hessian(lambda zb, b=b: loss.per_case(zb[None], y[b : b + 1]).sum())(z[b])
        torch.testing.assert_close(loss.output_hessian(z)[b], dense, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", MATCHING)
def test_hessian_vector_matches_dense_hessian(name: str) -> None:
    loss = get_loss(name)
    g = torch.Generator().manual_seed(1)
    z, v = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    expected = torch.einsum("bij,bj->bi", loss.output_hessian(z), v)
    torch.testing.assert_close(loss.output_hessian_vector(z, v), expected)


@pytest.mark.parametrize("name", MATCHING)
def test_gradient_is_prediction_minus_target(name: str) -> None:
    """Thesis Table 4.1: ∇_z L = ŷ − y for every matching pair."""
    loss = get_loss(name)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(4, 3, generator=g, requires_grad=True)
    y = _targets(name, z.detach(), g)
    (grad,) = torch.autograd.grad(loss.per_case(z, y).sum(), z)
    torch.testing.assert_close(grad, loss.predict(z.detach()) - y)


def test_values_match_torch_reference_losses() -> None:
    g = torch.Generator().manual_seed(3)
    z, y01 = torch.randn(5, 7, generator=g), torch.rand(5, 7, generator=g)
    labels = torch.tensor([0, 6, 3, 3, 1])
    torch.testing.assert_close(
        SigmoidBCE().per_case(z, y01),
        F.binary_cross_entropy_with_logits(z, y01, reduction="none").sum(1),
    )
    torch.testing.assert_close(SoftmaxCE().per_case(z, labels), F.cross_entropy(z, labels, reduction="none"))
    torch.testing.assert_close(
        SoftmaxCE().per_case(z, F.one_hot(labels, 7).double()), F.cross_entropy(z, labels, reduction="none")
    )
    torch.testing.assert_close(SquaredError().per_case(z, y01), 0.5 * ((z - y01) ** 2).sum(1))
    torch.testing.assert_close(SquaredError()(z, y01), 0.5 * ((z - y01) ** 2).sum(1).mean())


def test_bce_is_stable_for_large_logits() -> None:
    z = torch.tensor([[800.0, -800.0]])
    value = SigmoidBCE().per_case(z, torch.tensor([[1.0, 0.0]]))
    assert torch.isfinite(value).all() and value.item() < 1e-12


@pytest.mark.parametrize("name", MATCHING)
def test_sampled_targets_have_the_predictive_mean(name: str) -> None:
    """Mean of many sampled targets → ŷ (the mean of p(y|z)); a sampler from the wrong distribution fails."""
    loss = get_loss(name)
    g = torch.Generator().manual_seed(4)
    z = torch.randn(1, 4, generator=g).expand(40_000, 4)
    samples = loss.sample_targets(z, torch.Generator().manual_seed(5))
    if name == "softmax_ce":
        assert samples.dtype == torch.int64 and samples.shape == (40_000,)
        samples = F.one_hot(samples, 4).double()
    torch.testing.assert_close(samples.mean(0), loss.predict(z[:1])[0], atol=0.015, rtol=0)


def test_squared_error_samples_have_unit_variance() -> None:
    """N(z, I): the variance matches H_L = I (the GGN is the Fisher)."""
    z = torch.zeros(50_000, 2)
    samples = SquaredError().sample_targets(z, torch.Generator().manual_seed(6))
    torch.testing.assert_close(samples.var(0), torch.ones(2), atol=0.03, rtol=0)


def test_unknown_loss_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="available: mixture_binary, sigmoid_bce, softmax_ce, squared_error"):
        get_loss("hinge")


@pytest.mark.parametrize("name", MATCHING)
def test_mean_output_hessian_and_square_root(name: str) -> None:
    loss = get_loss(name)
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(loss.mean_output_hessian(z), loss.output_hessian(z).mean(0))
    eye = torch.eye(4).expand(6, 4, 4)
    S_t = torch.stack([loss.output_hessian_sqrt_t_vector(z, eye[:, :, k]) for k in range(4)], dim=-1)  # Sᵀ
    torch.testing.assert_close(S_t @ S_t.transpose(1, 2), loss.output_hessian(z))  # SᵀS = H_L
