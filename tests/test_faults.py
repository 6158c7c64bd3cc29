"""Fault injection: damaged files, signals and kills at awkward moments, concurrent and killed sweeps, broken runs
in a report. Each case ends in a one-line error with exit code 2 (3 for a divergence) that says what to do, or in a
correct completion; nothing is lost.

Oracle for "nothing lost": an uninterrupted run of the same config — a resumed run's metrics.csv equals its
metrics (all columns but the timing ones) and its final weights equal bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from secondorder import checkpoint as checkpoint_module
from secondorder import run_record
from secondorder import train as train_module
from secondorder.data.cache import cached_tensors
from secondorder.errors import ConfigError, DataError
from secondorder.optim.first_order import Adam
from secondorder.optim.kfac import KFAC
from secondorder.search_history import CRITERIA, check_criterion, criterion_of, read_history
from tests.conftest import TINY, TrainRunner, read_run
from tests.helpers import fake_run, lock_held_by_a_live_process, run_cli, script

TIMING_COLUMNS = ["wall_time_s"]
REPO = Path(__file__).resolve().parents[1]
SHORT = ("trainer.max_steps=24", "trainer.eval_every=8", "trainer.log_every=2", "trainer.checkpoint_every=6")


def assert_same_run(reference: Path, resumed: Path) -> None:
    """Metrics (but wall time) and final weights of ``resumed`` equal those of the uninterrupted ``reference``."""
    expected, _ = read_run(reference)
    got, summary = read_run(resumed)
    assert summary["status"] == "completed"
    pd.testing.assert_frame_equal(expected.drop(columns=TIMING_COLUMNS), got.drop(columns=TIMING_COLUMNS))
    a = torch.load(reference / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("train: error: ")


@pytest.fixture
def reference(train: TrainRunner, tmp_path: Path) -> Path:
    code, err = train(*SHORT, run_dir=tmp_path / "reference")
    assert code == 0, err
    return tmp_path / "reference"


def interrupted_run(train: TrainRunner, monkeypatch: pytest.MonkeyPatch, run_dir: Path, at: int) -> None:
    """A run of SHORT stopped by SIGTERM after iteration ``at`` (checkpoints at 6, 12, …, and at the stop)."""
    step = Adam.step

    def step_then_signal(self, iteration, sampler):
        result = step(self, iteration, sampler)
        if iteration + 1 == at:
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(Adam, "step", step_then_signal)
        code, _ = train(*SHORT, run_dir=run_dir)
    assert code == 128 + signal.SIGTERM


# ----------------------------------------------------------------------------------------------- damaged checkpoints
@pytest.mark.parametrize("damage", ["truncate", "random", "empty"])
def test_a_damaged_checkpoint_is_refused_in_one_line_and_the_previous_one_resumes(
        train: TrainRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: Path, damage: str) -> None:
    run_dir = tmp_path / "r"
    interrupted_run(train, monkeypatch, run_dir, at=14)  # checkpoints at 6, 12, 14: the previous one is 12
    path = run_dir / "checkpoint.pt"
    blob = path.read_bytes()
    path.write_bytes({"truncate": blob[:100_000 if len(blob) > 100_000 else len(blob) // 2],
                      "random": random.Random(0).randbytes(len(blob)), "empty": b""}[damage])
    for mode in ("true", "auto"):
        code, err = train(*SHORT, f"trainer.resume={mode}", run_dir=run_dir)
        assert code == 2 and one_line(err), err
        assert "checkpoint.pt" in err and "trainer.resume=previous" in err and "iteration 12" in err
        assert "trainer.resume=restart" in err
    code, err = train(*SHORT, "trainer.resume=previous", run_dir=run_dir)
    assert code == 0, err
    assert_same_run(reference, run_dir)
    assert len(list(run_dir.glob("checkpoint.replaced-*.pt"))) == 1  # the damaged file is kept, not deleted


def test_restart_moves_the_old_run_aside_and_starts_afresh(train: TrainRunner, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, reference: Path) -> None:
    run_dir = tmp_path / "r"
    interrupted_run(train, monkeypatch, run_dir, at=5)  # no previous checkpoint yet
    (run_dir / "checkpoint.pt").write_bytes(b"")
    code, err = train(*SHORT, "trainer.resume=auto", run_dir=run_dir)
    assert code == 2 and one_line(err) and "trainer.resume=previous" not in err and "restart" in err, err
    code, err = train(*SHORT, "trainer.resume=previous", run_dir=run_dir)
    assert code == 2 and one_line(err) and "checkpoint.prev.pt is missing" in err, err
    old_metrics = (run_dir / "metrics.csv").read_text()
    code, err = train(*SHORT, "trainer.resume=restart", run_dir=run_dir)
    assert code == 0, err
    assert_same_run(reference, run_dir)
    (discarded,) = run_dir.glob("discarded-*")
    assert (discarded / "metrics.csv").read_text() == old_metrics and (discarded / "checkpoint.pt").exists()


def test_a_checkpoint_is_complete_at_every_moment_of_its_rotation(train: TrainRunner, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  reference: Path) -> None:
    """A kill between writing the new checkpoint and renaming it (simulated by an exception there) leaves a
    readable checkpoint.pt; resume=auto completes the run as if nothing happened."""
    replace = os.replace
    calls = {"n": 0}

    def replace_then_die(source, target):
        if Path(target).name == "checkpoint.pt":
            calls["n"] += 1
            if calls["n"] == 2:  # the second checkpoint (iteration 12): the first one must survive
                raise Killed
        return replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoint_module.os, "replace", replace_then_die)
        with pytest.raises(Killed):
            train(*SHORT, run_dir=tmp_path / "r")
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["iteration"] == 6
    code, err = train(*SHORT, "trainer.resume=auto", run_dir=tmp_path / "r")
    assert code == 0, err
    assert_same_run(reference, tmp_path / "r")


# ----------------------------------------------------------------------------------------------- damaged metrics
def test_garbage_after_the_checkpointed_rows_is_dropped_and_the_run_resumes(
        train: TrainRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: Path) -> None:
    run_dir = tmp_path / "r"
    interrupted_run(train, monkeypatch, run_dir, at=14)
    with (run_dir / "metrics.csv").open("a") as handle:
        handle.write("garbage\n14,3.0,tor")  # a junk line and a row torn by a kill
    code, err = train(*SHORT, "trainer.resume=auto", run_dir=run_dir)
    assert code == 0, err
    assert_same_run(reference, run_dir)


@pytest.mark.parametrize("damage", ["empty", "head -c 300", "garbage in the middle", "missing"])
def test_a_log_shorter_or_other_than_its_checkpoint_says_is_refused(
        train: TrainRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    run_dir = tmp_path / "r"
    interrupted_run(train, monkeypatch, run_dir, at=14)
    path = run_dir / "metrics.csv"
    text = path.read_text()
    if damage == "empty":
        path.write_text("")
    elif damage == "head -c 300":
        path.write_text(text[:300])
    elif damage == "garbage in the middle":
        lines = text.splitlines(keepends=True)
        path.write_text("".join([*lines[:3], "garbage\n", *lines[3:]]))
    else:
        path.unlink()
    before = path.read_text() if path.exists() else None
    code, err = train(*SHORT, "trainer.resume=true", run_dir=run_dir)
    assert code == 2 and one_line(err), err
    assert "metrics.csv" in err and "trainer.resume=restart" in err
    assert (path.read_text() if path.exists() else None) == before  # refused: nothing rewritten


# ----------------------------------------------------------------------------------------------- signals, odd stops
def test_sigterm_during_the_first_evaluation_interrupts_consistently(train: TrainRunner, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     reference: Path) -> None:
    evaluate = train_module.Trainer.evaluate

    def evaluate_with_signal(self):
        if self.iteration == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(self)

    with monkeypatch.context() as patch:
        patch.setattr(train_module.Trainer, "evaluate", evaluate_with_signal)
        code, err = train(*SHORT, run_dir=tmp_path / "r")
    assert code == 128 + signal.SIGTERM and one_line(err), err
    metrics, summary = read_run(tmp_path / "r")
    assert summary["status"] == "interrupted" and summary["iteration"] == 0 and len(metrics) == 1
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["iteration"] == 0
    code, err = train(*SHORT, "trainer.resume=true", run_dir=tmp_path / "r")
    assert code == 0, err
    assert_same_run(reference, tmp_path / "r")


def test_an_unexpected_error_marks_the_run_failed(train: TrainRunner, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, iteration, sampler):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Adam, "step", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        train(*SHORT, run_dir=tmp_path / "r")
    _, summary = read_run(tmp_path / "r")
    assert summary["status"] == "failed" and "RuntimeError: a bug" in summary["message"]


def test_a_user_error_found_mid_run_is_one_line_and_marks_the_run_failed(train: TrainRunner, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(self, iteration, sampler):
        raise DataError("data file damaged; fetch it again")

    monkeypatch.setattr(Adam, "step", unreadable)
    code, err = train(*SHORT, run_dir=tmp_path / "r")
    assert code == 2 and one_line(err) and "fetch it again" in err, err
    _, summary = read_run(tmp_path / "r")
    assert summary["status"] == "failed" and "fetch it again" in summary["message"]


def test_a_finite_blow_up_ends_the_run_diverged(train: TrainRunner, tmp_path: Path) -> None:
    code, err = train("optimizer=sgd", "optimizer.lr=1e6", "trainer.max_steps=50", run_dir=tmp_path / "r")
    assert code == 3 and one_line(err) and "trainer.divergence_factor" in err, err
    _, summary = read_run(tmp_path / "r")
    assert summary["status"] == "diverged"
    code, err = train("optimizer=sgd", "optimizer.lr=1e6", "trainer.max_steps=50", "trainer.divergence_factor=null",
                      run_dir=tmp_path / "off")
    assert read_run(tmp_path / "off")[1]["iteration"] > read_run(tmp_path / "r")[1]["iteration"]


@pytest.mark.parametrize("where", ["/proc/runs", "a file"])
def test_an_unwritable_run_directory_is_one_line(train: TrainRunner, tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("x")
    root = "/proc/runs" if where == "/proc/runs" else str(tmp_path / "file" / "runs")
    code, err = train("trainer.max_steps=2", f"out_root={root}")
    assert code == 2 and one_line(err) and root in err, err


def test_a_refused_attempt_changes_nothing_in_the_run_directory(train: TrainRunner, tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    code, _ = train("trainer.max_steps=3", run_dir=run_dir)
    assert code == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    code, err = train("trainer.max_steps=3", "optimizer.lr=0.5", run_dir=run_dir)
    assert code == 2 and "already holds a run" in err
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p in before}
    assert after == before


def test_a_run_directory_another_process_trains_is_refused_and_a_stale_lock_taken_over(train: TrainRunner,
                                                                                        tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    with lock_held_by_a_live_process(run_dir) as pid:
        code, err = train("trainer.max_steps=2", "trainer.resume=auto", run_dir=run_dir)
        assert code == 2 and one_line(err) and f"pid {pid}" in err and "training run" in err, err
        assert not (run_dir / "summary.json").exists() and not (run_dir / "metrics.csv").exists()
    code, err = train("trainer.max_steps=2", "trainer.resume=auto", run_dir=run_dir)  # its holder is gone
    assert code == 0, err
    assert read_run(run_dir)[1]["status"] == "completed" and not (run_dir / ".lock").exists()


# ----------------------------------------------------------------------------------------------- random kill points
class Killed(BaseException):
    """What a SIGKILL does to the process, as far as the files are concerned: it stops at once (``finally`` blocks
    run in-process, but none of them writes the run's files)."""


KILL_SITES = ("step", "append", "checkpoint", "summary")


def kill_points(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` (site, occurrence) pairs: the process dies at the k-th optimiser step, metrics append (half a row
    written), checkpoint write (temporary file complete, not renamed) or summary write."""
    rng = random.Random(seed)
    limits = {"step": 24, "append": 13, "checkpoint": 4, "summary": 2}
    return [(site, rng.randint(1, limits[site])) for site in (rng.choice(KILL_SITES) for _ in range(n))]


def run_until_killed(train: TrainRunner, monkeypatch: pytest.MonkeyPatch, run_dir: Path, site: str,
                     occurrence: int, args: tuple[str, ...]) -> bool:
    """Run ``args`` in ``run_dir`` dying at the ``occurrence``-th ``site``; False when the run ended first."""
    count = {"n": 0}

    def due() -> bool:
        count["n"] += 1
        return count["n"] == occurrence

    step, append = KFAC.step, run_record.MetricsLog.append
    save, write_json = checkpoint_module.torch.save, train_module.write_json

    def step_or_die(self, iteration, sampler):
        if due():
            raise Killed
        return step(self, iteration, sampler)

    def append_or_die(self, row):
        if due():
            line = run_record._csv_line([run_record._format(row.get(c)) for c in self.columns])
            with self.path.open("a") as handle:
                handle.write(line[: len(line) // 2])
            raise Killed
        append(self, row)

    def save_or_die(obj, handle, *a, **k):
        save(obj, handle, *a, **k)
        if due():
            raise Killed

    def summary_or_die(path, payload):
        if due():
            raise Killed
        write_json(path, payload)

    patched = {"step": (KFAC, "step", step_or_die), "append": (run_record.MetricsLog, "append", append_or_die),
               "checkpoint": (checkpoint_module.torch, "save", save_or_die),
               "summary": (train_module, "write_json", summary_or_die)}
    with monkeypatch.context() as patch:
        patch.setattr(*patched[site])
        try:
            code, err = train(*args, run_dir=run_dir)
        except Killed:
            return True
    assert code == 0, err
    return False


def test_twenty_random_kill_points_of_a_kfac_run_resume_to_the_uninterrupted_run(
        train: TrainRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ("optimizer=kfac", *SHORT, "trainer.resume=auto")
    code, err = train(*args, run_dir=tmp_path / "reference")
    assert code == 0, err
    points = kill_points(20)
    killed = 0
    for number, (site, occurrence) in enumerate(points):
        run_dir = tmp_path / f"kill{number}"
        killed += run_until_killed(train, monkeypatch, run_dir, site, occurrence, args)
        code, err = train(*args, run_dir=run_dir)
        assert code == 0, f"kill point {site} #{occurrence}: {err}"
        assert_same_run(tmp_path / "reference", run_dir)
    assert killed == len(points)  # every point was reached: the test exercised what it claims


def test_kill_points_cover_every_site() -> None:
    assert {site for site, _ in kill_points(20)} == set(KILL_SITES)


def test_the_metrics_file_holds_one_line_per_row_written_by_one_write(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    log = run_record.MetricsLog(tmp_path / "metrics.csv", ("gamma",))
    writes = []
    real = run_record.os.write

    def spy(descriptor, data):
        writes.append(data)
        return real(descriptor, data)

    monkeypatch.setattr(run_record.os, "write", spy)
    log.append({"iteration": 1, "loss": 0.5, "gamma": 1.25})
    monkeypatch.undo()
    assert len(writes) == 1 and writes[0].endswith(b"\n") and writes[0].count(b"\n") == 1
    assert log.record() == {"rows": 1, "last_row": pd.read_csv(tmp_path / "metrics.csv", dtype=str,
                                                                keep_default_na=False).iloc[0].tolist()}



# ----------------------------------------------------------------------------------------------- sweeps
LOG_LR = "optimizer.lr=tag(log,interval(1e-5,1e-1))"


def search(train: TrainRunner, folder: Path, *overrides: str, trials: int = 2) -> tuple[int, str]:
    return train("-m", "trainer.max_steps=3", f"hydra.sweep.dir={folder}", "hydra/sweeper=random_search",
                 f"hydra.sweeper.n_trials={trials}", "trainer.resume=auto", LOG_LR, *overrides)


def test_a_search_config_with_a_yaml_error_is_one_line(train: TrainRunner, tmp_path: Path) -> None:
    (tmp_path / "conf" / "search").mkdir(parents=True)
    (tmp_path / "conf" / "search" / "broken.yaml").write_text("hydra:\n  sweeper:\n    params: {a: [\n")
    code, err = train("-m", "+search=broken", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert code == 2 and one_line(err) and "broken.yaml" in err and "invalid YAML" in err, err


def test_a_misspelt_criterion_is_refused_before_any_trial(train: TrainRunner, tmp_path: Path) -> None:
    code, err = search(train, tmp_path / "s", "hydra.sweeper.criterion=best.train_eror")
    assert code == 2 and one_line(err) and "best.train_eror" in err and "best.train_error" in err, err
    assert not (tmp_path / "s" / "0").exists() and not (tmp_path / "s" / "history.jsonl").exists()


@pytest.mark.parametrize("option", [("--trials", "-3"), ("--jobs", "0")])
def test_sweep_refuses_impossible_counts(tmp_path: Path, option: tuple[str, str]) -> None:
    result = run_cli(script("sweep"), "search=adam_lr", *option, "--dir", str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and option[0] in result.stderr, result.stderr
    assert not (tmp_path / "s").exists()


def test_a_sweep_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(train: TrainRunner,
                                                                          tmp_path: Path) -> None:
    folder = tmp_path / "s"
    with lock_held_by_a_live_process(folder) as pid:
        code, err = search(train, folder)
        assert code == 2 and one_line(err) and f"pid {pid}" in err and ".lock" in err, err
        assert not (folder / "history.jsonl").exists()
    code, err = search(train, folder)  # the holder is gone: its lock is stale
    assert code == 0, err
    assert len(read_history(folder / "history.jsonl")) == 2 and not (folder / ".lock").exists()


def test_another_search_in_the_same_folder_is_refused(train: TrainRunner, tmp_path: Path) -> None:
    folder = tmp_path / "s"
    code, err = search(train, folder)
    assert code == 0, err
    record = (folder / "history.jsonl").read_text()
    for different in ("hydra.sweeper.seed=1", "hydra.sweeper.criterion=final.test_error", "optimizer.beta1=0.8"):
        code, err = search(train, folder, different, trials=3)
        assert code == 2 and one_line(err) and "holds another search" in err, (different, err)
    assert (folder / "history.jsonl").read_text() == record
    code, err = search(train, folder, trials=3)  # the same search with more trials
    assert code == 0, err
    assert len(read_history(folder / "history.jsonl")) == 3


def test_a_torn_history_line_is_repaired_and_a_garbage_line_refused(train: TrainRunner, tmp_path: Path) -> None:
    folder = tmp_path / "s"
    code, err = search(train, folder)
    assert code == 0, err
    history = folder / "history.jsonl"
    lines = history.read_text().splitlines(keepends=True)
    history.write_text(lines[0] + lines[1][:25])  # a kill while trial 1 was being recorded
    code, err = search(train, folder, trials=3)
    assert code == 0, err
    assert [t.index for t in read_history(history)] == [0, 1, 2]
    with history.open("a") as handle:
        handle.write("garbage\n")
    code, err = search(train, folder, trials=4)
    assert code == 2 and one_line(err) and "history.jsonl:4 is not a search-history line" in err, err


def test_killing_a_sweep_stops_its_running_trial_and_the_rerun_resumes(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "s"
    args = [script("sweep"), "search=adam_lr", *TINY, f"data_dir={data_dir}", "trainer.max_steps=null",
            "trainer.max_time_s=8", "--method", "random", "--trials", "1", "--dir", str(folder)]
    sweep = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = folder / "trials" / "trial_0" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 3):
        assert time.monotonic() < deadline and sweep.poll() is None, "the trial never started"
        time.sleep(0.1)
    sweep.kill()  # SIGKILL: the sweep itself runs no handler
    sweep.wait()
    deadline = time.monotonic() + 60
    while (folder / ".lock").exists():  # the orphaned trial got SIGTERM from the kernel: it checkpoints and ends
        assert time.monotonic() < deadline, "the trial outlived its sweep"
        time.sleep(0.1)
    summary = json.loads((folder / "trials" / "trial_0" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["wall_time_s"] < 8
    assert not (folder / "history.jsonl").exists() or read_history(folder / "history.jsonl") == []

    result = run_cli(*args, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    (trial,) = read_history(folder / "history.jsonl")
    summary = json.loads((folder / "trials" / "trial_0" / "summary.json").read_text())
    assert trial.status == "completed" and summary["wall_time_s"] >= 8


# ----------------------------------------------------------------------------------------------- report
def test_report_skips_a_broken_run_and_never_counts_its_own_copies(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    fake_run(runs / "a", train=10.0, test=11.0)
    fake_run(runs / "b", train=20.0, test=21.0)
    fake_run(runs / "broken", train=1.0, test=1.0)
    (runs / "broken" / "metrics.csv").write_text("")
    for _ in range(2):  # the same --out, inside the scanned folder, twice
        result = run_cli(script("report"), str(runs), "--out", str(runs / "report"), "--x", "iteration", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("report: warning: skipped") == 1 and "broken" in result.stderr
        assert len(pd.read_csv(runs / "report" / "summary.csv")) == 2
    fake_run(tmp_path / "elsewhere" / "c", train=5.0, test=6.0)
    result = run_cli(script("report"), str(tmp_path), "--x", "iteration", cwd=tmp_path)  # copies in runs/report/runs
    assert result.returncode == 0 and result.stdout.count("| hf |") == 3, result.stdout
    result = run_cli(script("report"), str(runs / "report" / "runs"), "--x", "iteration", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.count("| hf |") == 2  # named directly, copies are read


# ----------------------------------------------------------------------------------------------- local SLURM script
def test_the_local_slurm_script_stops_only_the_daemons_it_started(tmp_path: Path) -> None:
    """Stand-in daemons (``sleep`` under the daemons' names): one recorded in the script's pid-file folder, one
    not (another user's), and a pid file whose pid now runs something else (a reused pid)."""
    fake = tmp_path / "slurmd"
    fake.write_bytes(Path(shutil.which("sleep")).read_bytes())
    fake.chmod(0o755)
    ours, theirs = (subprocess.Popen([str(fake), "60"]) for _ in range(2))
    unrelated = subprocess.Popen(["sleep", "60"])
    state = tmp_path / "state"
    state.mkdir()
    (state / "slurmd.pid").write_text(f"{ours.pid}\n")
    (state / "slurmctld.pid").write_text(f"{unrelated.pid}\n")  # pid reused by a process that is not slurmctld
    try:
        result = subprocess.run(["bash", str(REPO / "scripts" / "slurm_local_cluster.sh"), "stop"],
                                env={**os.environ, "SECONDORDER_SLURM_STATE": str(state)}, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert ours.wait(timeout=10) == -signal.SIGTERM
        assert theirs.poll() is None and unrelated.poll() is None
        assert not list(state.glob("*.pid"))
    finally:
        for process in (ours, theirs, unrelated):
            process.kill()
            process.wait()


def test_every_criterion_the_sweeper_accepts_names_a_number_in_a_run_summary(train: TrainRunner,
                                                                             tmp_path: Path) -> None:
    code, err = train("trainer.max_steps=3", "trainer.polyak_decay=0.9", run_dir=tmp_path / "r")
    assert code == 0, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    missing = [c for c in CRITERIA if criterion_of(summary, c) is None and ".valid_" not in c]
    assert missing == []
    for path in ("best.train_eror", "final.train_errors", "costs", "best"):
        with pytest.raises(ConfigError, match=r"is not in a run.s summary\.json"):
            check_criterion(path)


def test_an_unreadable_data_cache_is_generated_again(tmp_path: Path) -> None:
    path = tmp_path / "cache.pt"
    path.write_bytes(b"\x00" * 10)
    made = cached_tensors(path, lambda: {"x": torch.arange(3)})
    assert torch.equal(made["x"], torch.arange(3))
    assert torch.equal(cached_tensors(path, lambda: {"x": torch.zeros(1)})["x"], torch.arange(3))  # now cached
