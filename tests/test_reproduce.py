"""The one experiment runner end to end on a tiny spec written here: real ``train`` runs, skipped when
finished, resumed when interrupted, several seeds reported as median [min, max]."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

from secondorder.experiments.reproduce import main
from tests.conftest import TINY


def write_spec(folder: Path, data_dir: Path, steps: int = 2, runs: str = "~/secondorder-runs") -> Path:
    """Two methods on a tiny CURVES autoencoder; ``quick`` one seed, ``seeded`` two seeds of Adam only."""
    overrides = json.dumps(["dataset=curves", *TINY, f"data_dir={data_dir}", "trainer.eval_every=1"])
    budget = json.dumps([f"trainer.max_steps={steps}", "trainer.checkpoint_every=1"])
    path = folder / "tiny.yaml"
    path.write_text(f"""
title: "Tiny comparison"
claims: ["A test of the runner (no paper)."]
standins: {{tiny: [dataset.n_train=200]}}
profiles:
  quick: {{seeds: 1, data: standin, reduced: true, note: "**REDUCED** (a test)", budget: {budget}}}
  seeded: {{seeds: 2, budget: {budget}}}
  outside: {{seeds: 1, runs: {runs}, budget: {budget}}}
problems:
  tiny: {{overrides: {overrides}, data: tiny}}
methods:
  adam: [optimizer=adam]
  sgd: {{profiles: [quick], overrides: [optimizer=sgd, optimizer.lr=0.01]}}
""")
    return path


def test_runs_skips_finished_runs_and_resumes_interrupted_ones(tmp_path: Path, data_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, data_dir)
    args = [str(spec), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "results")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "[run ] tiny__adam" in printed and "[run ] tiny__sgd" in printed
    runs, out = tmp_path / "runs" / "quick", tmp_path / "results" / "quick"
    summary = json.loads((runs / "tiny__sgd" / "summary.json").read_text())
    assert (summary["status"], summary["iteration"], summary["data"]["n_train"]) == ("completed", 2, 200)
    text = (out / "summary.md").read_text()
    assert text.startswith("# Tiny comparison — profile `quick`\n\n**REDUCED** (a test)") and "## tiny" in text
    assert "Performance profile" in text and (out / "performance_profile.png").exists()
    for name in ("tiny_error_vs_iteration.png", "tiny_error_vs_time.png", "tiny_error_vs_gradients.png",
                 "runs/tiny__adam/config.yaml", "runs/tiny__sgd/metrics.csv"):
        assert (out / name).stat().st_size > 0, name
    assert list(pd.read_csv(out / "summary.csv")["method"]) == ["adam", "sgd"]

    assert main(args) == 0  # everything finished: nothing runs again
    printed = capsys.readouterr().out
    assert "[run ]" not in printed and "[skip] tiny__adam: completed" in printed

    # an interrupted run (here: marked so) resumes from its checkpoint, with a longer budget
    summary["status"] = "interrupted"
    (runs / "tiny__sgd" / "summary.json").write_text(json.dumps(summary))
    write_spec(tmp_path, data_dir, steps=4)
    assert main([*args, "--cells", "tiny__s*"]) == 0
    printed = capsys.readouterr().out
    assert "[run ] tiny__sgd" in printed and "tiny__adam" not in printed.split("wrote")[0]
    assert "resumed at iteration 2" in (runs / "tiny__sgd" / "cli.log").read_text()
    assert json.loads((runs / "tiny__sgd" / "summary.json").read_text())["iteration"] == 4

    # a completed run whose budget the spec has since raised is extended from its final checkpoint
    assert main([*args, "--cells", "tiny__adam"]) == 0
    printed = capsys.readouterr().out
    assert "[run ] tiny__adam → " in printed and "(extended: trainer.max_steps 2 → 4)" in printed
    extended = json.loads((runs / "tiny__adam" / "summary.json").read_text())
    assert (extended["status"], extended["iteration"]) == ("completed", 4)
    assert list(pd.read_csv(runs / "tiny__adam" / "metrics.csv").dropna(subset=["train_error"]).iteration) == [
        0, 1, 2, 3, 4]  # one trajectory, continued


def test_every_seed_runs_and_the_report_gives_median_and_range(tmp_path: Path, data_dir: Path) -> None:
    spec = write_spec(tmp_path, data_dir)
    assert main([str(spec), "--profile", "seeded", "--runs", str(tmp_path / "runs"), "--out",
                 str(tmp_path / "results")]) == 0
    folder = tmp_path / "runs" / "seeded" / "tiny__adam"
    finals = [json.loads((folder / f"seed{s}" / "summary.json").read_text())["final"]["train_error"]
              for s in (0, 1)]
    assert "seed: 1" in (folder / "seed1" / "config.yaml").read_text().splitlines()
    assert finals[0] != finals[1]  # the seeds differ
    text = (tmp_path / "results" / "seeded" / "summary.md").read_text()
    expected = f"{statistics.median(finals):.4g} [{min(finals):.4g}, {max(finals):.4g}]"
    assert "Over seeds (median [min, max] of 2)" in text and f"| adam | 2/2 | {expected} |" in text
    assert (tmp_path / "results" / "seeded" / "runs" / "tiny__adam" / "seed1" / "summary.json").exists()


def test_a_profile_with_a_runs_folder_puts_its_runs_there(tmp_path: Path, data_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``runs: ~/…`` (the evidence profiles' long runs, kept outside the work tree): ``~`` is expanded and the
    experiment and profile are appended; ``--list`` and a run use it without ``--runs``."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, data_dir, steps=1)
    assert main([str(spec), "--profile", "outside", "--cells", "tiny__adam", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "home" / "secondorder-runs" / "tiny" / "outside" / "tiny__adam" / "summary.json").exists()
    assert not (tmp_path / "runs").exists()


def test_a_runs_folder_that_is_not_a_path_is_refused(tmp_path: Path, data_dir: Path) -> None:
    from secondorder.errors import ConfigError
    with pytest.raises(ConfigError, match="runs must be a folder path"):
        main([str(write_spec(tmp_path, data_dir, runs="3")), "--list"])


def test_raised_budget_compares_the_cells_budget_with_the_runs() -> None:
    from secondorder.experiments.runner import raised_budget
    done = {"status": "completed", "budget": {"max_steps": None, "max_time_s": 900.0, "max_epochs": None}}
    assert raised_budget(["trainer.max_time_s=1500", "x=1"], done) == "trainer.max_time_s 900.0 → 1500"
    assert raised_budget(["trainer.max_time_s=900", "trainer.max_steps=null"], done) is None
    assert raised_budget(["trainer.max_steps=10"], done) is None  # it had no step limit: 10 is not more
    assert raised_budget(["trainer.max_time_s=1500"], {**done, "target_reached": True}) is None
    assert raised_budget(["trainer.max_time_s=1500"], {**done, "status": "diverged"}) is None


def test_a_cell_named_after_a_power_of_two_runs(tmp_path: Path, data_dir: Path) -> None:
    """Grid labels like ``adam_lr2^-{k}`` (the KFRA spec) name run folders with ``^``, which Hydra's override
    grammar reserves: the runner quotes the folder (issue 18's evidence run failed on it)."""
    overrides = json.dumps(["dataset=curves", *TINY, f"data_dir={data_dir}", "trainer.eval_every=1",
                            "dataset.n_train=200", "trainer.max_steps=1"])
    spec = tmp_path / "caret.yaml"
    spec.write_text(f"""
title: "Caret"
profiles: {{quick: {{seeds: 1}}}}
problems: {{tiny: {{overrides: {overrides}}}}}
methods:
  adam: {{grid: {{k: [9]}}, label: "adam_lr2^-{{k}}", overrides: [optimizer=adam, "optimizer.lr={{2.0 ** -k}}"]}}
""")
    assert main([str(spec), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "results")]) == 0
    summary = json.loads((tmp_path / "runs" / "quick" / "tiny__adam_lr2^-9" / "summary.json").read_text())
    assert summary["status"] == "completed"
