"""Every cell of every paper experiment composes into a valid run configuration; the reports build."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from secondorder.config import validate
from secondorder.errors import ConfigError
from secondorder.experiments import alignment, george, hf_rnn, search_protocol
from secondorder.experiments.expansion import expand
from secondorder.experiments.hooks import Context
from secondorder.experiments.measurements import load_measurement
from secondorder.experiments.report import cell_runs, write_report
from secondorder.experiments.runner import Cell
from secondorder.experiments.spec import available_specs, load_spec
from tests.helpers import composed, fake_run

QUICK_DATA = {"curves", "mnist_5k", "faces_lfw", "mnist_5k_parity", "ptb_char", "ptb_word", "dnc_copy", "addition",
              "temporal_order_2bit"}


def cells_of(name: str, profile: str, root: Path = Path("runs")) -> dict[str, Cell]:
    return {c.name: c for c in expand(load_spec(name), profile, root / name / profile)}


def context(name: str, profile: str, tmp_path: Path) -> Context:
    spec = load_spec(name)
    return Context(spec, spec.profile(profile), tmp_path / "runs", tmp_path / "out", Path("unused"))


def sample(name: str, profile: str) -> list[Cell]:
    cells = list(cells_of(name, profile).values())
    return cells[::23] if len(cells) > 100 else cells  # the full KFRA grid has 533 cells: a sample


@pytest.mark.parametrize(("name", "profile"), [(name, profile) for name in sorted(available_specs())
                                                for profile in ("quick", "evidence", "full")
                                                if profile in load_spec(name).profiles])
def test_every_cell_composes_and_validates(name: str, profile: str) -> None:
    for cell in sample(name, profile):
        run = validate(composed(*cell.overrides))
        if profile == "quick":  # offline data and a wall-clock budget
            assert run.trainer.max_time_s is not None and run.dataset.name in QUICK_DATA, cell.name


def test_kfra_full_grid_follows_the_paper() -> None:
    cells = cells_of("kfra", "full")
    assert len([n for n in cells if n.startswith("curves__sgd_")]) == 40  # 8 rates × 5 periods
    faces = cells["faces__adam_lr2^-13_T0.0625"].overrides
    assert "trainer.max_steps=160000" in faces and "optimizer.lr_halving_period=10000" in faces
    assert f"optimizer.lr={2.0 ** -13}" in faces and "dataset=faces" in faces
    assert "trainer.max_steps=20000" in cells["faces__kfra"].overrides
    # §5.2 odd/even: KFLR / KFRA / K-FAC for 5 000 updates, Adam's grid only, 40 000 updates
    oddeven = [n for n in cells if n.startswith("oddeven__")]
    assert {"oddeven__kflr", "oddeven__kfra", "oddeven__kfac", "oddeven__adam_default"} <= set(oddeven)
    assert len(oddeven) == 6 + 40 and not any(n.startswith("oddeven__sgd") for n in oddeven)  # + batch-only pair
    # §5 / App. A: D-1000-500-250-30 on every autoencoder, MNIST's first 50 000, curvature with and without averaging
    assert "model.encoder_dims=[625,1000,500,250,30]" in cells["faces__kfra"].overrides
    assert "dataset.n_train=50000" in cells["mnist__kfra"].overrides
    assert "optimizer.stats_decay=0" in cells["curves__kfra_batch"].overrides
    assert "trainer.max_steps=5000" in cells["oddeven__kflr"].overrides
    assert "dataset=mnist_parity" in cells["oddeven__kflr"].overrides
    assert "trainer.max_steps=40000" in cells["oddeven__adam_lr2^-6_T1"].overrides
    assert not any(n.startswith("curves__kflr") for n in cells)  # KFLR only where the paper ran it
    quick = cells_of("kfra", "quick")
    assert quick["mnist__sgd"].overrides[:3] == ["optimizer=sgd", "optimizer.batch_size=1000",
                                                 "optimizer.lr=0.001953125"]
    assert "dataset=mnist_5k" in quick["mnist__sgd"].overrides and "dataset=mnist" not in quick["mnist__sgd"].overrides


def test_comparison_report_per_problem(tmp_path: Path) -> None:
    ctx = context("kfac-autoencoders", "quick", tmp_path)
    cells = expand(ctx.spec, "quick", ctx.runs_root)
    for name, value in (("curves__kfac_blockdiag", 5.0), ("curves__nag", 20.0)):
        fake_run(ctx.runs_root / name, value, value + 1)
    written = write_report(ctx, cells)
    text = (ctx.out / "summary.md").read_text()
    assert "REDUCED BUDGET" in text and "## curves" in text and "## mnist\n\nno completed runs" in text
    assert "Thesis §6.13" in text and "Performance profile" in text
    assert {"curves_error_vs_time.png", "summary.csv", "performance_profile.png"} <= set(written)
    assert (ctx.out / "runs" / "curves__nag" / "summary.json").exists()
    header = text.split("## curves\n\n")[1].splitlines()[0]
    assert header.startswith("| method | dataset | data | optimizer | status |") and "seed" not in header
    assert "| kfac_blockdiag | curves |" in text and "Over seeds" not in text


def test_hf_rnn_cells_follow_the_thesis_and_count_minibatches(tmp_path: Path) -> None:
    full = cells_of("hf-rnn", "full")
    assert len(full) == 8 * 5 * 2 and all(c.seeds == 3 for c in full.values())
    run = validate(composed(*full["addition_T100_structural"].overrides))
    assert run.optimizer.gradient_batch == 10000 and run.optimizer.gradient_batch // run.optimizer.curvature_chunks \
        == 1000 and run.optimizer.max_cg_iters == 300 and run.optimizer.cg_stop_rule == "objective_90"
    assert run.optimizer.structural_damping == pytest.approx(1 / 30) and run.optimizer.initial_lambda == 0.1
    assert run.trainer.target_test_error < 0.01 and run.dataset.T == 100
    plain = validate(composed(*full["xor_T50_tikhonov"].overrides))
    assert plain.optimizer.structural_damping == 0 and plain.optimizer.initial_lambda == 0.3
    for variant in ("structural", "tikhonov"):  # λ₀ = 0.1·T on random_permutation, both variants
        cell = full[f"random_permutation_T150_{variant}"]
        assert validate(composed(*cell.overrides)).optimizer.initial_lambda == 15
    fake = tmp_path / "run"
    fake.mkdir()
    (fake / "summary.json").write_text('{"costs": {"grad_evals": 3, "curvature_products": 250}}')
    (fake / "config.yaml").write_text("optimizer:\n  gradient_batch: 10000\n  curvature_chunks: 10\n")
    assert hf_rnn.minibatches(fake) == 3 * 10 + 250  # a gradient = 10 minibatches, a CG product = 1
    (fake / "summary.json").write_text('{"iteration": 3, "examples_seen": 96, '
                                       '"costs": {"grad_evals": 3, "curvature_products": 250}}')
    assert hf_rnn.minibatches(fake) == pytest.approx((3 + 250) * 32 / 1000)  # 5-bit memorisation: 32, whole


def test_kfac_rnn_experiment_uses_the_papers_setting() -> None:
    cells = cells_of("kfac-rnn", "full")
    word = validate(composed(*cells["ptb_word__kfac_option1"].overrides))
    assert (word.dataset.bptt, word.dataset.batch_size, word.optimizer.batch_size) == (35, 200, 200)
    assert word.model.hidden_dim == 650 and word.model.layers == 2 and word.optimizer.approximation == "option1"
    assert validate(composed(*cells["ptb_word_1024__kfac_indep"].overrides)).model.hidden_dim == 1024
    char = validate(composed(*cells["ptb_char__adam"].overrides))
    assert (char.dataset.bptt, char.model.hidden_dim, char.optimizer.batch_size) == (100, 128, 200)


def test_kfac_rnn_spec_sets_the_papers_cells() -> None:
    """What the spec says, without composing (see the marked tests above for the composed configs)."""
    full, quick = cells_of("kfac-rnn", "full"), cells_of("kfac-rnn", "quick")
    assert "optimizer.approximation=option1" in full["ptb_word__kfac_option1"].overrides
    assert "ptb_word_1024__adam_ln" in full and not any(n.startswith("ptb_word_1024") for n in quick)
    assert "dnc_copy__adam_ln" not in full and "dnc_copy__kfac_option2" in full
    budgets = {n.split("__")[0]: [o for o in c.overrides if o.startswith("trainer.max_time_s=")]
               for n, c in quick.items()}
    assert budgets == {"ptb_char": ["trainer.max_time_s=100"], "ptb_word": ["trainer.max_time_s=80"],
                       "dnc_copy": ["trainer.max_time_s=30"]}


def test_george_full_profile_tunes_each_first_order_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Figs 6.1/6.2: a biased-random-search sweep per method and problem, then the best rate; K-FAC untouched."""
    from secondorder import sweep

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
    ctx = context("george", "full", tmp_path)
    tuned = {c.name: c for c in george.tune(ctx, expand(ctx.spec, "full", ctx.runs_root), trials=3)}
    assert len(calls) == 2 * 7 and all(c[c.index("--trials") + 1] == "3" for c in calls)
    searches = {next(o for o in c if o.startswith("optimizer=")): c[0] for c in calls}
    assert searches == {"optimizer=sgd": "search=george_lr", "optimizer=centered_sgd": "search=george_lr",
                        "optimizer=acp": "search=george_acp", "optimizer=acp_fixed_alpha": "search=george_acp",
                        "optimizer=nnn": "search=george_acp"}  # ACP-like methods: rate and damping
    assert all("trainer.max_steps=10000" in c and "trainer.max_steps=20000" not in c
               and "trainer.max_steps=300000" not in c for c in calls)
    assert "trainer.max_steps=300000" in tuned["mnist__nnn_tuned"].overrides  # §6.6: 3 × 10⁵ updates
    acp = tuned["cifar10__acp_tuned"]
    assert "optimizer.lr=0.01" in acp.overrides and "trainer.max_steps=20000" in acp.overrides
    assert acp.run_dir == ctx.runs_root / "cifar10__acp_tuned" and acp.labels["method"] == "acp_tuned"
    assert "dataset=cifar10" in tuned["cifar10__sgd_tuned"].overrides and "cifar10__kfac" in tuned
    quick = context("george", "quick", tmp_path)
    assert george.tune(quick, cells := expand(quick.spec, "quick", quick.runs_root)) == cells  # untuned
    assert not any(c.name.startswith("cifar10") for c in cells)


def test_kfac_rnn_evidence_tunes_each_approximation_on_the_ptb_problems(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: each K-FAC option gets its own (η, C) search on word and character PTB (the spec's tuning, its
    ``problems`` filter and the grid entry ``kfac``); the copy task and the baselines pass through."""
    from secondorder import sweep
    from secondorder.experiments.tuning import tune

    calls = []

    def fake_sweep(argv):
        calls.append(argv)
        folder = Path(argv[argv.index("--dir") + 1])
        folder.mkdir(parents=True)
        rows = [{"index": 0, "params": {"optimizer.lr": 0.3, "optimizer.trust_region": 0.001}, "criterion": 2.0,
                 "status": "completed", "run_dir": "x"}]
        (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return 0

    monkeypatch.setattr(sweep, "main", fake_sweep)
    ctx = context("kfac-rnn", "evidence", tmp_path)
    tuned = {c.name: c for c in tune(ctx, expand(ctx.spec, "evidence", ctx.runs_root))}
    assert len(calls) == 2 * 3 and all(c[0] == "search=kfac_rnn_step" and "trainer.max_time_s=45" in c
                                       and c[c.index("--trials") + 1] == "6" for c in calls)
    option1 = tuned["ptb_word__kfac_option1_tuned"]
    assert {"optimizer.lr=0.3", "optimizer.trust_region=0.001", "optimizer.approximation=option1",
            "trainer.max_time_s=400"} <= set(option1.overrides)
    assert "dnc_copy__kfac_option2" in tuned and "ptb_char__adam" in tuned and "ptb_char__kfac_indep" not in tuned


def test_george_report_draws_figures_6_1_and_6_2_apart_and_judges_them(tmp_path: Path) -> None:
    """Two figures with the thesis's method sets (issue 19), and a verdict per claim (those without runs
    inconclusive)."""
    ctx = context("george", "quick", tmp_path)
    cells = expand(ctx.spec, "quick", ctx.runs_root)
    for i, method in enumerate(("sgd", "mean_only_bn", "centered_sgd", "kfac", "bn")):
        fake_run(ctx.runs_root / f"mnist__{method}", 10.0 + i, 12.0 + i)
    written = write_report(ctx, cells, george.HOOKS.report, george.HOOKS.verdicts)
    assert {"figure-6.1_error_vs_time.png", "figure-6.2_error_vs_iteration.png", "verdicts.md"} <= set(written)
    text = (ctx.out / "summary.md").read_text()
    assert "Fig. 6.1: centring tricks: `figure-6.1_error_vs_time.png`" in text and "(no run: acp_fixed_alpha)" in text
    assert "(no run: acp, acp_fixed_alpha, nnn)" in text
    verdicts = (ctx.out / "verdicts.md").read_text()
    assert verdicts.count("| **inconclusive at this budget** |") == 5  # quick: a smoke test judges nothing
    assert "mean_only_bn 11" in verdicts  # the rule's numbers are kept


def test_hf_rnn_report_marks_solved_runs_with_provenance(tmp_path: Path) -> None:
    ctx = context("hf-rnn", "quick", tmp_path)
    cells = expand(ctx.spec, "quick", ctx.runs_root)
    for cell, reached in ((cells[0], True), (cells[1], False)):
        fake_run(cell.run_dir, 0.005, 0.004)
        summary = json.loads((cell.run_dir / "summary.json").read_text())
        summary.update(target_reached=reached, costs={"grad_evals": 2, "curvature_products": 40})
        (cell.run_dir / "summary.json").write_text(json.dumps(summary))
        (cell.run_dir / "config.yaml").write_text("optimizer:\n  gradient_batch: 1000\n  curvature_chunks: 10\n")
    write_report(ctx, cells, hf_rnn.report)
    text = (ctx.out / "summary.md").read_text()
    assert "REDUCED" in text and "Hardware: cpu (test)" in text and "thesis §4.13" in text
    assert "| addition | 10 | structural | yes | solved | 7 | 6 |" in text
    assert "| addition | 10 | tikhonov | no | unfinished |" in text
    assert (ctx.out / "table.csv").exists() and (ctx.out / "addition_test_error.png").exists()


def test_hf_rnn_report_over_seeds_gives_solved_counts(tmp_path: Path) -> None:
    """Figure 4.7's quantities with several seeds: solved k / n and the solved runs' minibatches."""
    ctx = context("hf-rnn", "full", tmp_path)
    cell = cells_of("hf-rnn", "full", tmp_path / "runs")["addition_T30_structural"]
    for run, (reached, gradients) in zip(cell.seed_runs(), ((True, 2), (True, 6), (False, 1)), strict=True):
        fake_run(run.run_dir, 0.005, 0.004)
        summary = json.loads((run.run_dir / "summary.json").read_text())
        summary.update(target_reached=reached, costs={"grad_evals": gradients, "curvature_products": 0})
        (run.run_dir / "summary.json").write_text(json.dumps(summary))
        (run.run_dir / "config.yaml").write_text("optimizer:\n  gradient_batch: 10000\n  curvature_chunks: 10\n")
    ctx.out.mkdir(parents=True)
    lines = hf_rnn.report(ctx, [cell], {cell.name: cell_runs(cell)})
    assert "| addition | 30 | structural | 2/3 | 40 [20, 60] |" in "\n".join(lines)
    assert list(pd.read_csv(ctx.out / "table.csv")["seed"]) == [0, 1, 2]


def test_measurement_settings_are_data(tmp_path: Path) -> None:
    """The alignment and search-protocol settings come from conf/measure/; a bad file is a one-line error."""
    assert load_measurement("kfra-alignment")["profiles"] == alignment.PROFILES
    assert search_protocol.PROFILES["full"]["searches"] == 100 and search_protocol.BATCH_SIZE == 200
    for profile in ("quick", "evidence", "full"):
        validate(composed(*alignment.run_overrides(alignment.PROFILES[profile], tmp_path / "run")))
        params = {d.key: d.from_unit(0.5) for d in search_protocol.SPACE}
        validate(composed(*search_protocol.trial_overrides(profile, params, tmp_path, tmp_path / "trial")))
    with pytest.raises(ConfigError, match="no measurement 'nope'"):
        load_measurement("nope")
    (tmp_path / "bad.yaml").write_text("space: {}\n")
    with pytest.raises(ConfigError, match="needs a 'profiles' mapping"):
        load_measurement("bad", tmp_path)


def test_a_problem_plots_its_measures(tmp_path: Path) -> None:
    """kfac-rnn's copy task plots the training cross-entropy (the paper's Figure 3 measure) beside the error rate;
    other problems plot the error only; an unknown measure is a one-line error."""
    ctx = context("kfac-rnn", "quick", tmp_path)
    cells = [c for c in expand(ctx.spec, "quick", ctx.runs_root) if c.labels["problem"] == "dnc_copy"]
    assert cells[0].labels["measures"] == ("loss", "error")
    for cell in cells:
        fake_run(cell.run_dir, 0.5, 0.6)
        metrics = pd.read_csv(cell.run_dir / "metrics.csv")
        metrics["train_loss"], metrics["test_loss"] = metrics.train_error * 10, metrics.test_error * 10
        metrics.to_csv(cell.run_dir / "metrics.csv", index=False)
    write_report(ctx, cells)
    for measure in ("loss", "error"):
        assert (ctx.out / f"dnc_copy_{measure}_vs_iteration.png").stat().st_size > 0
    from secondorder.experiments.spec import parse_spec

    raw = {"title": "t", "profiles": {"quick": {}}, "problems": {"p": {"measures": ["accuracy"]}}, "methods": {"m": []}}
    with pytest.raises(ConfigError, match="'accuracy' is not one of error, loss"):
        parse_spec("x", raw)
