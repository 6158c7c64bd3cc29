"""Autoencoder architecture (Table 4.2 parameter counts) and initialisation schemes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from secondorder.models import AutoencoderConfig, InitConfig, build_model
from secondorder.models.autoencoder import DeepAutoencoder, mirrored_dims
from secondorder.models.normalization import MeanOnlyBatchNorm, uses_batch_statistics


@pytest.mark.parametrize(
    ("encoder_dims", "count"),
    [
        ([784, 400, 200, 100, 50, 25, 6], 842_340),   # CURVES
        ([784, 1000, 500, 250, 30], 2_837_314),       # MNIST
        ([625, 2000, 1000, 500, 30], 7_537_655),      # FACES
    ],
)
def test_parameter_counts_match_the_papers(encoder_dims: list[int], count: int) -> None:
    model = DeepAutoencoder(encoder_dims)
    assert sum(p.numel() for p in model.parameters()) == count


def test_mirrored_decoder_and_unit_types() -> None:
    assert mirrored_dims([784, 400, 6]) == [784, 400, 6, 400, 784]
    model = DeepAutoencoder([784, 400, 200, 6])
    kinds = [type(m).__name__ for m in model]
    # Linear maps 784→400→200→6→200→400→784; logistic hidden units, linear code, no output nonlinearity.
    assert kinds == ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear", "Identity",
                     "Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]
    shapes = [tuple(m.weight.shape) for m in model if isinstance(m, nn.Linear)]
    assert shapes == [(400, 784), (200, 400), (6, 200), (200, 6), (400, 200), (784, 400)]


def test_returns_pre_activations() -> None:
    model = build_model(AutoencoderConfig(encoder_dims=[784, 30, 6]), seed=0)
    out = model(torch.rand(8, 784))
    assert out.shape == (8, 784) and (out < 0).any() and (out > 1).any()


def test_sparse_init_has_at_most_15_incoming_weights_and_zero_biases() -> None:
    model = build_model(AutoencoderConfig(encoder_dims=[784, 400, 200, 6]), seed=3)
    for layer in (m for m in model if isinstance(m, nn.Linear)):
        nonzero = (layer.weight != 0).sum(dim=1)
        fan_in = layer.weight.shape[1]
        assert int(nonzero.max()) <= min(15, fan_in)
        assert int(nonzero.min()) >= 1
        assert torch.all(layer.bias == 0)
    # with replacement: on a wide layer the mean count is a little under 15, never above
    first = next(m for m in model if isinstance(m, nn.Linear))
    assert 14.0 < float((first.weight != 0).sum(dim=1).double().mean()) <= 15.0


def test_sparse_init_values_are_standard_normal() -> None:
    model = build_model(AutoencoderConfig(encoder_dims=[784, 1000, 6]), seed=0)
    weights = model[0].weight[model[0].weight != 0]
    weights = weights.detach()
    assert abs(float(weights.mean())) < 0.03
    assert abs(float(weights.std()) - 1.0) < 0.03


def test_initialisation_is_deterministic_in_the_seed() -> None:
    cfg = AutoencoderConfig(encoder_dims=[784, 50, 6])
    a, b, c = (build_model(cfg, seed=s).state_dict() for s in (7, 7, 8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"], c["0.weight"])


@pytest.mark.parametrize("scheme", ["glorot", "he"])
def test_dense_schemes_have_their_variance(scheme: str) -> None:
    cfg = AutoencoderConfig(encoder_dims=[500, 400, 6], init=InitConfig(scheme=scheme, scale=2.0))
    weight = build_model(cfg, seed=0)[0].weight.detach()
    fan_out, fan_in = weight.shape
    expected = 2.0 * (math.sqrt(2.0 / (fan_in + fan_out)) if scheme == "glorot" else math.sqrt(2.0 / fan_in))
    assert abs(float(weight.std()) / expected - 1.0) < 0.02
    if scheme == "glorot":
        assert float(weight.abs().max()) <= 2.0 * math.sqrt(6.0 / (fan_in + fan_out))


def test_batch_norm_autoencoder_normalises_every_hidden_layer_but_not_the_output() -> None:
    """Training mode: each hidden pre-activation a becomes (a − μ) / √(σ² + 1e-5) (at γ = 1, β = 0); the
    normalised layers lose their redundant bias, the output layer keeps its own; evaluation uses running averages."""
    torch.manual_seed(0)
    model = DeepAutoencoder([12, 7, 3], normalization="batch_norm").double()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [m.bias is None for m in linears] == [True, True, True, False]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model) == 3
    x = torch.randn(64, 12, dtype=torch.float64) * 3 + 1
    seen = []
    handles = [m.register_forward_hook(lambda mod, i, o: seen.append((i[0], o)))
               for m in model if isinstance(m, nn.BatchNorm1d)]
    model(x)
    assert len(seen) == 3
    for a, out in seen:
        expected = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + 1e-5)
        torch.testing.assert_close(out, expected)
    for h in handles:
        h.remove()
    model.eval()
    single = model(x[:1])  # running statistics: one case alone is not normalised to zero
    assert torch.isfinite(single).all()
    torch.testing.assert_close(model(x[:1]), model(x[:2])[:1])  # no dependence on the rest of the batch


def test_mean_only_batch_norm_centres_without_scaling_and_its_gradient_is_centred() -> None:
    """Salimans & Kingma (2016) §3.1: â = a − μ + β; ∂L/∂a = (I − 11ᵀ/n) ∂L/∂â (autograd against the closed form);
    the running mean moves by momentum 0.1 towards the batch mean; evaluation subtracts the running mean."""
    layer = MeanOnlyBatchNorm(4).double()
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
    a = (torch.randn(10, 4, dtype=torch.float64) * 2 + 3).requires_grad_()
    out = layer(a)
    torch.testing.assert_close(out, a - a.mean(0) + layer.bias)
    upstream = torch.randn(10, 4, dtype=torch.float64)
    (grad,) = torch.autograd.grad(out, a, upstream)
    torch.testing.assert_close(grad, upstream - upstream.mean(0))
    torch.testing.assert_close(layer.running_mean, 0.1 * a.detach().mean(0))
    layer.eval()
    torch.testing.assert_close(layer(a), a - 0.1 * a.detach().mean(0) + layer.bias)


def test_normalised_autoencoder_from_the_config() -> None:
    cfg = AutoencoderConfig(encoder_dims=[784, 32, 8], normalization="mean_only_batch_norm")
    model = build_model(cfg, seed=0)
    assert sum(isinstance(m, MeanOnlyBatchNorm) for m in model) == 3
    plain = build_model(AutoencoderConfig(encoder_dims=[784, 8]), seed=0)
    assert uses_batch_statistics(model) and not uses_batch_statistics(plain)
    assert any("normalization" in str(c) for c in AutoencoderConfig(normalization="layer_norm").check()
               if not c[1])
