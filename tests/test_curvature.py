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
from secondorder.curvature.products import MODES
from secondorder.data.pathological import make_task
from secondorder.data.sequences import GeneratedSequences
from secondorder.data.splits import DataSplits
from secondorder.losses import get_loss
from secondorder.metrics import get_metric
from secondorder.models.rnn import RecurrentNet, RNNConfig, sparse_rnn_init_
from secondorder.problems import ObjectiveConfig, SequenceTaskProblem, SupervisedProblem

pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def mlp_problem(loss: str, l2: float = 0.0, l2_biases: bool = True, n: int = 6) -> tuple[SupervisedProblem, tuple]:
    """A 3-4-3 tanh net at weights of a reasonable scale (thesis §4.5.1: neither linear nor saturated)."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(n, 3, generator=g)
    if loss == "softmax_ce":
        y = torch.randint(0, 3, (n,), generator=g)
    elif loss == "sigmoid_bce":
        y = torch.rand(n, 3, generator=g)
    else:
        y = torch.randn(n, 3, generator=g)
    data = DataSplits("toy", x, y, x, y, "toy", "toy", True, 3 if loss == "softmax_ce" else None)
    metric = get_metric("classification_error" if loss == "softmax_ce" else "reconstruction_sse")
    problem = SupervisedProblem(model, get_loss(loss), data, metric, ObjectiveConfig(l2=l2, l2_biases=l2_biases))
    return problem, (x, y)


def rnn_problem() -> tuple[SequenceTaskProblem, object]:
    task = make_task("temporal_order_2bit", 10)
    test = task.generate(4, torch.Generator().manual_seed(0))
    data = GeneratedSequences("pathological", task, test, "t", "t")
    model = RecurrentNet(task.input_dim, task.output_dim, RNNConfig(hidden_dim=3, activation="sigmoid"))
    sparse_rnn_init_(model, torch.Generator().manual_seed(1))
    problem = SequenceTaskProblem(model.double(), get_loss(task.loss), data, ObjectiveConfig(),
                                  torch.device("cpu"), torch.float64, seed=0)
    batch = task.generate(3, torch.Generator().manual_seed(2)).to("cpu", torch.float64)
    return problem, batch


def dense_ggn(problem, batch) -> torch.Tensor:
    """(1/N) Σ_n J_nᵀ H_L(z_n) J_n from a jacrev Jacobian and the loss's dense output Hessian."""
    space = ParamSpace.of(problem.model)
    params = detached_params(problem.model)

    def outputs(flat):
        return problem.outputs(batch, space.unflatten(flat))[0]

    flat = space.flatten(params)
    z = outputs(flat)
    J = torch.func.jacrev(outputs)(flat)  # (n, d, P)
    H = problem.loss.output_hessian(z)    # (n, d, d)
    return torch.einsum("ndp,nde,neq->pq", J, H, J) / problem.cases(batch)


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
    from secondorder.data.sequences import SequenceBatch, TokenCorpus
    from secondorder.models.lstm import LSTMConfig, LSTMLanguageModel, initialise_uniform_
    from secondorder.problems import LanguageModelProblem

    cfg = LSTMConfig(embedding_dim=3, hidden_dim=3, layers=1, init_scale=0.5)
    model = LSTMLanguageModel(5, cfg).double()
    initialise_uniform_(model, 0.5, torch.Generator().manual_seed(0))
    stream = torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(1))
    corpus = TokenCorpus("toy", stream, stream, stream, list("abcde"), "word", "t", "t")
    problem = LanguageModelProblem(model, get_loss("softmax_ce"), corpus, ObjectiveConfig(), torch.device("cpu"),
                                   bptt=4, batch_size=2, eval_batch_size=2, eval_train_tokens=None,
                                   metric="perplexity")
    batch = SequenceBatch(stream[:8].view(2, 4), stream[1:9].view(2, 4), torch.ones(2, 4, dtype=torch.bool))
    v = random_vector(problem)
    torch.testing.assert_close(GGNOperator(problem, batch).mv(v), dense_ggn(problem, batch) @ v)


def test_jacobian_vector_product_matches_central_differences() -> None:
    """Thesis §4.5.1 item 1: J w ≈ (f(θ+εw) − f(θ−εw)) / 2ε, ε = 1e-4, relative error ≈ 1e-6 in float64."""
    problem, batch = mlp_problem("sigmoid_bce")
    space = ParamSpace.of(problem.model)
    params = detached_params(problem.model)
    w = random_vector(problem)
    op = GGNOperator(problem, batch)
    jw = op.lin.jvp(space.unflatten(w))
    eps = 1e-4
    flat = space.flatten(params)
    plus = problem.outputs(batch, space.unflatten(flat + eps * w))[0]
    minus = problem.outputs(batch, space.unflatten(flat - eps * w))[0]
    fd = (plus - minus) / (2 * eps)
    assert float((jw - fd).norm() / jw.norm()) < 1e-6


def test_full_ggn_matches_finite_difference_columns() -> None:
    """Thesis §4.5.1 item 4: G e_j against a G built from finite-difference Jacobian columns."""
    problem, batch = mlp_problem("softmax_ce")
    space = ParamSpace.of(problem.model)
    flat = space.flatten(detached_params(problem.model))
    eps = 1e-5
    columns = []
    for j in range(space.numel):
        e = torch.zeros(space.numel)
        e[j] = eps
        columns.append((problem.outputs(batch, space.unflatten(flat + e))[0]
                        - problem.outputs(batch, space.unflatten(flat - e))[0]) / (2 * eps))
    J = torch.stack(columns, dim=-1)
    z = problem.outputs(batch, space.unflatten(flat))[0]
    G_fd = torch.einsum("ndp,nde,neq->pq", J, problem.loss.output_hessian(z), J) / problem.cases(batch)
    op = GGNOperator(problem, batch)
    G = torch.stack([op.mv(torch.eye(space.numel)[j]) for j in range(space.numel)], dim=1)
    assert float((G - G_fd).norm() / G.norm()) < 1e-8


def test_hessian_vector_product_equals_torch_func_hessian() -> None:
    problem, batch = mlp_problem("sigmoid_bce", l2=0.3)
    space = ParamSpace.of(problem.model)
    flat = space.flatten(detached_params(problem.model))
    H = torch.func.hessian(lambda f: problem.objective_at(batch, space.unflatten(f)))(flat)
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
    flat = space.flatten(detached_params(problem.model))
    x, y = batch
    per_case = torch.stack([
        torch.func.grad(lambda f, i=i: problem.loss.per_case(
            problem.call_model(space.unflatten(f), x[i : i + 1]), y[i : i + 1]).sum())(flat)
        for i in range(5)
    ])
    F = per_case.T @ per_case / 5
    v = random_vector(problem)
    torch.testing.assert_close(FisherOperator(problem, batch, targets="empirical").mv(v), F @ v)
    torch.testing.assert_close(space.flatten(empirical_fisher_diagonal(problem, batch, chunk=2)), torch.diag(F))


def test_empirical_fisher_diagonal_on_sequences() -> None:
    problem, batch = rnn_problem()
    space = ParamSpace.of(problem.model)
    flat = space.flatten(detached_params(problem.model))
    grads = []
    for b in range(3):
        one = problem.subset(batch, torch.tensor([b]))
        grads.append(torch.func.grad(lambda f, one=one: problem.data_loss(one, space.unflatten(f)))(flat))
    expected = torch.stack(grads).pow(2).mean(0)
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
    space = ParamSpace.of(problem.model)
    flat = space.flatten(detached_params(problem.model))

    def hidden(f):
        return problem.structural_outputs(batch, space.unflatten(f))[0]

    c, distance = problem.structural_outputs(batch, space.unflatten(flat))
    J = torch.func.jacrev(hidden)(flat)
    D = torch.einsum("ndp,nde,neq->pq", J, distance.output_hessian(c), J) / 3
    v = random_vector(problem)
    torch.testing.assert_close(StructuralDampingTerm(problem, batch, weight=0.5).mv(v), 0.5 * D @ v)


def test_linear_fast_path_of_the_empirical_fisher_diagonal_equals_per_case_gradients() -> None:
    from secondorder.curvature.diagonal import linear_layers_used_once

    problem, batch = mlp_problem("softmax_ce", n=9)
    assert linear_layers_used_once(problem, batch) is not None
    fast = empirical_fisher_diagonal(problem, batch, chunk=4)  # model's own parameters → one-pass path
    slow = empirical_fisher_diagonal(problem, batch, params=detached_params(problem.model), chunk=4)
    for name in fast:
        torch.testing.assert_close(fast[name], slow[name])
    rnn, sequences = rnn_problem()
    assert linear_layers_used_once(rnn, sequences) is None  # shared across time: no single outer product
