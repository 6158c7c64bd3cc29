"""Autoencoder architecture (Table 4.2 parameter counts) and initialisation schemes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from secondorder.models import AutoencoderConfig, InitConfig, build_model
from secondorder.models.autoencoder import DeepAutoencoder, mirrored_dims


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
