"""KFRA / KFLR against the exact Gauss-Newton (float64, dense autograd), the piecewise-linear lemma, and the
optimisers end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from secondorder.kfac.factors import collect_statistics
from secondorder.kfac.inverses import trace_norm_pi
from secondorder.kfac.kfra import activations_after, kfra_statistics
from secondorder.optim.kfac import solve_step_coefficients
from tests.conftest import read_run
from tests.oracles import dense_fisher_blocks, layer_helper, make_problem

pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def factors(problem, x, kind: str):
    layers = layer_helper(problem, x)
    run = lambda: problem.outputs((x, problem.data.train_targets[: len(x)]))  # noqa: E731
    if kind == "kfra":
        return layers, kfra_statistics(layers, activations_after(problem.model, layers), run, problem.loss)
    return layers, collect_statistics(layers, run, problem.loss, "exact", None, False)


@pytest.mark.parametrize("loss", ["squared_error", "sigmoid_bce", "softmax_ce"])
@pytest.mark.parametrize("kind", ["kfra", "kflr"])
@pytest.mark.parametrize("activation", [nn.Tanh, nn.Sigmoid, nn.ReLU])
def test_one_case_gives_the_exact_gauss_newton_diagonal_blocks(loss: str, kind: str, activation) -> None:
    """N = 1: Q̃ ⊗ 𝒢̃ is exactly the GN diagonal block (App. D.4); row-major [W | b] gives 𝒢̃ ⊗ Q̃."""
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(1))
    problem = make_problem([3, 5, 4, 3], activation, x, loss=loss)
    layers, f = factors(problem, x, kind)
    exact = dense_fisher_blocks(problem, layers, x)  # = GN blocks for a matching loss
    for i in range(3):
        torch.testing.assert_close(torch.kron(f["G"][i], f["A"][i]), exact[i][i])


def test_kflr_is_the_exact_expected_preactivation_gn_for_many_cases() -> None:
    """𝔼[𝒢_λ] = (1/N) Σ_n 𝒢_λ⁽ⁿ⁾: average the one-case factors (eq. 25)."""
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(2))
    problem = make_problem([3, 5, 4, 2], nn.Tanh, x, loss="softmax_ce")
    _, batch = factors(problem, x, "kflr")
    per_case = [factors(problem, x[n : n + 1], "kflr")[1]["G"] for n in range(7)]
    for i in range(3):
        torch.testing.assert_close(batch["G"][i], sum(g[i] for g in per_case) / 7)


def test_kfra_is_an_approximation_for_many_cases_but_exact_for_a_linear_network() -> None:
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(3))
    nonlinear = make_problem([3, 5, 4, 2], nn.Tanh, x, loss="sigmoid_bce")
    kfra, kflr = factors(nonlinear, x, "kfra")[1], factors(nonlinear, x, "kflr")[1]
    torch.testing.assert_close(kfra["G"][-1], kflr["G"][-1])  # the top factor is exact (batch-mean H_L)
    assert float((kfra["G"][0] - kflr["G"][0]).norm() / kflr["G"][0].norm()) > 1e-3
    linear = make_problem([3, 5, 4, 2], None, x, loss="sigmoid_bce")  # f′ = 1: 𝒢 = Wᵀ E[H_L] W exactly
    kfra, kflr = factors(linear, x, "kfra")[1], factors(linear, x, "kflr")[1]
    for i in range(3):
        torch.testing.assert_close(kfra["G"][i], kflr["G"][i])


def test_trace_norm_split_and_step_size() -> None:
    g = torch.Generator().manual_seed(4)
    Q = (lambda M: M @ M.T)(torch.randn(4, 4, generator=g))
    G = (lambda M: M @ M.T)(torch.randn(3, 3, generator=g))
    omega = trace_norm_pi(Q, G)
    assert omega == pytest.approx(((torch.trace(Q) * 3) / (torch.trace(G) * 4)).sqrt().item())  # Alg. 1, App. H
    # α* = −δ̃ᵀ∇f / (δ̃ᵀGδ̃ + (τ+η)‖δ̃‖²) (eqs. 39–41) is the 1-D case of the (α, μ) solve
    delta, grad = torch.randn(5, generator=g), torch.randn(5, generator=g)
    F = (lambda M: M @ M.T)(torch.randn(5, 5, generator=g))
    coefficients, change = solve_step_coefficients((delta @ F @ delta)[None, None], (delta @ delta)[None, None],
                                                   (grad @ delta)[None], 0.7)
    alpha = -(delta @ grad) / (delta @ F @ delta + 0.7 * delta @ delta)
    assert float(coefficients[0]) == pytest.approx(float(alpha))
    assert change == pytest.approx(float(-0.5 * (delta @ grad) ** 2 / (delta @ F @ delta + 0.7 * delta @ delta)))


@pytest.mark.parametrize("loss", ["squared_error", "sigmoid_bce", "softmax_ce"])
def test_piecewise_linear_networks_have_psd_diagonal_hessian_blocks_equal_to_gn(loss: str) -> None:
    """Lemmas 1–2 (App. F): with ReLU (f″ = 0) and a convex matching loss, every diagonal Hessian block
    equals the GN block and is PSD; trace(H) ≥ 0. The full Hessian may still be indefinite."""
    x = torch.randn(9, 3, generator=torch.Generator().manual_seed(5))
    problem = make_problem([3, 6, 5, 3], nn.ReLU, x, loss=loss, seed=5)
    layers = layer_helper(problem, x)
    params = {n: p.detach() for n, p in problem.model.named_parameters()}
    blocks0 = layers.to_blocks(params)
    y = problem.data.train_targets

    def objective(*blocks):
        out = torch.func.functional_call(problem.model, {**params, **layers.from_blocks(list(blocks))}, (x,))
        return problem.loss(out, y)

    hessian = torch.func.hessian(objective, argnums=tuple(range(3)))(*blocks0)
    gn = dense_fisher_blocks(problem, layers, x)
    trace = 0.0
    for i in range(3):
        size = blocks0[i].numel()
        H_ii = hessian[i][i].reshape(size, size)
        torch.testing.assert_close(H_ii, gn[i][i], rtol=1e-8, atol=1e-10)
        assert float(torch.linalg.eigvalsh(H_ii).min()) > -1e-10 * float(H_ii.norm())
        trace += float(torch.trace(H_ii))
    assert trace >= 0


def test_tanh_networks_break_the_lemma() -> None:
    """Control: with tanh (f″ ≠ 0) some diagonal Hessian block differs from GN / is indefinite."""
    found = False
    for seed in range(5):
        x = torch.randn(9, 3, generator=torch.Generator().manual_seed(seed))
        problem = make_problem([3, 6, 5, 3], nn.Tanh, x, loss="squared_error", seed=seed)
        layers = layer_helper(problem, x)
        params = {n: p.detach() for n, p in problem.model.named_parameters()}
        b = layers.to_blocks(params)[0]

        def objective(block, layers=layers, params=params, problem=problem, x=x):
            out = torch.func.functional_call(problem.model, {**params, **layers.from_blocks(
                [block, *layers.to_blocks(params)[1:]])}, (x,))
            return problem.loss(out, problem.data.train_targets)

        H = torch.func.hessian(objective)(b).reshape(b.numel(), b.numel())
        found |= float(torch.linalg.eigvalsh(H).min()) < -1e-6
    assert found


@pytest.mark.parametrize(("gamma_max", "runs_away"), [("1.0", False), ("null", True)])
def test_kfra_gamma_stays_bounded_where_unbounded_it_runs_away(train, tmp_path: Path, gamma_max: str,
                                                              runs_away: bool) -> None:
    """Issue 18: with τ large, the greedy γ rule (App. C.3.2) prefers the most damped candidate every time; the
    K-FAC bound γ ≤ 1 (here √(γ+η) ≤ 1, conf/optimizer/kfra.yaml) keeps γ at or below γ₀ = 150. The unbounded
    setting (the old default) is run too, so this test is seen to catch the runaway."""
    torch.set_default_dtype(torch.float32)
    code, err = train("optimizer=kfra", "dataset=curves", "optimizer.batch_size=128",
                      f"optimizer.gamma_max={gamma_max}", "trainer.max_steps=41", "trainer.eval_every=1000",
                      "trainer.log_every=1",
                      "model.encoder_dims=[784,24,6]", "dataset.n_train=256", "dataset.n_test=128",
                      "trainer.device=cpu", "trainer.progress=false", run_dir=tmp_path / "r", tiny=False)
    assert code == 0, err
    gammas = read_run(tmp_path / "r")[0]["gamma"].dropna()
    assert (gammas.max() > 150.0) == runs_away, gammas.unique()


@pytest.mark.parametrize(("optimizer", "dataset", "extra"), [
    ("kfra", "curves", ("model.encoder_dims=[784,24,6]", "dataset.n_train=256", "dataset.n_test=128")),
    ("kflr", "mnist_5k_class", ("model.dims=[784,20,10]",)),
    ("kfra", "mnist_5k_class", ("model.dims=[784,20,10]", "optimizer.rho_low=0.25", "optimizer.stats_decay=0")),
])
def test_kfra_and_kflr_run_and_log_their_damping(train, tmp_path: Path, optimizer: str, dataset: str,
                                                 extra: tuple[str, ...]) -> None:
    torch.set_default_dtype(torch.float32)
    code, err = train(f"optimizer={optimizer}", f"dataset={dataset}", "optimizer.batch_size=128",
                      "trainer.max_steps=21", "trainer.eval_every=7", "trainer.log_every=1",
                      "trainer.device=cpu", "trainer.progress=false", *extra, run_dir=tmp_path / "r", tiny=False)
    assert code == 0, err
    metrics, _ = read_run(tmp_path / "r")
    rows = metrics.set_index("iteration")
    assert rows["rho"].notna().sum() == 4 and (rows["mu"].dropna() == 0).all()  # τ every 5, no momentum
    assert rows.loc[20, "gamma"] != rows.loc[19, "gamma"] or rows.loc[20, "gamma"] == 150.0
    assert rows["inversions"].diff().dropna().min() > 0  # fresh factors and solves every iteration
    evaluated = metrics.dropna(subset=["train_error"])
    assert evaluated.train_error.iloc[-1] < evaluated.train_error.iloc[0]
