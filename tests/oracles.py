"""Dense float64 references ("oracles") for the curvature tests, and the tiny problems they are built on.

Every fast path of the library — matrix-free Gauss–Newton and Hessian products, Kronecker factors, temporal
Fisher inverses — is checked against the matrix it stands for, built here the slow, obvious way: Jacobians by
``torch.func.jacrev`` (or central differences), Hessians by ``torch.func.hessian``, per-case gradients one case at
a time, on nets with a few dozen parameters (thesis §4.5.1: toy networks, float64, random weights of a reasonable
scale). One function per reference, each with its formula; test modules import from here, never from each other.

Shapes: a Jacobian of the outputs z (n positions × d outputs) with respect to P parameters is (n, d, P); a flat
parameter vector follows :class:`~secondorder.curvature.ParamSpace` order (``named_parameters()``), a Kronecker
block the row-major [W | b] layout of :class:`~secondorder.kfac.layers.LinearLayers` (so Fisher blocks read
G ⊗ A).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from secondorder.curvature import ParamSpace, detached_params
from secondorder.data.pathological import make_task
from secondorder.data.sequences import GeneratedSequences, SequenceBatch, TokenCorpus
from secondorder.data.splits import DataSplits
from secondorder.kfac.layers import LinearLayers
from secondorder.losses import get_loss
from secondorder.metrics import get_metric
from secondorder.models.lstm import LSTMConfig, LSTMLanguageModel, initialise_uniform_
from secondorder.models.rnn import RecurrentNet, RNNConfig, sparse_rnn_init_
from secondorder.problems import LanguageModelProblem, ObjectiveConfig, SequenceTaskProblem, SupervisedProblem

F64 = torch.float64


def require_float64(*tensors: Tensor) -> None:
    """Oracles are only meaningful in double precision (thesis §4.5.1: float32 hides errors of ~1e-6)."""
    for t in tensors:
        if t.dtype != F64:
            raise TypeError(f"oracle input is {t.dtype}, not torch.float64: use the float64 fixture "
                            "(pytestmark = pytest.mark.usefixtures('float64'))")


# ---------------------------------------------------------------------------------------------- tiny problems
def mlp_problem(loss: str, l2: float = 0.0, l2_biases: bool = True, n: int = 6) -> tuple[SupervisedProblem, tuple]:
    """A 3-4-3 tanh net with N(0, 1) weights — neither linear nor saturated (thesis §4.5.1) — on n random cases
    with targets of the loss's kind; returns (problem, (x, y))."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype=F64), nn.Tanh(), nn.Linear(4, 3, dtype=F64))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
    x = torch.randn(n, 3, generator=g, dtype=F64)
    if loss == "softmax_ce":
        y = torch.randint(0, 3, (n,), generator=g)
    elif loss == "sigmoid_bce":
        y = torch.rand(n, 3, generator=g, dtype=F64)
    else:
        y = torch.randn(n, 3, generator=g, dtype=F64)
    data = DataSplits("toy", x, y, x, y, "toy", "toy", True, 3 if loss == "softmax_ce" else None)
    metric = get_metric("classification_error" if loss == "softmax_ce" else "reconstruction_sse")
    problem = SupervisedProblem(model, get_loss(loss), data, metric, ObjectiveConfig(l2=l2, l2_biases=l2_biases))
    return problem, (x, y)


def rnn_problem(task_name: str = "temporal_order_2bit", activation: str = "sigmoid", T: int = 10,
                l2: float = 0.0) -> tuple[SequenceTaskProblem, SequenceBatch]:
    """A 3-unit RNN (default sigmoid; the sparse initialisation of thesis §4.13) on a pathological task (default
    the 2-bit temporal-order task with T = 10), ℓ2 prior ``l2``, and a batch of 3 sequences."""
    task = make_task(task_name, T)
    test = task.generate(4, torch.Generator().manual_seed(0))
    data = GeneratedSequences("pathological", task, test, "t", "t")
    model = RecurrentNet(task.input_dim, task.output_dim, RNNConfig(hidden_dim=3, activation=activation))
    sparse_rnn_init_(model, torch.Generator().manual_seed(1))
    problem = SequenceTaskProblem(model.double(), get_loss(task.loss), data, ObjectiveConfig(l2=l2),
                                  torch.device("cpu"), F64, seed=0)
    batch = task.generate(3, torch.Generator().manual_seed(2)).to("cpu", F64)
    return problem, batch


def lstm_problem() -> tuple[LanguageModelProblem, SequenceBatch]:
    """A one-layer LSTM language model (3 units, vocabulary 5) on two sequences of 4 tokens."""
    cfg = LSTMConfig(embedding_dim=3, hidden_dim=3, layers=1, init_scale=0.5)
    model = LSTMLanguageModel(5, cfg).double()
    initialise_uniform_(model, 0.5, torch.Generator().manual_seed(0))
    stream = torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(1))
    corpus = TokenCorpus("toy", stream, stream, stream, list("abcde"), "word", "t", "t")
    problem = LanguageModelProblem(model, get_loss("softmax_ce"), corpus, ObjectiveConfig(), torch.device("cpu"),
                                   bptt=4, batch_size=2, eval_batch_size=2, eval_train_tokens=None,
                                   metric="perplexity")
    batch = SequenceBatch(stream[:8].view(2, 4), stream[1:9].view(2, 4), torch.ones(2, 4, dtype=torch.bool))
    return problem, batch


def make_problem(widths: list[int], activation: type[nn.Module] | None, x: Tensor, loss: str = "squared_error",
                 seed: int = 0) -> SupervisedProblem:
    """A stack of ``nn.Linear`` layers of the given widths (``activation`` between them, none after the last; None:
    a deep linear net) with N(0, 0.7²) weights, on inputs x with all-zero targets of the loss's kind."""
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(a, b, dtype=F64))
        if activation is not None and i < len(widths) - 2:
            layers.append(activation())
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.7 * torch.randn(p.shape, generator=g, dtype=F64))
    y = (torch.zeros(x.shape[0], widths[-1], dtype=F64) if loss != "softmax_ce"
         else torch.zeros(x.shape[0], dtype=torch.long))
    data = DataSplits("toy", x, y, x, y, "t", "t", True)
    return SupervisedProblem(model, get_loss(loss), data, get_metric("reconstruction_sse"), ObjectiveConfig())


def layer_helper(problem: SupervisedProblem, x: Tensor) -> LinearLayers:
    """The K-FAC layer helper of a :func:`make_problem` net, its layer order found by one forward pass."""
    return LinearLayers(problem.model, lambda: problem.model(x[:1]))


# ---------------------------------------------------------------------------------------------- dense references
def flat_parameters(problem: Any) -> tuple[ParamSpace, Tensor]:
    """The problem's parameter space and its current parameters θ as one flat vector."""
    space = ParamSpace.of(problem.model)
    return space, space.flatten(detached_params(problem.model))


def gauss_newton(J: Tensor, H: Tensor, cases: int, J_right: Tensor | None = None) -> Tensor:
    """G = (1/N) Σ_n J_nᵀ H_n J_n from Jacobians J (n, d, P) and output Hessians H (n, d, d) (thesis §3.4); with
    ``J_right`` (n, d, Q), the off-diagonal block (1/N) Σ_n J_nᵀ H_n J′_n (P × Q)."""
    right = J if J_right is None else J_right
    require_float64(J, H, right)
    return torch.einsum("ndp,nde,neq->pq", J, H, right) / cases


def dense_ggn(problem: Any, batch: Any) -> Tensor:
    """The data term's GGN (1/N) Σ_n J_nᵀ H_L(z_n) J_n (thesis §3.4; no ℓ2 prior) from a ``jacrev`` Jacobian of
    the problem's outputs and the loss's dense output Hessian (given the targets where a non-matching loss needs
    them)."""
    space, flat = flat_parameters(problem)

    def outputs(f: Tensor) -> Tensor:
        return problem.outputs(batch, space.unflatten(f))[0]

    z, y = problem.outputs(batch, space.unflatten(flat))
    J = torch.func.jacrev(outputs)(flat)  # (n, d, P)
    return gauss_newton(J, problem.loss.output_hessian(z, y), problem.cases(batch))


def finite_difference_jacobian(f: Callable[[Tensor], Tensor], flat: Tensor, eps: float = 1e-5) -> Tensor:
    """J e_j ≈ (f(θ + ε e_j) − f(θ − ε e_j)) / 2ε for every basis vector e_j, stacked as (n, d, P) (thesis §4.5.1
    items 1 and 3: Jᵀ from J e_j column by column)."""
    require_float64(flat)
    columns = []
    for j in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[j] = eps
        columns.append((f(flat + e) - f(flat - e)) / (2 * eps))
    return torch.stack(columns, dim=-1)


def dense_hessian(problem: Any, batch: Any) -> Tensor:
    """H = ∇²h(θ) of the whole objective h (data loss plus the ℓ2 prior) by ``torch.func.hessian`` (P × P)."""
    space, flat = flat_parameters(problem)
    require_float64(flat)
    return torch.func.hessian(lambda f: problem.objective_at(batch, space.unflatten(f)))(flat)


def per_case_gradients(problem: Any, batch: Any) -> Tensor:
    """g_n = ∇_θ L(case n), one case (one sequence for sequence problems) at a time: rows of an (N, P) matrix."""
    space, flat = flat_parameters(problem)
    require_float64(flat)
    rows = []
    for n in range(problem.cases(batch)):
        one = problem.subset(batch, torch.tensor([n]))
        rows.append(torch.func.grad(lambda f, one=one: problem.data_loss(one, space.unflatten(f)))(flat))
    return torch.stack(rows)


def dense_empirical_fisher(problem: Any, batch: Any) -> Tensor:
    """The empirical Fisher F̄ = (1/N) Σ_n g_n g_nᵀ of the per-case gradients at the data targets (P × P)."""
    g = per_case_gradients(problem, batch)
    return g.T @ g / g.shape[0]


def dense_fisher_blocks(problem: SupervisedProblem, layers: LinearLayers, x: Tensor) -> list[list[Tensor]]:
    """Exact Fisher blocks F_ij = (1/N) Σ_n J_{n,i}ᵀ H_L J_{n,j} over the layers' row-major [W | b] blocks (F = G for
    a matching loss, the expectation over y taken exactly; Martens & Grosse 2015, §3)."""
    params = {n: p.detach() for n, p in problem.model.named_parameters()}
    blocks0 = layers.to_blocks(params)

    def outputs(*blocks: Tensor) -> Tensor:
        return torch.func.functional_call(problem.model, {**params, **layers.from_blocks(list(blocks))}, (x,))

    z = outputs(*blocks0)
    jac = torch.func.jacrev(outputs, argnums=tuple(range(len(blocks0))))(*blocks0)
    J = [j.reshape(x.shape[0], z.shape[1], -1) for j in jac]
    H = problem.loss.output_hessian(z)
    return [[gauss_newton(J[i], H, x.shape[0], J[j]) for j in range(len(J))] for i in range(len(J))]


def inverse_sqrt(M: Tensor) -> Tensor:
    """M^{-1/2} of a symmetric positive definite M through its eigendecomposition."""
    values, vectors = torch.linalg.eigh(M)
    return (vectors * values.rsqrt()) @ vectors.T


def dense_lggm_fisher(A0: Tensor, A1: Tensor, G0: Tensor, G1: Tensor, lengths: list[int],
                      weights: list[float]) -> Tensor:
    """The temporal Fisher of the linear-Gaussian graphical model by brute-force summation (Martens, Ba & Johnson
    2018, §3.5): Σ_k ω_k F_{T_k}, F_T = Σ_{t,s} V_{t−s}, V_d = Ψ^d V₀ (d ≥ 0), V_{−d} = V_dᵀ, Ψ = V₁V₀⁻¹ (eqn 10),
    V_i = G_i ⊗ A_i in the row-major layout."""
    V0, V1 = torch.kron(G0, A0), torch.kron(G1, A1)
    require_float64(V0, V1)
    Psi = V1 @ torch.linalg.inv(V0)
    total = torch.zeros_like(V0)
    for T, w in zip(lengths, weights, strict=True):
        F = torch.zeros_like(V0)
        for t in range(T):
            for s in range(T):
                d = t - s
                Vd = torch.linalg.matrix_power(Psi, abs(d)) @ V0
                F += Vd if d >= 0 else Vd.T
        total += w * F
    return total
