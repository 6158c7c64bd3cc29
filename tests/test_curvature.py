"""Curvature products against dense autograd oracles in float64 on tiny nets (thesis §4.5.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secondorder.curvature import (
    FisherOperator,
    GGNOperator,
    HessianOperator,
    ParamSpace,
    StructuralDampingTerm,
    detached_params,
    empirical_fisher_diagonal,
    ggn_diagonal_estimate,
)
from secondorder.curvature.diagonal import linear_layers_used_once
from secondorder.curvature.products import MODES
from secondorder.curvature.recurrent import RecurrentGaussNewton, supports_bptt
from secondorder.data.splits import DataSplits
from secondorder.losses import get_loss
from secondorder.metrics import get_metric
from secondorder.problems import ObjectiveConfig, SupervisedProblem
from tests.oracles import (
    dense_empirical_fisher,
    dense_ggn,
    dense_hessian,
    finite_difference_jacobian,
    flat_parameters,
    gauss_newton,
    lstm_problem,
    mlp_problem,
    rnn_problem,
)

pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def random_vector(problem, seed: int = 5) -> torch.Tensor:
    return torch.randn(ParamSpace.of(problem.model).numel, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("loss", ["squared_error", "sigmoid_bce", "softmax_ce"])
@pytest.mark.parametrize("mode", MODES)
def test_ggn_vector_product_equals_dense_jt_h_j(loss: str, mode: str) -> None:
    problem, batch = mlp_problem(loss)
    G = dense_ggn(problem, batch)
    v = random_vector(problem)
    torch.testing.assert_close(GGNOperator(problem, batch, mode=mode).mv(v), G @ v)


def test_ggn_on_an_rnn_through_time() -> None:
    problem, batch = rnn_problem()
    G = dense_ggn(problem, batch)
    v = random_vector(problem)
    torch.testing.assert_close(GGNOperator(problem, batch).mv(v), G @ v)
    assert torch.linalg.eigvalsh(G).min() > -1e-10  # PSD


def test_ggn_on_the_lstm_language_model() -> None:
    problem, batch = lstm_problem()
    v = random_vector(problem)
    torch.testing.assert_close(GGNOperator(problem, batch).mv(v), dense_ggn(problem, batch) @ v)


def test_jacobian_vector_product_matches_central_differences() -> None:
    """Thesis §4.5.1 item 1: J w ≈ (f(θ+εw) − f(θ−εw)) / 2ε, ε = 1e-4, relative error ≈ 1e-6 in float64."""
    problem, batch = mlp_problem("sigmoid_bce")
    space, flat = flat_parameters(problem)
    w = random_vector(problem)
    op = GGNOperator(problem, batch)
    jw = op.lin.jvp(space.unflatten(w))
    eps = 1e-4
    plus = problem.outputs(batch, space.unflatten(flat + eps * w))[0]
    minus = problem.outputs(batch, space.unflatten(flat - eps * w))[0]
    fd = (plus - minus) / (2 * eps)
    assert float((jw - fd).norm() / jw.norm()) < 1e-6


def test_full_ggn_matches_finite_difference_columns() -> None:
    """Thesis §4.5.1 item 4: G e_j against a G built from finite-difference Jacobian columns."""
    problem, batch = mlp_problem("softmax_ce")
    space, flat = flat_parameters(problem)
    J = finite_difference_jacobian(lambda f: problem.outputs(batch, space.unflatten(f))[0], flat, eps=1e-5)
    z = problem.outputs(batch, space.unflatten(flat))[0]
    G_fd = gauss_newton(J, problem.loss.output_hessian(z), problem.cases(batch))
    op = GGNOperator(problem, batch)
    G = torch.stack([op.mv(torch.eye(space.numel)[j]) for j in range(space.numel)], dim=1)
    assert float((G - G_fd).norm() / G.norm()) < 1e-8


def test_hessian_vector_product_equals_torch_func_hessian() -> None:
    problem, batch = mlp_problem("sigmoid_bce", l2=0.3)
    H = dense_hessian(problem, batch)
    v = random_vector(problem)
    torch.testing.assert_close(HessianOperator(problem, batch).mv(v), H @ v)
    assert torch.linalg.eigvalsh(H).min() < -1e-6  # a nonlinear net: the Hessian is indefinite, G is not


def test_ggn_equals_hessian_for_a_linear_model_with_a_matching_loss() -> None:
    """No second-order term of f, so H = G exactly (thesis §3.4)."""
    g = torch.Generator().manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3)).double()
    x, y = torch.randn(7, 4, generator=g), torch.randint(0, 3, (7,), generator=g)
    data = DataSplits("toy", x, y, x, y, "t", "t", True, 3)
    problem = SupervisedProblem(model, get_loss("softmax_ce"), data, get_metric("classification_error"),
                                ObjectiveConfig(l2=0.1))
    v = random_vector(problem)
    torch.testing.assert_close(GGNOperator(problem, (x, y)).mv(v), HessianOperator(problem, (x, y)).mv(v))


def test_l2_prior_adds_eta_on_penalised_parameters_only() -> None:
    problem, batch = mlp_problem("squared_error", l2=0.5, l2_biases=False)
    bare, _ = mlp_problem("squared_error")
    v = random_vector(problem)
    diff = problem.space if hasattr(problem, "space") else ParamSpace.of(problem.model)
    delta = diff.unflatten(GGNOperator(problem, batch).mv(v) - GGNOperator(bare, batch).mv(v))
    vd = diff.unflatten(v)
    for name in delta:
        expected = 0.5 * vd[name] if not name.endswith("bias") else torch.zeros_like(vd[name])
        torch.testing.assert_close(delta[name], expected)


def test_fisher_expectation_is_the_ggn_for_matching_losses() -> None:
    problem, batch = mlp_problem("softmax_ce", n=4)
    v = random_vector(problem)
    exact = GGNOperator(problem, batch).mv(v)
    estimate = FisherOperator(problem, batch, samples=20_000, generator=torch.Generator().manual_seed(0)).mv(v)
    assert float((estimate - exact).norm() / exact.norm()) < 0.03


def test_empirical_fisher_product_and_diagonal_from_per_case_gradients() -> None:
    problem, batch = mlp_problem("sigmoid_bce", n=5)
    space = ParamSpace.of(problem.model)
    F = dense_empirical_fisher(problem, batch)
    v = random_vector(problem)
    torch.testing.assert_close(FisherOperator(problem, batch, targets="empirical").mv(v), F @ v)
    torch.testing.assert_close(space.flatten(empirical_fisher_diagonal(problem, batch, chunk=2)), torch.diag(F))


def test_empirical_fisher_diagonal_on_sequences() -> None:
    problem, batch = rnn_problem()
    space = ParamSpace.of(problem.model)
    expected = torch.diag(dense_empirical_fisher(problem, batch))
    torch.testing.assert_close(space.flatten(empirical_fisher_diagonal(problem, batch)), expected)


@pytest.mark.parametrize("loss", ["squared_error", "sigmoid_bce", "softmax_ce"])
def test_ggn_diagonal_estimator_is_unbiased(loss: str) -> None:
    """Thesis Alg. 6 (with the proof's transpose): E[sq(Jᵀ Sᵀ v)] = diag(G)."""
    problem, batch = mlp_problem(loss, n=3)
    G = dense_ggn(problem, batch)
    estimate = ParamSpace.of(problem.model).flatten(
        ggn_diagonal_estimate(problem, batch, samples=4000, generator=torch.Generator().manual_seed(0)))
    assert float((estimate - torch.diag(G)).norm() / torch.diag(G).norm()) < 0.05


def test_structural_damping_term_is_the_ggn_of_the_hidden_units() -> None:
    problem, batch = rnn_problem()
    space, flat = flat_parameters(problem)

    def hidden(f):
        return problem.structural_outputs(batch, space.unflatten(f))[0]

    c, distance = problem.structural_outputs(batch, space.unflatten(flat))
    J = torch.func.jacrev(hidden)(flat)
    D = gauss_newton(J, distance.output_hessian(c), problem.cases(batch))  # (1/N) Σ J_cᵀ H_d J_c, N = 3
    v = random_vector(problem)
    torch.testing.assert_close(StructuralDampingTerm(problem, batch, weight=0.5).mv(v), 0.5 * D @ v)


RNN_CASES = [("temporal_order_2bit", "sigmoid"), ("addition", "tanh"), ("memorization_5bit", "tanh"),
             ("xor", "sigmoid")]


@pytest.mark.parametrize(("task", "activation"), RNN_CASES)
def test_closed_form_rnn_products_equal_the_dense_ggn_and_structural_term(task: str, activation: str) -> None:
    """BPTT R-pass products (curvature/recurrent.py) against the dense (1/N) Jᵀ H J of the outputs and of the
    hidden units, with an ℓ2 prior, on tanh and logistic nets and masked (addition) and dense-output tasks."""
    problem, batch = rnn_problem(task, activation, T=10, l2=0.3)
    space, flat = flat_parameters(problem)

    def hidden(f):
        return problem.structural_outputs(batch, space.unflatten(f))[0]

    c, distance = problem.structural_outputs(batch, space.unflatten(flat))
    D = gauss_newton(torch.func.jacrev(hidden)(flat), distance.output_hessian(c), problem.cases(batch))
    G = dense_ggn(problem, batch) + 0.3 * torch.eye(flat.numel(), dtype=flat.dtype)  # the ℓ2 prior η I
    v = random_vector(problem)
    fast = RecurrentGaussNewton(problem, batch)
    assert supports_bptt(problem)
    torch.testing.assert_close(fast.mv(v), G @ v)
    torch.testing.assert_close(space.flatten(fast.structural(space.unflatten(v))), D @ v)
    torch.testing.assert_close(fast.mv_damped(v, 0.7), G @ v + 0.7 * D @ v)
    torch.testing.assert_close(fast.mv_damped(v, 0.0), GGNOperator(problem, batch).mv(v))


def test_linear_fast_path_of_the_empirical_fisher_diagonal_equals_per_case_gradients() -> None:
    problem, batch = mlp_problem("softmax_ce", n=9)
    assert linear_layers_used_once(problem, batch) is not None
    fast = empirical_fisher_diagonal(problem, batch, chunk=4)  # model's own parameters → one-pass path
    slow = empirical_fisher_diagonal(problem, batch, params=detached_params(problem.model), chunk=4)
    for name in fast:
        torch.testing.assert_close(fast[name], slow[name])
    rnn, sequences = rnn_problem()
    assert linear_layers_used_once(rnn, sequences) is None  # shared across time: no single outer product
