"""App. G.2 alignment experiment: its solvers against dense linear algebra, and the exactness case (one case:
KFRA's Kronecker blocks are the GN blocks, so its exactly damped update is the block-diagonal GN update)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from secondorder.experiments import alignment
from secondorder.kfac.kfra import activations_after
from tests.oracles import layer_helper, make_problem

pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def test_conjugate_gradient_and_exact_damped_inverse_match_dense_solves() -> None:
    g = torch.Generator().manual_seed(0)
    M = torch.randn(12, 12, generator=g)
    A = M @ M.T + 0.1 * torch.eye(12)
    b = torch.randn(12, generator=g)
    x, iterations = alignment.conjugate_gradient(lambda v: A @ v, b, 100, 1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(A, b))
    assert iterations < 100  # stopped by the residual test, not the cap
    Q = (lambda m: m @ m.T)(torch.randn(4, 4, generator=g))
    G = (lambda m: m @ m.T)(torch.randn(3, 3, generator=g))
    V = torch.randn(3, 4, generator=g)
    dense = torch.linalg.solve(torch.kron(G, Q) + 0.3 * torch.eye(12), V.reshape(-1)).reshape(3, 4)
    torch.testing.assert_close(alignment.exact_damped_apply(Q, G, V, 0.3), dense)
    assert alignment.cosine(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 2.0])) == pytest.approx(2**-0.5)


def test_one_case_kfra_exact_update_is_the_block_diagonal_gn_update() -> None:
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(1))
    problem = make_problem([3, 5, 4, 3], nn.Tanh, x, loss="sigmoid_bce")
    layers = layer_helper(problem, x)
    probe = alignment.AlignmentProbe(problem, layers, activations_after(problem.model, layers), 200, 1e-12)
    row = probe.measure((x, problem.data.train_targets[:1]), gamma=0.05)
    for layer in (1, 2, 3):
        assert row[f"kfra_exact_layer{layer}_vs_blockdiag_gn"] == pytest.approx(1.0, abs=1e-8)
    assert row["blockdiag_gn_vs_full_gn"] < 0.999  # the cross-layer blocks matter
    assert row["kfra_factored_layer1_vs_blockdiag_gn"] < 1 - 1e-6  # factored damping is an approximation


def test_quick_driver_writes_table_csv_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_default_dtype(torch.float32)
    settings = {**alignment.PROFILES["quick"], "iterations": 2, "every": 1, "batch": 40, "cg_iters": 10}
    settings["overrides"] = ["dataset=curves", "dataset.n_train=200", "dataset.n_test=50",
                             "model.encoder_dims=[784,12,4]", "optimizer=kfra"]
    frame = alignment.run_alignment(settings)
    assert list(frame.iteration) == [0, 1, 2]
    assert frame.filter(like="_vs_").abs().le(1 + 1e-6).all().all()
    out = alignment.write(frame, settings, "quick", tmp_path)
    assert "REDUCED" in (out / "alignment.md").read_text()
    assert (out / "alignment.png").stat().st_size > 0
