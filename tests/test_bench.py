"""The benchmark scripts write their tables with provenance; their numbers are never asserted on (speed is
measured, not asserted) — only the structure, the unit conversions and the goal bookkeeping are."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from secondorder.bench import curvature, data_parallel, iterations, suite, time_to_target
from secondorder.report.runs import Run
from tests.conftest import TINY

TINY_RUN = [o for o in TINY if not o.startswith(("trainer.device", "dataset.batch_size"))]


def test_curvature_benchmark_writes_its_table(tmp_path: Path) -> None:
    folder = curvature.main(["--device", "cpu", "--models", "tiny", "tiny_lm", "tiny_rnn", "--batches", "16",
                             "--model-batches", "tiny_lm=12", "--repeats", "1", "--out", str(tmp_path)])
    table = pd.read_csv(folder / "curvature.csv")
    assert set(table.quantity) == {"gradient", "ggn_cached", "ggn_cached_setup", "ggn_layered", "ggn_layered_setup",
                                   "ggn_uncached", "ggn_double_backward", "ggn_double_backward_setup", "fisher",
                                   "fisher_uncached", "hessian"}
    assert set(table[table.quantity == "ggn_layered"].model) == {"tiny"}  # layered feed-forward nets only
    assert (table.median_s > 0).all()
    assert (table.min_s <= table.median_s).all() and (table.median_s <= table.max_s).all()
    # K counts cases: rows for the autoencoder, predicted tokens for the LSTM (⌈12 / BPTT 5⌉ = 3 windows = 15)
    assert set(table[table.model == "tiny"].K) == {16} and set(table[table.model == "tiny_lm"].K) == {15}
    assert set(table.model) == {"tiny", "tiny_lm", "tiny_rnn"}  # the HF-RNN task's RNN, built as train builds it
    gradient = table[(table.model == "tiny") & (table.quantity == "gradient")].median_s.iloc[0]
    hessian = table[(table.model == "tiny") & (table.quantity == "hessian")]
    assert hessian.ratio_to_gradient.iloc[0] == pytest.approx(hessian.median_s.iloc[0] / gradient)
    text = (folder / "curvature.md").read_text()
    assert "Device: cpu" in text and "torch" in text and "commit" in text and "× gradient" in text
    assert (folder / "curvature.json").exists()


def test_iteration_configs_come_from_the_yaml_files_with_the_benchmark_batch() -> None:
    kfra = iterations.optimizer_config("kfra", "curves", 500)
    assert (kfra.factors, kfra.momentum, kfra.inverse_period, kfra.batch_size) == ("kfra", False, 1, 500)
    kfac = iterations.optimizer_config("kfac", "curves", 500)
    assert (kfac.batch_schedule, kfac.batch_size, kfac.initial_lambda) == ("fixed", 500, 150.0)
    assert iterations.window_length(kfac) == 20 and iterations.window_length(kfra) == 5
    hf = iterations.optimizer_config("hf", "curves", 500)
    assert hf.gradient_batch == 500 and hf.curvature_chunks == 4 and iterations.window_length(hf) == 2
    lm = iterations.optimizer_config("hf", "ptb_char", 1000)  # BPTT 100: 10 windows, no per-case split
    assert (lm.gradient_batch, lm.preconditioner, lm.curvature_chunks) == (10, "none", 1)
    assert iterations.optimizer_config("kfac_rnn", "ptb_char", 1000).batch_size == 10
    assert iterations.optimizer_config("acp", "curves", 64).stats_batch_size == 64


def test_iteration_benchmark_splits_each_step_into_parts(tmp_path: Path) -> None:
    folder = iterations.main(["--device", "cpu", "--models", "tiny", "--batch", "32", "--repeats", "1",
                              "--methods", "adam", "kfac", "hf", "adam+compile", "--out", str(tmp_path)])
    table = pd.read_csv(folder / "iterations.csv").set_index("method")
    assert list(table.index) == ["adam", "kfac", "hf", "adam+compile"]
    assert table.loc["adam", "ratio_to_adam"] == 1.0 and (table.ratio_to_adam > 0).all()
    parts = [c for c in table.columns if c.startswith("part_")]
    # the parts of the instrumented window add up to its measured step time
    assert table[parts].fillna(0).sum(axis=1).to_numpy() == pytest.approx(table.instrumented_step_s.to_numpy(),
                                                                           rel=1e-6)
    for column in ("part_statistics_s", "part_inverses_s", "part_proposal_s", "part_rescaling_s"):
        assert table.loc["kfac", column] > 0
    for column in ("part_linearisation_s", "part_cg_s", "part_backtracking_s", "part_line_search_s"):
        assert table.loc["hf", column] > 0
    assert table.loc["hf", "cg_iters_per_step"] >= 1 and table.loc["kfac", "window"] == 20
    assert table.loc["kfac", "grad_evals_per_step"] == 2  # gradient + statistics pass
    text = (folder / "iterations.md").read_text()
    assert "× Adam" in text and "— (CPU)" in text and "rescaling" in text
    with pytest.raises(SystemExit, match="module hooks"):
        iterations.main(["--device", "cpu", "--models", "tiny", "--methods", "kfac+compile", "--out", str(tmp_path)])


def test_benchmark_method_names_carry_compilation_and_setting_changes() -> None:
    assert iterations.split_method("adam") == ("adam", False, [])
    assert iterations.split_method("hf+compile") == ("hf", True, [])
    name, compiled, changes = iterations.split_method("kfac:fisher_fraction=0.25,momentum=false")
    assert (name, compiled, changes) == ("kfac", False, ["fisher_fraction=0.25", "momentum=false"])
    cfg = iterations.optimizer_config(name, "curves", 500, changes)
    assert cfg.fisher_fraction == 0.25 and cfg.momentum is False and cfg.batch_size == 500
    for wrong, says in (("kfac:fisher_fraction", "key=value"), ("kfac:", "key=value"),
                        ("kfac:momentum=1,momentum=0", "each key once"), ("adamw", "unknown method"),
                        ("kfac:nope=1", "nope"), ("kfac:fisher_fraction=2", "fisher_fraction")):
        with pytest.raises(SystemExit, match=says):
            name, _, changes = iterations.split_method(wrong)
            iterations.optimizer_config(name, "curves", 500, changes)


def _run(path: Path, times: list[float], errors: list[float], wall: float | None = None) -> Run:
    metrics = pd.DataFrame({"iteration": list(range(len(times))), "wall_time_s": times, "train_error": errors})
    return Run(path, {"optimizer": path.name, "wall_time_s": wall or times[-1]}, metrics)


def test_time_to_target_table_takes_the_best_tuned_adam_and_bounds_missing_speedups(tmp_path: Path) -> None:
    found = {
        ("curves", "kfac"): [_run(tmp_path / "kfac", [0, 1, 2, 3], [26, 20, 9, 4]),
                             _run(tmp_path / "kfac1", [0, 2, 4, 6], [26, 20, 9, 4]),
                             _run(tmp_path / "kfac2", [0, 0.5, 1, 1.5], [26, 25, 22, 21])],
        ("curves", "hf"): [_run(tmp_path / "hf", [0, 10, 20], [26, 25, 24])],
        ("curves", "adam_lr0.001"): [_run(tmp_path / "a1", [0, 10, 40], [26, 19, 12])],
        ("curves", "adam_lr0.01"): [_run(tmp_path / "a2", [0, 5, 30], [26, 20, 15])],
    }
    frame = time_to_target.table(found, ["curves"], {"curves": [20.0, 10.0]}, {"adam": 60.0}).set_index(
        ["target", "method"])
    assert frame.loc[(20.0, "adam"), "run"] == "adam_lr0.01" and frame.loc[(20.0, "adam"), "time_s"] == 5
    # K-FAC's seeds reach 20 at 1 s, 2 s and never: median 2 s, spread 1 s – ∞; speed-up 5 s / 2 s
    assert frame.loc[(20.0, "kfac"), "time_s"] == 2 and frame.loc[(20.0, "kfac"), "seeds"] == 3
    assert (frame.loc[(20.0, "kfac"), "time_min_s"], frame.loc[(20.0, "kfac"), "time_max_s"]) == (1, math.inf)
    assert frame.loc[(20.0, "kfac"), "speedup_over_adam"] == pytest.approx(2.5)
    assert frame.loc[(20.0, "hf"), "time_s"] == math.inf and math.isnan(frame.loc[(20.0, "hf"), "speedup_over_adam"])
    # no Adam reached 10: K-FAC's speed-up is at least Adam's budget over K-FAC's median time (4 s)
    assert frame.loc[(10.0, "kfac"), "speedup_bound"] == ">" and frame.loc[(10.0, "kfac"), "speedup_over_adam"] == 15
    text = time_to_target.to_markdown(frame.reset_index(), {"device": "cpu", "torch": "x", "cuda": None,
                                                           "threads": 2, "date": "d"}, "quick",
                                      time_to_target.PROFILES["quick"])
    assert ">15.00×" in text and "QUICK" in text and "stand-ins" in text and "1 s–— |" in text


def test_time_to_target_runs_stop_at_the_lowest_target_within_their_budget(tmp_path: Path) -> None:
    profile = time_to_target.PROFILES["full"]
    cells = time_to_target.cells(["curves", "mnist_5k"], profile, profile.targets, tmp_path)
    by_name = {c.name: c for c in cells}
    assert set(by_name) >= {"curves_hf", "curves_kfac", "curves_kfra", "curves_adam_lr0.001", "mnist_5k_kfac"}
    assert "trainer.target_train_error=0.11" in by_name["curves_hf"].overrides and "seed=0" in by_name[
        "curves_hf"].overrides
    assert "seed=2" in by_name["curves_hf_seed2"].overrides and "curves_hf_seed3" not in by_name  # 3 seeds
    assert "trainer.max_time_s=900" in by_name["curves_hf"].overrides
    assert "experiment=table_4_3/mnist_rand_hf" in by_name["mnist_5k_hf"].overrides
    assert "dataset=mnist_5k" in by_name["mnist_5k_hf"].overrides
    assert time_to_target.parse_targets(["curves=3,2"], profile.targets)["curves"] == [3.0, 2.0]
    with pytest.raises(SystemExit):
        time_to_target.parse_targets(["curves"], profile.targets)


def test_suite_summary_states_each_goal_and_the_device_it_was_measured_on(tmp_path: Path) -> None:
    pd.DataFrame({"model": ["curves", "faces", "curves", "curves", "mnist"], "K": [5000, 7500, 1000, 1000, 1000],
                  "quantity": ["ggn_cached"] * 3 + ["ggn_layered_setup"] * 2,
                  "ratio_to_gradient": [0.9, 1.4, 3.0, 0.4, 2.5]}).to_csv(
        tmp_path / "curvature.csv", index=False)
    pd.DataFrame({"model": ["curves"], "m": [1000], "method": ["kfac"], "ratio_to_adam": [1.3]}).to_csv(
        tmp_path / "iterations.csv", index=False)
    pd.DataFrame({"problem": ["curves"], "target": [0.2], "method": ["kfac"], "time_s": [50.0],
                  "speedup_over_adam": [6.0], "speedup_bound": [">"]}).to_csv(tmp_path / "time_to_target.csv",
                                                                           index=False)
    goals = {g: (measured, met) for g, measured, met in suite.goals(tmp_path)}
    ggn = next(v for k, v in goals.items() if k.startswith("cached GGN"))
    assert ggn[1] == "no (worst 1.4×)" and "curves K=5000: 0.9×" in ggn[0] and "K=1000" not in ggn[0]
    assert next(v for k, v in goals.items() if k.startswith("K-FAC iteration"))[1] == "yes"
    setup = next(v for k, v in goals.items() if k.startswith("HF curvature set-up"))
    assert setup[1] == "no (worst 2.5×)" and "curves K=1000: 0.4×" in setup[0]
    kfac = next(v for k, v in goals.items() if k.startswith("K-FAC on CURVES"))
    assert kfac[1] == "yes" and ">6.00×" in kfac[0]
    assert next(v for k, v in goals.items() if k.startswith("RAND+HF"))[1] == "not measured"
    import torch

    text = suite.write_summary(tmp_path, torch.device("cpu"), "quick", {"curvature": 1.0}).read_text()
    assert "stated for one H100" in text and "| goal | measured | met |" in text


def test_benchmark_provenance_ignores_its_own_results_but_not_code_changes(tmp_path: Path) -> None:
    import subprocess

    from secondorder.run_record import git_state

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "results" / "table.md").write_text("old\n")
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "results" / "table.md").write_text("new\n")
    assert git_state(tmp_path / "src")["git_dirty"] is True
    assert git_state(tmp_path / "src", ignore=("results",))["git_dirty"] is False
    (tmp_path / "src" / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path / "src", ignore=("results",))["git_dirty"] is True


def test_time_to_target_runs_real_training_jobs_end_to_end(tmp_path: Path, data_dir: Path) -> None:
    """Every method's overrides compose into a valid ``train`` run (HF, K-FAC, KFRA, Adam on a tiny CURVES), and
    the table and run records are written."""
    folder = time_to_target.main([
        "--profile", "quick", "--problems", "curves", "--seconds", "1", "--adam-lrs", "0.01",
        "--targets", "curves=1000,1", "--device", "cpu", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path),
        "--extra", f"data_dir={data_dir}", "dataset.n_train=128", "dataset.n_test=64", "model.encoder_dims=[784,8,4]",
        "trainer.eval_batch_size=64"])
    frame = pd.read_csv(folder / "time_to_target.csv")
    assert set(frame.method) == {"hf", "kfac", "kfra", "adam"}
    easy = frame[frame.target == 1000].set_index("method")  # every method starts below 1000: reached at once
    assert (easy.time_s == 0).all() and (easy.iterations == 0).all() and (easy.speedup_over_adam == 1.0).all()
    assert frame[frame.target == 1].time_s.eq(math.inf).all()  # impossible in 1 s: reported as not reached
    for name in ("curves_hf", "curves_kfac", "curves_kfra", "curves_adam_lr0.01"):
        assert (folder / "time_to_target" / name / "summary.json").exists()
    assert "budget overridden to 1 s per run" in (folder / "time_to_target.md").read_text()


def test_make_bench_runs_each_part_with_its_profile_and_writes_the_summary(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(suite.PROFILES, "quick", {
        "curvature": ["--models", "tiny", "--batches", "16", "--repeats", "1", "--methods", "ggn_cached"],
        "iterations": ["--models", "tiny", "--batch", "32", "--repeats", "1", "--methods", "adam", "kfac"],
    })
    folder = suite.main(["--profile", "quick", "--only", "curvature", "iterations", "--device", "cpu",
                         "--out", str(tmp_path)])
    assert {p.name for p in folder.iterdir()} >= {"curvature.md", "iterations.md", "README.md"}
    summary = (folder / "README.md").read_text()
    assert "profile `quick`" in summary and "curvature" in summary and "K-FAC iteration" in summary


def test_data_parallel_benchmark_times_real_runs_at_one_and_two_processes(tmp_path: Path, data_dir: Path) -> None:
    folder = data_parallel.main(["--device", "cpu", "--ranks", "1", "2", "--batch", "32", "--steps", "6",
                                 "--methods", "adam", "kfac:parallel_inverses=every_rank", "--data-dir",
                                 str(data_dir), "--out", str(tmp_path), "--set", *TINY_RUN])
    frame = pd.read_csv(folder / "data_parallel.csv")
    assert frame[["method", "ranks"]].values.tolist() == [["adam", 1], ["adam", 2],
                                                          ["kfac:parallel_inverses=every_rank", 1],
                                                          ["kfac:parallel_inverses=every_rank", 2]]
    assert (frame.step_s > 0).all() and (frame.timed_steps == 3).all()
    one, two = frame[frame.ranks == 1], frame[frame.ranks == 2]
    assert (one.bytes_per_step == 0).all() and (one.speedup == 1).all()
    # two ranks: at least the gradient (38 758 float32 parameters of the tiny autoencoder) goes out every step
    assert (two.bytes_per_step > 4 * 38758).all() and (two.collectives_per_step >= 1).all()
    assert "bytes / step" in (folder / "data_parallel.md").read_text()


def test_data_parallel_benchmark_overrides_give_every_batch_the_same_m() -> None:
    assert data_parallel.method_overrides("kfac:parallel_inverses=every_rank", 500) == [
        "optimizer=kfac", "optimizer.batch_size=500", "optimizer.batch_schedule=fixed",
        "optimizer.parallel_inverses=every_rank"]
    assert data_parallel.method_overrides("hf", 500) == ["optimizer=hf", "optimizer.gradient_batch=500"]
