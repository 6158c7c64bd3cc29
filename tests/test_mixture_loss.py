"""The non-matching mixture loss of Botev et al. 2017 eq. 27 (the odd/even experiment, §5.2): its value,
its indefinite output Hessian, the PSD Gauss–Newton part used by KFRA / KFLR / the GGN operator, and the Fisher
(E_{y~p}[H_L] = E_{y~p}[ggᵀ] ≠ H_L(y_data)) that K-FAC's sampled targets estimate. Float64, dense autograd."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from secondorder.curvature.products import GGNOperator
from secondorder.data.splits import DataSplits
from secondorder.kfac.factors import collect_statistics
from secondorder.kfac.kfra import activations_after, kfra_statistics
from secondorder.losses import get_loss
from secondorder.metrics import get_metric
from secondorder.problems.base import ObjectiveConfig
from secondorder.problems.supervised import SupervisedProblem
from tests.conftest import read_run
from tests.oracles import dense_ggn, layer_helper

LOSS = get_loss("mixture_binary")


pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def naive_nll(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    q2 = s[:, 1] ** y * (1 - s[:, 1]) ** (1 - y)
    q3 = s[:, 2] ** y * (1 - s[:, 2]) ** (1 - y)
    return -torch.log(s[:, 0] * q2 + (1 - s[:, 0]) * q3)


def cases(n: int = 64, seed: int = 0, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g).double()


def test_value_and_prediction_follow_eq_27() -> None:
    z, y = cases()
    torch.testing.assert_close(LOSS.per_case(z, y), naive_nll(z, y))
    s = torch.sigmoid(z)
    torch.testing.assert_close(LOSS.predict(z), s[:, 0] * s[:, 1] + (1 - s[:, 0]) * s[:, 2])
    big = torch.tensor([[40.0, -40.0, 40.0]])  # stable where the naive product underflows
    assert torch.isfinite(LOSS.per_case(big, torch.ones(1))).all()


def test_exact_hessian_is_autograd_and_sometimes_indefinite() -> None:
    z, y = cases()
    H = LOSS.exact_output_hessian(z, y)
    for b in range(4):
        torch.testing.assert_close(H[b], torch.func.hessian(lambda zb, b=b: naive_nll(zb[None], y[b : b + 1])[0])(z[b]))
    assert float(torch.linalg.eigvalsh(H).min()) < -1e-3  # not a matching loss: GN needs the projection


def test_gauss_newton_part_is_the_psd_projection_with_its_factor() -> None:
    z, y = cases()
    exact, projected = LOSS.exact_output_hessian(z, y), LOSS.output_hessian(z, y)
    assert float(torch.linalg.eigvalsh(projected).min()) > -1e-12
    psd = torch.linalg.eigvalsh(exact).min(dim=1).values >= 0
    torch.testing.assert_close(projected[psd], exact[psd])  # unchanged where already PSD
    assert not torch.allclose(projected[~psd], exact[~psd])
    # the projection is the nearest PSD matrix: the removed part is NSD and orthogonal to the kept part
    removed = exact - projected
    assert float(torch.linalg.eigvalsh(removed).max()) < 1e-12
    columns = torch.stack([LOSS.output_hessian_sqrt_t_vector(z, torch.eye(3)[k].expand(len(z), 3), y)
                           for k in range(3)], dim=2)  # Sᵀ e_k
    torch.testing.assert_close(columns @ columns.transpose(1, 2), projected)  # SᵀS = H⁺
    v = torch.randn(len(z), 3, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(LOSS.output_hessian_vector(z, v, y), (projected @ v[:, :, None])[:, :, 0])
    torch.testing.assert_close(LOSS.mean_output_hessian(z, y), projected.mean(dim=0))
    with pytest.raises(Exception, match="needs the targets"):
        LOSS.output_hessian(z)


def test_fisher_is_the_model_expectation_of_the_hessian_and_differs_from_gn() -> None:
    """Botev et al. 2017, §5.2 and App. D.2: F_L = E_{y~p}[∇log p ∇log pᵀ] = E_{y~p}[H_L(y)] ≠ H_L(y_data)."""
    z, y = cases(n=32, seed=3)
    p1 = LOSS.predict(z)
    fisher, expected_hessian = torch.zeros(32, 3, 3), torch.zeros(32, 3, 3)
    for outcome in (0.0, 1.0):
        yy = torch.full((32,), outcome)
        weight = (p1 if outcome else 1 - p1)[:, None, None]
        zz = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(LOSS.per_case(zz, yy).sum(), zz)
        fisher += weight * g[:, :, None] * g[:, None, :]
        expected_hessian += weight * LOSS.exact_output_hessian(z, yy)
    torch.testing.assert_close(fisher, expected_hessian)
    assert float((fisher - LOSS.output_hessian(z, y)).norm()) > 0.1 * float(fisher.norm())
    draws = LOSS.sample_targets(z.repeat(4000, 1), torch.Generator().manual_seed(0)).reshape(4000, 32)
    torch.testing.assert_close(draws.mean(0), p1, atol=0.03, rtol=0)


def test_binary_error_and_parity_targets() -> None:
    error = get_metric("binary_error")(torch.tensor([0.9, 0.2, 0.6, 0.4]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert error.tolist() == [0.0, 1.0, 1.0, 0.0]
    from secondorder.data.views import make_splits

    labels = torch.arange(10)
    splits = make_splits("m", "parity", (torch.zeros(10, 2), labels), (torch.zeros(10, 2), labels), source="s",
                         label="l", stand_in=True, num_classes=10)
    assert splits.train_targets.tolist() == [0.0, 1.0] * 5  # y = 1 for odd digits


def parity_problem(x: torch.Tensor, y: torch.Tensor) -> SupervisedProblem:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    data = DataSplits("toy", x, y, x, y, "t", "t", True)
    return SupervisedProblem(model, LOSS, data, get_metric("binary_error"), ObjectiveConfig())


def test_ggn_operator_and_kflr_kfra_factors_use_the_data_targets() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 4, generator=g), torch.randint(0, 2, (6,), generator=g).double()
    problem = parity_problem(x, y)
    dense = dense_ggn(problem, (x, y))  # (1/N) Σ Jᵀ H⁺_L(z, y) J, the projected Hessian at the data targets
    op = GGNOperator(problem, (x, y), include_l2=False)
    v = torch.randn(dense.shape[0], generator=g)
    torch.testing.assert_close(op.mv(v), dense @ v)

    # one case: KFLR and KFRA give the exact (projected) GN diagonal block of the output layer
    one = (x[:1], y[:1])
    layers = layer_helper(problem, x)
    kflr = collect_statistics(layers, lambda: problem.outputs(one), LOSS, "exact", None, False)
    kfra = kfra_statistics(layers, activations_after(problem.model, layers), lambda: problem.outputs(one), LOSS)
    H1 = LOSS.output_hessian(problem.model(x[:1]).detach(), y[:1])[0]
    for stats in (kflr, kfra):
        torch.testing.assert_close(stats["G"][-1], H1)


@pytest.mark.parametrize("optimizer", ["kflr", "kfra", "kfac_sampled", "adam"])
def test_odd_even_training_runs(train, tmp_path: Path, optimizer: str) -> None:
    torch.set_default_dtype(torch.float32)
    extra = {"kfac_sampled": ("optimizer=kfra", "optimizer.factors=kfac")}.get(optimizer, (f"optimizer={optimizer}",))
    code, err = train(*extra, "dataset=mnist_5k_parity", "model.dims=[784,20,3]", "optimizer.batch_size=256",
                      "trainer.max_steps=12", "trainer.eval_every=6", "trainer.device=cpu", "trainer.progress=false",
                      run_dir=tmp_path / "r", tiny=False)
    assert code == 0, err
    metrics, summary = read_run(tmp_path / "r")
    evaluated = metrics.dropna(subset=["train_error"])
    assert evaluated.train_loss.iloc[-1] < evaluated.train_loss.iloc[0]  # the eq. 27 negative log-likelihood
    assert summary["data"]["stand_in"]
