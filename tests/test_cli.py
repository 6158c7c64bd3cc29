"""The installed console scripts as a user runs them: exit codes, one-line errors, SIGTERM, report."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from secondorder.composition import available_options
from tests.conftest import TINY, read_run
from tests.helpers import run_cli, script


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer=nope", "train: error: unknown optimizer 'nope'; available: "
         + ", ".join(available_options("optimizer"))),
        ("optimizer.lr=-1", "train: error: optimizer.lr=-1.0: must be > 0"),
        ("optimizer.lrr=1", "train: error: optimizer.lrr: unknown key"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path: Path, override: str, message: str) -> None:
    result = run_cli(script("train"), override, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message), result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("summary.json"))


def test_kill_term_then_resume_matches_an_uninterrupted_run(tmp_path: Path, data_dir: Path) -> None:
    """The acceptance scenario: SIGTERM from outside (as SLURM sends), then trainer.resume=true."""
    common = [*TINY, f"data_dir={data_dir}", "trainer.max_steps=2000", "trainer.eval_every=100",
              "trainer.log_every=10", "trainer.checkpoint_every=100000"]
    straight = run_cli(script("train"), *common, f"run_dir={tmp_path / 'a'}", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr

    proc = subprocess.Popen([script("train"), *common, f"run_dir={tmp_path / 'b'}"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "b" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.fail("the run finished before SIGTERM arrived; raise max_steps in this test")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err and "trainer.resume=true" in err
    assert read_run(tmp_path / "b")[1]["status"] == "interrupted"

    resumed = run_cli(script("train"), *common, f"run_dir={tmp_path / 'b'}", "trainer.resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, _ = read_run(tmp_path / "a")
    b, summary = read_run(tmp_path / "b")
    assert summary["status"] == "completed"
    pd.testing.assert_frame_equal(a.drop(columns=["wall_time_s"]), b.drop(columns=["wall_time_s"]))


def test_report_prints_a_table_and_writes_plots(train, tmp_path: Path) -> None:
    for optimizer in ("sgd", "adam"):
        code, _ = train(f"optimizer={optimizer}", "trainer.max_steps=6", "trainer.eval_every=3",
                        run_dir=tmp_path / "runs" / optimizer)
        assert code == 0
    result = run_cli(script("report"), str(tmp_path / "runs"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| run | dataset |" in result.stdout and "stand-in data" in result.stdout
    table = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert sorted(table.optimizer) == ["adam", "sgd"] and (table.status == "completed").all()
    for name in ("error_vs_iteration.png", "error_vs_time.png", "summary.md"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    for optimizer in ("sgd", "adam"):
        for name in ("config.yaml", "summary.json", "metrics.csv"):
            assert (tmp_path / "out" / "runs" / optimizer / name).exists()


def test_report_on_nothing_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli(script("report"), str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("report: error: no runs under")


def test_sweep_runs_trials_resumes_and_reports(tmp_path: Path, data_dir: Path) -> None:
    args = [script("sweep"), "search=adam_lr", *TINY, f"data_dir={data_dir}", "trainer.max_steps=3",
            "--trials", "3", "--dir", str(tmp_path / "sw")]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    history = (tmp_path / "sw" / "history.jsonl").read_text().splitlines()
    assert len(history) == 3 and "best: trial" in first.stdout
    assert (tmp_path / "sw" / "trials" / "trial_2" / "summary.json").exists()
    again = run_cli(*args[:-4], "--trials", "4", "--dir", str(tmp_path / "sw"), cwd=tmp_path)
    assert again.returncode == 0 and "resuming" in again.stdout
    lines = (tmp_path / "sw" / "history.jsonl").read_text().splitlines()
    assert len(lines) == 4 and lines[:3] == history  # finished trials kept, none rerun
    assert "| trial | optimizer.lr |" in (tmp_path / "sw" / "summary.md").read_text()


def test_sweep_bad_input_is_one_line(tmp_path: Path) -> None:
    result = run_cli(script("sweep"), "search=nope", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("sweep: error: unknown search 'nope'; available:")
    result = run_cli(script("sweep"), "search=adam_lr", "optimizer=nope", "--trials", "1", "--dir",
                     str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("sweep: error: unknown optimizer 'nope'; available:")
    result = run_cli(script("sweep"), "search=adam_lr", "--sbatch", "--partition=gpu", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("sweep: error: --sbatch is gone: use --launcher slurm")
