"""App. G.2 alignment experiment: its solvers against dense linear algebra, the exactness case (one case:
KFRA's Kronecker blocks are the GN blocks, so its exactly damped update is the block-diagonal GN update), and the
measurement as a trainer callback (the same rows as a hand-written loop; resumable)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from secondorder.composition import compose_run
from secondorder.errors import ConfigError
from secondorder.experiments import alignment, alignment_verdicts
from secondorder.kfac.kfra import activations_after
from secondorder.kfac.layers import LinearLayers
from secondorder.optim import build_optimizer
from secondorder.problems import build_problem
from secondorder.train import SAMPLER_SEED_OFFSET, Trainer
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


TINY_SETTINGS = {"note": "**REDUCED** (a test)", "iterations": 6, "every": 2, "batch": 40, "cg_iters": 10,
                 "cg_tol": 1e-6,
                 "overrides": ["dataset=curves", "dataset.image_size=8", "dataset.n_train=200", "dataset.n_test=50",
                               "model.encoder_dims=[64,12,4]", "optimizer=kfra", "objective.l2=1e-5",
                               "optimizer.batch_size=50"]}  # 50 < 200 cases: the batch order matters


def plain_loop(settings: dict, data_dir: Path) -> pd.DataFrame:
    """The measurement in a hand-written loop (the experiment's former driver), with the trainer's seeds: the
    model from ``seed``, training batches from ``seed + SAMPLER_SEED_OFFSET``, probe batches from ``seed + 2``."""
    run = compose_run([*settings["overrides"], f"data_dir={data_dir}"])
    torch.manual_seed(run.seed)
    problem = build_problem(run, torch.device("cpu"), torch.float32)
    optimizer = build_optimizer(run.optimizer, problem)
    sampler = problem.make_sampler(seed=run.seed + SAMPLER_SEED_OFFSET)
    probe_sampler = problem.make_sampler(seed=run.seed + 2)
    layers = LinearLayers(problem.model, lambda: problem.outputs(probe_sampler.next(2)))
    probe = alignment.AlignmentProbe(problem, layers, activations_after(problem.model, layers), settings["cg_iters"],
                                     settings["cg_tol"])
    rows = []
    for iteration in range(settings["iterations"] + 1):
        if iteration % settings["every"] == 0:
            batch = probe_sampler.next(settings["batch"])
            row = probe.measure(batch, float(optimizer.gamma))
            with torch.no_grad():
                rows.append({"iteration": iteration, "train_loss": float(problem.objective(batch)), **row})
        if iteration < settings["iterations"]:
            optimizer.step(iteration, sampler)
    return pd.DataFrame(rows)


def test_trainer_run_measures_what_the_plain_loop_measures_and_writes_the_outputs(tmp_path: Path,
                                                                                  data_dir: Path) -> None:
    torch.set_default_dtype(torch.float32)
    frame = alignment.run_alignment(TINY_SETTINGS, tmp_path / "run", data_dir)
    assert list(frame.iteration) == [0, 2, 4, 6]
    pd.testing.assert_frame_equal(frame, plain_loop(TINY_SETTINGS, data_dir))  # bit for bit
    assert frame.filter(like="_vs_").abs().le(1 + 1e-6).all().all()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "alignment.csv"), frame, check_exact=False)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")  # an ordinary run directory
    assert metrics.iteration.max() == 6 and metrics.dropna(subset=["train_error"]).iteration.tolist() == [0, 2, 4, 6]
    out = alignment.write(frame, TINY_SETTINGS, "quick", tmp_path / "out")
    assert "REDUCED" in (out / "alignment.md").read_text()
    assert (out / "alignment.png").stat().st_size > 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "alignment.csv"), frame, check_exact=False)


def test_interrupted_alignment_run_resumes_to_the_same_rows(tmp_path: Path, data_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed while writing the checkpoint at iteration 4 (row 4 already in alignment.csv, the last checkpoint at
    2): the resumed run drops row 4, measures it again, and ends with the uninterrupted run's rows."""
    torch.set_default_dtype(torch.float32)
    straight = alignment.run_alignment(TINY_SETTINGS, tmp_path / "straight", data_dir)
    original = Trainer.checkpoint

    def checkpoint(self: Trainer) -> None:
        if self.iteration == 4:
            raise KeyboardInterrupt  # the process dies here
        original(self)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "checkpoint", checkpoint)
        with pytest.raises(KeyboardInterrupt):
            alignment.run_alignment(TINY_SETTINGS, tmp_path / "split", data_dir)
    assert pd.read_csv(tmp_path / "split" / "alignment.csv").iteration.tolist() == [0, 2, 4]
    resumed = alignment.run_alignment(TINY_SETTINGS, tmp_path / "split", data_dir)
    pd.testing.assert_frame_equal(resumed, straight)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "split" / "alignment.csv"),
                                  pd.read_csv(tmp_path / "straight" / "alignment.csv"))
    again = alignment.run_alignment(TINY_SETTINGS, tmp_path / "split", data_dir)  # complete: read back, not re-run
    pd.testing.assert_frame_equal(again, straight)
    with pytest.raises(ConfigError, match="cannot resume this alignment run"):
        alignment.run_alignment({**TINY_SETTINGS, "batch": 30}, tmp_path / "split", data_dir)


def measurements(kfra: list[float], kfac: list[float], cg: list[int] | None = None) -> pd.DataFrame:
    """Hand-made alignment rows: the factored cosines given (and the full-GN CG iterations), the rest plausible."""
    n = len(kfra)
    return pd.DataFrame({"iteration": [50 * i for i in range(n)], "damping": [1.0] * n,
                         "cg_iters_full": cg or [10] * n,
                         "blockdiag_gn_vs_full_gn": [0.9] * n,
                         "kfra_factored_vs_full_gn": kfra, "kfac_factored_vs_full_gn": kfac,
                         "kfra_exact_vs_full_gn": kfra, "kfac_exact_vs_full_gn": kfac})


@pytest.mark.parametrize(("kfra", "kfac", "expected", "named"), [
    ([0.71, 0.70, 0.66], [0.69, 0.70, 0.62], "held", "0, 100"),          # ahead at two, tied at one
    ([0.71, 0.60, 0.66], [0.70, 0.65, 0.60], "not held", "50"),          # K-FAC ahead once: not "throughout"
    ([0.709, 0.659, 0.612], [0.708, 0.657, 0.618], "inconclusive", "within 0.01"),  # every difference a tie
    ([0.71, float("nan"), 0.66], [0.69, 0.70, 0.62], "inconclusive", "not finite at iteration(s) 50"),
])
def test_alignment_verdict_follows_its_rule(kfra: list[float], kfac: list[float], expected: str,
                                            named: str) -> None:
    verdict = alignment_verdicts.alignment_verdict(measurements(kfra, kfac))
    assert verdict.verdict.startswith(expected)
    assert named in verdict.why
    assert "0: " + f"{kfra[0]:.3f} / {kfac[0]:.3f}" in verdict.measured


def test_measurements_with_an_unconverged_reference_are_left_out() -> None:
    """Rows whose full-GN CG stopped at its cap (250) do not decide the claim; they are named."""
    tied_then_capped = measurements([0.709, 0.659, 0.612, 0.350], [0.708, 0.657, 0.630, 0.396], [15, 14, 250, 250])
    verdict = alignment_verdicts.alignment_verdict(tied_then_capped, cg_iters=250)
    assert verdict.verdict.startswith("inconclusive") and "within 0.01" in verdict.why
    assert "closer by more than 0.01 at 100, 150" in verdict.why and "cap of 250 iterations" in verdict.measured
    assert alignment_verdicts.alignment_verdict(tied_then_capped).verdict == "not held"  # without the cap: counted
    all_capped = measurements([0.7], [0.6], [250])
    assert "no measurement has a converged" in alignment_verdicts.alignment_verdict(all_capped, 250).why


def test_write_without_measurements_still_judges(tmp_path: Path) -> None:
    out = alignment.write(pd.DataFrame(), TINY_SETTINGS, "evidence", tmp_path / "out")
    rows = pd.read_csv(out / "verdicts.csv")
    assert rows.verdict.tolist() == ["inconclusive at this budget"] * 3
    assert "no alignment rows" in rows.why.iloc[0]


def test_write_judges_every_claim_with_the_measured_runs_provenance(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps(
        {"provenance": {"git_commit": "abcdef1234567", "git_dirty": False, "device_name": "cpu (test)"}}))
    frame = measurements([0.71, 0.60], [0.70, 0.65])
    frame["cg_iters_full"] = 5  # converged: below TINY_SETTINGS' cap of 10
    settings = {**TINY_SETTINGS, "overrides": ["dataset=curves"]}
    out = alignment.write(frame, settings, "evidence", tmp_path / "out", run_dir)
    rows = pd.read_csv(out / "verdicts.csv")
    assert rows.verdict.tolist() == ["not held", "inconclusive at this budget", "inconclusive at this budget"]
    assert "measured on curves only" in rows.measured.iloc[2]
    text = (out / "verdicts.md").read_text()
    assert "Runs: 1 (one KFRA run, 2 measurements); hardware: cpu (test); commit: abcdef1234." in text


def test_report_only_reads_the_measurements_and_leaves_the_run_alone(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "quick"
    run_dir.mkdir(parents=True)
    measurements([0.71, 0.72], [0.69, 0.72]).to_csv(run_dir / "alignment.csv", index=False)
    summary = json.dumps({"provenance": {"git_commit": "0123456789ab", "git_dirty": False, "device_name": "cpu"}})
    (run_dir / "summary.json").write_text(summary)
    argv = ["--profile", "quick", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--report-only"]
    assert alignment.main(argv) == 0
    assert pd.read_csv(tmp_path / "out" / "quick" / "verdicts.csv").verdict.iloc[0] == "inconclusive at this budget"
    assert "commit: 0123456789" in (tmp_path / "out" / "quick" / "verdicts.md").read_text()
    assert (run_dir / "summary.json").read_text() == summary and sorted(p.name for p in run_dir.iterdir()) == [
        "alignment.csv", "summary.json"]
    with pytest.raises(SystemExit, match="run without --report-only first"):
        alignment.main([*argv[:3], str(tmp_path / "elsewhere"), *argv[4:]])
