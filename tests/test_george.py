"""George's centred gradient descent and ACP against their closed forms (George 2017, §6.3.2, §6.4); the §4.1
search protocol (each trial a trainer run) against a hand-written SGD loop."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from secondorder.composition import compose_config
from secondorder.data import load_dataset
from secondorder.data.mnist import Mnist5kConfig
from secondorder.data.splits import DataSplits
from secondorder.experiments import search_protocol
from secondorder.losses import get_loss
from secondorder.metrics import get_metric
from secondorder.models import AutoencoderConfig, InitConfig, build_model
from secondorder.optim import OPTIMIZERS
from secondorder.optim.george import ACP, ACPConfig, CenteredSGD, CenteredSGDConfig, acp_direction
from secondorder.problems import EpochSampler, ObjectiveConfig, SupervisedProblem
from secondorder.train import SAMPLER_SEED_OFFSET
from tests.conftest import read_run

pytestmark = pytest.mark.usefixtures("float64")  # float64 oracles (tests/conftest.py)


def test_acp_direction_is_the_input_factor_preconditioned_gradient() -> None:
    """F_in = A ⊗ αI with A = E[(h;1)(h;1)ᵀ] (§6.3.2): F_in⁻¹∇ gives eqs 6.3.3/6.3.4 (with the bias term)."""
    g = torch.Generator().manual_seed(0)
    n, d_in, d_out, alpha = 40, 4, 3, 2.5
    h = torch.randn(n, d_in, generator=g) + 1.0
    grads = torch.randn(n, d_out, generator=g)
    h1 = torch.cat([h, torch.ones(n, 1)], dim=1)
    A = h1.T @ h1 / n
    gradient = grads.T @ h1 / n  # (1/n) Σ g (h; 1)ᵀ, the [∇W | ∇b] block
    expected = gradient @ torch.linalg.inv(A) / alpha  # (A ⊗ αI)⁻¹ in matrix form
    centred = h - h.mean(0)
    C_inverse = torch.linalg.inv(centred.T @ centred / n)
    dW, db = acp_direction(grads, h, C_inverse, alpha, bias_correction=True)
    torch.testing.assert_close(dW, expected[:, :-1])
    torch.testing.assert_close(db, expected[:, -1])


def test_exact_damped_acp_direction() -> None:
    """(A + δ I) ⊗ αI with δ = ε/α (§6.4.2): the exact damped inverse (our derivation)."""
    g = torch.Generator().manual_seed(1)
    n, d_in, d_out, alpha, delta = 30, 3, 2, 1.7, 0.29
    h = torch.randn(n, d_in, generator=g) + 0.5
    grads = torch.randn(n, d_out, generator=g)
    h1 = torch.cat([h, torch.ones(n, 1)], dim=1)
    expected = (grads.T @ h1 / n) @ torch.linalg.inv(h1.T @ h1 / n + delta * torch.eye(d_in + 1)) / alpha
    m, s = h.mean(0), 1 + delta
    C_delta = h.T @ h / n + delta * torch.eye(d_in) - torch.outer(m, m) / s
    dW, db = acp_direction(grads, h, torch.linalg.inv(C_delta), alpha, False, mean=m, s=s)
    torch.testing.assert_close(dW, expected[:, :-1])
    torch.testing.assert_close(db, expected[:, -1])


def single_layer(x: torch.Tensor, y: torch.Tensor, seed: int = 2) -> SupervisedProblem:
    model = nn.Sequential(nn.Linear(x.shape[1], y.shape[1]))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    data = DataSplits("toy", x, y, x, y, "t", "t", True)
    return SupervisedProblem(model, get_loss("squared_error"), data, get_metric("reconstruction_sse"),
                             ObjectiveConfig())


def test_centred_gd_equals_sgd_on_centred_inputs_for_one_layer() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 4, generator=g) + 2.0, torch.randn(16, 3, generator=g)
    problem = single_layer(x, y)
    centred_problem = single_layer(x - x.mean(0), y)
    with torch.no_grad():  # the same function: W x + b = W (x − x̄) + (b + W x̄)
        centred_problem.model[0].bias.copy_(problem.model[0].bias + problem.model[0].weight @ x.mean(0))
    before = problem.model[0].weight.detach().clone()
    CenteredSGD(problem, CenteredSGDConfig(lr=0.1, batch_size=16)).step(0, problem.make_sampler(seed=0))
    loss = centred_problem.objective((x - x.mean(0), y))
    loss.backward()
    expected = before - 0.1 * centred_problem.model[0].weight.grad
    torch.testing.assert_close(problem.model[0].weight.detach(), expected)


def test_acp_refreshes_every_n_updates_and_uses_a_separate_statistics_batch() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(64, 5, generator=g), torch.randn(64, 3, generator=g)
    problem = single_layer(x, y)
    optimizer = ACP(problem, ACPConfig(lr=0.05, batch_size=8, stats_period=3, stats_batch_size=16, alpha=1.0))
    sampler = problem.make_sampler(seed=0)
    refreshed = [optimizer.step(k, sampler).stats["refreshed"] for k in range(7)]
    assert refreshed == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert sampler.examples_seen == 7 * 8 + 3 * 16


def test_heuristic_alpha_is_the_largest_squared_preactivation_gradient() -> None:
    grads = torch.tensor([[0.1, -2.0], [0.5, 1.0]])
    assert ACP.heuristic_alpha(grads) == 4.0


def test_acp_with_alpha_one_and_no_damping_is_the_whitened_step() -> None:
    """Same-batch statistics, α = 1, ε = 0, bias correction on: one ACP step = one step of the closed form."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(20, 3, generator=g) + 1.0, torch.randn(20, 2, generator=g)
    problem = single_layer(x, y)
    reference = copy.deepcopy(problem.model)
    cfg = ACPConfig(lr=0.1, batch_size=20, stats_batch_size=20, alpha=1.0, damping=0.0, bias_correction=True)
    ACP(problem, cfg).step(0, problem.make_sampler(seed=0))
    out = reference(x)
    per_example = (out - y)  # ∇_a of ½‖a − y‖² per example
    centred = x - x.mean(0)
    dW, db = acp_direction(per_example, x, torch.linalg.inv(centred.T @ centred / 20), 1.0, True)
    torch.testing.assert_close(problem.model[0].weight.detach(), reference[0].weight.detach() - 0.1 * dW)
    torch.testing.assert_close(problem.model[0].bias.detach(), reference[0].bias.detach() - 0.1 * db)


@pytest.mark.parametrize("optimizer", ["centered_sgd", "acp", "acp_fixed_alpha", "nnn"])
def test_george_methods_run_end_to_end(train, tmp_path: Path, optimizer: str) -> None:
    torch.set_default_dtype(torch.float32)
    code, err = train(f"optimizer={optimizer}", "dataset=mnist_5k", "model.encoder_dims=[784,32,8]",
                      "optimizer.lr=0.001", "trainer.max_steps=12", "trainer.eval_every=6",
                      "trainer.device=cpu", "trainer.progress=false", run_dir=tmp_path / optimizer, tiny=False)
    assert code == 0, err
    metrics, summary = read_run(tmp_path / optimizer)
    assert summary["status"] == "completed" and "lr" in metrics.columns
    if optimizer != "centered_sgd":
        assert metrics["alpha_mean"].dropna().gt(0).all()


def test_nnn_is_acp_with_alpha_one_and_the_bias_correction() -> None:
    """George §6.5: an SGD step of Natural Neural Networks (whitened inputs) is an ACP step with α = 1 and the
    −ΔW h̄ bias correction; the step itself is checked in
    ``test_acp_with_alpha_one_and_no_damping_is_the_whitened_step``."""
    cfg, _ = compose_config(["optimizer=nnn"])
    assert (cfg.optimizer.name, cfg.optimizer.alpha, cfg.optimizer.bias_correction) == ("nnn", 1.0, True)
    assert OPTIMIZERS["nnn"] is ACP


@pytest.mark.parametrize("normalization", ["batch_norm", "mean_only_batch_norm"])
def test_batch_normalised_sgd_baselines_run_and_second_order_methods_refuse_them(
        train, tmp_path: Path, normalization: str) -> None:
    """Figs 6.1/6.2's batch-norm baselines train with SGD; a method whose curvature is built per case refuses the
    model in one line (the batch couples the cases)."""
    torch.set_default_dtype(torch.float32)
    common = ["dataset=mnist_5k", "model.encoder_dims=[784,32,8]", f"model.normalization={normalization}",
              "trainer.max_steps=8", "trainer.eval_every=4", "trainer.device=cpu", "trainer.progress=false"]
    code, err = train("optimizer=sgd", "optimizer.lr=0.01", *common, run_dir=tmp_path / "sgd", tiny=False)
    assert code == 0, err
    metrics, summary = read_run(tmp_path / "sgd")
    assert summary["status"] == "completed" and metrics["train_error"].dropna().size == 3
    for optimizer in ("kfac", "acp", "hf"):
        code, err = train(f"optimizer={optimizer}", *common, run_dir=tmp_path / optimizer, tiny=False)
        assert code == 2 and "not defined for a batch-normalised model" in err, err
        assert len(err.strip().splitlines()) == 1


TINY_SEARCH = {"note": "**REDUCED** (tiny test profile)",
               "data": ["dataset=mnist_5k"], "searches": 2, "experiments": 4, "steps": 3, "dims": [784, 8]}


def test_a_search_trial_is_plain_sgd_through_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """George 2017 §4.1 protocol: a trial's criterion is the final training loss (½‖f(x) − x‖² per case, mean over
    the training set) after ``steps`` SGD updates on batches of 200 from the trainer's sampler, from Glorot weights
    × the trial's scale (its own seed: trial 0 of repetition 0); a diverging trial gives None; trial run directories
    do not stay behind."""
    torch.set_default_dtype(torch.float32)
    monkeypatch.setitem(search_protocol.PROFILES, "quick", TINY_SEARCH)
    objective = search_protocol.sgd_objective("quick", tmp_path / "data", tmp_path / "runs")
    params = {"lr": 0.003, "init_scale": 2.0}
    value = objective(params)

    data = load_dataset(Mnist5kConfig(), tmp_path / "data")
    seed = search_protocol.trial_seed(0, 0)
    model = build_model(AutoencoderConfig(encoder_dims=[784, 8], init=InitConfig(scheme="glorot", scale=2.0)),
                        seed=seed)
    sampler = EpochSampler(data.train_inputs, data.train_targets, seed=seed + SAMPLER_SEED_OFFSET)
    sgd = torch.optim.SGD(model.parameters(), lr=0.003)
    for _ in range(3):
        x, y = sampler.next(200)
        sgd.zero_grad()
        (0.5 * (model(x) - y).pow(2).sum(1)).mean().backward()
        sgd.step()
    with torch.no_grad():
        expected = (0.5 * (model(data.train_inputs) - data.train_targets).pow(2).sum(1)).double().mean()
    assert value == pytest.approx(float(expected), rel=1e-5)

    assert objective({"lr": 1e4, "init_scale": 4.0}) is None  # diverges
    assert not any((tmp_path / "runs").iterdir())


def test_search_table_on_a_tiny_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The three procedures, the thesis's numbers beside ours, Figure 4.1."""
    torch.set_default_dtype(torch.float32)
    monkeypatch.setitem(search_protocol.PROFILES, "quick", TINY_SEARCH)
    text = search_protocol.search_table("quick", tmp_path, tmp_path / "data")
    assert "| grid | 27.23 ± 0.42 |" in text and "| biased | 26.61 ± 0.13 |" in text and "REDUCED" in text
    rows = [line.split("|") for line in text.splitlines() if line.startswith(("| grid", "| random"))]
    for row in rows:  # George's scale ‖·‖² is twice our ½‖·‖²
        (george, george_spread), (ours, ours_spread) = (cell.split("±") for cell in row[3:5])
        assert float(george) == pytest.approx(2 * float(ours), rel=1e-3) and 0 < float(ours) < 200
        assert float(george_spread) == pytest.approx(2 * float(ours_spread), rel=0.05, abs=0.02)
        assert float(ours_spread) > 0  # two repetitions with their own seeds: the grid row has a spread too
    assert (tmp_path / "figure-4.1.png").stat().st_size > 0


def test_search_resumes_from_its_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each finished procedure × repetition is kept; a second call runs no trial and writes the same table and
    ``search.csv`` (every repetition's best); other settings do not reuse the history."""
    torch.set_default_dtype(torch.float32)
    monkeypatch.setitem(search_protocol.PROFILES, "quick", TINY_SEARCH)
    history = tmp_path / "runs" / "search-history.jsonl"
    first = search_protocol.search_table("quick", tmp_path, tmp_path / "data", history)
    assert len(history.read_text().splitlines()) == 3 * TINY_SEARCH["searches"]
    csv = (tmp_path / "search.csv").read_text().splitlines()
    assert csv[0] == "procedure,repetition,best_loss" and len(csv) == 1 + 3 * TINY_SEARCH["searches"]

    def no_trials(*args, **kwargs):
        raise AssertionError("a finished repetition ran again")

    monkeypatch.setattr(search_protocol, "run_search", no_trials)
    assert search_protocol.search_table("quick", tmp_path, tmp_path / "data", history) == first
    monkeypatch.setitem(search_protocol.PROFILES, "quick", {**TINY_SEARCH, "steps": 4})
    with pytest.raises(AssertionError, match="ran again"):
        search_protocol.search_table("quick", tmp_path, tmp_path / "data", history)


def test_trials_get_their_own_seeds_and_random_and_biased_search_draw_independently(tmp_path: Path) -> None:
    """Issue 19: two trials of one search differ in seed (init and batch order), every repetition too; random and
    biased search with the same search seed propose from independent streams."""
    from secondorder.search import propose

    seeds = {search_protocol.trial_seed(r, k) for r in range(3) for k in range(100)}
    assert len(seeds) == 300
    params = {d.key: d.from_unit(0.5) for d in search_protocol.SPACE}
    overrides = [search_protocol.trial_overrides("quick", params, tmp_path, tmp_path / "t", search_protocol
                                                 .trial_seed(0, k)) for k in (0, 1)]
    assert [o for o in overrides[0] if o.startswith("seed=")] != [o for o in overrides[1] if o.startswith("seed=")]
    random_first = [propose("random", search_protocol.SPACE, [], k, seed=1000) for k in range(5)]
    biased_first = [propose("biased", search_protocol.SPACE, [], k, seed=1000) for k in range(5)]  # cold start
    assert all(r != b for r, b in zip(random_first, biased_first, strict=True))
