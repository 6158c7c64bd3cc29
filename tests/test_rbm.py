"""RBM pre-training (CD-1) and unrolling into the autoencoder (H&S 2006)."""

from __future__ import annotations

from pathlib import Path

import torch

from secondorder.data.curves import CurvesConfig, generate_curves
from secondorder.models.autoencoder import DeepAutoencoder
from secondorder.pretraining.rbm import RBM, RBMConfig, pretrain_autoencoder, unroll
from tests.conftest import read_run


def curves(n: int = 600) -> torch.Tensor:
    return generate_curves(n, 0, CurvesConfig())


def test_binary_rbm_reconstruction_error_decreases() -> None:
    data = curves()
    rbm = RBM(784, 64, "binary", "binary", RBMConfig(), torch.Generator().manual_seed(0), data.device, data.dtype)
    errors = []
    for epoch in range(8):
        momentum = 0.9 if epoch >= 5 else 0.5
        errors.append(sum(rbm.cd1(data[s : s + 100], momentum) for s in range(0, 600, 100)) / 600)
    assert errors[-1] < 0.7 * errors[0]


def test_gaussian_visible_rbm_learns_real_valued_data() -> None:
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(5, 40, generator=g)
    data = torch.rand(800, 5, generator=g) @ basis + 0.05 * torch.randn(800, 40, generator=g)
    data = (data - data.mean(0)) / data.std(0)  # unit variance, as Gaussian visibles with σ = 1 assume
    rbm = RBM(40, 20, "gaussian", "binary", RBMConfig(lr_linear=0.005), g, data.device, data.dtype)
    errors = [sum(rbm.cd1(data[s : s + 100], 0.9) for s in range(0, 800, 100)) / 800 for _ in range(15)]
    assert errors[-1] < 0.8 * errors[0]
    assert rbm.lr == 0.005  # Gaussian visibles use the small (linear-unit) learning rate


def test_unrolled_network_computes_the_mean_field_up_down_pass() -> None:
    torch.manual_seed(0)
    cfg = RBMConfig()
    g = torch.Generator().manual_seed(2)
    bottom = RBM(12, 7, "binary", "binary", cfg, g, torch.device("cpu"), torch.float32)
    top = RBM(7, 3, "binary", "linear", cfg, g, torch.device("cpu"), torch.float32)
    for rbm in (bottom, top):  # non-zero biases so that the test can fail on swapped biases
        rbm.b_visible.normal_(generator=g)
        rbm.b_hidden.normal_(generator=g)
    model = DeepAutoencoder([12, 7, 3])
    unroll([m for m in model if isinstance(m, torch.nn.Linear)], [bottom, top])
    v = torch.rand(5, 12, generator=g)
    h1 = torch.sigmoid(v @ bottom.W + bottom.b_hidden)
    code = h1 @ top.W + top.b_hidden                      # linear code units
    h1_down = torch.sigmoid(code @ top.W.T + top.b_visible)
    reconstruction = torch.sigmoid(h1_down @ bottom.W.T + bottom.b_visible)
    torch.testing.assert_close(torch.sigmoid(model(v)), reconstruction)


def test_pretraining_lowers_the_autoencoders_initial_error() -> None:
    data = curves(500)
    model = DeepAutoencoder([784, 64, 8])
    with torch.no_grad():
        before = float((torch.sigmoid(model(data)) - data).pow(2).sum(1).mean())
    info = pretrain_autoencoder(model, data, RBMConfig(epochs=6), gaussian_visible=False, seed=0)
    with torch.no_grad():
        after = float((torch.sigmoid(model(data)) - data).pow(2).sum(1).mean())
    assert after < 0.8 * before and info["rbm_layers"] == 2 and info["pretrain_time_s"] > 0
    assert len(info["rbm_reconstruction_error"]) == 12


def test_trainer_runs_pretraining_and_counts_its_time(train, tmp_path: Path) -> None:
    code, err = train("pretrain=rbm", "pretrain.epochs=2", "optimizer=sgd", "trainer.max_steps=2",
                      run_dir=tmp_path / "r")
    assert code == 0, err
    metrics, summary = read_run(tmp_path / "r")
    assert summary["pretraining"]["rbm_layers"] == 2
    assert metrics.wall_time_s.iloc[0] == summary["pretraining"]["pretrain_time_s"] > 0
    code, err = train("pretrain=rbm", "dataset=mnist_5k_class", "model.dims=[784,10]", "trainer.max_steps=1",
                      "trainer.device=cpu", run_dir=tmp_path / "bad", tiny=False)
    assert code == 2 and "pretrain=rbm needs an autoencoder" in err
