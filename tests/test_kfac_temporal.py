"""K-FAC for RNNs: the temporal Fisher approximations against dense float64 oracles (the paper's §3.5, App. C)."""

from __future__ import annotations

import math

import pytest
import torch

from secondorder.kfac.temporal import Factor, TemporalInverse, expected_eta, gamma, lag_moments, zeta
from tests.oracles import dense_lggm_fisher, inverse_sqrt

D = torch.float64


def closed_zeta(x, T):
    return (T * (1 - x) - x * (1 - x**T)) / (1 - x) ** 2


@pytest.mark.parametrize("T", [0, 1, 2, 5, 35])
def test_prop_3_polynomial_equals_closed_form(T: int) -> None:
    x = torch.tensor([-0.9, -0.3, 0.2, 0.7, 0.99], dtype=D)
    torch.testing.assert_close(zeta(x, T), closed_zeta(x, T))
    xc = torch.tensor([0.3 + 0.4j, -0.5 + 0.1j], dtype=torch.complex128)
    torch.testing.assert_close(zeta(xc, T), closed_zeta(xc, T))


def test_eta_properties_and_gamma_limit() -> None:
    x = torch.linspace(-0.999, 0.999, 101, dtype=D)
    for T in (4, 7, 35):
        eta = expected_eta(x, [T], [1.0])
        torch.testing.assert_close(eta, 2 * zeta(x, T) - T)
        closed = (T * (1 - x**2) - 2 * x * (1 - x**T)) / (1 - x) ** 2  # §3.5.2
        torch.testing.assert_close(eta, closed, rtol=1e-9, atol=1e-9)
        assert bool((eta > 0).all())
        assert float(expected_eta(torch.tensor(1.0, dtype=D), [T], [1.0])) == T * T
        assert float(expected_eta(torch.tensor(-1.0, dtype=D), [T], [1.0])) == T % 2  # 0 even, 1 odd
    # Tγ(x) → (1 − x)/(1 + x): 0.3846, 0.3378, 0.3338 at T = 10, 100, 1000 for x = 0.5 (the limit of §3.5.3)
    half = torch.tensor(0.5, dtype=D)
    for T, expected in ((10, 0.3846), (100, 0.3378), (1000, 0.3338)):
        assert T * float(gamma(half, [T], [1.0])) == pytest.approx(expected, abs=1e-4)
    # near x = 1 the polynomial stays right where the float32 closed form is off by ~17×
    near = torch.tensor(1 - 1e-6, dtype=D)
    assert float(gamma(near, [35], [1.0])) == pytest.approx(1 / 35**2, rel=1e-3)


def sequences(m: int, T: int, d: int, seed: int, rho: float = 0.7) -> torch.Tensor:
    """AR(1)-like sequences with a homogeneous coordinate: temporally correlated, like RNN activations."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(m, T, d, dtype=D)
    x[:, 0] = torch.randn(m, d, generator=g, dtype=D)
    for t in range(1, T):
        x[:, t] = rho * x[:, t - 1] + torch.randn(m, d, generator=g, dtype=D)
    x[:, :, -1] = 1.0
    return x


def factors(symmetric: bool, T: int = 6, seed: int = 0):
    A0, A1 = lag_moments(sequences(50, T, 3, seed), T)
    G0, G1 = lag_moments(sequences(50, T, 2, seed + 1, rho=-0.4), T)
    if symmetric:
        A1, G1 = 0.5 * (A1 + A1.T), 0.5 * (G1 + G1.T)
    return A0, A1, G0, G1


def inverse(approximation, A0, A1, G0, G1, lengths, weights, damping=0.0):
    inv = TemporalInverse(approximation)
    inv.refresh(Factor(A0, A1), Factor(G0, G1), damping, lengths, weights)
    return inv


def test_eqn_7_and_corrected_eqn_5_by_brute_force() -> None:
    A0, A1, G0, G1 = factors(symmetric=False)
    T = 5
    F = dense_lggm_fisher(A0, A1, G0, G1, [T], [1.0])
    V0, V1 = torch.kron(G0, A0), torch.kron(G1, A1)
    inv_root = inverse_sqrt(V0)
    psi_hat = inv_root @ V1 @ inv_root
    eye = torch.eye(V0.shape[0], dtype=D)

    def zeta_matrix(M):
        return sum((T - d) * torch.linalg.matrix_power(M, d) for d in range(T + 1))

    torch.testing.assert_close(inv_root @ F @ inv_root, zeta_matrix(psi_hat) + zeta_matrix(psi_hat.T) - T * eye)
    Psi = V1 @ torch.linalg.inv(V0)
    half = sum((T - d) * torch.linalg.matrix_power(Psi, d) @ V0 for d in range(T + 1))
    torch.testing.assert_close(F, half + half.T - T * V0)  # eqn 5 with −T V₀ (the transcription's −T I is wrong)
    assert float((F - (half + half.T - T * eye)).abs().max()) > 1e-3


@pytest.mark.parametrize(("lengths", "weights"), [([6], [1.0]), ([3, 6, 9], [0.2, 0.5, 0.3])])
def test_option1_is_exact_for_symmetric_lag_one_factors(lengths, weights) -> None:
    A0, A1, G0, G1 = factors(symmetric=True)
    Z = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=D)
    F = dense_lggm_fisher(A0, A1, G0, G1, lengths, weights)
    expected = torch.linalg.solve(F, Z.reshape(-1)).reshape(2, 3)
    torch.testing.assert_close(inverse("option1", A0, A1, G0, G1, lengths, weights).apply(Z), expected)


def test_option2_is_eqn_9_and_the_long_sequence_limit() -> None:
    A0, A1, G0, G1 = factors(symmetric=False)
    T = 6
    Z = torch.randn(2, 3, generator=torch.Generator().manual_seed(6), dtype=D)
    out = inverse("option2", A0, A1, G0, G1, [T], [1.0]).apply(Z)
    V0, V1 = torch.kron(G0, A0), torch.kron(G1, A1)
    inv_root = inverse_sqrt(V0)
    psi = inv_root @ V1 @ inv_root
    eye = torch.eye(6, dtype=D)
    eqn9 = (eye - psi) @ torch.linalg.inv(eye - psi.T @ psi) @ (eye - psi.T) / T
    torch.testing.assert_close(out.reshape(-1), inv_root @ eqn9 @ inv_root @ Z.reshape(-1), rtol=1e-11,
                               atol=1e-13)  # float64 rounding only
    # (T/T′) F_{T′} → (eqn 9)⁻¹ as T′ grows: the relative error shrinks roughly like 1/T′
    target = torch.linalg.inv(inv_root @ eqn9 @ inv_root)
    errors = [float(((T / Tp) * dense_lggm_fisher(A0, A1, G0, G1, [Tp], [1.0]) - target).norm() / target.norm())
              for Tp in (20, 200)]
    assert errors[1] < errors[0] / 5


def test_both_options_reduce_to_independence_without_lag_one_terms() -> None:
    A0, A1, G0, G1 = factors(symmetric=False)
    Z = torch.randn(2, 3, generator=torch.Generator().manual_seed(7), dtype=D)
    indep = torch.linalg.solve(G0, Z) @ torch.linalg.inv(A0) / 6
    torch.testing.assert_close(inverse("indep", A0, A1, G0, G1, [6], [1.0]).apply(Z), indep)
    for approximation in ("option1", "option2"):
        torch.testing.assert_close(inverse(approximation, A0, torch.zeros_like(A1), G0, G1, [6], [1.0]).apply(Z),
                                   indep)
        torch.testing.assert_close(inverse(approximation, A0, A1, G0, torch.zeros_like(G1), [6], [1.0]).apply(Z),
                                   indep)


def test_option1_approaches_option2_for_long_sequences() -> None:
    A0, A1, G0, G1 = factors(symmetric=True)
    Z = torch.randn(2, 3, generator=torch.Generator().manual_seed(8), dtype=D)
    gaps = []
    for T in (5, 50, 500):
        o1 = inverse("option1", A0, A1, G0, G1, [T], [1.0]).apply(Z)
        o2 = inverse("option2", A0, A1, G0, G1, [T], [1.0]).apply(Z)
        gaps.append(float((T * (o1 - o2)).abs().max()))
    assert gaps[0] > 5 * gaps[1] > 25 * gaps[2]


def test_spectral_bound_of_the_zero_padded_estimator_and_a_negative_control() -> None:
    for seed in range(30):
        x = sequences(7, 5, 3, seed, rho=0.95)
        A0, A1 = lag_moments(x, 5)
        block = torch.cat([torch.cat([A0, A1], 1), torch.cat([A1.T, A0], 1)], 0)
        assert float(torch.linalg.eigvalsh(block).min()) > -1e-10
        root = inverse_sqrt(A0)
        assert float(torch.linalg.matrix_norm(root @ A1 @ root, ord=2)) <= 1 + 1e-10
        assert float(torch.linalg.eigvals(A1 @ torch.linalg.inv(A0)).abs().max()) <= 1 + 1e-10
    T = 4
    constant = torch.ones(1, T, 1, dtype=D)
    A0, A1 = lag_moments(constant, T)
    assert float(A1 / A0) == pytest.approx((T - 1) / T)  # ψ̂ of a constant sequence (§3.5.4's estimator)
    # Control: normalising the lag-1 sum by m(T − 1) instead loses the guarantee; the maximiser of
    # Σ a_{t+1}a_t / Σ a_t² (a_t = sin(πt/(T+1)), ratio cos(π/(T+1)) = 0.809) then gives ψ̂ = 1.079 > 1.
    wave = torch.sin(math.pi * torch.arange(1, T + 1, dtype=D) / (T + 1)).reshape(1, T, 1)
    A0, A1 = lag_moments(wave, T)
    assert float(A1 / A0) == pytest.approx(math.cos(math.pi / (T + 1)))
    assert float(A1 * T / (T - 1) / A0) > 1.05


@pytest.mark.parametrize("approximation", ["indep", "option1", "option2"])
def test_damped_preconditioners_are_symmetric_positive_definite(approximation: str) -> None:
    A0, A1, G0, G1 = factors(symmetric=False)
    inv = inverse(approximation, A0, A1, G0, G1, [6], [1.0], damping=1e-2)
    columns = [inv.apply(e.reshape(2, 3)).reshape(-1) for e in torch.eye(6, dtype=D)]
    M = torch.stack(columns, 1)
    torch.testing.assert_close(M, M.T, rtol=1e-10, atol=1e-12)
    assert float(torch.linalg.eigvalsh(0.5 * (M + M.T)).min()) > 0


def test_factored_damping_and_diagonal_factors() -> None:
    A0, A1, G0, G1 = factors(symmetric=False)
    Z = torch.randn(2, 3, generator=torch.Generator().manual_seed(9), dtype=D)
    lam, T = 0.3, 6
    pi = math.sqrt((torch.trace(A0) / 3) / (torch.trace(G0) / 2))
    root = math.sqrt(lam / T)
    expected = torch.linalg.solve(G0 + root / pi * torch.eye(2, dtype=D), Z) @ torch.linalg.inv(
        A0 + pi * root * torch.eye(3, dtype=D)) / T
    torch.testing.assert_close(inverse("indep", A0, A1, G0, G1, [T], [1.0], damping=lam).apply(Z), expected)
    diag = torch.tensor([0.5, 2.0, 1.5], dtype=D)  # a one-hot input's A₀ is diagonal
    inv = TemporalInverse("option2")
    inv.refresh(Factor(diag, None, diagonal=True), Factor(G0, G1), 0.0, [T], [1.0])
    assert inv.approx_used == "indep"
    torch.testing.assert_close(inv.apply(Z), torch.linalg.solve(G0, Z) / diag / T)
