"""Every cell of every paper experiment composes into a valid run configuration; comparison reports build."""

from __future__ import annotations

from pathlib import Path

import pytest

from secondorder.config import validate
from secondorder.experiments import hf_rnn, kfac_autoencoders, kfac_rnn, kfra, table_4_3
from tests.test_config import composed
from tests.test_table_4_3 import fake_run


def all_cells(profile: str):
    from secondorder.experiments import george

    yield from table_4_3.cells(profile, 60, Path("runs/table"))
    yield from kfac_autoencoders.COMPARISON.cells(profile, Path("runs/kfac-autoencoders"))
    cells = kfra.COMPARISON.cells(profile, Path("runs/kfra"))
    yield from (cells if profile == "quick" else cells[::23])  # the full grid has 489 cells: a sample
    yield from kfac_rnn.COMPARISON.cells(profile, Path("runs/kfac-rnn"))
    yield from george.COMPARISON.cells(profile, Path("runs/george"))
    cells = hf_rnn.cells(profile, Path("runs/hf-rnn"))
    yield from (cells if profile == "quick" else cells[::7])


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_cell_composes_and_validates(profile: str) -> None:
    names = set()
    for cell in all_cells(profile):
        run = validate(composed(*cell.overrides))
        assert cell.run_dir not in names  # no two cells share a run directory
        names.add(cell.run_dir)
        if profile == "quick":
            assert run.trainer.max_time_s is not None and run.dataset.name in {
                "curves", "mnist_5k", "faces_lfw", "mnist_5k_parity", "ptb_char", "ptb_word", "dnc_copy",
                "addition", "temporal_order_2bit"}, cell.name


def test_kfra_full_grid_follows_the_paper() -> None:
    cells = {c.name: c for c in kfra.COMPARISON.cells("full", Path("runs"))}
    assert len([n for n in cells if n.startswith("curves__sgd_")]) == 40  # 8 rates × 5 periods
    faces = cells["faces__adam_lr2^-13_T0.0625"].overrides
    assert "trainer.max_steps=160000" in faces and "optimizer.lr_halving_period=10000" in faces
    assert "trainer.max_steps=20000" in cells["faces__kfra"].overrides
    # §5.2 odd/even: KFLR / KFRA / K-FAC for 5 000 updates, Adam's grid only, 40 000 updates (L266)
    oddeven = [n for n in cells if n.startswith("oddeven__")]
    assert {"oddeven__kflr", "oddeven__kfra", "oddeven__kfac", "oddeven__adam_default"} <= set(oddeven)
    assert len(oddeven) == 4 + 40 and not any(n.startswith("oddeven__sgd") for n in oddeven)
    assert "trainer.max_steps=5000" in cells["oddeven__kflr"].overrides
    assert "dataset=mnist_parity" in cells["oddeven__kflr"].overrides
    assert "trainer.max_steps=40000" in cells["oddeven__adam_lr2^-6_T1"].overrides
    assert not any(n.startswith("curves__kflr") for n in cells)  # KFLR only where the paper ran it


def test_comparison_report_per_problem(tmp_path: Path) -> None:
    comparison = kfac_autoencoders.COMPARISON
    cells = comparison.cells("quick", tmp_path / "runs")
    for name, value in (("curves__kfac_blockdiag", 5.0), ("curves__nag", 20.0)):
        fake_run(tmp_path / "runs" / name, value, value + 1)
    out = comparison.write(cells, "quick", tmp_path / "out")
    text = (out / "summary.md").read_text()
    assert "REDUCED BUDGET" in text and "## curves" in text and "no completed runs" in text
    assert (out / "curves_error_vs_time.png").exists() and (out / "runs" / "curves__nag" / "summary.json").exists()


def test_hf_rnn_cells_follow_the_thesis_and_count_minibatches(tmp_path: Path) -> None:
    full = {c.name: c for c in hf_rnn.cells("full", tmp_path)}
    assert len(full) == 8 * 5 * 2
    run = validate(composed(*full["addition_T100_structural"].overrides))
    assert run.optimizer.gradient_batch == 10000 and run.optimizer.gradient_batch // run.optimizer.curvature_chunks \
        == 1000 and run.optimizer.max_cg_iters == 300 and run.optimizer.cg_stop_rule == "objective_90"
    assert run.optimizer.structural_damping == pytest.approx(1 / 30) and run.optimizer.initial_lambda == 0.1
    assert run.trainer.target_test_error < 0.01 and run.dataset.T == 100
    plain = validate(composed(*full["xor_T50_tikhonov"].overrides))
    assert plain.optimizer.structural_damping == 0 and plain.optimizer.initial_lambda == 0.3
    assert validate(composed(*full["random_permutation_T150_structural"].overrides)).optimizer.initial_lambda == 15
    fake = tmp_path / "run"
    fake.mkdir()
    (fake / "summary.json").write_text('{"costs": {"grad_evals": 3, "curvature_products": 250}}')
    (fake / "config.yaml").write_text("optimizer:\n  gradient_batch: 10000\n  curvature_chunks: 10\n")
    assert hf_rnn.minibatches(fake) == 3 * 10 + 250  # a gradient = 10 minibatches, a CG product = 1


def test_kfac_rnn_experiment_uses_the_papers_setting() -> None:
    cells = {c.name: c for c in kfac_rnn.COMPARISON.cells("full", Path("runs"))}
    word = validate(composed(*cells["ptb_word__kfac_option1"].overrides))
    assert (word.dataset.bptt, word.dataset.batch_size, word.optimizer.batch_size) == (35, 200, 200)
    assert word.model.hidden_dim == 650 and word.model.layers == 2 and word.optimizer.approx == "option1"
    assert validate(composed(*cells["ptb_word_1024__kfac_indep"].overrides)).model.hidden_dim == 1024
    assert not any(c.name.startswith("ptb_word_1024") for c in kfac_rnn.COMPARISON.cells("quick", Path("r")))
    char = validate(composed(*cells["ptb_char__adam"].overrides))
    assert (char.dataset.bptt, char.model.hidden_dim, char.optimizer.batch_size) == (100, 128, 200)


def test_george_full_profile_tunes_each_first_order_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Figs 6.1/6.2: a biased-random-search sweep per method and problem, then the best rate; K-FAC untouched."""
    import json

    from secondorder import sweep
    from secondorder.experiments import george

    calls = []

    def fake_sweep(argv):
        calls.append(argv)
        folder = Path(argv[argv.index("--dir") + 1])
        folder.mkdir(parents=True)
        rows = [{"index": i, "params": {"optimizer.lr": lr}, "criterion": c, "status": "completed", "run_dir": "x"}
                for i, (lr, c) in enumerate([(0.1, 30.0), (0.01, 20.0), (1.0, None)])]
        (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return 0

    monkeypatch.setattr(sweep, "main", fake_sweep)
    tuned = george.tune(george.COMPARISON, tmp_path, trials=3)
    assert len(calls) == 2 * 4 and all("search=george_lr" in c and "3" in c for c in calls)
    cells = {c.name: c for c in tuned.cells("full", tmp_path)}
    assert "optimizer.lr=0.01" in cells["cifar10__acp_tuned"].overrides and "cifar10__kfac" in cells
    assert "dataset=cifar10" in cells["cifar10__sgd_tuned"].overrides
    assert not any(n.startswith("cifar10") for n in (c.name for c in george.COMPARISON.cells("quick", tmp_path)))


def test_hf_rnn_report_marks_solved_runs_with_provenance(tmp_path: Path) -> None:
    import json

    cells = hf_rnn.cells("quick", tmp_path / "runs")
    for cell, reached in ((cells[0], True), (cells[1], False)):
        fake_run(cell.run_dir, 0.005, 0.004)
        summary = json.loads((cell.run_dir / "summary.json").read_text())
        summary.update(target_reached=reached, costs={"grad_evals": 2, "curvature_products": 40})
        (cell.run_dir / "summary.json").write_text(json.dumps(summary))
        (cell.run_dir / "config.yaml").write_text("optimizer:\n  gradient_batch: 1000\n  curvature_chunks: 10\n")
    text = (hf_rnn.write(cells, "quick", tmp_path / "out") / "summary.md").read_text()
    assert "REDUCED" in text and "Hardware: cpu (test)" in text
    assert "| addition | 10 | structural | yes | 7 | 6 |" in text and "| addition | 10 | tikhonov | no |" in text
