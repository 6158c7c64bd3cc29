"""Closed-form layered GGN products (curvature/layered.py) against the dense J^T H J in float64, and HF's choice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secondorder.curvature import GGNOperator, ParamSpace
from secondorder.curvature.layered import LayeredGaussNewton, layered_modules, supports_layered
from secondorder.data.splits import DataSplits
from secondorder.errors import ConfigError
from secondorder.losses import get_loss
from secondorder.metrics import get_metric
from secondorder.models.autoencoder import DeepAutoencoder
from secondorder.optim.base import StepCosts
from secondorder.optim.hf import HessianFree, HFConfig
from secondorder.problems import ObjectiveConfig, SupervisedProblem
from tests.oracles import dense_ggn, flat_parameters, lstm_problem, mlp_problem, rnn_problem

pytestmark = pytest.mark.usefixtures("float64")

F64 = torch.float64


def autoencoder_problem(hidden: str, code: str, loss: str, l2: float = 0.0, normalization: str = "none"):
    """A 5-4-2 autoencoder (mirrored: 5-4-2-4-5) with N(0, 1) weights on 7 random cases."""
    g = torch.Generator().manual_seed(1)
    model = DeepAutoencoder([5, 4, 2], hidden, code, normalization).to(F64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
    x = torch.rand(7, 5, generator=g, dtype=F64) if loss == "sigmoid_bce" else torch.randn(7, 5, generator=g,
                                                                                               dtype=F64)
    data = DataSplits("toy", x, x, x, x, "toy", "toy", True, None)
    problem = SupervisedProblem(model, get_loss(loss), data, get_metric("reconstruction_sse"),
                                ObjectiveConfig(l2=l2))
    return problem, (x, x)


CASES = [("sigmoid", "linear", "sigmoid_bce"), ("tanh", "tanh", "squared_error"), ("relu", "sigmoid", "squared_error"),
         ("sigmoid", "linear", "squared_error")]


@pytest.mark.parametrize(("hidden", "code", "loss"), CASES)
def test_layered_product_equals_the_dense_ggn_of_an_autoencoder(hidden: str, code: str, loss: str) -> None:
    problem, batch = autoencoder_problem(hidden, code, loss, l2=1e-3)
    assert supports_layered(problem)
    G = dense_ggn(problem, batch) + 1e-3 * torch.eye(ParamSpace.of(problem.model).numel, dtype=F64)
    v = torch.randn(G.shape[0], generator=torch.Generator().manual_seed(3), dtype=F64)
    op = LayeredGaussNewton(problem, batch)
    torch.testing.assert_close(op.mv(v), G @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["squared_error", "sigmoid_bce", "softmax_ce"])
def test_layered_product_equals_the_cached_linearisation_at_other_parameters(loss: str) -> None:
    problem, batch = mlp_problem(loss, l2=1e-2, l2_biases=False)
    space, theta = flat_parameters(problem)
    params = space.unflatten(theta + 0.3)  # not the model's own parameters
    v = torch.randn(space.numel, generator=torch.Generator().manual_seed(4), dtype=F64)
    expected = GGNOperator(problem, batch, params, mode="jvp").mv(v)
    torch.testing.assert_close(LayeredGaussNewton(problem, batch, params).mv(v), expected, rtol=1e-10, atol=1e-12)
    out = LayeredGaussNewton(problem, batch, params, include_l2=False).mv(v)
    torch.testing.assert_close(out, GGNOperator(problem, batch, params, mode="jvp", include_l2=False).mv(v),
                               rtol=1e-10, atol=1e-12)


def test_only_plain_layered_nets_of_supervised_problems_take_the_closed_form() -> None:
    assert layered_modules(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1))) is not None
    assert layered_modules(nn.Sequential(nn.Linear(2, 2), nn.Softplus(), nn.Linear(2, 1))) is None
    assert layered_modules(nn.Linear(2, 2)) is None
    normalised, _ = autoencoder_problem("sigmoid", "linear", "sigmoid_bce", normalization="batch_norm")
    assert not supports_layered(normalised)
    assert not supports_layered(rnn_problem()[0])
    assert not supports_layered(lstm_problem()[0])
    with pytest.raises(TypeError, match="GGNOperator"):
        LayeredGaussNewton(*rnn_problem())


def test_hf_takes_the_layered_products_on_autoencoders_and_refuses_them_elsewhere() -> None:
    problem, _ = autoencoder_problem("sigmoid", "linear", "sigmoid_bce")
    assert HessianFree(problem, HFConfig())._mode() == "layered"
    assert HessianFree(problem, HFConfig(curvature="hessian"))._mode() == "linearize"
    assert HessianFree(rnn_problem()[0], HFConfig())._mode() == "bptt"
    with pytest.raises(ConfigError, match="curvature_mode=layered"):
        HessianFree(rnn_problem()[0], HFConfig(curvature_mode="layered"))


def test_structural_damping_on_a_feed_forward_net_is_refused_in_one_line() -> None:
    problem, batch = autoencoder_problem("sigmoid", "linear", "sigmoid_bce")
    hf = HessianFree(problem, HFConfig(structural_damping=0.1))
    space = ParamSpace.of(problem.model)
    with pytest.raises(ConfigError, match="structural damping needs a recurrent model"):
        hf._operator(batch, space.unflatten(torch.zeros(space.numel, dtype=F64)), StepCosts())
