"""Nonlinear CG (minimize-style Polak–Ribière with Wolfe–Powell line searches)."""

from __future__ import annotations

import pytest
import torch

from secondorder.optim.ncg import NCGConfig, minimize


def test_exact_on_a_quadratic_in_n_line_searches() -> None:
    """Linear CG = Polak–Ribière with exact line searches: n searches solve an n-dimensional SPD quadratic."""
    g = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[0]
    A = Q @ torch.diag(torch.tensor([1.0, 2.0, 3.0, 5.0, 8.0, 13.0], dtype=torch.float64)) @ Q.T
    b = torch.randn(6, generator=g, dtype=torch.float64)
    cfg = NCGConfig(sigma=1e-8, rho=1e-9, max_evaluations=60)  # near-exact line searches

    def fun(x):
        return float(0.5 * x @ A @ x - b @ x), A @ x - b

    result = minimize(fun, torch.zeros(6, dtype=torch.float64), 6, cfg)
    torch.testing.assert_close(result.x, torch.linalg.solve(A, b), rtol=1e-5, atol=1e-6)


def test_rosenbrock() -> None:
    def fun(x):
        value = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        grad = torch.stack([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])
        return float(value), grad

    result = minimize(fun, torch.tensor([-1.2, 1.0], dtype=torch.float64), 100, NCGConfig())
    torch.testing.assert_close(result.x, torch.tensor([1.0, 1.0], dtype=torch.float64), atol=1e-4, rtol=0)
    assert result.value < 1e-8


def test_wolfe_conditions_hold_after_each_successful_search() -> None:
    calls = []

    def fun(x):
        calls.append(x.clone())
        return float((x**4).sum() + (x**2).sum()), 4 * x**3 + 2 * x

    x0 = torch.tensor([1.5, -0.7, 2.0], dtype=torch.float64)
    cfg = NCGConfig()
    f0, g0 = fun(x0)
    one = minimize(fun, x0, 1, cfg)
    s = -g0
    step = (one.x - x0) @ s / (s @ s)
    f1, g1 = fun(one.x)
    assert f1 <= f0 + cfg.rho * float(step) * float(g0 @ s)
    assert abs(float(g1 @ s)) <= -cfg.sigma * float(g0 @ s) + 1e-12


def test_survives_non_finite_values() -> None:
    def fun(x):
        if x[0] > 2.0:
            return float("nan"), torch.full_like(x, float("nan"))
        return float((x[0] - 1.9) ** 2), 2 * (x - 1.9)

    result = minimize(fun, torch.tensor([0.0], dtype=torch.float64), 5, NCGConfig())
    assert result.value < 1e-3 and float(result.x[0]) <= 2.0


@pytest.mark.parametrize("optimizer", ["ncg"])
def test_ncg_trains(train, tmp_path, optimizer: str) -> None:
    from tests.conftest import read_run

    code, err = train(f"optimizer={optimizer}", "optimizer.batch_size=128", "trainer.max_steps=4",
                      "trainer.eval_every=2", run_dir=tmp_path / "r")
    assert code == 0, err
    metrics, _ = read_run(tmp_path / "r")
    assert metrics.train_error.dropna().iloc[-1] < metrics.train_error.dropna().iloc[0]
    assert metrics.evaluations.dropna().ge(2).all()
