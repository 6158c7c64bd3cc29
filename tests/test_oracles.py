"""The oracles themselves on cases solved by hand: a one-layer linear net under squared error, where the Jacobian
is the input, H_L = I and so G = H = (1/N) Σ I ⊗ ā āᵀ; and the LGGM Fisher without lag-one terms."""

from __future__ import annotations

import pytest
import torch

from tests.oracles import (
    dense_empirical_fisher,
    dense_fisher_blocks,
    dense_ggn,
    dense_hessian,
    dense_lggm_fisher,
    finite_difference_jacobian,
    flat_parameters,
    gauss_newton,
    inverse_sqrt,
    layer_helper,
    make_problem,
    mlp_problem,
)

pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def linear_case() -> tuple:
    """One 3 → 2 linear layer, 5 cases, squared error with random targets: ā = (x; 1), residual r = Wx + b − y."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g)
    problem = make_problem([3, 2], None, x)
    y = torch.randn(5, 2, generator=g)
    a = torch.cat([x, torch.ones(5, 1)], dim=1)
    return problem, x, y, a


def test_gauss_newton_blocks_of_a_linear_layer_are_i_kron_the_input_moments() -> None:
    problem, x, y, a = linear_case()
    A = a.T @ a / 5
    blocks = dense_fisher_blocks(problem, layer_helper(problem, x), x)
    torch.testing.assert_close(blocks[0][0], torch.kron(torch.eye(2), A))  # row-major [W | b]: G ⊗ Ā, G = I
    # ParamSpace order is weight (row-major) then bias: permute the [W | b] layout into it
    order = [o * 4 + i for o in range(2) for i in range(3)] + [o * 4 + 3 for o in range(2)]
    G = dense_ggn(problem, (x, y))
    torch.testing.assert_close(G, blocks[0][0][order][:, order])
    torch.testing.assert_close(dense_hessian(problem, (x, y)), G)  # f linear in θ: no second-order term of f


def test_empirical_fisher_of_a_linear_layer_from_residuals() -> None:
    """∇_W L = r āᵀ per case, so F̄ = (1/N) Σ vec(r āᵀ) vec(r āᵀ)ᵀ."""
    problem, x, y, a = linear_case()
    with torch.no_grad():
        r = problem.model(x) - y
    per_case = torch.cat([torch.einsum("no,ni->noi", r, a[:, :3]).reshape(5, -1), r], dim=1)
    torch.testing.assert_close(dense_empirical_fisher(problem, (x, y)), per_case.T @ per_case / 5)


def test_finite_difference_jacobian_agrees_with_autograd_and_gauss_newton_with_its_formula() -> None:
    problem, batch = mlp_problem("sigmoid_bce")
    space, flat = flat_parameters(problem)

    def outputs(f):
        return problem.outputs(batch, space.unflatten(f))[0]

    J = torch.func.jacrev(outputs)(flat)
    fd = finite_difference_jacobian(outputs, flat, eps=1e-5)
    assert float((fd - J).norm() / J.norm()) < 1e-8
    H = torch.randn(6, 3, 3, generator=torch.Generator().manual_seed(1))
    loop = sum(J[n].T @ H[n] @ J[n] for n in range(6)) / 6
    torch.testing.assert_close(gauss_newton(J, H, 6), loop)
    with pytest.raises(TypeError, match=r"not torch\.float64"):
        gauss_newton(J.float(), H.float(), 6)


def test_lggm_fisher_without_lag_one_terms_is_t_times_v0_and_inverse_sqrt_whitens() -> None:
    g = torch.Generator().manual_seed(2)
    A0 = (lambda m: m @ m.T + torch.eye(3))(torch.randn(3, 3, generator=g))
    G0 = (lambda m: m @ m.T + torch.eye(2))(torch.randn(2, 2, generator=g))
    zero_a, zero_g = torch.zeros(3, 3), torch.zeros(2, 2)
    F = dense_lggm_fisher(A0, zero_a, G0, zero_g, [4, 7], [0.25, 0.75])  # Ψ = 0: only the d = 0 terms remain
    torch.testing.assert_close(F, (0.25 * 4 + 0.75 * 7) * torch.kron(G0, A0))
    root = inverse_sqrt(A0)
    torch.testing.assert_close(root @ A0 @ root, torch.eye(3))
    torch.testing.assert_close(root, root.T)
