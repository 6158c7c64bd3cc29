"""K-FAC against its oracles: exact Fisher blocks (float64, dense autograd), the damped inverses as dense
matrices, the (α, μ) solve, invariance to reparameterisation (thesis §6.10), and the optimiser end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from secondorder.kfac.factors import KroneckerFactors, collect_statistics
from secondorder.kfac.inverses import BlockDiagonalInverse, BlockTridiagonalInverse, trace_norm_pi
from secondorder.optim.kfac import KFACConfig, batch_size_at, solve_step_coefficients
from tests.conftest import read_run
from tests.oracles import dense_fisher_blocks, layer_helper, make_problem

pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def exact_factors(problem, layers, x, cross=True, targets="exact", generator=None) -> KroneckerFactors:
    factors = KroneckerFactors(len(layers), cross=cross)
    factors.update(collect_statistics(layers, lambda: problem.outputs((x, problem.data.train_targets[: len(x)])),
                                      problem.loss, targets, generator, cross))
    return factors


@pytest.mark.parametrize("repeats", [1, 5])
def test_factors_equal_the_exact_fisher_for_a_deep_linear_net_on_one_input(repeats: int) -> None:
    """One datum (or one input repeated): ā is deterministic, so F_ij = E[g_i g_jᵀ] ⊗ ā_{i−1}ā_{j−1}ᵀ exactly."""
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(1)).repeat(repeats, 1)
    problem = make_problem([3, 4, 3, 2], None, x)
    layers = layer_helper(problem, x)
    F = dense_fisher_blocks(problem, layers, x)
    f = exact_factors(problem, layers, x)
    for i in range(3):
        torch.testing.assert_close(torch.kron(f.G[i], f.A[i]), F[i][i])
    for i in range(2):
        torch.testing.assert_close(torch.kron(f.G_cross[i], f.A_cross[i]), F[i][i + 1])


def test_factors_are_only_approximate_for_varied_inputs_of_a_nonlinear_net() -> None:
    """Negative control: the test above can fail."""
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    problem = make_problem([3, 4, 2], nn.Tanh, x)
    layers = layer_helper(problem, x)
    F, f = dense_fisher_blocks(problem, layers, x), exact_factors(problem, layers, x)
    assert float((torch.kron(f.G[0], f.A[0]) - F[0][0]).norm() / F[0][0].norm()) > 0.05


@pytest.mark.parametrize("loss", ["squared_error", "sigmoid_bce", "softmax_ce"])
def test_sampled_targets_approach_the_exact_factor(loss: str) -> None:
    """One sampled target per case (thesis §6.5): with many (repeated-input) cases G → E_y[g gᵀ]."""
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(3)).repeat(20_000, 1)
    problem = make_problem([3, 4, 3], nn.Tanh, x, loss=loss)
    layers = layer_helper(problem, x)
    exact = exact_factors(problem, layers, x[:1], cross=False)
    sampled = exact_factors(problem, layers, x, cross=False, targets="sampled",
                            generator=torch.Generator().manual_seed(0))
    for i in range(2):
        assert float((sampled.G[i] - exact.G[i]).norm() / exact.G[i].norm()) < 0.04
        torch.testing.assert_close(sampled.A[i], exact.A[i])


def test_running_average_decay_schedule() -> None:
    f = KroneckerFactors(1, cross=False)
    one = {"A": [torch.eye(2)], "G": [torch.eye(2)]}
    decays = [f.update({"A": [torch.eye(2) * k], "G": one["G"]}) for k in range(1, 25)]
    assert decays[:4] == pytest.approx([0.0, 0.5, 2 / 3, 0.75]) and decays[19] == pytest.approx(0.95)
    assert decays[23] == 0.95
    torch.testing.assert_close(KroneckerFactors(1, False).A, [None])


def random_factors(n_layers: int = 3, seed: int = 0, rank_deficient: bool = True):
    """Moment matrices of a random joint distribution of (ā_0, …) and (g_1, …): PSD, with cross moments."""
    g = torch.Generator().manual_seed(seed)
    dims_a, dims_g = [4, 5, 3][:n_layers], [5, 3, 2][:n_layers]
    n = 6 if rank_deficient else 40
    a = [torch.randn(n, d, generator=g) for d in dims_a]
    gg = [torch.randn(n, d, generator=g) for d in dims_g]
    for i in range(1, n_layers):  # correlate neighbouring layers
        a[i][:, : min(dims_a[i], dims_a[i - 1])] += a[i - 1][:, : min(dims_a[i], dims_a[i - 1])]
        gg[i][:, : min(dims_g[i], dims_g[i - 1])] += gg[i - 1][:, : min(dims_g[i], dims_g[i - 1])]
    f = KroneckerFactors(n_layers, cross=True)
    f.update(KroneckerFactors.estimates(a, [gg], True))
    return f, dims_a, dims_g


def damped_blocks(f: KroneckerFactors, gamma: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for A, G in zip(f.A, f.G, strict=True):
        pi = trace_norm_pi(A, G)
        out.append((A + pi * gamma * torch.eye(A.shape[0]), G + gamma / pi * torch.eye(G.shape[0])))
    return out


def test_block_diagonal_apply_equals_the_dense_damped_inverse() -> None:
    f, dims_a, dims_g = random_factors()
    inverse = BlockDiagonalInverse()
    inverse.refresh(f.matrices())
    V = [torch.randn(dg, da) for da, dg in zip(dims_a, dims_g, strict=True)]
    for gamma in (0.3, 2.0, 0.3, 2.0, 2.0):  # γ trials reuse the same decompositions; repeated γ: explicit path
        for (Ad, Gd), v, u in zip(damped_blocks(f, gamma), V, inverse.apply(V, gamma), strict=True):
            expected = torch.linalg.solve(torch.kron(Gd, Ad), v.reshape(-1)).reshape(v.shape)
            torch.testing.assert_close(u, expected)
    assert inverse.uses == {0.3: 2, 2.0: 3} and inverse.explicit_gamma == 2.0
    inverse.refresh(f.matrices())
    assert inverse.uses == {} and inverse.explicit_gamma is None


def test_cholesky_path_equals_the_eigen_path() -> None:
    from secondorder.kfac.inverses import CholeskyBlockDiagonal

    f, dims_a, dims_g = random_factors(rank_deficient=True)
    eigen, direct = BlockDiagonalInverse(), CholeskyBlockDiagonal()
    eigen.refresh(f.matrices())
    direct.refresh(f.matrices())
    V = [torch.randn(dg, da) for da, dg in zip(dims_a, dims_g, strict=True)]
    for a, b in zip(eigen.apply(V, 0.4), direct.apply(V, 0.4), strict=True):
        torch.testing.assert_close(a, b)


def test_block_tridiagonal_inverse_is_tridiagonal_and_matches_ftilde_on_the_tridiagonal_blocks() -> None:
    """F̂ agrees with the damped F̃ on the tridiagonal blocks and F̂⁻¹ is block-tridiagonal (thesis §6.4.3)."""
    f, dims_a, dims_g = random_factors()
    gamma = 0.5
    tri = BlockTridiagonalInverse()
    tri.refresh(f.matrices())
    sizes = [da * dg for da, dg in zip(dims_a, dims_g, strict=True)]
    total, offsets = sum(sizes), [0, *torch.tensor(sizes).cumsum(0).tolist()]
    columns = []
    for j in range(total):
        e = torch.zeros(total)
        e[j] = 1.0
        blocks = [e[offsets[i] : offsets[i + 1]].reshape(dims_g[i], dims_a[i]) for i in range(3)]
        columns.append(torch.cat([u.reshape(-1) for u in tri.apply(blocks, gamma)]))
    F_hat_inv = torch.stack(columns, dim=1)
    torch.testing.assert_close(F_hat_inv, F_hat_inv.T)
    block = lambda M, i, j: M[offsets[i] : offsets[i + 1], offsets[j] : offsets[j + 1]]  # noqa: E731
    assert float(block(F_hat_inv, 0, 2).abs().max()) < 1e-10  # block-tridiagonal inverse
    F_hat = torch.linalg.inv(F_hat_inv)
    damped = damped_blocks(f, gamma)
    for i in range(3):
        Ad, Gd = damped[i]
        torch.testing.assert_close(block(F_hat, i, i), torch.kron(Gd, Ad))
    for i in range(2):  # cross factors undamped
        torch.testing.assert_close(block(F_hat, i, i + 1), torch.kron(f.G_cross[i], f.A_cross[i]))
    assert float(block(F_hat, 0, 2).abs().max()) > 1e-3  # F̂ is not block-tridiagonal itself


def test_step_coefficients_minimise_the_damped_quadratic_over_the_span() -> None:
    g = torch.Generator().manual_seed(4)
    F = (lambda Q: Q @ Q.T)(torch.randn(7, 7, generator=g))
    grad, U = torch.randn(7, generator=g), torch.randn(7, 2, generator=g)
    damping = 0.3
    coefficients, change = solve_step_coefficients(U.T @ F @ U, U.T @ U, U.T @ grad, damping)
    delta = U @ coefficients

    def model(d):
        return 0.5 * d @ (F + damping * torch.eye(7)) @ d + grad @ d

    assert change == pytest.approx(float(model(delta)))  # M(δ) = ½∇hᵀδ at the optimum (§6.6.5)
    assert change == pytest.approx(0.5 * float(grad @ delta))
    for trial in range(20):
        other = U @ (coefficients + 0.1 * torch.randn(2, generator=torch.Generator().manual_seed(trial)))
        assert float(model(other)) > change


def test_kfac_proposal_is_invariant_to_sigmoid_versus_scaled_tanh() -> None:
    """Thesis §6.10: tanh(s) = 2σ(2s) − 1, so with damping off the updates agree through
    W_i = Φ_i W†_i Ω_{i−1}, Φ = 2I on hidden layers, Ω = [[2I, −1], [0, 1]] on hidden activities."""
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(5))
    tanh_net = make_problem([3, 4, 4, 2], nn.Tanh, x, loss="squared_error", seed=6)
    sigmoid_net = make_problem([3, 4, 4, 2], nn.Sigmoid, x, loss="squared_error", seed=6)
    tanh_layers, sig_layers = layer_helper(tanh_net, x), layer_helper(sigmoid_net, x)
    omega = torch.eye(5)
    omega[:4, :4] *= 2.0
    omega[:4, 4] = -1.0
    Phi = [2.0, 2.0, 1.0]
    Omega = [torch.eye(4), omega, omega]
    tanh_blocks = tanh_layers.to_blocks({n: p.detach() for n, p in tanh_net.model.named_parameters()})
    sig_blocks = [Phi[i] * tanh_blocks[i] @ Omega[i] for i in range(3)]
    with torch.no_grad():
        for n, v in sig_layers.from_blocks(sig_blocks).items():
            dict(sigmoid_net.model.named_parameters())[n].copy_(v)
    torch.testing.assert_close(sigmoid_net.model(x), tanh_net.model(x))
    y = torch.randn(30, 2, generator=torch.Generator().manual_seed(7))

    for variant in ("blockdiag", "tridiag"):
        updates = []
        for problem, layers in ((tanh_net, tanh_layers), (sigmoid_net, sig_layers)):
            f = KroneckerFactors(3, cross=True)
            f.update(collect_statistics(layers, lambda p=problem: (p.model(x), y), problem.loss, "exact", None,
                                        True))
            params = [p for p in problem.model.parameters()]
            grads = torch.autograd.grad(problem.loss(problem.model(x), y), params)
            grad_blocks = layers.to_blocks(dict(zip([n for n, _ in problem.model.named_parameters()], grads,
                                                     strict=True)))
            if variant == "blockdiag":
                inverse = BlockDiagonalInverse()
                inverse.refresh(f.matrices())
                updates.append(inverse.apply(grad_blocks, 0.0))
            else:
                tri = BlockTridiagonalInverse()
                tri.refresh(f.matrices())
                updates.append(tri.apply(grad_blocks, 0.0))
        tanh_update, sig_update = updates
        for i in range(3):
            torch.testing.assert_close(sig_update[i], Phi[i] * tanh_update[i] @ Omega[i], rtol=1e-6, atol=1e-8)


def test_batch_size_schedule() -> None:
    """m_k = min(⌊1000 exp((k−1)/b)⌋, |S|) reaching |S| at k = 500: MNIST gives 1000, 1008, 1016, 1024, 1033."""
    cfg = KFACConfig()
    assert [batch_size_at(k, cfg, 60_000) for k in range(1, 6)] == [1000, 1008, 1016, 1024, 1033]
    assert batch_size_at(500, cfg, 60_000) == 60_000 and batch_size_at(499, cfg, 60_000) < 60_000
    assert batch_size_at(3, KFACConfig(batch_schedule="fixed", batch_size=250), 20_000) == 250
    assert batch_size_at(1, cfg, 512) == 512
    assert cfg.lambda_decrease == pytest.approx(0.773781, abs=1e-6) and cfg.gamma_decay == pytest.approx(0.598737,
                                                                                                      abs=1e-6)


@pytest.mark.parametrize("optimizer", ["kfac", "kfac_tridiag"])
def test_kfac_runs_end_to_end_and_logs_its_state(train, tmp_path: Path, optimizer: str) -> None:
    torch.set_default_dtype(torch.float32)
    code, err = train(f"optimizer={optimizer}", "optimizer.batch_size=64", "objective.l2=1e-5",
                      "trainer.max_steps=21", "trainer.eval_every=7", "trainer.log_every=1",
                      "trainer.polyak_decay=0.99", "trainer.polyak_start=10", run_dir=tmp_path / optimizer)
    assert code == 0, err
    metrics, summary = read_run(tmp_path / optimizer)
    for column in ("lambda", "gamma", "alpha", "mu", "rho", "batch_size", "train_error_avg", "test_error_avg"):
        assert column in metrics.columns
    evaluated = metrics.dropna(subset=["train_error"])
    assert evaluated.train_error.iloc[-1] < 0.7 * evaluated.train_error.iloc[0]
    assert math.isnan(evaluated.train_error_avg.iloc[1]) and not math.isnan(evaluated.train_error_avg.iloc[-1])
    rows = metrics.set_index("iteration")
    # LM every 5 iterations from λ = 150 with ω₁ = 0.95⁵; the gamma trial at k = 20 keeps √(150 + 1e-5)
    expected = 150.0
    for k in (5, 10, 15, 20):
        rho = rows.loc[k, "rho"]
        expected = expected * 0.95**5 if rho > 0.75 else expected / 0.95**5 if rho < 0.25 else expected
        assert rows.loc[k, "lambda"] == pytest.approx(expected)
    assert rows["rho"].notna().sum() == 4  # ρ only every T₁ = 5 iterations
    assert summary["best"]["train_error"]["value"] <= evaluated.train_error.min()
    assert metrics.inversions.iloc[-1] > 0


def test_kfac_variants_run(train, tmp_path: Path) -> None:
    torch.set_default_dtype(torch.float32)
    for i, extra in enumerate([("optimizer.momentum=false",), ("optimizer.factors=empirical",),
                               ("optimizer.fisher_fraction=0.25", "optimizer.batch_schedule=fixed")]):
        code, err = train("optimizer=kfac", "optimizer.batch_size=64", "trainer.max_steps=4", *extra,
                          run_dir=tmp_path / f"v{i}")
        assert code == 0, err


def test_kfac_resumes_exactly_mid_inverse_period(train, tmp_path: Path) -> None:
    """A run stopped between refreshes (inverses, factors, δ₀, λ, γ checkpointed) continues as if never
    stopped: the same losses and (α, μ, λ, γ) bit for bit."""
    torch.set_default_dtype(torch.float32)
    common = ("optimizer=kfac", "optimizer.batch_size=64", "optimizer.inverse_period=5",
              "optimizer.gamma_period=5", "trainer.eval_every=4", "trainer.log_every=1")
    assert train(*common, "trainer.max_steps=12", run_dir=tmp_path / "straight")[0] == 0
    assert train(*common, "trainer.max_steps=7", run_dir=tmp_path / "split")[0] == 0
    code, err = train(*common, "trainer.max_steps=12", "trainer.resume=true", run_dir=tmp_path / "split")
    assert code == 0, err
    straight, resumed = read_run(tmp_path / "straight")[0], read_run(tmp_path / "split")[0]
    columns = ["iteration", "loss", "alpha", "mu", "lambda", "gamma"]
    pd.testing.assert_frame_equal(straight[columns].dropna(subset=["loss"]).reset_index(drop=True),
                                  resumed[columns].dropna(subset=["loss"]).reset_index(drop=True))
